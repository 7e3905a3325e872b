"""SIGKILL a `harness run` / `harness score` subprocess at seeded points; reruns must finish with the same results.

Most kill points are placed precisely: a small launcher patches `JsonlStore.append` and `os.replace`
in the child so that it SIGKILLs itself (a real, uncatchable kill) at the n-th chunk append
(before it, after it, after half a line, after a partial chunk) or around the n-th atomic replace
of results.json / samples.jsonl (generation, then scoring). Two more kills are plain timer kills.
After every kill: no file is corrupt (results.json valid, every samples line valid but a torn
last one), no id is duplicated; at the end the samples and metrics equal an uninterrupted run's.
Training and checkpoint kills: tests/test_training_crash.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from mt_harness.cli import main

REPO = Path(__file__).resolve().parent.parent

LAUNCHER = r"""
import json, os, signal, sys
from pathlib import Path
plan = json.loads(sys.argv[1])
import harness.io as hio

def die():
    os.kill(os.getpid(), signal.SIGKILL)

seen = {"append": 0, "replace": 0}
orig_append = hio.JsonlStore.append
def append(self, records):
    records = list(records)
    seen["append"] += 1
    hit = plan["where"] == "append" and seen["append"] == plan["nth"]
    if hit and plan["how"] == "before":
        die()
    if hit and plan["how"] in ("torn", "partial"):
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
        keep = len(lines) // 2 if plan["how"] == "partial" else 0
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(lines[:keep]) + lines[keep][: len(lines[keep]) // 2])
            f.flush()
            os.fsync(f.fileno())
        die()
    orig_append(self, records)
    if hit and plan["how"] == "after":
        die()
hio.JsonlStore.append = append

orig_replace = os.replace
def replace(src, dst, *a, **k):
    if plan["where"] == "replace" and Path(dst).name == plan["file"]:
        seen["replace"] += 1
        if seen["replace"] == plan["nth"]:
            if plan["how"] == "before":
                die()
            orig_replace(src, dst, *a, **k)
            die()
    return orig_replace(src, dst, *a, **k)
os.replace = replace

from mt_harness.cli import main
sys.exit(main(sys.argv[2:]))
"""


def check_files(out: Path, n_docs: int) -> int:
    """No corrupt file: results.json parses, samples lines parse (a torn last line allowed), ids unique."""
    results = out / "results.json"
    if results.exists():
        json.loads(results.read_text())
    samples = out / "flores" / "samples.jsonl"
    if not samples.exists():
        return 0
    raw = samples.read_bytes()
    lines = raw.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    recs = [json.loads(x) for x in complete]
    if tail:
        try:
            json.loads(tail)
        except ValueError:
            pass  # a torn last line: the next run cuts it and regenerates that sample
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids)), "duplicated sample"
    assert len(ids) <= n_docs
    return len(ids)


def test_sigkill_at_random_points_then_resume(tiny_model, data_dir, tmp_path):
    rng = random.Random(1234)
    limit, pairs, chunk = 4, "de-en,en-de", 2
    n_docs = 2 * limit
    n_chunks = -(-n_docs // chunk)
    common = ["--tasks", "flores", "--langs", pairs, "--limit", str(limit), "--model", str(tiny_model),
              "--data-dir", str(data_dir), "--batch-size", "4", "--threads", "1", "--seed", "7"]
    run_args = ["run", *common, "--chunk-size", str(chunk)]
    ref = tmp_path / "ref"
    assert main([*run_args, "--output", str(ref)]) == 0

    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    # Seeded plan: generation kills at successive chunk appends, then kills around the atomic writes.
    hows = ["before", "torn", "partial", "after"]
    plans = [{"where": "append", "nth": 1, "how": rng.choice(hows)} for _ in range(n_chunks)]
    plans += [{"where": "replace", "file": "results.json", "nth": 1, "how": "before"},
              {"where": "replace", "file": "results.json", "nth": 1, "how": "after"}]
    score_plans = [{"where": "replace", "file": f, "nth": 1, "how": rng.choice(["before", "after"])}
                   for f in ("samples.jsonl", "results.json")]
    kills = 0
    for plan in plans:
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, json.dumps(plan), *run_args, "--output", str(out)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert proc.returncode == 0, proc.stderr[-2000:]
        check_files(out, n_docs)
    assert (out / "results.json").exists()  # the last plan kills only after results.json was replaced
    # Two timer kills of a plain `harness run` (start-up, loading or generation, whichever it reaches).
    fresh = tmp_path / "timer"
    for delay in (rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0)):
        proc = subprocess.Popen([sys.executable, "-m", "mt_harness.cli", *run_args, "--output", str(fresh)], cwd=REPO,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        kills += proc.wait() == -signal.SIGKILL
        check_files(fresh, n_docs)
    # Scoring: kill `harness score` around its atomic rewrites of samples.jsonl and results.json.
    for plan in score_plans:
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, json.dumps(plan), "score", str(out),
                               "--data-dir", str(data_dir)], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=120)
        kills += proc.returncode == -signal.SIGKILL
        assert check_files(out, n_docs) == n_docs  # a killed re-score never loses a finished sample
    assert kills >= 10, f"only {kills} kills happened"

    assert main([*run_args, "--output", str(out)]) == 0
    assert main([*run_args, "--output", str(fresh)]) == 0
    ref_recs = sorted((out.parent / "ref" / "flores" / "samples.jsonl").read_text().splitlines())
    for folder in (out, fresh):
        assert check_files(folder, n_docs) == n_docs
        assert not list(folder.rglob(".*.tmp")), "a temporary file of a killed atomic write was left behind"
        assert sorted((folder / "flores" / "samples.jsonl").read_text().splitlines()) == ref_recs
        a = json.loads((ref / "results.json").read_text())["tasks"]["flores"]
        b = json.loads((folder / "results.json").read_text())["tasks"]["flores"]
        for key in ("metrics", "summary", "n_samples", "truncated", "config_hash"):
            assert a[key] == b[key], key
