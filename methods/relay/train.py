"""`relay`: train one map per composition (source LLM -> target LLM); both LLMs stay frozen.

1. Load the configured parallel pairs, refuse train/test overlap (the shared contamination guard), and
   compute the cache key from the config, the data and the weights of every LLM involved
   (`harness.training.artifacts.artifact_cache`).
2. For each composition: load both LLMs in float32 (`harness.loading.load_frozen`), encode its directions'
   pairs, train the map (+ the target LoRA in the variant) through the shared loop (`trainer.train` with
   `RelayObjective`: mean NLL of the target tokens), checkpointing every `train.save_every` steps (a rerun resumes).
3. Save `relay<i>/map.safetensors` (+ `relay<i>/adapter/`), `relay<i>/relay.json`, then the manifest.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
from pathlib import Path

import torch

from harness.config import to_dict
from harness.errors import HarnessError
from harness.io import atomic_write_json, stable_hash
from harness.method import Artifact, TrainContext
from harness.training import trainer
from harness.training.artifacts import artifact_cache
from harness.training.contamination import guard
from harness.training.data import load_training_data
from methods.relay.relay import Encoded, Relay, encode


def resolve(name: str, ctx_model):
    """A composition's model name -> ResolvedModel (`{model}` = the run's --model)."""
    from harness.models import resolve_model

    return ctx_model if name == "{model}" else resolve_model(name)


def load_lm(path, trust_remote_code: bool = False, dtype: torch.dtype = torch.float32):
    """Tokenizer + causal LM, frozen (every parameter has requires_grad False)."""
    from harness.loading import load_frozen

    model, tok = load_frozen(path, trust_remote_code, dtype)
    return model, tok


def source_layer(layer: int | float, source) -> int:
    """The entry of the source model's `hidden_states` that is mapped: an int indexes it as given (-1 the last
    layer's output, 0 the embeddings); a float in (0, 1) is a fraction of the source model's depth, e.g. 0.5 the
    middle layer (so one setting means the same depth for sources of different depths)."""
    if isinstance(layer, float):
        n = source.config.get_text_config().num_hidden_layers
        return max(1, min(n, round(layer * n)))
    return layer


def build_relay(cfg, source, source_tok, target):
    return Relay(source, target, source_pad_id=source_tok.pad_token_id, layer=source_layer(cfg.layer, source),
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
    config = {k: v for k, v in to_dict(cfg).items() if k != "control"}  # an evaluation option: one artifact
    llms = [[i["source"]["weights_sha256"], i["target"]["weights_sha256"]] for i in identities]
    cache = artifact_cache(name, {**config, "seed": ctx.seed, "llms": llms}, fingerprint, ctx.out_dir,
                           ctx.model.identity().get("weights_sha256", ""))
    if cache.cached:
        return cache.cached
    folder = cache.folder
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
        shutil.rmtree(out / "checkpoint", ignore_errors=True)
        del relay, source, target
        gc.collect()
    config = {**config, "training_data": {**stats, "contamination": report, "fingerprint": fingerprint,
                                          "n_train": len(examples)}}
    return cache.save("composite", config, {"relays": identities})


# Rows per target forward pass: memory only (a Gemma 3 target has a 262k vocabulary, so the logits of 8 rows take
# GBs). A batch of `batch_size` rows trains as `batch_size / FORWARD_ROWS` accumulated micro-batches (when it
# divides): the same global batch and examples per step, and the step's loss is still the mean over its tokens.
FORWARD_ROWS = 2


def micro_rows(cfg: trainer.TrainConfig) -> trainer.TrainConfig:
    """`cfg` with micro-batches of FORWARD_ROWS rows and the same global batch (when batch_size divides)."""
    if cfg.batch_size > FORWARD_ROWS and cfg.batch_size % FORWARD_ROWS == 0:
        return dataclasses.replace(cfg, batch_size=FORWARD_ROWS,
                                   grad_accum=cfg.grad_accum * cfg.batch_size // FORWARD_ROWS)
    return cfg


_FIELDS = ("prefix_ids", "source_ids", "prompt_ids", "target_ids")


class RelayObjective:
    """The shared trainer's Objective for a relay: the mean NLL of the target tokens (y + eos) over the step.
    Features carry the `Encoded` fields as token lists; `Relay.forward` returns the NLL sum and its count."""

    parts = ("target",)

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def collate(self, feats: list[dict], pad_id: int) -> dict:
        out = {}
        for key in _FIELDS:
            lens = torch.tensor([len(f[key]) for f in feats])
            ids = torch.zeros((len(feats), max(1, int(lens.max()))), dtype=torch.long)
            for r, f in enumerate(feats):
                ids[r, :len(f[key])] = torch.tensor(f[key], dtype=torch.long)
            out[key], out[key + "_len"] = ids, lens
        return out

    def counts(self, batch: dict) -> torch.Tensor:
        return batch["target_ids_len"].sum().reshape(1)

    def loss(self, model, batch: dict, denom: dict):
        rows = [Encoded(*(batch[k][r, :int(batch[k + "_len"][r])].tolist() for k in _FIELDS))
                for r in range(len(batch["target_ids_len"]))]
        nll, _ = model(rows, self.pad_id)
        loss = nll / denom["target"]
        return loss, {"target": float(loss.detach())}


def features(feats: list[Encoded]) -> list[dict]:
    """Trainer features of encoded examples (`input_ids`: their length, for length grouping only)."""
    return [{"input_ids": f.source_ids + f.target_ids, **{k: getattr(f, k) for k in _FIELDS}} for f in feats]


def fit(relay: Relay, feats: list[Encoded], pad_id: int, cfg, out: Path, seed: int, device: str, desc: str) -> None:
    """Train the relay's trainable parameters (the map, plus a LoRA adapter if present) with the shared loop;
    checkpoints and the loss curve go to `out` (a rerun resumes)."""
    trainer.train(relay, _PadTok(pad_id), features(feats), micro_rows(cfg), out, seed=seed, device=device, desc=desc,
                  objective=RelayObjective(pad_id))
    relay.eval()


class _PadTok:
    """What the shared trainer reads of a tokenizer when it does not save weights: the pad id."""

    def __init__(self, pad_id: int):
        self.pad_token_id = self.eos_token_id = pad_id
