"""What the trainer writes besides the weights: resumable checkpoints (atomic) and the loss curve (PNG)."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.io import atomic_write_json


def recover_checkpoint(ckpt: Path) -> None:
    """After a kill inside `save_checkpoint`'s two renames, put the newest complete checkpoint back.

    `state.json` is written last, so a folder holding it is complete: prefer `.tmp` (newer) to `.old`."""
    if (ckpt / "state.json").exists():
        return
    for candidate in (ckpt.with_name(ckpt.name + ".tmp"), ckpt.with_name(ckpt.name + ".old")):
        if (candidate / "state.json").exists():
            shutil.rmtree(ckpt, ignore_errors=True)
            candidate.rename(ckpt)
            return


def save_checkpoint(acc, ckpt: Path, step: int) -> None:
    """Atomic: state goes to a temporary folder that replaces the old checkpoint in one rename."""
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    if acc.is_main_process:
        atomic_write_json(tmp / "state.json", {"step": step})
        old = ckpt.with_name(ckpt.name + ".old")
        shutil.rmtree(old, ignore_errors=True)  # stale, from a run killed before it could remove it
        if ckpt.exists():
            ckpt.rename(old)
        tmp.rename(ckpt)
        shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def plot_loss(history: list[dict], path: Path) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in history]
    ax.plot(steps, [r["loss"] for r in history], label="loss")
    if any(r.get("rationale") for r in history):
        ax.plot(steps, [r["translation"] for r in history], label="translation NLL", alpha=0.7)
        ax.plot(steps, [r["rationale"] for r in history], label="rationale NLL", alpha=0.7)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
