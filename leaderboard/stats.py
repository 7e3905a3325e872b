"""Paired bootstrap resampling of per-sample results.

Corpus metrics (BLEU, chrF++) are resampled the way `sacrebleu.significance._paired_bs_test` does it:
sacrebleu's own sufficient statistics per segment (`Metric._extract_corpus_statistics`), summed over a
resample and turned into a score by `Metric._compute_score_from_stats`; the same resample indices are
applied to the base and the method (pairing by sample id), so the interval is for the *difference*.
Mean metrics (accuracy, rates, judge scores) resample per-sample values the same way.

Indices are drawn with `numpy.random.default_rng(seed).choice(n, (n_boot, n))` per (seed, task, subset):
every column and every method compared on that subset uses the same resamples, so composites built from
several columns of one task keep their correlation.
"""

from __future__ import annotations

import zlib

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.base import Metric

from harness.errors import HarnessError


def resample_counts(n: int, n_boot: int, seed: int, *salt: str) -> np.ndarray:
    """(n_boot, n) matrix: how often each sample appears in each bootstrap resample."""
    rng = np.random.default_rng([seed, zlib.crc32("\x1f".join(salt).encode())] if salt else seed)
    idx = rng.choice(n, size=(n_boot, n), replace=True)
    flat = (idx + np.arange(n_boot)[:, None] * n).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def _fields(signature: str) -> dict[str, str]:
    return dict(part.split(":", 1) for part in signature.split("|") if ":" in part)


def _strip_version(signature: str) -> str:
    return "|".join(p for p in signature.split("|") if not p.startswith("version:"))


def metric_from_signature(name: str, signature: str) -> Metric:
    """Rebuild the sacrebleu metric a results file was scored with from its signature string."""
    f = _fields(signature)
    if name in ("bleu", "spbleu"):
        smooth = f.get("smooth", "exp")
        method, _, value = smooth.partition("[")
        metric = BLEU(tokenize=f.get("tok"), lowercase=f.get("case") == "lc", smooth_method=method,
                      smooth_value=float(value.rstrip("]")) if value else None, effective_order=f.get("eff") == "yes")
    elif name == "chrf":
        metric = CHRF(char_order=int(f.get("nc", 6)), word_order=int(f.get("nw", 0)),
                      lowercase=f.get("case") == "lc", whitespace=f.get("space") == "yes",
                      eps_smoothing=f.get("eff") == "no")
    else:
        raise HarnessError(f"leaderboard: no corpus metric {name!r} (known: bleu, chrf)")
    nrefs = f.get("nrefs", "1")
    metric.num_refs = int(nrefs) if nrefs.isdigit() else -1  # the signature needs it before any scoring
    if _strip_version(str(metric.get_signature())) != _strip_version(signature):
        raise HarnessError(f"leaderboard: cannot rebuild {name} with signature {signature!r} "
                           f"(got {metric.get_signature()}); extend leaderboard/stats.py")
    return metric


def corpus_stats(metric: Metric, hyps: list[str], refs: list[str] | list[list[str]]) -> np.ndarray:
    """Per-segment sufficient statistics, shape (n, k); `refs` is one reference per segment or a list of
    reference streams (multi-reference BLEU/chrF)."""
    streams = [refs] if not refs or isinstance(refs[0], str) else refs
    return np.asarray(metric._extract_corpus_statistics(hyps, streams), dtype=np.float64)


def corpus_score(metric: Metric, stats: np.ndarray) -> float:
    return float(metric._compute_score_from_stats(list(stats.sum(0))).score)


def corpus_boot(metric: Metric, stats: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Score of every bootstrap resample: sums of resampled statistics → sacrebleu's score formula."""
    sums = counts @ stats
    return np.array([metric._compute_score_from_stats(list(s)).score for s in sums])


def mean_boot(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return counts @ values / values.shape[0]


def interval(deltas: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the bootstrap distribution of a difference."""
    lo, hi = np.percentile(deltas, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
