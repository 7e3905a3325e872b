"""`harness study`: a tiny-model study (base + full SFT, FLORES and MT-Bench drift) runs under the local executor
and on a local Ray cluster with the same results; --dry-run lists the phases and runs nothing; a second run does
nothing; a phase whose worker is SIGKILLed mid-way is retried and resumes from its samples, nothing lost or redone,
its killed attempt counted once from its heartbeat file; a worker dies with its driver. The committed studies and
bad study files: tests/test_study_files.py."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from mt_harness.cli import main
from harness.rundir.phases import read_phases
from harness.rundir.read import read_samples, samples_path

REPO = Path(__file__).resolve().parent.parent

KILL_HOOK = '''\
import os, signal
if os.environ.get("STUDY_KILL_MARK"):
    import harness.io as hio
    orig = hio.JsonlStore.append
    def append(self, records):
        records = list(records)
        orig(self, records)
        with open(os.environ["STUDY_KILL_MARK"] + ".appends", "a") as f:
            f.write(f"{os.getpid()} {self.path.parent.parent.name}/{self.path.parent.name} {len(records)}\\n")
        mark = os.environ["STUDY_KILL_MARK"]
        if self.path.parent.parent.name == "sft-s0" and self.path.parent.name == "flores" and len(self.records) >= 2 \\
                and not os.path.exists(mark):
            open(mark, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-phase, after 2 of its 4 samples
    hio.JsonlStore.append = append
'''


def write_study(tmp_path: Path, model: Path, name: str) -> Path:
    recipe = tmp_path / "sft-tiny.yaml"
    recipe.write_text("data:\n  pairs: [de-en]\n  max_per_pair: 4\ntrain:\n  max_steps: 1\n  batch_size: 2\n"
                      "  max_length: 96\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""\
title: Tiny study
output: {tmp_path / name}
models: [{model}]
threads: 1
workers: 2
settings: {{batch_size: 2}}
train: {{tasks: [flores], langs: [de-en]}}
evaluation:
  - {{name: flores, tasks: [flores], langs: [de-en], limit: 4, chunk_size: 1}}
  - {{name: mtbench, tasks: [mtbench], limit: 1}}
methods:
  - {{method: base, name: base}}
  - {{method: sft, method_config: {recipe}}}
  - {{method: xbridge, not_run: "not in this test"}}
""")
    return path


def outputs(out: Path) -> dict:
    """Every sample's outputs and scores, and every task's metrics, of every unit (what must not depend on how the
    study ran)."""
    found = {}
    for res_path in sorted(out.glob("*/*/results.json")):
        res = json.loads(res_path.read_text())
        for name, entry in res["tasks"].items():
            key = f"{res_path.parent.name}/{name}"
            found[key + ":metrics"] = entry["metrics"]
            found[key + ":artifact"] = res["method"]["artifact"]["hash"]
            recs = read_samples(samples_path(res_path.parent, name, entry))
            found[key + ":samples"] = {i: {k: v for k, v in r.items() if k != "seconds"} for i, r in recs.items()}
    return json.loads(json.dumps(found).replace(str(out), "OUT"))  # the drift reference names its folder


@pytest.fixture(scope="module")
def local_study(tiny_model_factory, data_dir, tmp_path_factory):
    """The tiny study run once by the local executor (2 workers), in its own cache."""
    tmp = tmp_path_factory.mktemp("study-local")
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_CACHE", str(tmp / "cache"))
    mp.setenv("HARNESS_DATA_DIR", str(data_dir))
    study = write_study(tmp, tiny_model_factory("llama-untied"), "out")
    try:
        assert main(["study", str(study)]) == 0
    finally:
        mp.undo()
    return tmp, study


def test_local_study_runs_every_phase_and_a_second_run_does_nothing(local_study, data_dir, monkeypatch, capsys):
    tmp, study = local_study
    out = tmp / "out"
    model = next(p for p in out.iterdir() if p.is_dir()).name
    assert sorted(p.name for p in (out / model).iterdir()) == ["base", "sft-s0", "xbridge"]
    assert read_phases(out / model / "base").keys() == {"flores", "mtbench"}
    sft = read_phases(out / model / "sft-s0")
    assert sft.keys() == {"train", "flores", "mtbench"} and sft["train"]["artifact_hash"]
    assert sft["mtbench"]["command"][-2:] == ["--drift-ref", str(out / model / "base")]
    ran = [(datetime.fromisoformat(r["finished"]).timestamp() - r["seconds"], datetime.fromisoformat(r["finished"])
            .timestamp()) for r in read_phases(out / model / "base").values()]
    train = (datetime.fromisoformat(sft["train"]["finished"]).timestamp() - sft["train"]["seconds"],
             datetime.fromisoformat(sft["train"]["finished"]).timestamp())
    assert any(a < train[1] and train[0] < b for a, b in ran)  # two workers: a base phase ran while sft trained
    res = json.loads((out / model / "sft-s0" / "results.json").read_text())
    assert res["method"]["artifact"]["hash"] == sft["train"]["artifact_hash"]  # the artifact came back as data
    assert res["command"].startswith("harness run --method sft")  # the equivalent command is the provenance
    assert (out / model / "sft-s0" / "mtbench" / "drift.json").exists()
    assert json.loads((out / model / "xbridge" / "not_run.json").read_text())["reason"] == "not in this test"
    cost = (out / "COST.md").read_text()
    assert "| base | - |" in cost and "| sft-s0 |" in cost and "| xbridge | not run: not in this test |" in cost
    board = (out / "leaderboard.md").read_text()
    assert "sft" in board and (out / "leaderboard.csv").exists()
    monkeypatch.setenv("HARNESS_CACHE", str(tmp / "cache"))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data_dir))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl")}
    capsys.readouterr()
    assert main(["study", str(study), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "5 of 5 phases done, 0 to do" in plan and "  done  train" in plan
    assert main(["study", str(study)]) == 0
    assert "0 phase(s) run" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in before} == before  # nothing was rerun or rewritten
    # packed results count as done
    assert main(["pack", str(out / model / "sft-s0")]) == 0
    capsys.readouterr()
    assert main(["study", str(study), "--dry-run"]) == 0
    assert "5 of 5 phases done" in capsys.readouterr().out


def test_dry_run_lists_phases_with_their_dependencies_and_runs_nothing(tiny_model_factory, data_dir, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    study = write_study(tmp_path, tiny_model_factory("llama-untied"), "dry")
    assert main(["study", str(study), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "0 of 5 phases done, 5 to do" in text
    assert "to do  mtbench (after " in text and "/sft-s0/train, " in text and "/base/mtbench)" in text
    assert not (tmp_path / "dry").exists() and not (tmp_path / "cache").exists()


def test_killed_phase_is_retried_and_resumes_from_its_samples(local_study, tiny_model_factory, data_dir, tmp_path,
                                                              monkeypatch):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK)
    mark = tmp_path / "killed"
    monkeypatch.setenv("PYTHONPATH", f"{hook}:{REPO}")
    monkeypatch.setenv("STUDY_KILL_MARK", str(mark))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data_dir))
    study = write_study(tmp_path, tiny_model_factory("llama-untied"), "out")
    assert main(["study", str(study)]) == 0
    assert mark.exists()  # the worker was killed once
    model = next(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    rec = read_phases(model / "sft-s0")["flores"]
    assert rec["attempts"] == 2
    # the killed attempt's time comes from its heartbeat file, counted once, starred in COST.md with a note
    assert rec["estimated_extra_seconds"] >= 0 and "of 1 earlier attempt(s) that did not finish" in rec["note"]
    assert not (model / "sft-s0" / "logs" / "flores.attempt.json").exists()
    assert "sft-s0/flores: includes" in (tmp_path / "out" / "COST.md").read_text()
    pids = re.findall(r"\[study\] \S+/flores: pid (\d+)", (model / "sft-s0" / "logs" / "flores.log").read_text())
    assert len(pids) == 2 and pids[0] != pids[1]
    appends = [line.split() for line in Path(str(mark) + ".appends").read_text().splitlines()
               if line.split()[1] == "sft-s0/flores"]
    per_pid = {pid: sum(int(n) for p, _, n in appends if p == pid) for pid in dict.fromkeys(a[0] for a in appends)}
    assert list(per_pid.values()) == [2, 2]  # the retry generated only the 2 samples the killed attempt had not saved
    assert outputs(tmp_path / "out") == outputs(local_study[0] / "out")


def test_ray_executor_gives_the_same_results(local_study, tiny_model_factory, data_dir, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    study = write_study(tmp_path, tiny_model_factory("llama-untied"), "out")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        assert main(["study", str(study), "--executor", "ray"]) == 0
    finally:
        ray.shutdown()
    assert outputs(tmp_path / "out") == outputs(local_study[0] / "out")
    assert outputs(tmp_path / "out")  # not vacuous


def test_stale_unit_is_listed_and_rerun_on_request(local_study, data_dir, tmp_path, monkeypatch, capsys):
    """A recipe changed after its unit trained: --dry-run names the unit stale and the changed field; --rerun-stale
    (limited by --only to the named units) trains and evaluates it again, keeps the old folder as
    <unit>.stale-<artifact>, and the leaderboard does not count the old folder."""
    import shutil

    src, study = local_study
    monkeypatch.setenv("HARNESS_CACHE", str(src / "cache"))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data_dir))
    out = tmp_path / "copy"
    shutil.copytree(src / "out", out)
    recipe = tmp_path / "sft-tiny.yaml"
    recipe.write_text((src / "sft-tiny.yaml").read_text().replace("max_steps: 1", "max_steps: 2"))
    changed = tmp_path / "changed.yaml"
    changed.write_text(study.read_text().replace(str(src / "sft-tiny.yaml"), str(recipe))
                       .replace(f"output: {src / 'out'}", f"output: {out}"))
    model = next(p for p in out.iterdir() if p.is_dir()).name
    old = json.loads((out / model / "sft-s0" / "results.json").read_text())["method"]["artifact"]["hash"]
    capsys.readouterr()
    assert main(["study", str(changed), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "5 of 5 phases done" in text and "stale: trained with another config" in text
    assert "train.max_steps 1 -> 2" in text and "--rerun-stale" in text
    assert main(["study", str(changed), "--rerun-stale", "--only", "nosuch"]) == 2
    assert "--only nosuch: no such unit" in capsys.readouterr().err
    assert main(["study", str(changed), "--rerun-stale", "--only", "base"]) == 0  # sft-s0 is not selected
    assert "0 phase(s) run" in capsys.readouterr().out
    assert main(["study", str(changed), "--rerun-stale", "--only", "sft-s0"]) == 0
    text = capsys.readouterr().out
    assert "3 phase(s) run" in text  # sft-s0's training and both of its evaluations; base is current
    moved = out / model / f"sft-s0.stale-{old}"
    assert json.loads((moved / "results.json").read_text())["method"]["artifact"]["hash"] == old  # kept
    log = (out / model / "sft-s0" / "logs" / "train.log").read_text()  # the new training's log is the unit's
    assert log.count("/sft-s0/train: pid ") == 2 and log.rstrip().splitlines()[-1].endswith("s")  # old + new
    assert not (moved / "logs" / "train.log").exists()
    new = json.loads((out / model / "sft-s0" / "results.json").read_text())
    assert new["method"]["artifact"]["hash"] != old and new["method"]["config"]["train"]["max_steps"] == 2
    board = (out / "leaderboard.md").read_text()
    assert ".stale-" not in board and "found in" not in board
    assert main(["study", str(changed), "--dry-run"]) == 0
    assert "5 of 5 phases done" in capsys.readouterr().out


def test_a_local_worker_exits_when_its_driver_is_killed(tmp_path):
    """A driver killed with SIGKILL leaves no worker behind (mt_harness.study.executors.exit_with_parent)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def alive(pid: int) -> bool:  # an exited worker may stay a zombie until its new parent reaps it
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (FileNotFoundError, ProcessLookupError):
            return False

    worker = ("import time; from mt_harness.study.executors import exit_with_parent; exit_with_parent(0.1); "
              "time.sleep(60)")
    driver = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {worker!r}]); "
              f"print(p.pid, flush=True); time.sleep(60)")
    d = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True, cwd=REPO)
    child = int(d.stdout.readline())
    time.sleep(1.0)  # the worker imported and watches
    d.kill()
    d.wait()
    assert not Path(f"/proc/{d.pid}").exists() or not alive(d.pid)
    for _ in range(100):
        if not alive(child):
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the worker outlived its killed driver")


def test_heartbeat_leaves_out_the_time_a_process_was_stopped_and_carries_unfinished_attempts(tmp_path):
    """A worker frozen with SIGSTOP for ~3 s: its attempt's stopped time is measured (not counted as work); an
    attempt that failed leaves its record for the next one, which carries it forward; a successful one cleans up."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from mt_harness.study.attempt import Heartbeat, read_attempts

    path = tmp_path / "logs" / "flores.attempt.json"
    code = ("import sys, time\nfrom pathlib import Path\nfrom mt_harness.study.attempt import Heartbeat\n"
            f"b = Heartbeat(Path({str(path)!r}), 'abc1234', interval=0.2, stop_gap=1.0)\n"
            "print('up', flush=True)\ntime.sleep(5)\nprint(round(b.finish(False), 1), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "up"
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(3)
    os.kill(proc.pid, signal.SIGCONT)
    stopped = float(proc.stdout.readline())
    assert proc.wait(timeout=30) == 0
    assert 2.0 <= stopped <= 3.5
    (first,) = read_attempts(path)  # failed: its file stays
    assert first["git"] == "abc1234" and 2.0 <= first["stopped_seconds"] <= 3.5
    assert 4.0 <= first["seconds"] + first["stopped_seconds"] <= 7.0
    # the plan names them (a phase whose logs/ holds this file)
    from mt_harness.study.plan import build_units
    from mt_harness.study.run import describe
    from mt_harness.study.spec import load_study

    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(f"output: {tmp_path / 'out'}\nmodels: [m]\nevaluation: [{{name: flores, tasks: [flores]}}]\n"
                         "methods: [{method: base, name: base}]\n")
    (unit,) = build_units(load_study(spec_file))
    (unit.out / "logs").mkdir(parents=True)
    path.replace(unit.out / "logs" / "flores.attempt.json")
    assert "to do  flores; 1 earlier attempt(s) did not finish (0h00m, last heartbeat " in describe([unit], 1)
    (unit.out / "logs" / "flores.attempt.json").replace(path)
    second = Heartbeat(path, "def5678", interval=0.1)
    assert second.earlier == [first]
    assert [a["git"] for a in read_attempts(path)] == ["abc1234", "def5678"]  # carried forward while it runs
    assert second.finish(True) == 0.0 and not path.exists()
