"""`relay`: train one map per composition (source LLM -> target LLM); both LLMs stay frozen.

1. Load the configured parallel pairs, refuse train/test overlap (the shared contamination guard), and
   compute the cache key from the config, the data and the weights of every LLM involved.
2. For each composition: load both LLMs in float32 with their own tokenizers, encode its directions'
   pairs, train the map (+ the target LoRA in the variant) with AdamW on the mean NLL of the target
   tokens, checkpointing every `train.save_every` steps (a rerun resumes).
3. Save `relay<i>/map.safetensors` (+ `relay<i>/adapter/`), `relay<i>/relay.json`, then the manifest.
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm.auto import tqdm

from harness.config import to_dict
from harness.errors import HarnessError
from harness.io import atomic_write_json, stable_hash
from harness.method import Artifact, TrainContext
from harness.training import trainer
from harness.training.artifacts import artifact_dir, config_hash, load_artifact, save_artifact
from harness.training.contamination import guard
from harness.training.data import load_training_data
from harness.training.outputs import plot_loss
from methods.relay.relay import Relay, encode


def resolve(name: str, ctx_model):
    """A composition's model name -> ResolvedModel (`{model}` = the run's --model)."""
    from harness.models import resolve_model

    return ctx_model if name == "{model}" else resolve_model(name)


def load_lm(path, trust_remote_code: bool = False, dtype: torch.dtype = torch.float32):
    """Tokenizer + causal LM, frozen (every parameter has requires_grad False)."""
    from transformers import AutoModelForCausalLM

    from harness.loading import load_tokenizer

    tok = load_tokenizer(path, trust_remote_code)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), tok


def build_relay(cfg, source, source_tok, target):
    return Relay(source, target, source_pad_id=source_tok.pad_token_id, layer=cfg.layer,
                 normalize_source=cfg.normalize_source, kind=cfg.map, n_queries=cfg.xattn_queries,
                 heads=cfg.xattn_heads)


def add_target_lora(target, lora):
    from peft import LoraConfig, get_peft_model

    try:
        return get_peft_model(target, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                 target_modules=list(lora.targets), task_type="CAUSAL_LM"))
    except ValueError as e:
        raise HarnessError(f"relay.target_lora.targets {lora.targets}: {str(e).splitlines()[0]}") from None


def train_relay(cfg, ctx: TrainContext, name: str = "relay") -> Artifact:
    # 1. data, contamination guard, cache key over config + data + every LLM's weights
    examples, stats = load_training_data(cfg.data, ctx.data, seed=ctx.seed)
    examples, report = guard(examples, ctx.eval_tasks, drop=ctx.allow_overlap)
    models = [(resolve(c.source, ctx.model), resolve(c.target, ctx.model)) for c in cfg.relays]
    identities = [{"source": s.identity(), "target": t.identity()} for s, t in models]
    fingerprint = stable_hash([(e.src, e.tgt, e.source, e.reference) for e in examples])
    config = to_dict(cfg)
    key = config_hash(name, {**config, "seed": ctx.seed,
                             "llms": [[i["source"]["weights_sha256"], i["target"]["weights_sha256"]] for i in identities]},
                      fingerprint)
    folder = artifact_dir(ctx.out_dir, name, ctx.model.identity().get("weights_sha256", ""), key)
    cached = load_artifact(folder, config_hash=key)
    if cached:
        print(f"[{name}] reusing artifact {folder} (config hash {key})")
        return cached
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise HarnessError("relay: trains in one process (only the small map trains); run without accelerate launch")

    # 2. one map per composition
    for i, (comp, (src_m, tgt_m)) in enumerate(zip(cfg.relays, models)):
        mine = [e for e in examples if e.pair in comp.pairs]
        if not mine:
            raise HarnessError(f"relay.relays[{i}]: no training pairs for {comp.pairs} after filtering")
        out = folder / f"relay{i}"
        if (out / "relay.json").exists():  # written last: this composition finished before an interruption
            print(f"[{name}] relays[{i}] already trained: {out}")
            continue
        out.mkdir(parents=True, exist_ok=True)
        source, source_tok = load_lm(src_m.path, ctx.backend.trust_remote_code)
        target, target_tok = load_lm(tgt_m.path, ctx.backend.trust_remote_code)
        if cfg.target_lora is not None:
            target = add_target_lora(target, cfg.target_lora)
        relay = build_relay(cfg, source, source_tok, target)
        feats = [encode(source_tok, target_tok, cfg, e.doc(), e.reference, cfg.train.max_length) for e in mine]
        fit(relay, feats, target_tok.pad_token_id, cfg.train, out, ctx.seed, ctx.backend.device,
            f"{name} {'+'.join(comp.pairs)}")
        # 3. save the trained parts only
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in relay.map.state_dict().items()},
                  str(out / "map.safetensors"))
        if cfg.target_lora is not None:
            relay.target.save_pretrained(out / "adapter")
        atomic_write_json(out / "relay.json", {"pairs": comp.pairs, "source": comp.source, "target": comp.target,
                                               **identities[i], "n_train": len(mine)})
        (out / "checkpoint.pt").unlink(missing_ok=True)
        del relay, source, target
        gc.collect()
    config = {**config, "training_data": {**stats, "contamination": report, "fingerprint": fingerprint,
                                          "n_train": len(examples)}}
    art = save_artifact(folder, name, "composite", config, key, {"relays": identities})
    print(f"[{name}] artifact saved: {folder}")
    return art


# Rows per target forward pass inside a micro-batch: memory only (a Gemma 3 target has a 262k vocabulary, so
# the logits of 8 rows take GBs); gradients are summed token-weighted, so the step's loss is unchanged.
FORWARD_ROWS = 2


def fit(relay: Relay, feats: list, pad_id: int, cfg, out: Path, seed: int, device: str, desc: str) -> None:
    """AdamW on the trainable parameters (the map, plus a LoRA adapter if present); resumable."""
    from harness.loading import pick_device

    dev = pick_device(device)
    torch.manual_seed(seed)
    relay.to(dev)
    relay.map.float().train()
    if any(p.requires_grad for p in relay.target.parameters()):
        relay.target.train()  # LoRA dropout
    if cfg.gradient_checkpointing:
        relay.target.gradient_checkpointing_enable()
    params = [p for p in relay.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = math.ceil(len(feats) / (cfg.batch_size * cfg.grad_accum))
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, trainer.lr_schedule(cfg, total))
    ckpt, loss_file = out / "checkpoint.pt", out / "loss.jsonl"
    step, history = 0, []
    if ckpt.exists():  # resume
        state = torch.load(ckpt, map_location=dev, weights_only=True)
        trainable = dict((n, p) for n, p in relay.named_parameters() if p.requires_grad)
        with torch.no_grad():
            for n, v in state["params"].items():
                trainable[n].copy_(v)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = state["step"]
        history = [r for r in map(json.loads, loss_file.read_text().splitlines()) if r["step"] <= step] \
            if loss_file.exists() else []
        print(f"resuming from {ckpt} at step {step}/{total}")
    loss_file.write_text("".join(json.dumps(r) + "\n" for r in history))
    lengths = [{"input_ids": f.source_ids + f.target_ids} for f in feats]  # for length grouping only
    epochs = (b for epoch in range(10 ** 9) for b in trainer.batches(lengths, cfg, seed, epoch))
    for _ in range(step):
        next(epochs)
    precision = trainer.resolve_precision(cfg, dev)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if precision in ("bf16-mixed", "bf16") else nullcontext()
    bar = tqdm(total=total, initial=step, desc=desc, unit="step", dynamic_ncols=True)
    t0 = time.time()
    try:
        while step < total:
            micro = trainer.micro_batches(next(epochs), cfg.grad_accum, 1, 0)
            counts = [sum(len(feats[j].target_ids) for j in idx) for idx in micro]
            loss_sum = 0.0
            n_step = sum(counts)
            for idx in micro:
                for c in range(0, len(idx), FORWARD_ROWS):
                    with autocast:
                        loss, n = relay.loss([feats[j] for j in idx[c:c + FORWARD_ROWS]], pad_id)
                    if not torch.isfinite(loss):
                        raise HarnessError(f"relay training loss is {float(loss)} at step {step + 1}: lower train.lr")
                    (loss * n / max(1, n_step)).backward()  # the step's loss = mean over all its target tokens
                    loss_sum += float(loss.detach()) * n / max(1, n_step)
                    del loss
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            rec = {"step": step, "loss": round(loss_sum, 5), "lr": sched.get_last_lr()[0],
                   "tokens": sum(counts), "seconds": round(time.time() - t0, 2)}
            history.append(rec)
            with open(loss_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            bar.update(1)
            if cfg.save_every and step % cfg.save_every == 0 and step < total:
                tmp = ckpt.with_suffix(".tmp")
                torch.save({"step": step, "opt": opt.state_dict(), "sched": sched.state_dict(),
                            "params": {n: p.detach() for n, p in relay.named_parameters() if p.requires_grad}}, tmp)
                tmp.replace(ckpt)
    finally:
        bar.close()
    plot_loss(history, out / "loss.png")
    relay.eval()
