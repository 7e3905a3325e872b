"""Where datasets come from: a local data directory first, the hub otherwise.

The data directory is `--data-dir`, else `$HARNESS_DATA_DIR`, else `./data` or `../shared/data`
when they exist. Nothing is ever copied into the repository.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

ENV_VAR = "HARNESS_DATA_DIR"
_FALLBACKS = ("data", "../shared/data")


@dataclass(frozen=True)
class DataSource:
    """A local data directory (or None) plus whether hub loading is allowed."""

    root: Path | None
    allow_hub: bool = True

    @classmethod
    def resolve(cls, data_dir: str | None = None, allow_hub: bool = True) -> "DataSource":
        if data_dir:
            root = Path(data_dir).expanduser()
            if not root.is_dir():
                raise HarnessError(f"--data-dir {data_dir}: not a directory; point it at a folder of datasets")
            return cls(root.resolve(), allow_hub)
        env = os.environ.get(ENV_VAR)
        if env:
            root = Path(env).expanduser()
            if not root.is_dir():
                raise HarnessError(f"${ENV_VAR}={env}: not a directory; fix or unset it")
            return cls(root.resolve(), allow_hub)
        for cand in _FALLBACKS:
            if Path(cand).is_dir():
                return cls(Path(cand).resolve(), allow_hub)
        return cls(None, allow_hub)

    def local(self, *parts: str) -> Path | None:
        """Path under the data directory, or None when there is no data directory or it is absent."""
        if self.root is None:
            return None
        p = self.root.joinpath(*parts)
        return p if p.exists() else None

    def require_local(self, what: str, *parts: str) -> Path:
        p = self.local(*parts)
        if p is None:
            where = self.root / Path(*parts) if self.root else Path(*parts)
            raise HarnessError(
                f"{what}: {where} not found; set --data-dir or ${ENV_VAR} to a folder that has it"
            )
        return p


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file (gzip-compressed when the name ends in `.gz`), with a clear error for bad
    bytes, a corrupt archive or a missing/empty file. A Windows line end (CR LF) counts as one line end."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise HarnessError(f"{path}: file not found; check --data-dir") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise HarnessError(f"{path}: not a readable gzip file ({e}); recompress it or drop the .gz suffix") from None
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}: not valid UTF-8 at byte {e.start}; re-encode the file as UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise HarnessError(f"{path}: file is empty")
    return lines


def load_hub_dataset(hub_id: str, what: str, **kwargs):
    """`datasets.load_dataset` with a one-line error when the hub cannot be reached."""
    try:
        import datasets

        return datasets.load_dataset(hub_id, **kwargs)
    except Exception as e:  # the hub raises many types: connection, offline mode, missing config
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise HarnessError(
            f"{what}: could not load {hub_id} from the hub ({msg}); set --data-dir to a local copy"
        ) from None
