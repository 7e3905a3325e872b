"""`harness pack` / `harness unpack`: a finished run folder's samples.jsonl files as gzip, for committing results.

A run writes plain, append-only samples.jsonl (resumable after a crash). Once it is finished, `harness pack OUT`
replaces every task's `<task>/samples.jsonl` with `<task>/samples.jsonl.gz` (deterministic: the same records give
the same bytes, so a repository does not see a change where there is none) and points the results.json entry's
`samples_file` at it. `samples_sha256` stays the hash of the uncompressed records, so the leaderboard's
"changed since results.json" check means the same for both forms. Everything that reads samples (the leaderboard,
`--drift-ref`) reads either form; what appends to or rewrites them (`harness run` resuming, `harness score`,
`harness judge`) stops with a one-line error naming `harness unpack OUT`, which restores the plain files byte for byte.

Crash safety: the new file is written atomically and checked before results.json is switched to it, and the old
one is removed last; a rerun of an interrupted pack or unpack finishes it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

from harness.errors import HarnessError
from harness.io import atomic_write_bytes, atomic_write_json, existing_dir, remove_stale_tmp
from harness.rundir.layout import SAMPLES_FILE, results_file
from harness.rundir.lock import folder_lock
from harness.rundir.read import SCHEMA, read_results, samples_bytes

PACKED = ".gz"


def refuse_packed(task_dir: Path, action: str) -> None:
    """For a writer (`action`) about to append to or rewrite a task folder's samples: a one-line error when
    they are packed."""
    path = Path(task_dir) / f"samples.jsonl{PACKED}"
    if path.exists():
        raise HarnessError(f"{path}: packed by `harness pack`; run `harness unpack {Path(task_dir).parent}` "
                           f"before {action}")


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(data)
    return buf.getvalue()


def _convert(out: Path, to_packed: bool) -> list[str]:
    verb = "pack" if to_packed else "unpack"
    out = existing_dir(out, f"harness {verb}:")
    with folder_lock(out):
        return _convert_locked(out, to_packed, verb)


def _convert_locked(out: Path, to_packed: bool, verb: str) -> list[str]:
    path = results_file(out)
    results = read_results(path) if path.exists() else None
    if results is None:
        raise HarnessError(f"{path}: not a {SCHEMA} results file; give a folder written by `harness run`")
    todo = []  # (entry, src, dst, plain records) of every task, all checked before anything is changed
    for name, entry in results["tasks"].items():
        rel = entry.get("samples_file") or f"{name}/{SAMPLES_FILE}"
        plain = rel.removesuffix(PACKED)
        src, dst = (out / plain, out / (plain + PACKED)) if to_packed else (out / (plain + PACKED), out / plain)
        remove_stale_tmp(src.parent)
        if not src.exists() and (dst.exists() or entry.get("samples_sha256") is None):
            todo.append((entry, src, dst, None))  # done before (or interrupted after the removal), or no samples
            continue
        if not src.exists():
            raise HarnessError(f"{src}: missing; results.json task {name!r} names it")
        data = samples_bytes(src)
        want = entry.get("samples_sha256")
        if want and hashlib.sha256(data).hexdigest() != want:
            fix = f"; run `harness score {out}` first" if to_packed else ""
            raise HarnessError(f"{src}: changed since results.json was written; nothing was {verb}ed{fix}")
        todo.append((entry, src, dst, data))
    changed = []
    for entry, src, dst, data in todo:
        if data is not None:
            atomic_write_bytes(dst, _gzip(data) if to_packed else data)
            if samples_bytes(dst) != data:
                raise HarnessError(f"{dst}: does not read back as {src}; {src} was kept")
        if dst.exists() and entry.get("samples_file") != dst.relative_to(out).as_posix():
            entry["samples_file"] = dst.relative_to(out).as_posix()
            atomic_write_json(path, results)
        if data is not None:
            src.unlink()
            changed.append(dst.relative_to(out).as_posix())
    return changed


def pack(out: str | Path) -> list[str]:
    """gzip every task's samples of the finished run folder `out`; returns the files written."""
    return _convert(Path(out), to_packed=True)


def unpack(out: str | Path) -> list[str]:
    """Restore the plain samples.jsonl files of a packed run folder byte for byte; returns the files written."""
    return _convert(Path(out), to_packed=False)

