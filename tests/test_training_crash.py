"""SIGKILL `harness train` at seeded points of training and checkpointing; reruns end with the same artifact.

A launcher patches the child so that it SIGKILLs itself (a real, uncatchable kill) at the n-th training
step, after `accelerate`'s save_state into `checkpoint.tmp` (before `state.json` marks it complete),
between the two renames that swap checkpoints (no `checkpoint/` on disk at that instant), while
recovering from that, after the final weights are written (no manifest yet) and after the manifest
(stale checkpoint left). Each rerun resumes from the newest complete checkpoint; the final artifact's
weights and loss curve equal an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from harness.training.artifacts import load_artifact

REPO = Path(__file__).resolve().parent.parent

LAUNCHER = r"""
import json, os, signal, sys
from pathlib import Path
plan = json.loads(sys.argv[1])
where, seen = plan["where"], {"n": 0}

def hit():
    seen["n"] += 1
    return seen["n"] == plan["nth"]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

import harness.training.objective as tr
if where == "step":
    orig_loss = tr.loss_fn
    def loss_fn(*a, **k):
        if hit():
            die()
        return orig_loss(*a, **k)
    tr.loss_fn = loss_fn
elif where == "save_state":
    from accelerate import Accelerator
    orig_save = Accelerator.save_state
    def save_state(self, *a, **k):
        out = orig_save(self, *a, **k)
        if hit():
            die()
        return out
    Accelerator.save_state = save_state
elif where in ("rename_old", "rename_new"):
    orig_rename = Path.rename
    def rename(self, target):
        out = orig_rename(self, target)
        name = Path(target).name
        if ((name == "checkpoint.old") if where == "rename_old"
                else (name == "checkpoint" and self.name == "checkpoint.tmp")):
            if hit():
                die()
        return out
    Path.rename = rename
elif where == "save_pretrained":
    from transformers import PreTrainedModel
    orig_sp = PreTrainedModel.save_pretrained
    def save_pretrained(self, *a, **k):
        out = orig_sp(self, *a, **k)
        if hit():
            die()
        return out
    PreTrainedModel.save_pretrained = save_pretrained
elif where == "manifest":
    orig_replace = os.replace
    def replace(src, dst, *a, **k):
        out = orig_replace(src, dst, *a, **k)
        if Path(dst).name == "artifact.json" and hit():
            die()
        return out
    os.replace = replace

from mt_harness.cli import main
sys.exit(main(sys.argv[2:]))
"""

# In order; each starts where the previous kill left the folder (see the module docstring).
PLANS = [  # "resumes": the checkpoint step the killed run itself resumed from (None: started fresh or killed first)
    {"where": "step", "nth": 2, "resumes": None},  # step 2 of a fresh run: checkpoint 1 exists
    {"where": "save_state", "nth": 1, "resumes": 1},  # checkpoint.tmp written, not yet marked complete
    {"where": "rename_old", "nth": 1, "resumes": 1},  # checkpoint -> .old done, checkpoint.tmp not yet renamed
    {"where": "rename_new", "nth": 1, "resumes": None},  # recovery renames checkpoint.tmp back; killed right after
    {"where": "step", "nth": 2, "resumes": 2},  # one more step done, killed in the next
    {"where": "save_pretrained", "nth": 1, "resumes": 3},  # final weights written, no manifest
    {"where": "manifest", "nth": 1, "resumes": 3},  # manifest written, stale checkpoint not yet removed
]


def _artifact(cache: Path) -> Path:
    found = sorted(cache.glob("artifacts/sft/*/artifact.json"))
    assert len(found) == 1, found
    return found[0].parent


def test_sigkill_during_training_and_checkpoints_then_resume(tiny_model, data_dir, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data:\n  pairs: [de-en]\n  max_per_pair: 8\ntrain:\n  max_steps: 4\n  batch_size: 2\n"
                      "  max_length: 512\n  save_every: 1\n  precision: fp32\n  warmup_ratio: 0.0\n")
    args = ["train", "--method", "sft", "--model", str(tiny_model), "--data-dir", str(data_dir),
            "--method-config", str(recipe), "--threads", "1", "--seed", "3"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}

    ref_cache, cache = tmp_path / "ref-cache", tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-m", "mt_harness.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**env, "HARNESS_CACHE": str(ref_cache)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kills = 0
    for plan in PLANS:
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, json.dumps(plan), *args], cwd=REPO,
                              env={**env, "HARNESS_CACHE": str(cache)}, capture_output=True, text=True, timeout=300)
        assert proc.returncode == -signal.SIGKILL, (plan, proc.returncode, proc.stderr[-2000:])
        kills += 1
        resumed = re.search(r"resuming from \S+ at step (\d+)/", proc.stdout)
        assert (int(resumed.group(1)) if resumed else None) == plan["resumes"], (plan, proc.stdout[-1000:])
    assert kills == len(PLANS)
    finished = _artifact(cache)
    assert (finished / "checkpoint").exists()  # the last kill came between the manifest and the cleanup

    proc = subprocess.run([sys.executable, "-m", "mt_harness.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**env, "HARNESS_CACHE": str(cache)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "reusing artifact" in proc.stdout + proc.stderr  # the killed-after-manifest artifact is finished
    ref = _artifact(ref_cache)
    assert load_artifact(finished).hash == load_artifact(ref).hash  # same weight files, byte for byte
    a, b = load_file(ref / "model.safetensors"), load_file(finished / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    def curve(d):
        return [(r["step"], r["loss"]) for r in map(json.loads, (d / "loss.jsonl").read_text().splitlines())]
    steps, losses = zip(*curve(finished))
    ref_steps, ref_losses = zip(*curve(ref))
    assert steps == ref_steps == (1, 2, 3, 4)
    # every step trains on target tokens (a loss of 0.0 means the targets were cut away by max_length)
    assert all(x > 0.5 for x in ref_losses), ref_losses
    assert list(losses) == pytest.approx(list(ref_losses))
    assert not list(finished.glob("*.tmp"))


WAITER = r"""
import sys, time
from pathlib import Path
from harness.training.artifacts import artifact_cache
t0 = time.time()
cache = artifact_cache("toy", {"lr": 1}, "fp", Path(sys.argv[1]), "w" * 12)
print("cached" if cache.cached else "train", round(time.time() - t0, 1), flush=True)
"""


def test_a_second_process_waits_for_the_artifact_being_trained_then_reuses_it(tmp_path):
    """Two processes wanting one artifact (two study workers, an arm and its control): the second blocks on the
    first's lock and reuses what it saved instead of training into the same folder; a process killed while it
    trains releases the lock, so the next one trains it."""
    import time

    from harness.training.artifacts import artifact_cache

    def waiter():
        return subprocess.Popen([sys.executable, "-c", WAITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})

    cache = artifact_cache("toy", {"lr": 1}, "fp", tmp_path, "w" * 12)
    assert cache.cached is None
    proc = waiter()
    assert "another process is training" in proc.stdout.readline()  # it waits for this process's training
    time.sleep(1)
    assert proc.poll() is None
    (cache.folder / "weights.bin").parent.mkdir(parents=True, exist_ok=True)
    (cache.folder / "weights.bin").write_bytes(b"trained")
    cache.save("toy", {"lr": 1})
    out, _ = proc.communicate(timeout=60)
    verdict, waited = out.splitlines()[-1].split()
    assert verdict == "cached" and float(waited) >= 1

    killed = subprocess.Popen([sys.executable, "-c", "import sys, time\n" + WAITER.replace('"lr": 1', '"lr": 2')
                               + "time.sleep(60)", str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert killed.stdout.readline().split()[0] == "train"  # holds the lock of lr 2 now
    killed.kill()
    killed.wait()
    assert artifact_cache("toy", {"lr": 2}, "fp", tmp_path, "w" * 12).cached is None  # not blocked: it may train
