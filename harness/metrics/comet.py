"""COMET (Unbabel `unbabel-comet`) as an optional metric: local checkpoints only, one batched predict per task.

COMET lives in its own extra (`pip install '.[comet]'`, which pins transformers<5 and numpy<2, so it
is installed in a separate virtual environment). When the package is missing or no `--comet-model`
is given, the metric is reported as skipped with the reason (results.json `metadata.comet.skipped`),
never dropped silently. A checkpoint is a COMET model folder (`checkpoints/model.ckpt` +
`hparams.yaml`, as `comet.download_model` leaves it) or the `.ckpt` file itself; it is loaded with
`reload_hparams=True`, so `hparams.yaml` may point `pretrained_model` at a local encoder folder
(config + tokenizer), and the hub-offline variables are set so loading never waits on the network.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from harness.errors import HarnessError
from harness.io import sha256_file

INSTALL_HINT = "pip install '.[comet]' in its own virtual environment (it pins transformers<5, numpy<2)"


def find_checkpoint(path: str | Path) -> Path:
    """The .ckpt file of a COMET model folder (or the file itself); HarnessError when there is none."""
    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".ckpt":
        return p.resolve()
    ckpt = p / "checkpoints" / "model.ckpt"
    if ckpt.is_file():
        return ckpt.resolve()
    what = "does not exist" if not p.exists() else "has no checkpoints/model.ckpt"
    raise HarnessError(f"--comet-model {path}: {what}; give a local COMET model folder (checkpoints/model.ckpt "
                       f"+ hparams.yaml) or its .ckpt file")


def _hparams(ckpt: Path) -> dict:
    import yaml

    path = ckpt.parent.parent / "hparams.yaml"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


@dataclass
class Comet:
    """COMET settings for one run: a usable checkpoint, or the reason the metric is skipped."""

    checkpoint: Path | None = None
    skipped: str | None = None
    batch_size: int = 16

    @classmethod
    def configure(cls, model: str | None, batch_size: int = 16) -> Comet:
        """From `--comet-model`: a missing path is an error (found before any generation); a missing package
        or no model given makes the metric skipped, with the reason."""
        if not model:
            return cls(skipped="no --comet-model given", batch_size=batch_size)
        ckpt = find_checkpoint(model)
        if importlib.util.find_spec("comet") is None:
            reason = f"unbabel-comet is not installed ({INSTALL_HINT})"
            print(f"warning: COMET skipped: {reason}", file=sys.stderr)
            return cls(skipped=reason, batch_size=batch_size)
        return cls(checkpoint=ckpt, batch_size=batch_size)

    @property
    def available(self) -> bool:
        return self.checkpoint is not None

    def predict(self, sources: list[str], hyps: list[str], refs: list[str]) -> list[float]:
        """Segment scores for all (source, hypothesis, reference) triples in ONE batched predict call."""
        if not self.available:
            raise RuntimeError(f"COMET is not available: {self.skipped}")
        if not (len(sources) == len(hyps) == len(refs)):
            raise ValueError("COMET: sources, hypotheses and references differ in length")
        if not hyps:
            return []
        import torch

        model = _load(str(self.checkpoint))
        data = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(sources, hyps, refs)]
        pred = model.predict(data, batch_size=self.batch_size, gpus=1 if torch.cuda.is_available() else 0,
                             progress_bar=True, num_workers=0)
        return [float(x) for x in pred.scores]

    def metadata(self) -> dict:
        if not self.available:
            return {"skipped": self.skipped}
        hp = _hparams(self.checkpoint)
        folder = (self.checkpoint.parent.parent if self.checkpoint.parent.name == "checkpoints"
                  else self.checkpoint.parent)
        return {
            "model_path": str(folder),
            "model_id": folder.name,
            "model_class": hp.get("class_identifier") or hp.get("class_path"),
            "encoder": hp.get("pretrained_model"),
            "checkpoint_sha256": _ckpt_hash(str(self.checkpoint)),
            "version": md.version("unbabel-comet"),
            "scale": "raw model output (segment mean per subset)",
        }


def offline_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@lru_cache(maxsize=2)
def _load(ckpt: str):
    offline_env()
    from comet import load_from_checkpoint

    try:
        model = load_from_checkpoint(ckpt, reload_hparams=True, local_files_only=True)
    except TypeError:  # unbabel-comet < 2.2 has no local_files_only
        model = load_from_checkpoint(ckpt, reload_hparams=True)
    model.eval()
    return model


@lru_cache(maxsize=4)
def _ckpt_hash(ckpt: str) -> str:
    return sha256_file(ckpt)
