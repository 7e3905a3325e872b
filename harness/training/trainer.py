"""The training loop every method shares: plain PyTorch + `accelerate`.

Plain PyTorch (not `transformers.Trainer`): the loop is ~150 readable lines, the loss is ours
(translation NLL + λ·rationale NLL, masked to response tokens), and checkpoints/resume are explicit.
`accelerate` makes the same code run on one CPU, one GPU or many (`accelerate launch`): it moves
the model, wraps it for DDP, syncs gradients only on accumulation boundaries, and handles bf16
autocast. Each micro-batch is a list of features `{"input_ids": [...], "segments": [...]}` where
segment 0 = prompt (no loss), 1 = translation (response), 2 = rationale (RaDis).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from harness.errors import HarnessError
from harness.io import atomic_write_text, read_json
from harness.memory import release_memory, returned_memory
from harness.prompting import adds_bos, render_training_pair
from harness.training.objective import (PROMPT, RATIONALE, TRANSLATION, CausalLMObjective, Objective,  # noqa: F401
                                        collate, loss_fn, loss_positions, token_counts, token_counts_of)
from harness.training.outputs import plot_loss, recover_checkpoint, save_checkpoint



@dataclass
class TrainConfig:
    """Optimisation settings shared by every trainable method."""

    lr: float = 2e-5  # peak learning rate (AdamW)
    max_steps: int = 0  # optimizer steps; 0 = derive from `epochs`
    epochs: float = 1.0  # passes over the data when max_steps is 0
    batch_size: int = 8  # micro-batch per device
    grad_accum: int = 1  # micro-batches per optimizer step (global batch = batch_size * grad_accum * devices)
    max_length: int = 512  # tokens per example (prompt + target), longer ones are cut from the right
    warmup_ratio: float = 0.03  # linear warm-up as a fraction of the steps
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"  # decay after warm-up
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # gradient clipping (0 = off)
    # auto: bf16-mixed (autocast over fp32 weights) on bf16 GPUs, else fp32; bf16 = bf16 weights
    # (fastest on CPU, but updates smaller than bf16 resolution are lost at lr ~1e-5)
    precision: Literal["auto", "fp32", "bf16", "bf16-mixed"] = "auto"
    group_by_length: bool = True  # sort by length inside mega-batches (less padding)
    mega_batch: int = 16  # batches per length-sorting window
    save_every: int = 50  # checkpoint every N steps (0 = only at the end); a rerun resumes from it
    gradient_checkpointing: bool = False  # trade compute for memory
    low_memory: bool = False  # CPU + glibc: freed training tensors go back to the OS at once (lower peak RSS,
    # ~0.2 GB for a 135M model, at ~20-40 % more time per step); see `returned_memory`

    def validate(self, where: str) -> None:
        for k in ("batch_size", "grad_accum", "max_length", "mega_batch"):
            if getattr(self, k) < 1:
                raise HarnessError(f"{where}.{k}: must be >= 1")
        if self.max_steps < 0 or (self.max_steps == 0 and self.epochs <= 0):
            raise HarnessError(f"{where}: set max_steps > 0 or epochs > 0")


def resolve_precision(cfg: TrainConfig, device: torch.device) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    if device.type == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def encode(tok, messages: list[dict], target: str, chat: str, max_length: int, split: int | None = None) -> dict:
    """Token ids + segments of one training example, rendered exactly like evaluation prompts.

    `split` is a character offset into `target`: characters before it are the translation, after it
    the rationale (None = all translation).
    """
    prompt, completion = render_training_pair(tok, messages, target, chat)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    if tok.bos_token_id is not None and adds_bos(tok) and p_ids[:1] != [tok.bos_token_id]:
        p_ids = [tok.bos_token_id] + p_ids
    enc = tok(completion, add_special_tokens=False, return_offsets_mapping=True)
    c_ids = enc["input_ids"]
    if split is None:
        c_seg = [TRANSLATION] * len(c_ids)
    else:
        start = completion.find(target[:split]) if split else 0
        cut = (start if start >= 0 else 0) + split
        c_seg = [TRANSLATION if a < cut else RATIONALE for a, _ in enc["offset_mapping"]]
    ids = (p_ids + c_ids)[:max_length]
    seg = ([PROMPT] * len(p_ids) + c_seg)[:max_length]
    return {"input_ids": ids, "segments": seg}


def batches(features: list[dict], cfg: TrainConfig, seed: int, epoch: int, world: int = 1) -> list[list[int]]:
    """Index batches of one epoch, one per optimizer step: shuffled, then sorted by length inside mega-batches.

    Batches are global: `batch_size * grad_accum * world` examples (`world` = data-parallel processes),
    later cut into `grad_accum` micro-batches of which each process takes every `world`-th example
    (`micro_batches`). So a step sees the same examples whichever way its batch is split: 1 process with
    batch 4, 2 processes with batch 2, or batch 2 with 2 accumulation steps.
    """
    size = cfg.batch_size * cfg.grad_accum * world
    order = list(range(len(features)))
    random.Random(seed * 1000 + epoch).shuffle(order)
    if cfg.group_by_length:
        window = size * cfg.mega_batch
        order = [i for s in range(0, len(order), window)
                 for i in sorted(order[s:s + window], key=lambda i: -len(features[i]["input_ids"]))]
    # features with a "group" (e.g. a language pair that selects a route) get batches of one group only
    groups: dict = {}
    for i in order:
        groups.setdefault(features[i].get("group"), []).append(i)
    out = [g[s:s + size] for g in groups.values() for s in range(0, len(g), size)]
    random.Random(seed * 1000 + epoch + 1).shuffle(out)
    return out


def micro_batches(step_batch: list[int], grad_accum: int, world: int, rank: int) -> list[list[int]]:
    """This process's micro-batches of one step: `grad_accum` near-equal consecutive slices (similar
    lengths, little padding), every `world`-th example of each. Needs len(step_batch) >= grad_accum * world."""
    base, extra = divmod(len(step_batch), grad_accum)
    out, start = [], 0
    for i in range(grad_accum):
        end = start + base + (i < extra)
        out.append(step_batch[start:end][rank::world])
        start = end
    return out


def lr_schedule(cfg: TrainConfig, total: int):
    warm = int(cfg.warmup_ratio * total)

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if cfg.scheduler == "constant":
            return 1.0
        frac = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * frac)) if cfg.scheduler == "cosine" else 1 - frac
    return f


# -- the sections of `train`, in the order it calls them -----------------------------------------------------------
def _check_examples(features: list[dict], cfg: TrainConfig) -> None:
    """Refuse an empty data set or one where no example keeps a target token; warn about the ones that don't."""
    if not features:
        raise HarnessError("training: no examples")
    empty = sum(all(s == PROMPT for s in f["segments"]) for f in features) if "segments" in features[0] else 0
    if empty == len(features):
        raise HarnessError(f"training: all {empty} examples are prompt only within train.max_length "
                           f"{cfg.max_length} (nothing to learn); raise train.max_length")
    if empty:
        print(f"[train] warning: {empty} of {len(features)} examples have no target token within "
              f"train.max_length {cfg.max_length} and teach nothing; raise train.max_length to keep them")


def _prepare_model(model, cfg: TrainConfig, precision: str) -> None:
    """Weights in the training dtype, gradient checkpointing if asked, training mode."""
    model.to(torch.bfloat16 if precision == "bf16" else torch.float32)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()  # HF models (a custom objective's module provides its own)
    model.train()


def _optimizer(model, cfg: TrainConfig, dev: torch.device) -> tuple[list, torch.optim.Optimizer]:
    """AdamW over the trainable parameters (also returned: gradient clipping needs them)."""
    params = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel per parameter and no parameter-sized temporaries (the for-loop AdamW allocates
    # several per tensor, e.g. ~0.2 GB at the step for a 49k-row embedding)
    fused = dev.type in ("cpu", "cuda") and all(p.dtype in (torch.float32, torch.bfloat16) for p in params)
    return params, torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def total_steps(cfg: TrainConfig, n_examples: int, processes: int) -> int:
    """Optimizer steps of the run: `max_steps`, else `epochs` passes over global batches."""
    per_epoch = math.ceil(n_examples / (cfg.batch_size * cfg.grad_accum * processes))
    return cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))


def _resume(acc, ckpt: Path, loss_file: Path, total: int) -> tuple[int, list[dict]]:
    """The step to start from and the loss history so far (from `ckpt`, else 0 and []); rewrites `loss_file`
    to that history, dropping records of steps after the checkpoint."""
    step, history = 0, []
    if acc.is_main_process:
        recover_checkpoint(ckpt)
    acc.wait_for_everyone()
    if (ckpt / "state.json").exists():
        acc.load_state(str(ckpt))
        step = read_json(ckpt / "state.json")["step"]
        if loss_file.exists():
            history = [r for r in map(json.loads, loss_file.read_text().splitlines()) if r["step"] <= step]
        acc.print(f"resuming from {ckpt} at step {step}/{total}")
    if acc.is_main_process:
        atomic_write_text(loss_file, "".join(json.dumps(r) + "\n" for r in history))
    return step, history


def _step_stream(features: list[dict], cfg: TrainConfig, seed: int, acc):
    """This process's micro-batches of each optimizer step, epoch after epoch (a tail too small to split is
    dropped)."""
    world, g = acc.num_processes, cfg.grad_accum
    for epoch in itertools.count():
        for b in batches(features, cfg, seed, epoch, world):
            if len(b) >= world * g:
                yield micro_batches(b, g, world, acc.process_index)


def _optimizer_step(acc, model, opt, sched, params: list, objective: Objective, micro: list[dict], cfg: TrainConfig,
                    step: int, work_dir: Path) -> tuple[dict[str, float], int]:
    """One optimizer step over this process's collated micro-batches; returns the loss parts (averaged over the
    micro-batches and, with several processes, over processes) and the step's token count (summed)."""
    parts_sum: dict[str, float] = {"loss": 0.0}
    n_tokens = 0
    denom = token_counts_of(objective, acc, micro, cfg.grad_accum)
    for batch in micro:
        batch = {k: v.to(acc.device) for k, v in batch.items()}
        with acc.accumulate(model):
            loss, parts = objective.loss(model, batch, denom)
            bad = torch.tensor(float(not torch.isfinite(loss)), device=acc.device)
            if acc.num_processes > 1:  # every process must stop, not only the one that saw it
                bad = acc.reduce(bad, "sum")
            if bad > 0:  # stop before a NaN/inf update corrupts the weights
                raise HarnessError(f"training loss is {float(loss.detach())} at step {step + 1}: lower train.lr or use "
                                   f"train.precision fp32; checkpoints already saved in {work_dir} are kept")
            acc.backward(loss)
            if acc.sync_gradients and cfg.max_grad_norm > 0:
                acc.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad()
        parts_sum["loss"] += float(loss.detach()) / cfg.grad_accum
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0.0) + v / cfg.grad_accum
        n_tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0
    if acc.num_processes > 1:  # log the global batch: the mean of the processes' losses, their tokens summed
        t = acc.reduce(torch.tensor([*parts_sum.values(), n_tokens], dtype=torch.float64, device=acc.device))
        parts_sum, n_tokens = dict(zip(parts_sum, (t[:-1] / acc.num_processes).tolist())), int(t[-1])
    return parts_sum, n_tokens


def _log_step(acc, loss_file: Path, step: int, parts_sum: dict[str, float], n_tokens: int, lr: float,
              t0: float) -> dict:
    """The step's record (losses, lr, tokens, elapsed seconds), appended to `loss_file` by the main process."""
    rec = {"step": step, **{k: round(v, 5) for k, v in parts_sum.items()},
           "lr": lr, "tokens": n_tokens, "seconds": round(time.time() - t0, 2)}
    if acc.is_main_process:
        with open(loss_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
    return rec


def _save_weights(acc, model, unwrapped, tok, save_to: Path) -> None:
    """Save the trained weights from the state dict gathered across processes (FSDP shards too) + the tokenizer."""
    state = acc.get_state_dict(model)  # every rank takes part (FSDP gathers shards); main saves
    if acc.is_main_process:
        unwrapped.save_pretrained(save_to, state_dict=state)
        tok.save_pretrained(save_to)
    acc.wait_for_everyone()


def train(model, tok, features: list[dict], cfg: TrainConfig, work_dir: Path, seed: int = 0, lam: float = 1.0,
          device: str = "auto", desc: str = "train", save_to: Path | None = None, objective: Objective | None = None,
          route=None):
    """Train `model` in place; returns (the unwrapped model, whether this is the main process).

    What is method-specific lives in `objective`: its `before_step(group)`, when it has one, is called before
    each optimizer step with the "group" of its examples (batches never mix groups, see `batches`): LANDeRMT
    selects the language pair's neurons with it. (`route` and `lam` are the older spellings of `before_step` and
    of `CausalLMObjective(lam)`, kept for callers that pass them.)

    Checkpoints and the loss curve go to `work_dir`. With `save_to`, the trained weights (full model,
    or the adapter of a peft model) and the tokenizer are saved there from the state dict gathered
    across processes, which is what makes saving correct under FSDP as well as DDP and one process.
    `objective` (default: response NLL of a causal LM, + lam x rationale NLL) says how features are
    batched and what the loss is (`harness.training.objective`); `model` may then be any nn.Module."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DataLoaderConfiguration, set_seed

    from harness.loading import pick_device

    _check_examples(features, cfg)
    objective = objective or CausalLMObjective(lam)

    # -- set-up: device, precision, accelerator, optimizer, schedule -----------------------------------------------
    dev = pick_device(device)
    precision = resolve_precision(cfg, dev)
    AcceleratorState._reset_state(reset_partial_state=False)  # a second training in one process may change precision
    # cpu=True whenever we train on the CPU: accelerate only sets up gloo DDP (MULTI_CPU) under a
    # multi-process launch when told so; otherwise every process would train alone on all the data
    # split_batches: our batches are global and split across processes (see `batches`), so the
    # scheduler steps once per optimizer step (accelerate's default steps it once per process)
    acc = Accelerator(gradient_accumulation_steps=cfg.grad_accum, cpu=dev.type == "cpu",
                      mixed_precision="bf16" if precision == "bf16-mixed" else "no",
                      dataloader_config=DataLoaderConfiguration(split_batches=True))
    set_seed(seed)
    _prepare_model(model, cfg, precision)
    params, opt = _optimizer(model, cfg, dev)
    total = total_steps(cfg, len(features), acc.num_processes)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(cfg, total))
    model, opt, sched = acc.prepare(model, opt, sched)

    # -- resume from the last checkpoint, if any -------------------------------------------------------------------
    ckpt, loss_file = work_dir / "checkpoint", work_dir / "loss.jsonl"
    step, history = _resume(acc, ckpt, loss_file, total)

    # -- the loop: one optimizer step per global batch ------------------------------------------------------------
    stream = itertools.islice(_step_stream(features, cfg, seed, acc), step, None)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    bar = tqdm(total=total, initial=step, desc=desc, unit="step", dynamic_ncols=True,
               disable=not acc.is_local_main_process)
    t0 = time.time()
    memory = contextlib.ExitStack()
    memory.enter_context(returned_memory(cfg.low_memory and dev.type == "cpu"))
    try:
        while step < total:
            idxs = next(stream)
            before_step = route or getattr(objective, "before_step", None)
            if before_step is not None:
                before_step(features[idxs[0][0]].get("group"))
            micro = [objective.collate([features[i] for i in idx], pad) for idx in idxs]
            parts_sum, n_tokens = _optimizer_step(acc, model, opt, sched, params, objective, micro, cfg, step, work_dir)
            step += 1
            rec = _log_step(acc, loss_file, step, parts_sum, n_tokens, sched.get_last_lr()[0], t0)
            history.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            bar.update(1)
            if cfg.save_every and step % cfg.save_every == 0 and step < total:
                save_checkpoint(acc, ckpt, step)
    finally:  # the error message must not land inside the progress bar line
        bar.close()
        memory.close()

    # -- finish: loss curve, free the optimizer, save the gathered weights -----------------------------------------
    if acc.is_main_process:
        plot_loss(history, work_dir / "loss.png")
    acc.wait_for_everyone()
    unwrapped = acc.unwrap_model(model)
    opt, sched = acc.free_memory(opt, sched)  # the AdamW state (2x the weights) is not needed to save
    release_memory()
    if save_to is not None:
        _save_weights(acc, model, unwrapped, tok, save_to)
    return unwrapped, acc.is_main_process
