"""Paired bootstrap resampling of per-sample results, drawn exactly as sacrebleu's `--paired-bs` draws them.

sacrebleu (`sacrebleu.significance._paired_bs_test`, 2.x) seeds `numpy.random.default_rng(seed)` with
`$SACREBLEU_SEED` (default 12345), draws all resamples at once with `rng.choice(n, size=(n_boot, n))`, sums
each resample's per-segment sufficient statistics (`Metric._extract_corpus_statistics`) as float32 and turns
the sums into a score with `Metric._compute_score_from_stats`; base and system use the same indices.
`resample_counts` draws the same index matrix with the same call, and `corpus_boot` sums the same float32
statistics, so every per-resample BLEU/chrF++ score of a run here equals sacrebleu's for that resample, bit
for bit (tests/test_leaderboard_sacrebleu.py checks it for every default FLORES target language and ko).

One difference is deliberate: every (task, subset) would otherwise get the identical index matrix (same seed),
which would tie unrelated tasks together in the composites. So the *rows* of the matrix (whole resamples) are
put in an order that depends on (seed, task, subset). Reordering resamples changes no per-column statistic
(the set of resamples is sacrebleu's), and it decorrelates tasks and subsets as independent draws would (two
subsets' orders share about one row position in expectation).
Every column and every method compared on one subset uses the same resamples in the same order, so composites
built from several columns of one task keep their correlation.

What the leaderboard reports from these resamples: Δ = method − base per resample, and its 95% interval is
sacrebleu's own order-statistic convention (`sacrebleu.significance.estimate_ci`: sorted values at n//40 and
n − n//40 − 1), applied to the paired Δ instead of to one system's score. sacrebleu prints per system the
bootstrap mean ± the half-width of that interval and a p-value from |Δ| per resample; applied to our
resamples, sacrebleu's own `estimate_ci` and `_compute_p_value` give the numbers `--paired-bs` prints for
the same seed and resample count (tested).
Mean metrics (accuracy, rates, judge scores) resample per-sample values with the same counts.
"""

from __future__ import annotations

import zlib

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.base import Metric

from harness.errors import HarnessError


def resample_counts(n: int, n_boot: int, seed: int, *salt: str) -> np.ndarray:
    """(n_boot, n) matrix: how often each sample appears in each bootstrap resample.

    The resamples are sacrebleu's for `seed` (`default_rng(seed).choice(n, (n_boot, n))`); with a salt
    (task, subset) their order is shuffled by a salt-dependent permutation (see the module docstring).
    """
    idx = np.random.default_rng(seed).choice(n, size=(n_boot, n), replace=True)
    if salt:
        order = np.random.default_rng([seed, zlib.crc32("\x1f".join(salt).encode())]).permutation(n_boot)
        idx = idx[order]
    flat = (idx + np.arange(n_boot)[:, None] * n).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def sacrebleu_name(metric: str, tok: str) -> str:
    """The sacrebleu tokenizer name (`BLEU(tokenize=...)`) whose signature is `tok`.

    Tokenizer signatures are not always names: MeCab ones carry versions (`ja-mecab-0.996-IPA`,
    `ko-mecab-0.996/ko-0.9.2-KO`); the name is the longest registered one that `tok` starts with.
    """
    from sacrebleu.metrics.bleu import _TOKENIZERS

    if tok in _TOKENIZERS:
        return tok
    names = [n for n in _TOKENIZERS if tok.startswith(n + "-")]
    if not names:
        raise HarnessError(f"leaderboard: {metric} tokenizer signature {tok!r} matches no sacrebleu tokenizer "
                           f"({', '.join(_TOKENIZERS)}); rescore the run with `harness score`")
    return max(names, key=len)


def _fields(signature: str) -> dict[str, str]:
    return dict(part.split(":", 1) for part in signature.split("|") if ":" in part)


def _strip_version(signature: str) -> str:
    return "|".join(p for p in signature.split("|") if not p.startswith("version:"))


def metric_from_signature(name: str, signature: str, args: dict | None = None) -> Metric:
    """Rebuild the sacrebleu metric a results file was scored with.

    `args` are the sacrebleu constructor arguments recorded next to the signature (`metric_args` in
    results.json, written since the ja-mecab fix); older files have only the signature, which is parsed.
    Either way the rebuilt metric's signature must equal the recorded one (the version aside).
    """
    f = _fields(signature)
    if args is not None:
        cls = {"bleu": BLEU, "spbleu": BLEU, "chrf": CHRF}.get(name)
        if cls is None:
            raise HarnessError(f"leaderboard: no corpus metric {name!r} (known: bleu, spbleu, chrf)")
        metric = cls(**args)
    elif name in ("bleu", "spbleu"):
        smooth = f.get("smooth", "exp")
        method, _, value = smooth.partition("[")
        tok = f.get("tok")
        metric = BLEU(tokenize=sacrebleu_name(name, tok) if tok else None, lowercase=f.get("case") == "lc",
                      smooth_method=method, smooth_value=float(value.rstrip("]")) if value else None,
                      effective_order=f.get("eff") == "yes")
    elif name == "chrf":
        metric = CHRF(char_order=int(f.get("nc", 6)), word_order=int(f.get("nw", 0)),
                      lowercase=f.get("case") == "lc", whitespace=f.get("space") == "yes",
                      eps_smoothing=f.get("eff") == "no")
    else:
        raise HarnessError(f"leaderboard: no corpus metric {name!r} (known: bleu, spbleu, chrf)")
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
    """Score of every bootstrap resample: sums of resampled statistics → sacrebleu's score formula.

    Sums and the score formula's inputs are float32 arrays, as in sacrebleu's `_paired_bs_test`: the
    statistics are integer counts, exact in float32 below 2**24, and float32 inputs make the formula round
    as sacrebleu's does.
    """
    if stats.size and stats.sum(0).max() >= 2**24:
        raise HarnessError("leaderboard: corpus statistics too large for float32 bootstrap sums")
    sums = counts.astype(np.float32) @ stats.astype(np.float32)
    return np.array([metric._compute_score_from_stats(s).score for s in sums])


def mean_boot(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return counts @ values / values.shape[0]


def interval(deltas: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Interval of the bootstrap distribution of a difference, by sacrebleu's convention
    (`significance.estimate_ci`: the sorted values at k and n − k − 1, k = n·(1 − level)/2 rounded down)."""
    d = np.sort(np.asarray(deltas, dtype=np.float64))
    k = int(len(d) * (1 - level) / 2 + 1e-9)
    return float(d[k]), float(d[len(d) - k - 1])

