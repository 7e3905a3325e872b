"""Train/test overlap guard: refuse to train on sentences of a task the artifact will be scored on.

Every document of the selected subsets of each evaluation task contributes its `source` and
`reference` strings and every string of its `references` list (FLORES docs have the first two; the
file-based test sets of tasks/translation.py carry all their reference files; tasks without these
fields contribute nothing). Strings are compared after Unicode NFKC, case folding and whitespace
collapsing. A training pair overlaps when its source or its reference is one of those strings.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from harness.errors import HarnessError

_FIELDS = ("source", "reference", "references")
_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def eval_strings(eval_tasks: list) -> dict[str, str]:
    """normalised string -> 'task (subset)' for every source/reference of the tasks' selected docs."""
    out: dict[str, str] = {}
    for task in eval_tasks:
        for subset in task.selected:
            for doc in task.docs(subset):
                for f in _FIELDS:
                    value = doc.get(f)
                    for v in value if isinstance(value, list) else [value]:
                        if isinstance(v, str) and v.strip():
                            out.setdefault(normalise(v), f"{task.name} ({subset})")
    return out


def guard(examples: list, eval_tasks: list, drop: bool) -> tuple[list, dict]:
    """Return (examples to train on, report). Overlap is an error unless `drop` is set.

    The report ({"checked", "overlap", "dropped", "by_origin"}) goes into the artifact config.
    """
    strings = eval_strings(eval_tasks)
    hits = [e for e in examples if normalise(e.source) in strings or normalise(e.reference) in strings]
    by_origin = Counter(e.origin.rsplit(":", 1)[0] for e in hits)
    report = {"checked": len(examples), "test_strings": len(strings), "overlap": len(hits),
              "dropped": 0, "by_origin": dict(by_origin)}
    if not hits:
        return examples, report
    first = hits[0]
    where = strings.get(normalise(first.source)) or strings.get(normalise(first.reference))
    if not drop:
        origin, count = by_origin.most_common(1)[0]
        raise HarnessError(
            f"training data overlaps the evaluation set: {count} pairs of {origin} (e.g. line "
            f"{first.origin.rsplit(':', 1)[1]}) also appear in {where}, {len(hits)} in all; pass --drop-overlap "
            f"to train without them, or evaluate on other data"
        )
    hit_ids = {id(e) for e in hits}
    kept = [e for e in examples if id(e) not in hit_ids]
    report["dropped"] = len(hits)
    print(f"--drop-overlap: dropped {len(hits)} training pairs that appear in the evaluation set ({where}, ...)")
    return kept, report
