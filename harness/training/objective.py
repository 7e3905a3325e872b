"""What one training step optimises: how features become a batch, and the batch's loss.

The shared loop (`harness.training.trainer.train`) owns everything else (batching, accumulation,
DDP, precision, checkpoints, the loss curve). A method whose model is not a plain causal LM, or
whose loss is not the response NLL (LMS/FD's two routes + KL, XBridge's three losses, a relay of two
models), passes its own `Objective`; the default is `CausalLMObjective`.

Denominators: each part of the loss is a SUM over the part's units (target tokens, examples)
divided by `denom[part]` = the count of those units in the whole optimizer step (all micro-batches,
all processes) / (processes x grad_accum), see `token_counts`. So any split of a step (accumulation,
processes) gives exactly the gradient of the step's mean.
"""

from __future__ import annotations

from typing import Protocol

import torch

PROMPT, TRANSLATION, RATIONALE = 0, 1, 2


class Objective(Protocol):
    # names of the loss parts that are each averaged over their own units (one `counts` entry each); the
    # dict `loss` returns is logged per step and may hold further diagnostics (e.g. LMS's "kl")
    parts: tuple[str, ...]

    def collate(self, feats: list[dict], pad_id: int) -> dict[str, torch.Tensor]: ...

    def counts(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Units each part is averaged over in this micro-batch, one entry per part (float tensor)."""

    def loss(self, model, batch: dict[str, torch.Tensor], denom: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to backpropagate and the parts to log."""

    # optional: `before_step(group)`, called by the trainer before each optimizer step with the "group" of the
    # step's examples (LANDeRMT routes the model to the step's language pair, see `RoutedObjective`)


class RoutedObjective:
    """An objective whose model has routes (LANDeRMT's per-pair neurons): `route(group)` switches the model to
    the step's group before the step; batching and loss are `inner`'s (default: the causal-LM objective)."""

    def __init__(self, route, inner: Objective | None = None):
        self.route, self.inner = route, inner or CausalLMObjective()
        self.parts = self.inner.parts

    def before_step(self, group) -> None:
        self.route(group)

    def collate(self, feats, pad_id):
        return self.inner.collate(feats, pad_id)

    def counts(self, batch):
        return self.inner.counts(batch)

    def loss(self, model, batch, denom):
        return self.inner.loss(model, batch, denom)


def collate(feats: list[dict], pad_id: int) -> dict:
    width = max(len(f["input_ids"]) for f in feats)
    ids = torch.full((len(feats), width), pad_id, dtype=torch.long)
    seg = torch.zeros((len(feats), width), dtype=torch.long)
    attn = torch.zeros((len(feats), width), dtype=torch.long)
    for r, f in enumerate(feats):
        n = len(f["input_ids"])
        ids[r, :n], seg[r, :n], attn[r, :n] = torch.tensor(f["input_ids"]), torch.tensor(f["segments"]), 1
    # any other per-example number or list of numbers (e.g. LMS's `route`) is stacked as a tensor
    extra = {k: torch.tensor([f[k] for f in feats]) for k, v in feats[0].items()
             if k not in ("input_ids", "segments") and not isinstance(v, str)}
    return {"input_ids": ids, "segments": seg, "attention_mask": attn, **extra}


def loss_positions(batch: dict) -> torch.Tensor:
    """Sequence positions whose logits are scored: those predicting a response token in some row.

    Prompt positions never are, so the LM head (vocab-sized, ~20% of a small model's FLOPs, and
    the largest activation) is applied to these only (`logits_to_keep`)."""
    return (batch["segments"][:, 1:] != PROMPT).any(0).nonzero().squeeze(1)


def loss_fn(logits: torch.Tensor, batch: dict, lam: float, denom: dict | None = None,
            positions: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """NLL(translation tokens) + lam * NLL(rationale tokens); each a mean over its own tokens.

    `denom` (default: this batch's own token counts) is what each part's NLL sum is divided by;
    under data parallelism it is the global count / processes (see `token_counts`). `positions`:
    the sequence positions `logits` were computed at (default: all of them).
    """
    if positions is None:
        logits, targets, seg = logits[:, :-1], batch["input_ids"][:, 1:], batch["segments"][:, 1:]
    else:
        targets, seg = batch["input_ids"][:, positions + 1], batch["segments"][:, positions + 1]
    nll = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                            reduction="none").view_as(targets)
    parts = {}
    for name, s in (("translation", TRANSLATION), ("rationale", RATIONALE)):
        mask = (seg == s).float()
        parts[name] = (nll * mask).sum() / (mask.sum().clamp(min=1) if denom is None else denom[name])
    loss = parts["translation"] + lam * parts["rationale"]
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def token_counts(acc, micro: list[dict], grad_accum: int) -> dict:
    """Loss denominators: target tokens of the whole optimizer step (all micro-batches, all processes)
    / (processes x grad_accum). `accelerator.backward` divides each micro-batch loss by grad_accum and
    DDP averages the processes' gradients, so each micro-batch dividing its NLL sum by this gives
    exactly the gradient of the mean over all the step's target tokens, however the step is split
    (a plain per-micro-batch mean would weight short micro-batches up)."""
    segs = [b["segments"][:, 1:] for b in micro]
    n = torch.stack([sum((s == TRANSLATION).sum() for s in segs), sum((s == RATIONALE).sum() for s in segs)]).float()
    if acc.num_processes > 1:
        n = acc.reduce(n, "sum")
    n = n.clamp(min=1) / (acc.num_processes * grad_accum)
    return {"translation": n[0], "rationale": n[1]}


def token_counts_of(objective: Objective, acc, micro: list[dict], grad_accum: int) -> dict:
    """`token_counts` for any objective: its counts summed over the step, divided as described above."""
    n = torch.stack([objective.counts(b).float() for b in micro]).sum(0)
    if acc.num_processes > 1:
        n = acc.reduce(n, "sum")
    n = n.clamp(min=1) / (acc.num_processes * grad_accum)
    return dict(zip(objective.parts, n))


class CausalLMObjective:
    """NLL of the response tokens of a causal LM (+ lam x NLL of rationale tokens, RaDis)."""

    parts = ("translation", "rationale")

    def __init__(self, lam: float = 1.0):
        self.lam = lam

    def collate(self, feats, pad_id):
        return collate(feats, pad_id)

    def counts(self, batch):
        s = batch["segments"][:, 1:]
        return torch.stack([(s == TRANSLATION).sum(), (s == RATIONALE).sum()])

    def loss(self, model, batch, denom):
        keep = loss_positions(batch)
        logits = self.logits(model, batch["input_ids"], batch["attention_mask"], keep)
        return loss_fn(logits, batch, self.lam, denom, keep)

    def logits(self, model, input_ids, attention_mask, keep: torch.Tensor) -> torch.Tensor:
        """Logits at the positions `keep` only; nothing else of the model's output stays alive
        (one vocab-sized tensor less at the peak: backward does not need the full logits)."""
        slim = self._slim(model)
        out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                    **({"logits_to_keep": keep} if slim else {}))
        return out.logits if slim else out.logits[:, keep]

    def _slim(self, model) -> bool:
        """Whether the model computes logits at chosen positions only (`logits_to_keep`)."""
        if not hasattr(self, "_slim_cache"):
            from harness.loading import keeps_logits

            self._slim_cache = keeps_logits(model)
        return self._slim_cache
