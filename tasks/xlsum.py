"""XL-Sum task hook: one-sentence news summarization in many languages, scored with multilingual ROUGE.

Data: the official JSONL files (`id, url, title, summary, text`; `<language>_<split>.jsonl` with
XL-Sum language names such as `english`, `chinese_simplified`). Looked up in this order:
options.local_dir, `$HARNESS_XLSUM_DIR`, `<data dir>/<dataset.local>` (default `xlsum/`), then the
hub (`csebuetnlp/xlsum`; its loading script no longer runs under `datasets` >= 4, so the hub's
parquet export `refs/convert/parquet` is read with `datasets.load_dataset`).

Long articles are cut to options.max_doc_chars characters (at the last sentence end or space in
the second half of the budget) before prompting; the share of cut documents is reported.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.columns import Column
from harness.data import load_hub_dataset, read_lines
from harness.errors import HarnessError
from harness.languages import name
from harness.metrics.rouge import rouge, settings
from harness.task import Task
from tasks._translation import unwrap

ENV_DIR = "HARNESS_XLSUM_DIR"
# language code (ISO 639-1 where one exists) → XL-Sum language name, all 45 XL-Sum languages
XLSUM_NAMES = {
    "am": "amharic", "ar": "arabic", "az": "azerbaijani", "bn": "bengali", "my": "burmese",
    "zh": "chinese_simplified", "zh-tw": "chinese_traditional", "en": "english", "fr": "french",
    "gu": "gujarati", "ha": "hausa", "hi": "hindi", "ig": "igbo", "id": "indonesian", "ja": "japanese",
    "rn": "kirundi", "ko": "korean", "ky": "kyrgyz", "mr": "marathi", "ne": "nepali", "om": "oromo",
    "ps": "pashto", "fa": "persian", "pcm": "pidgin", "pt": "portuguese", "pa": "punjabi", "ru": "russian",
    "gd": "scottish_gaelic", "sr": "serbian_cyrillic", "sr-latn": "serbian_latin", "si": "sinhala",
    "so": "somali", "es": "spanish", "sw": "swahili", "ta": "tamil", "te": "telugu", "th": "thai",
    "ti": "tigrinya", "tr": "turkish", "uk": "ukrainian", "ur": "urdu", "uz": "uzbek", "vi": "vietnamese",
    "cy": "welsh", "yo": "yoruba",
}
_FILE_SPLIT = {"validation": "val"}  # hub split name → file name part
_SENT_END = re.compile(r"[.!?。！？।॥။።؟\n](?=\s|$)|[。！？]")
_PREAMBLE = re.compile(r"^\s*(sure|certainly|of course|okay|here is|here's|the summary|summary|in one sentence)\b"
                       r"[^\n]*[:：]\s*$", re.IGNORECASE)
_LABEL = re.compile(r"^\s*\**\s*(one-sentence summary|summary)\s*\**\s*[:：]\s*\**\s*", re.IGNORECASE)


@dataclass
class XLSumOptions:
    local_dir: str | None = None  # folder of <language>_<split>.jsonl files (overrides $HARNESS_XLSUM_DIR/data dir)
    max_doc_chars: int = 4000  # articles are cut to this many characters before prompting
    use_stemmer: bool = False  # Porter stemming (English only), as rouge-score's use_stemmer
    keep: Literal["first_paragraph", "all"] = "first_paragraph"  # what of the output is scored

    def validate(self, where: str) -> None:
        if self.max_doc_chars < 200:
            raise HarnessError(f"{where}.max_doc_chars: {self.max_doc_chars} is too small (>= 200)")


def truncate(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars`, preferably after a sentence end or at a space in the second half."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    ends = [m.end() for m in _SENT_END.finditer(head) if m.end() >= max_chars // 2]
    if ends:
        return head[: ends[-1]].rstrip()
    space = head.rfind(" ")
    return head[:space].rstrip() if space >= max_chars // 2 else head


class XLSumTask(Task):
    Options = XLSumOptions
    content_fields = ("text",)
    leaderboard = (Column("XL-Sum ROUGE-L", "rougeL", "scores.rougeL", role="general", scale=100,
                          family="summarization"),)

    def check_subsets(self, wanted: list[str]) -> None:
        bad = [w for w in wanted if w not in XLSUM_NAMES]
        if bad:
            raise HarnessError(f"task xlsum: unknown language {bad[0]!r} (XL-Sum codes: {', '.join(XLSUM_NAMES)})")

    def _folder(self) -> tuple[Path | None, str]:
        for value, where in ((self.options.local_dir, "options.local_dir"), (os.environ.get(ENV_DIR), f"${ENV_DIR}")):
            if value:
                path = Path(value).expanduser()
                if not path.is_dir():
                    raise HarnessError(f"task xlsum: {where}={value} is not a directory of <language>_test.jsonl files")
                return path, where
        local = self.data.local(self.cfg.dataset.local) if self.cfg.dataset.local else None
        return (local, "data dir") if local is not None and local.is_dir() else (None, "hub")

    def _rows(self, lang: str) -> list[dict]:
        return self.memo(("_rows", lang), lambda: self._read_rows(lang))

    def _read_rows(self, lang: str) -> list[dict]:
        lname, split = XLSUM_NAMES[lang], self.cfg.dataset.split
        folder, where = self._folder()
        if folder is None:
            try:
                return list(load_hub_dataset(self.cfg.dataset.hub, f"task xlsum ({lang})",
                                             revision="refs/convert/parquet", data_dir=lname, split=split))
            except HarnessError as e:
                raise HarnessError(f"{e}, or put {lname}_{_FILE_SPLIT.get(split, split)}.jsonl in <data dir>/"
                                   f"{self.cfg.dataset.local}/ or ${ENV_DIR}") from None
        path = folder / f"{lname}_{_FILE_SPLIT.get(split, split)}.jsonl"
        if not path.is_file():
            raise HarnessError(f"task xlsum ({lang}): {path} not found ({where}); XL-Sum files are named "
                               f"<language>_<split>.jsonl, e.g. {lname}_test.jsonl")
        rows = []
        for n, line in enumerate(read_lines(path), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise HarnessError(f"{path}:{n}: invalid JSON ({e.msg})") from None
            missing = [k for k in ("id", "summary", "text") if not isinstance(row.get(k), str)]
            if missing:
                raise HarnessError(f"{path}:{n}: field {missing[0]!r} missing or not a string "
                                   f"(XL-Sum schema: id, url, title, summary, text)")
            rows.append(row)
        return rows

    def load_docs(self, subset: str) -> list[dict]:
        max_chars = self.options.max_doc_chars
        out = []
        for i, row in enumerate(self._rows(subset)):
            full = row["text"].strip()
            text = truncate(full, max_chars)
            out.append({"id": f"{subset}/{i}", "subset": subset, "xlsum_id": row["id"], "lang": subset,
                        "lang_name": name(subset), "title": row.get("title", ""), "text": text,
                        "summary": row["summary"].strip(), "doc_chars": len(full), "doc_truncated": text != full})
        return out

    def clean(self, doc: dict, text: str) -> tuple[str, list[str]]:
        return unwrap(text, _PREAMBLE, _LABEL, "drop_label", self.options.keep)

    def score(self, doc: dict, outputs: list[str]) -> dict:
        return {"reference": doc["summary"], "doc_chars": doc["doc_chars"], "doc_truncated": doc["doc_truncated"],
                "scores": rouge(outputs[0], doc["summary"], doc["lang"], self.options.use_stemmer)}

    def aggregate(self, subset: str, records: list[dict]) -> dict:
        n = len(records)
        out = {k: sum(r["scores"][k] for r in records) / n for k in ("rouge1", "rouge2", "rougeL")}
        out.update({
            "doc_truncated": sum(r["doc_truncated"] for r in records) / n,
            "truncated": sum(r["finish"][0] == "length" for r in records) / n,
            "empty": sum(not r["outputs"][0].strip() for r in records) / n,
            "n": n,
            "rouge_settings": settings(subset, self.options.use_stemmer),
        })
        return out

    def metadata(self) -> dict:
        folder, where = self._folder()
        return {"source": str(folder) if folder else f"hub {self.cfg.dataset.hub} (refs/convert/parquet)",
                "source_from": where, "max_doc_chars": self.options.max_doc_chars,
                "doc_truncation": "cut at the last sentence end/space in the second half of max_doc_chars",
                "rouge": "rouge-score RougeScorer with a language-aware tokenizer (harness/metrics/rouge.py)"}


TASK_CLASS = XLSumTask
