"""Files as the interface between phases: atomic JSON writes and an append-only, resumable JSONL store."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from harness.errors import HarnessError


def writable_dir(path: str | Path, what: str) -> Path:
    """`path` as a folder to write into: HarnessError when it, or a folder above it, is an existing file."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists() or q.is_symlink():
            if not q.is_dir():
                where = "is a file" if q == p else f"cannot be created: {q} is a file"
                raise HarnessError(f"{what} {p} {where}, not a folder; give a folder path")
            break
    return p


def existing_dir(path: str | Path, what: str) -> Path:
    """`path` as an existing folder (e.g. a results folder); HarnessError when it is missing or a file."""
    p = Path(path)
    if not p.is_dir():
        state = "is a file" if p.exists() else "does not exist"
        raise HarnessError(f"{what} {p} {state}; give a results folder written by `harness run`")
    return p


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def stable_hash(obj: Any) -> str:
    """Hash of a JSON-serialisable object, independent of key order (first 16 hex digits)."""
    return sha256_text(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str))[:16]


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temporary file and os.replace: readers see the old file or the new one, never half."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """atomic_write_text for bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_tmp(folder: str | Path) -> int:
    """Delete leftovers of `atomic_write_text` killed between creating its temporary file and the rename
    (`.<name>.<random>.tmp`). Call only where this process is the folder's one writer (a run's output)."""
    folder = Path(folder)
    stale = list(folder.glob(".*.tmp")) if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    """Every non-blank line of a JSONL data file; a malformed line is a one-line error naming file and line."""
    rows = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines()):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise HarnessError(f"{path}: line {i + 1} is not valid JSON") from None
    return rows


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: not valid JSON ({e}); delete it to recompute") from None


class JsonlStore:
    """Append-only JSONL file of records keyed by `key_field`, safe to resume after a crash.

    Each append is flushed and fsynced, so a kill loses at most the line being written. On open, a
    torn last line (no trailing newline or invalid JSON) is cut off and reported; a corrupt line in
    the middle is an error, because silently skipping it would change results.
    """

    def __init__(self, path: str | Path, key_field: str = "id"):
        self.path = Path(path)
        self.key_field = key_field
        self.records: dict[str, dict] = {}
        self.repaired = False
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        good_end = 0
        pos = 0
        for i, line in enumerate(lines):
            end = pos + len(line) + 1
            is_last = i == len(lines) - 1
            if not line.strip():
                pos = end
                continue
            try:
                rec = json.loads(line.decode("utf-8"))
                if is_last:  # complete JSON but no newline yet: keep it, newline will be restored
                    raise ValueError("no trailing newline")
            except (ValueError, UnicodeDecodeError):
                if is_last or all(not rest.strip() for rest in lines[i + 1 :]):
                    self.repaired = True
                    break
                raise HarnessError(
                    f"{self.path}: line {i + 1} is not valid JSON; fix or delete that line to resume"
                ) from None
            key = rec.get(self.key_field)
            if key is None:
                raise HarnessError(f"{self.path}: line {i + 1} has no {self.key_field!r} field")
            if key in self.records:
                raise HarnessError(f"{self.path}: line {i + 1} repeats {self.key_field} {key!r}; remove one copy")
            self.records[key] = rec
            good_end = end
            pos = end
        if self.repaired:
            with open(self.path, "r+b") as f:
                f.truncate(good_end)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, records: Iterable[dict]) -> None:
        records = list(records)
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for rec in records:
                key = rec[self.key_field]
                if key in self.records:
                    raise RuntimeError(f"{self.path}: duplicate key {key!r}")
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                self.records[key] = rec
            f.flush()
            os.fsync(f.fileno())
