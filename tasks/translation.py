"""Any translation test set from plain files, configured in YAML only (WMT, NTREX, TICO-19, Multi30k, your own).

Each direction in `languages:` (e.g. `de-en`) reads one source file and one or more reference files: plain
UTF-8 text, one sentence per line, gzip-compressed when the name ends in `.gz`. Paths are patterns relative
to the data directory (`--data-dir`, `$HARNESS_DATA_DIR`) or absolute, with the placeholders

    {src} {tgt}    the direction's codes as written in `languages:` (de, en)
    {src3} {tgt3}  their three-letter ISO 639-3 codes, the FLORES-200 prefix (deu, eng)

`options.source` + `options.references` apply to every direction; `options.files.<direction>` gives a
direction its own files. Several reference files give multi-reference BLEU and chrF++ (sacrebleu's
`nrefs:N`); COMET and the references' off-target noise floor use the first reference. Cleaning, metrics,
COMET and the summary are the ones FLORES uses (tasks/_translation.py).
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.data import read_lines
from harness.errors import HarnessError
from harness.languages import flores_code
from tasks._translation import TranslationTask

PLACEHOLDERS = ("src", "tgt", "src3", "tgt3")


@dataclass
class DirectionFiles:
    source: str  # path pattern of the source file
    references: list[str]  # path patterns of the reference files (one or more, each line-aligned with the source)


@dataclass
class TranslationFilesOptions:
    source: str | None = None  # source path pattern for every direction not in `files`
    references: list[str] = field(default_factory=list)  # reference path patterns for those directions
    files: dict[str, DirectionFiles] = field(default_factory=dict)  # per direction: its own source + references
    pivot: str | None = "en"  # summary groups X→pivot and pivot→X; null: only the mean over directions
    keep: Literal["first_paragraph", "first_line", "all"] = "first_paragraph"  # what of a chat answer is scored


class FileTranslationTask(TranslationTask):
    Options = TranslationFilesOptions

    def __init__(self, cfg, data, path: Path | None = None):
        self.where = str(path or cfg.task)
        super().__init__(cfg, data, path)
        if cfg.dataset.hub or cfg.dataset.local:
            raise HarnessError(f"{self.where}: dataset: the translation hook reads options.source/references/files; "
                               f"remove dataset.hub and dataset.local")
        opts = self.options
        if bool(opts.source) != bool(opts.references):
            raise HarnessError(f"{self.where}: options: give both source and references (or neither and "
                               f"options.files for every direction)")
        for pair in cfg.languages:
            self._check_pair(pair, f"{self.where}: languages")
            if pair not in opts.files and not opts.source:
                raise HarnessError(f"{self.where}: options: direction {pair!r} has no files; add options.files.{pair} "
                                   f"or options.source and options.references")
        for pair, files in opts.files.items():
            if pair not in cfg.languages:
                raise HarnessError(f"{self.where}: options.files.{pair}: not a direction in languages "
                                   f"({', '.join(cfg.languages)})")
            if not files.references:
                raise HarnessError(f"{self.where}: options.files.{pair}.references: list at least one file")
        for pattern in [opts.source or ""] + opts.references + [p for f in opts.files.values()
                                                                 for p in (f.source, *f.references)]:
            bad = [n for _, n, _, _ in string.Formatter().parse(pattern) if n is not None and n not in PLACEHOLDERS]
            if bad:
                raise HarnessError(f"{self.where}: options: path {pattern!r} uses {{{bad[0]}}}; known placeholders: "
                                   + " ".join(f"{{{p}}}" for p in PLACEHOLDERS))

    def _check_pair(self, pair: str, where: str) -> None:
        src, _, tgt = pair.partition("-")
        if not tgt or src == tgt:
            raise HarnessError(f"{where}: {pair!r} is not a direction like de-en")
        try:
            flores_code(src), flores_code(tgt)
        except HarnessError as e:
            raise HarnessError(f"{where}: {pair!r}: {e}") from None

    def check_subsets(self, wanted: list[str]) -> None:
        """Listed directions; with default `source`/`references` patterns also any other pair whose files exist."""
        known = self.all_subsets()
        for pair in wanted:
            if pair in known:
                continue
            if not self.options.source:
                raise HarnessError(f"task {self.name}: unknown direction {pair!r} (known: {', '.join(known)})")
            self._check_pair(pair, f"task {self.name}")
            self.paths(pair)

    def preflight(self) -> None:
        super().preflight()  # BLEU tokenizers of the targets
        for pair in self.selected:
            self.docs(pair)  # files exist, decode, and are line-aligned

    def paths(self, pair: str) -> tuple[Path, list[Path]]:
        """(source file, reference files) of one direction; a one-line error when one does not exist."""
        files = self.options.files.get(pair) or DirectionFiles(self.options.source, self.options.references)
        src, _, tgt = pair.partition("-")
        values = {"src": src, "tgt": tgt, "src3": flores_code(src)[:3], "tgt3": flores_code(tgt)[:3]}
        out = []
        for pattern in (files.source, *files.references):
            p = Path(pattern.format(**values)).expanduser()
            if not p.is_absolute():
                if self.data.root is None:
                    raise HarnessError(f"task {self.name} ({pair}): {p} is relative to the data directory, but none "
                                       f"is set; use --data-dir or $HARNESS_DATA_DIR, or an absolute path")
                p = self.data.root / p
            if not p.is_file():
                raise HarnessError(f"task {self.name} ({pair}): {p} not found; fix the path in {self.where} or "
                                   f"set --data-dir")
            out.append(p)
        return out[0], out[1:]

    def _read(self, path: Path) -> list[str]:
        return self.memo(("lines", str(path)), lambda: read_lines(path))

    def load_docs(self, subset: str) -> list[dict]:
        src_path, ref_paths = self.paths(subset)
        sources = self._read(src_path)
        refs = [self._read(p) for p in ref_paths]
        for p, r in zip(ref_paths, refs):
            if len(r) != len(sources):
                raise HarnessError(f"task {self.name} ({subset}): source {src_path} has {len(sources)} lines but "
                                   f"reference {p} has {len(r)}; the files must be line-aligned")
        return [self.make_doc(subset, i, s, [r[i] for r in refs]) for i, s in enumerate(sources)]

    def metadata(self) -> dict:
        """Adds a content hash of each selected direction's files: runs on different data do not compare."""
        data = {}
        for pair in self.selected:
            src_path, ref_paths = self.paths(pair)
            h = hashlib.sha256()
            for lines in [self._read(src_path)] + [self._read(p) for p in ref_paths]:
                h.update("\n".join(lines).encode() + b"\x1e")
            data[pair] = h.hexdigest()[:16]
        return {**super().metadata(), "data_sha256": data}


TASK_CLASS = FileTranslationTask
