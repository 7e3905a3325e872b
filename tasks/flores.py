"""FLORES-200 translation task hook: documents from the multi-parallel `<code>.<split>` files (or the hub);
everything else (cleaning, metrics, COMET, summary) is the shared `TranslationTask` in tasks/_translation.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.data import load_hub_dataset, read_lines
from harness.errors import HarnessError
from harness.languages import flores_code
from tasks._translation import TranslationTask

# flores_plus renamed some configs relative to FLORES-200
_HUB_NAMES = {"zho_Hans": "cmn_Hans", "zho_Hant": "cmn_Hant"}


@dataclass
class FloresOptions:
    pivot: str = "en"  # the language every pair goes through
    directions: list[Literal["x-pivot", "pivot-x"]] = field(default_factory=lambda: ["x-pivot", "pivot-x"])
    keep: Literal["first_paragraph", "first_line", "all"] = "first_paragraph"  # first_line: RaDis outputs


class FloresTask(TranslationTask):
    Options = FloresOptions

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

    def check_subsets(self, wanted: list[str]) -> None:
        for pair in wanted:  # any pair of known codes is allowed, not only the default directions
            src, _, tgt = pair.partition("-")
            if not tgt or src == tgt:
                raise HarnessError(f"task flores: {pair!r} is not a pair like de-en")
            flores_code(src), flores_code(tgt)

    def load_docs(self, subset: str) -> list[dict]:
        src, _, tgt = subset.partition("-")
        sources, refs = self._lines(src), self._lines(tgt)
        if len(sources) != len(refs):
            raise HarnessError(f"task flores: {src} has {len(sources)} lines but {tgt} has {len(refs)}; "
                               f"the files must be line-aligned")
        return [self.make_doc(subset, i, s, [r]) for i, (s, r) in enumerate(zip(sources, refs))]

    def _lines(self, lang: str) -> list[str]:
        return self.memo(("_lines", lang), lambda: self._read_lines(lang))

    def _read_lines(self, lang: str) -> list[str]:
        code = flores_code(lang)
        ds = self.cfg.dataset
        if self.data.root is not None and ds.local:
            path = self.data.require_local(f"task flores ({lang})", ds.local, f"{code}.{ds.split}")
            return read_lines(path)
        rows = load_hub_dataset(ds.hub, f"task flores ({lang})", name=_HUB_NAMES.get(code, code), split=ds.split)
        return [row["text"] for row in rows]


TASK_CLASS = FloresTask
