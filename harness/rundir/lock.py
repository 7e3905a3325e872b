"""The run folder's lock: several processes may write one folder at once (a study runs a unit's evaluation blocks in
parallel, each `harness run` appending its own tasks), and they share `OUT/results.json` and `OUT/phases.json`.
Every read-modify-write of a folder-level file, and the clean-up of temporary files a killed write left there, holds
`OUT/.results.lock` (a `filelock` lock: fcntl on POSIX, also over NFS, msvcrt on Windows), so no entry is lost and no
writer's temporary file is taken for a killed one's. Per-task files (`OUT/<task>/…`) have one writer and no lock.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from harness.io import remove_stale_tmp

LOCK_FILE = ".results.lock"


@contextmanager
def folder_lock(out: str | Path):
    """Hold the run folder's lock (created with the folder if needed) for the block."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(out / LOCK_FILE):
        yield


def clear_tmp(out: str | Path) -> int:
    """`remove_stale_tmp` on the run folder itself, under its lock: a temporary file there is a killed writer's, not
    one another process is writing now."""
    with folder_lock(out):
        return remove_stale_tmp(out)
