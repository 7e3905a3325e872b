"""A study unit's `phases.json`: what `harness study` finished in a unit folder (`<output>/<model>/<unit>/`), one
record per phase ("train" or an evaluation block's name) with its wall time, end, git commit, the equivalent
`harness train|run` command and, for training, the artifact's hash and path.

The study's driver is the one writer: every record is written atomically (harness.io), so a kill leaves the old
file or the new one, under the folder's lock (harness.rundir.lock: the unit's evaluations may be running). A unit
whose retrained weights differ from those its evaluations used is moved aside whole (`move_aside`), never mixed.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError
from harness.io import atomic_write_text
from harness.rundir.lock import folder_lock

PHASES_FILE = "phases.json"


def read_phases(unit_dir: str | Path) -> dict:
    """{phase name: record} of a unit folder ({} when it has none)."""
    path = Path(unit_dir) / PHASES_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not valid JSON ({e}); delete it (its phases are then re-checked from "
                           f"their results)") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "seconds" in v for v in data.values()):
        raise HarnessError(f"{path}: expected {{phase: {{seconds, ...}}}}; delete it to re-check its phases")
    return data


def record_phase(unit_dir: str | Path, phase: str, record: dict) -> dict:
    """Add or replace one phase's record; returns the unit's records."""
    with folder_lock(unit_dir):  # the unit's evaluations may be running: they clear its temporary files
        state = read_phases(unit_dir)
        state[phase] = record
        atomic_write_text(Path(unit_dir) / PHASES_FILE, json.dumps(state, indent=1) + "\n")
    return state


def attempt_file(log: str | Path) -> Path:
    """A phase attempt's heartbeat file beside the phase's log (`logs/train.log` -> `logs/train.attempt.json`;
    mt_harness.study.attempt keeps it)."""
    log = Path(log)
    return log.with_name(log.stem + ".attempt.json")


def write_attempt(path: Path, record: dict) -> None:
    """Replace a heartbeat file atomically (a kill leaves the previous beat or this one)."""
    atomic_write_text(path, json.dumps(record) + "\n")


def read_attempt(path: Path) -> dict | None:
    """A heartbeat file's record; None when there is none or it cannot be read."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


STALE_TAG = ".stale-"  # `<unit>.stale-<tag>`: a unit folder moved aside, kept on disk, never on a leaderboard


def move_aside(unit_dir: str | Path, tag: str, keep: tuple[str, ...] = ()) -> Path:
    """Rename a unit folder to `<unit>.stale-<tag>` (numbered if that exists); returns the new path. `keep`: paths
    inside it that belong to the unit's new run (the log of the training that made the folder stale) and move back
    into a fresh `unit_dir`."""
    src = Path(unit_dir)
    dst = src.with_name(f"{src.name}{STALE_TAG}{tag}")
    n = 1
    while dst.exists():
        n += 1
        dst = src.with_name(f"{src.name}{STALE_TAG}{tag}-{n}")
    src.rename(dst)
    for rel in keep:
        if (dst / rel).exists():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).rename(src / rel)
    return dst
