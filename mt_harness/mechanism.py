"""Each run's mechanism check in words, for the leaderboard (RowResult.mechanism, leaderboard/control.py).

The method registry's `Method.mechanism(record)` reads a results.json `method` record (its config and the
artifact's report) and says whether the method's defining mechanism is active (LANDeRMT: layers and neurons per
pair; RaDis: rationale statistics; LMS/FD: KL between routes, whether the base trained). The relay's check, its
shuffled-source control, needs samples and the paired bootstrap: the leaderboard computes it (leaderboard/control.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError
from leaderboard.collect import find_results
from leaderboard.stale import run_key


def mechanisms(paths: list[Path]) -> dict[str, str]:
    """Run folder (leaderboard.stale.run_key) -> its method's mechanism check ("" runs left out)."""
    from methods import get_method

    out: dict[str, str] = {}
    for f in find_results(paths):
        try:
            record = json.loads(f.read_text()).get("method") or {}
            text = get_method(str(record.get("name", ""))).mechanism(record)
        except (OSError, json.JSONDecodeError, HarnessError):
            continue  # unreadable results and unknown methods are reported by the leaderboard itself
        if text:
            out[run_key(f.parent)] = text
    return out
