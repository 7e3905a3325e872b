"""Training data as config: ALMA human-written pairs, Multi30k, WMT newstest 2008-2014.

Local layout (the data directory, `--data-dir` / `$HARNESS_DATA_DIR`):

* `parallel/alma_human_written/<xx>en/train.<xx>-en.<xx>` + `.en` — line-aligned, used for both
  xx->en and en->xx. They END with FLORES-200 dev (997) + devtest (1012) lines: see `exclude_flores`.
  Hub: `haoranxu/ALMA-Human-Parallel` (config `<xx>-en`, rows `{"translation": {xx:…, "en":…}}`).
* `parallel/multi30k/task1_raw/train.<lang>.gz` (en, de, fr, cs). Hub: `bentrevett/multi30k` (en-de).
* `parallel/wmt_newstest_2008_2014/eng-<xxx>/{news-test2008,newstest2009..2014}.<eng|xxx>` (de, fr).
  Local only.
"""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.data import DataSource, load_hub_dataset, read_lines
from harness.errors import HarnessError
from harness.languages import flores_code, name

Source = Literal["alma", "multi30k", "wmt_newstest"]
HUB_IDS = {"alma": "haoranxu/ALMA-Human-Parallel", "multi30k": "bentrevett/multi30k"}
_ISO3 = {"de": "deu", "fr": "fra", "cs": "ces", "ru": "rus", "zh": "zho", "is": "isl"}
_NEWSTEST = ["news-test2008"] + [f"newstest{y}" for y in range(2009, 2015)]


@dataclass
class TrainDataConfig:
    """Which parallel data a method trains on."""

    sources: list[Source] = field(default_factory=lambda: ["alma"])  # corpora to concatenate
    # directions, each src-tgt with English on one side
    pairs: list[str] = field(default_factory=lambda: ["de-en", "en-de"])
    max_per_pair: int | None = None  # keep a seeded random sample of this many pairs per direction (None = all)
    exclude_flores: bool = True  # drop pairs whose source or target is a FLORES-200 dev/devtest sentence
    min_chars: int = 1  # drop pairs with an empty/too short side

    def validate(self, where: str) -> None:
        for p in self.pairs:
            src, _, tgt = p.partition("-")
            if not tgt or src == tgt or "en" not in (src, tgt):
                raise HarnessError(f"{where}.pairs: {p!r} must look like de-en or en-de (English on one side)")
            flores_code(src), flores_code(tgt)
        if not self.sources:
            raise HarnessError(f"{where}.sources: name at least one of alma, multi30k, wmt_newstest")


@dataclass
class Example:
    src: str  # language codes
    tgt: str
    source: str
    reference: str
    origin: str  # file (or hub id) and line, for error messages and the contamination guard

    @property
    def pair(self) -> str:
        return f"{self.src}-{self.tgt}"

    def doc(self) -> dict:
        """The fields the FLORES prompt template uses, so training and evaluation prompts match."""
        return {"source": self.source, "reference": self.reference, "src": self.src, "tgt": self.tgt,
                "src_name": name(self.src), "tgt_name": name(self.tgt)}


def _xx(pair: str) -> str:
    src, _, tgt = pair.partition("-")
    return src if tgt == "en" else tgt


def _orient(pair: str, xx_lines: list[str], en_lines: list[str], origin: str) -> list[Example]:
    src, _, tgt = pair.partition("-")
    if len(xx_lines) != len(en_lines):
        raise HarnessError(f"{origin}: {len(xx_lines)} vs {len(en_lines)} lines; the two sides must be line-aligned")
    out = []
    for i, (x, e) in enumerate(zip(xx_lines, en_lines)):
        s, t = (x, e) if tgt == "en" else (e, x)
        out.append(Example(src, tgt, s.strip(), t.strip(), f"{origin}:{i + 1}"))
    return out


def load_alma(pair: str, data: DataSource) -> list[Example]:
    xx = _xx(pair)
    folder = data.local("parallel", "alma_human_written", f"{xx}en")
    if folder is not None:
        stem = folder / f"train.{xx}-en"
        xs, es = read_lines(Path(f"{stem}.{xx}")), read_lines(Path(f"{stem}.en"))
        return _orient(pair, xs, es, f"{stem}.{{{xx},en}}")
    if data.root is not None and not data.allow_hub:
        raise HarnessError(f"training data alma {pair}: {data.root}/parallel/alma_human_written/{xx}en not found")
    rows = load_hub_dataset(HUB_IDS["alma"], f"training data alma {pair}", name=f"{xx}-en", split="train")
    tr = [r["translation"] for r in rows]
    return _orient(pair, [t[xx] for t in tr], [t["en"] for t in tr], HUB_IDS["alma"])


def load_multi30k(pair: str, data: DataSource) -> list[Example]:
    xx = _xx(pair)
    folder = data.local("parallel", "multi30k", "task1_raw")
    if folder is not None:
        def lines(lang: str) -> list[str]:
            p = folder / f"train.{lang}.gz"
            if not p.exists():
                raise HarnessError(f"training data multi30k {pair}: {p} not found (multi30k has en, de, fr, cs)")
            return gzip.decompress(p.read_bytes()).decode("utf-8").rstrip("\n").split("\n")
        return _orient(pair, lines(xx), lines("en"), f"{folder}/train.{{{xx},en}}.gz")
    rows = load_hub_dataset(HUB_IDS["multi30k"], f"training data multi30k {pair}", split="train")
    return _orient(pair, [r[xx] for r in rows], [r["en"] for r in rows], HUB_IDS["multi30k"])


def load_wmt_newstest(pair: str, data: DataSource) -> list[Example]:
    xx = _xx(pair)
    iso = _ISO3.get(xx, xx)
    folder = data.require_local(f"training data wmt_newstest {pair}", "parallel", "wmt_newstest_2008_2014",
                                f"eng-{iso}")
    out: list[Example] = []
    for stem in _NEWSTEST:
        if (folder / f"{stem}.eng").exists():
            out += _orient(pair, read_lines(folder / f"{stem}.{iso}"), read_lines(folder / f"{stem}.eng"),
                           f"{folder}/{stem}.{{{iso},eng}}")
    return out


LOADERS = {"alma": load_alma, "multi30k": load_multi30k, "wmt_newstest": load_wmt_newstest}


def flores_sentences(langs: set[str], data: DataSource) -> set[str]:
    """Normalised FLORES-200 dev + devtest sentences of `langs` (whatever of them the data directory has)."""
    from harness.training.contamination import normalise

    out: set[str] = set()
    for lang in langs:
        code = flores_code(lang)
        for parts in (("flores", "flores200_dataset", "devtest", f"{code}.devtest"),
                      ("flores", "flores200_dataset", "dev", f"{code}.dev"),
                      ("flores", "flores200_dev_from_alma", f"{code}.dev")):
            p = data.local(*parts)
            if p is not None:
                out.update(normalise(x) for x in read_lines(p))
    return out


def load_training_data(cfg: TrainDataConfig, data: DataSource, seed: int = 0) -> tuple[list[Example], dict]:
    """All configured pairs (FLORES excluded when asked, sampled per direction); returns (examples, stats)."""
    from harness.training.contamination import normalise

    stats: dict = {"loaded": 0, "flores_excluded": 0, "short_dropped": 0, "per_pair": {}}
    out: list[Example] = []
    flores = flores_sentences({lang for p in cfg.pairs for lang in p.split("-")}, data) if cfg.exclude_flores else set()
    for pair in cfg.pairs:
        rows: list[Example] = []
        for source in cfg.sources:
            rows += LOADERS[source](pair, data)
        stats["loaded"] += len(rows)
        if flores:
            kept = [e for e in rows if normalise(e.source) not in flores and normalise(e.reference) not in flores]
            stats["flores_excluded"] += len(rows) - len(kept)
            rows = kept
        kept = [e for e in rows if len(e.source) >= cfg.min_chars and len(e.reference) >= cfg.min_chars]
        stats["short_dropped"] += len(rows) - len(kept)
        rows = kept
        if cfg.max_per_pair is not None and len(rows) > cfg.max_per_pair:
            rows = random.Random(f"{seed}/{pair}").sample(rows, cfg.max_per_pair)
        stats["per_pair"][pair] = len(rows)
        out += rows
    if not out:
        raise HarnessError(f"training data: no pairs left for {cfg.pairs} from {cfg.sources}")
    return out, stats
