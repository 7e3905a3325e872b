"""LMS/FD's mechanism check: how different the pair routes are from the shared route after training.

For each trained pair, a few FLORES-200 dev lines (never trained on: the training data excludes FLORES; devtest is
what the leaderboard evaluates) are teacher-forced through the model once with the pair's route V[a]·F[b] and once
with the shared route, on the training prompt; the report is the mean per-token symmetric KL between the two next-token
distributions over the reference tokens. ~0 for every pair = FD-Share and FD-LS are the same model, i.e. one shared
adapter. Recorded in the artifact report (`route_kl`) with whether the base weights trained.
"""

from __future__ import annotations

import torch

from harness.data import read_lines
from harness.languages import flores_code
from harness.training import trainer
from harness.training.data import Example


def flores_dev(pair: str, data, n: int) -> list[Example]:
    """The first `n` FLORES-200 dev lines of `pair` (empty when the data directory lacks either side)."""
    src, _, tgt = pair.partition("-")

    def dev(lang: str):
        return (data.local("flores", "flores200_dataset", "dev", f"{flores_code(lang)}.dev")
                or data.local("flores", "flores200_dev_from_alma", f"{flores_code(lang)}.dev"))

    sides = [dev(src), dev(tgt)]
    if any(p is None for p in sides):
        return []
    a, b = (read_lines(p)[:n] for p in sides)
    return [Example(src, tgt, s, r, f"{sides[0]}:{i + 1}") for i, (s, r) in enumerate(zip(a, b))]


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Σ over rows of ½·Σ_v (p_a - p_b)·(log p_a - log p_b) = ½·(KL(a‖b) + KL(b‖a)); no stop-gradient (also Fuse
    Distillation's training term, methods/lms/train.py)."""
    la, lb = torch.log_softmax(logits_a.float(), -1), torch.log_softmax(logits_b.float(), -1)
    return 0.5 * ((la.exp() - lb.exp()) * (la - lb)).sum()


@torch.no_grad()
def route_kl(model, tok, router, table, messages, chat: str, pairs: list[str], data, n: int = 4) -> dict:
    """{"per_pair": {pair: mean symmetric KL per reference token}, "lines": n, "split": "FLORES-200 dev"} (module
    docstring); pairs without FLORES dev lines are left out and named in `missing`."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out, missing = {}, []
    for pair in pairs:
        route = table.route(*pair.split("-"))
        exs = flores_dev(pair, data, n)
        if route is None or not exs:
            missing.append(pair)
            continue
        total, count = 0.0, 0
        for ex in exs:
            f = trainer.encode(tok, messages(ex), ex.reference, chat, 10**9)
            ids = torch.tensor([f["input_ids"]], device=device)
            keep = torch.tensor([i for i, s in enumerate(f["segments"][1:]) if s == trainer.TRANSLATION], device=device)
            logits = []
            for r in (route, table.shared_route()):
                router.set(*r)
                logits.append(model(input_ids=ids, use_cache=False).logits[0, keep])
            total += float(symmetric_kl(*logits))
            count += len(keep)
        out[pair] = float(f"{total / max(1, count):.4g}")  # 4 significant digits: tiny models give ~1e-8
    router.use_shared()
    model.train(was_training)
    return {"per_pair": out, "lines": n, "split": "FLORES-200 dev", **({"missing": missing} if missing else {})}


def mechanism_text(record: dict) -> str:
    """The route KL and whether the base trained, from a run's results.json `method` record."""
    config = record.get("config") or {}
    kl = ((record.get("artifact") or {}).get("report") or {}).get("route_kl")
    base = "base trained" if config.get("train_base") else "base frozen (train_base false: a routed low-rank adapter)"
    if not kl or not kl.get("per_pair"):
        return f"route KL not recorded (trained before the check existed); {base}"
    per = ", ".join(f"{p} {v:.3g}" for p, v in kl["per_pair"].items())
    return (f"symmetric KL pair route vs shared route per token ({kl['lines']} {kl['split']} lines/pair): {per}; "
            f"eval route {config.get('eval_route', 'shared')}; {base}")
