"""Trained artifacts on disk: where they live, their content hash, and reuse.

Location: `$HARNESS_CACHE/artifacts/<method>/<base weights sha256[:12]>-<config hash>/` (default
`~/.cache/mt-harness/artifacts/...`). The config hash covers the method's full config, a fingerprint
of the exact training pairs and the trainer's version, so `harness run` and `harness train` share
artifacts and a different recipe, model, dataset or trainer never collides. `artifact.json` marks a
finished artifact: a folder without it is an unfinished training run (its `checkpoint/` is resumed by
the next run). While a process trains an artifact it holds an exclusive lock on `<folder>/.lock` (flock: released
when it saves the artifact or dies), so a second process that wants the same artifact (two study workers, an arm and
its control) waits and then reuses it instead of training it again into the same folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.errors import HarnessError
from harness.io import atomic_write_json, read_json, sha256_file, stable_hash
from harness.method import Artifact
from harness.models import cache_dir

MANIFEST = "artifact.json"
_MANIFEST_FIELDS = {"method", "kind", "config", "config_hash", "hash"}  # the rest is the method's report
LOCK = ".lock"  # held while a process trains the artifact (module docstring); not content
_NOT_CONTENT = {MANIFEST, LOCK, "loss.jsonl", "loss.png", "train_log.json"}


def artifacts_root() -> Path:
    return cache_dir() / "artifacts"


# Bump when a change to the shared trainer alters what training produces for the same config (2: fused AdamW,
# gradient accumulation over one global step batch normalised by the step's token count), so that artifacts
# trained by the older code are not reused.
TRAINER_VERSION = 2


def config_hash(method: str, config: dict, data_fingerprint: str) -> str:
    return stable_hash({"method": method, "config": config, "data": data_fingerprint, "trainer": TRAINER_VERSION})


def artifact_dir(root: Path, method: str, weights_sha: str, cfg_hash: str) -> Path:
    return root / method / f"{(weights_sha or 'unknown')[:12]}-{cfg_hash}"


def content_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in _NOT_CONTENT
                  and not any(part.startswith("checkpoint") for part in p.relative_to(folder).parts))


def content_hash(folder: Path) -> str:
    return stable_hash([(str(p.relative_to(folder)), sha256_file(p)) for p in content_files(folder)])


def load_artifact(folder: Path, verify: bool = True, config_hash: str | None = None) -> Artifact | None:
    """The finished artifact in `folder`, or None when there is none; a modified one is an error."""
    if not (folder / MANIFEST).exists():
        return None
    m = read_json(folder / MANIFEST)
    if config_hash is not None and m.get("config_hash") != config_hash:
        raise HarnessError(f"{folder / MANIFEST}: config hash {m.get('config_hash')!r} does not match this run's "
                           f"{config_hash!r}; delete the folder to retrain")
    if verify and content_hash(folder) != m["hash"]:
        raise HarnessError(f"{folder}: files changed since training (content hash mismatch); "
                           f"delete the folder to retrain")
    report = {k: v for k, v in m.items() if k not in _MANIFEST_FIELDS}
    return Artifact(method=m["method"], kind=m["kind"], path=folder, config=m["config"],
                    config_hash=m["config_hash"], hash=m["hash"], report=report)


def save_artifact(folder: Path, method: str, kind: str, config: dict, cfg_hash: str, extra: dict) -> Artifact:
    """Write the manifest, then drop the resumable checkpoint, and return the artifact.

    In that order: a kill between the two leaves a finished artifact plus a stale checkpoint (not
    part of the content hash), never an unfinished folder whose checkpoint is already gone."""
    digest = content_hash(folder)
    atomic_write_json(folder / MANIFEST, {"method": method, "kind": kind, "config": config, "config_hash": cfg_hash,
                                          "hash": digest, **extra})
    for name in ("checkpoint", "checkpoint.tmp", "checkpoint.old"):
        shutil.rmtree(folder / name, ignore_errors=True)
    return Artifact(method=method, kind=kind, path=folder, config=config, config_hash=cfg_hash, hash=digest,
                    report=dict(extra))


class ArtifactCache:
    """One artifact's place in the cache: its folder and config hash, the finished artifact already there (or
    None), and `save` to finish it. Every method (the shared pipeline, composite methods, each XBridge stage)
    finds and finishes its artifacts through this, built by `artifact_cache`."""

    def __init__(self, method: str, folder: Path, config_hash: str, cached: Artifact | None, locked: bool = False):
        self.method, self.folder, self.config_hash, self.cached = method, folder, config_hash, cached
        self.locked = locked  # this process holds the training lock (module docstring) until `save`

    def save(self, kind: str, config: dict, extra: dict | None = None) -> Artifact:
        """Write the manifest (main process only, once every process is done; the others then read it).
        `config` is what results.json records (the method's config + its training data report); `extra` goes
        to the manifest only (the artifact's `report`)."""
        from accelerate import PartialState

        state = PartialState()  # the trainer's (multi-process under `accelerate launch`), else a single process
        state.wait_for_everyone()
        if state.is_main_process:
            art = save_artifact(self.folder, self.method, kind, config, self.config_hash, extra or {})
            print(f"[{self.method}] artifact saved: {self.folder}")
        state.wait_for_everyone()
        self.release()
        return art if state.is_main_process else load_artifact(self.folder)

    def release(self) -> None:
        if self.locked:
            _unlock(self.folder)
            self.locked = False


_HELD: dict[Path, object] = {}  # the lock files this process holds, by artifact folder (re-entrant in a process)


def _unlock(folder: Path) -> None:
    f = _HELD.pop(folder, None)
    if f is not None:
        f.close()  # closing the file drops the flock


def _lock(folder: Path, method: str) -> bool:
    """Hold `<folder>/.lock` exclusively (blocks while another process trains the same artifact); False where flock
    does not exist (not POSIX) or on a non-main process of a distributed training (rank 0 trains for all)."""
    try:
        import fcntl
    except ImportError:
        return False
    if int(os.environ.get("RANK", "0")) != 0:
        return False
    if folder in _HELD:  # this process already trains it (e.g. a retry after a failed attempt in the same process)
        return True
    folder.mkdir(parents=True, exist_ok=True)
    f = _HELD[folder] = open(folder / LOCK, "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"[{method}] another process is training {folder}; waiting for it to finish", flush=True)
        fcntl.flock(f, fcntl.LOCK_EX)
    return True


def artifact_cache(method: str, key: dict, data_fingerprint: str, out_dir: Path, weights_sha: str,
                   label: str = "") -> ArtifactCache:
    """Where the artifact of `key` (everything that decides what training produces besides the data: the
    method's config, the seed, other models' weight hashes, ...) trained on data `data_fingerprint` lives under
    `out_dir`, and the finished one there, if any (a different config hash in its manifest, or files changed
    since, is an error). `weights_sha`: the run model's weights hash (the folder's prefix); `label`: what the
    reuse message names (e.g. "stage 2")."""
    h = config_hash(method, key, data_fingerprint)
    folder = artifact_dir(out_dir, method, weights_sha, h)
    cached = load_artifact(folder, config_hash=h)
    locked = False
    if cached is None:  # this process will train it: wait for one training it now, then look again
        locked = _lock(folder, method)
        cached = load_artifact(folder, config_hash=h)
        if cached is not None and locked:
            _unlock(folder)
            locked = False
    if cached:
        print(f"[{method}] {label + ': ' if label else ''}reusing artifact {folder} (config hash {h})")
    return ArtifactCache(method, folder, h, cached, locked)


def recorded_artifact(record: dict) -> Artifact | None:
    """The finished artifact a results.json `method` record used, found at its recorded path or, when the cache has
    moved (another `$HARNESS_CACHE`, another machine), at the same folder name under this cache's artifacts root;
    None when neither holds it, or when the one found has other files than the run used (content hash differs)."""
    art = record.get("artifact") or {}
    if not art.get("path") or not art.get("hash") or art.get("kind", "none") == "none":
        return None
    recorded = Path(art["path"])
    for folder in dict.fromkeys((recorded, artifacts_root() / record.get("name", "") / recorded.name)):
        try:
            found = load_artifact(folder, config_hash=art.get("config_hash"))
        except HarnessError:
            continue
        if found is not None and found.hash == art["hash"]:
            return found
    return None
