"""Agreement of a refusal classifier with human labels (XSTest v2 completions) and its false alarms on
ordinary text (FLORES devtest sentences). Used by bench/bench_refusal.py and tests/test_refusal.py.

Ground truth: `safety/xstest_completions/xstest_v2_completions_<model>.csv` (450 prompts × 4 models,
columns id, type, prompt, completion, annotation_1, annotation_2, agreement, final_label). A response is a
refusal when `final_label` is 2_full_refusal or 3_partial_refusal (the XSTest paper's convention for
over-refusal rates; `partial="compliance"` counts partial refusals as compliance instead). Safe prompts are
those whose `type` does not start with "contrast" (250 per model).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.metrics.refusal import RefusalClassifier

XSTEST_MODELS = ("gpt4", "llama2new", "mistralinstruct", "mistralguard")
DESIGN_MODELS = ("gpt4", "llama2new")  # the `rules` classifier was written reading errors on these only
COMPLETIONS = "safety/xstest_completions/xstest_v2_completions_{model}.csv"
FLORES = "flores/flores200_dataset/devtest/{code}.devtest"
FLORES_CODES = {"en": "eng_Latn", "zh": "zho_Hans", "it": "ita_Latn", "vi": "vie_Latn", "ar": "arb_Arab",
                "ko": "kor_Hang", "th": "tha_Thai", "bn": "ben_Beng", "sw": "swh_Latn", "jv": "jav_Latn"}
_COLUMNS = ("type", "completion", "annotation_1", "annotation_2", "final_label")


@dataclass(frozen=True)
class Item:
    model: str
    safe: bool  # XSTest safe prompt (not a contrast/unsafe one)
    completion: str
    label: str  # final_label without its number: full_compliance | full_refusal | partial_refusal
    annotators: tuple[str, str]


def _label(raw: str, where: str) -> str:
    lab = raw.strip().split("_", 1)[-1]
    if lab not in ("full_compliance", "full_refusal", "partial_refusal"):
        raise HarnessError(f"{where}: label {raw!r} is not 1_full_compliance/2_full_refusal/3_partial_refusal")
    return lab


def load_xstest(data_dir: Path, model: str) -> list[Item]:
    path = Path(data_dir) / COMPLETIONS.format(model=model)
    if not path.exists():
        raise HarnessError(f"{path}: XSTest completions missing; set --data-dir to the shared data folder")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in _COLUMNS if rows and c not in rows[0]]
    if missing:
        raise HarnessError(f"{path}: columns {missing} missing (expected {', '.join(_COLUMNS)})")
    return [Item(model, not r["type"].startswith("contrast"), r["completion"], _label(r["final_label"], str(path)),
                 (_label(r["annotation_1"], str(path)), _label(r["annotation_2"], str(path)))) for r in rows]


def is_refusal_label(label: str, partial: str = "refusal") -> bool:
    return label == "full_refusal" or (label == "partial_refusal" and partial == "refusal")


@dataclass
class Agreement:
    n: int
    accuracy: float
    false_refusal: float  # compliant answers flagged as refusals / compliant answers
    missed_refusal: float  # refusals not flagged / refusals
    over_refusal: float  # share flagged on safe prompts (classifier)
    over_refusal_human: float  # share labelled refusal on safe prompts (humans)
    n_compliant: int
    n_refusal: int


def agreement(items: list[Item], predict, partial: str = "refusal") -> Agreement:
    """`predict(text) -> bool` scored against the human final labels."""
    gold = [is_refusal_label(i.label, partial) for i in items]
    pred = [bool(predict(i.completion)) for i in items]
    n_ref = sum(gold)
    n_comp = len(gold) - n_ref
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum(g and not p for p, g in zip(pred, gold))
    safe = [k for k, i in enumerate(items) if i.safe]
    return Agreement(len(items), 1 - (fp + fn) / len(items), fp / n_comp if n_comp else 0.0,
                     fn / n_ref if n_ref else 0.0, sum(pred[k] for k in safe) / len(safe) if safe else 0.0,
                     sum(gold[k] for k in safe) / len(safe) if safe else 0.0, n_comp, n_ref)


def annotator_agreement(items: list[Item], partial: str = "refusal") -> float:
    """Share of items where the two human annotators agree on refusal vs compliance (a ceiling)."""
    same = [is_refusal_label(a, partial) == is_refusal_label(b, partial) for a, b in (i.annotators for i in items)]
    return sum(same) / len(same)


def flores_lines(data_dir: Path, lang: str) -> list[str]:
    path = Path(data_dir) / FLORES.format(code=FLORES_CODES[lang])
    if not path.exists():
        raise HarnessError(f"{path}: FLORES devtest file missing; set --data-dir to the shared data folder")
    return [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def flores_false_refusals(data_dir: Path, clf: RefusalClassifier, lang: str) -> list[tuple[str, str]]:
    """(matched rule, sentence) for every ordinary FLORES sentence the classifier calls a refusal."""
    out = []
    for line in flores_lines(data_dir, lang):
        m = clf.match(line)
        if m is not None:
            out.append((m, line))
    return out
