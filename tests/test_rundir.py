"""The run folder's one owner (harness.rundir): results.json header merge, the run.json fingerprint check, and a
finished run reopened by `harness score` and `harness judge` as it was evaluated (task options and the group's
document limit restored). Runs go through the real runner with a test-double backend (no model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from echo_backend import EchoBackend
from test_judges import serve_judge

from mt_harness.api import judge
from mt_harness.cli import main
from harness.data import DataSource
from harness.errors import HarnessError
from harness.judges import JudgeSpec
from harness.rundir.context import EvalContext
from harness.rundir.read import SCHEMA, read_results
from harness.rundir.write import merge_entry, reopen
from harness.runner import evaluate
from tasks import load_task, saved_task

MODEL = {"name": "tiny-test", "weights_sha256": "b" * 64}
BASE = {"name": "base", "config": {}, "artifact": {"kind": "none"}}
COMMITTED = Path(__file__).resolve().parents[1] / "results" / "gemma3-270m" / "base" / "results.json"


def flores_run(data_dir, out: Path, seed: int = 0, limit: int = 2, extra: dict | None = None) -> dict:
    task = load_task("flores", DataSource.resolve(str(data_dir)))
    task.select(["de-en"])
    docs = {d["id"]: d for d in task.docs("de-en")[:limit]}
    ctx = EvalContext(out_dir=out, method=BASE, model=MODEL, seed=seed, limit=limit, extra=extra or {})
    return evaluate(task, EchoBackend(docs, lambda doc, i: doc["reference"]), ctx)


def test_header_merge_of_two_runs_into_one_folder(data_dir, tmp_path):
    out = tmp_path / "run"
    first = flores_run(data_dir, out)
    # a second run into the same folder (lm-eval's writer goes through the same merge): its task is added, the
    # first run's entry is kept, the header is the latest run's, `created` stays the first run's
    ctx = EvalContext(out_dir=out, method=BASE, model=MODEL, seed=0, limit=2, extra={"note": "second run"})
    merge_entry(ctx, "lmeval:toy", {"metrics": {"toy": {"acc": 0.5}}, "n_samples": 2})
    res = read_results(out / "results.json")
    assert res["schema"] == SCHEMA == json.loads(COMMITTED.read_text())["schema"]
    assert list(res["tasks"]) == ["flores", "lmeval:toy"]
    assert res["tasks"]["flores"] == first["tasks"]["flores"]
    assert res["created"] == first["created"] and res["updated"] >= first["updated"]
    assert res["note"] == "second run"
    # the header keys and their order are those of the committed runs (plus the second run's extra field)
    assert [k for k in res if k != "note"] == list(json.loads(COMMITTED.read_text()))


def test_fingerprint_mismatch_is_one_line_naming_folder_and_fix(data_dir, tmp_path):
    out = tmp_path / "run"
    flores_run(data_dir, out, seed=0)
    with pytest.raises(HarnessError) as err:
        flores_run(data_dir, out, seed=1)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{out / 'flores'}: ")
    assert "(seed differ)" in msg and "use another --output or delete that folder" in msg


def test_not_a_results_file_is_refused_by_reopen(tmp_path):
    (tmp_path / "results.json").write_text('{"schema": "other/v0"}\n')
    with pytest.raises(HarnessError, match=r"results.json: not a mt-harness/results/v1 results file"):
        reopen(tmp_path, "harness score:")


def _alpaca_run(data_dir, out: Path) -> None:
    """An alpaca_eval run as a group would make it (document limit 2, no --limit) with an option that is not the
    YAML's default, as a task YAML given by path or a method's prepare_task would leave it."""
    task = load_task("alpaca_eval", DataSource.resolve(str(data_dir)))
    task.doc_limit = 2
    task.options.baseline_name = "my_baseline"
    task.run_dir = out
    docs = {d["id"]: d for d in task.docs("en")[:2]}
    ctx = EvalContext(out_dir=out, method=BASE, model=MODEL, seed=0, limit=None)
    evaluate(task, EchoBackend(docs, lambda doc, i: f"answer {i}"), ctx)


def _entry(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["tasks"]["alpaca_eval"]


def test_reopened_run_keeps_task_options_for_judge_and_score(data_dir, tmp_path):
    out = tmp_path / "run"
    _alpaca_run(data_dir, out)
    assert _entry(out)["config"]["options"]["baseline_name"] == "my_baseline"

    with serve_judge(lambda body, n: "m") as (url, calls):
        judge(out, JudgeSpec("openai", "canned", url=url), data_dir)
    assert len(calls) == 4  # 2 documents (the group's limit, not all 805) x both orders
    entry = _entry(out)
    assert entry["config"]["options"]["baseline_name"] == "my_baseline" and entry["doc_limit"] == 2
    assert entry["metadata"]["baseline"] == "my_baseline" and entry["n_samples"] == 2
    samples = [json.loads(x) for x in (out / "alpaca_eval" / "samples.jsonl").read_text().splitlines()]
    assert [s["judgment"]["baseline"] for s in samples] == ["my_baseline"] * 2

    assert main(["score", str(out), "--data-dir", str(data_dir)]) == 0
    rescored = _entry(out)
    assert rescored["config"]["options"]["baseline_name"] == "my_baseline" and rescored["doc_limit"] == 2
    assert rescored["metrics"] == entry["metrics"]  # judgments survive re-scoring
    assert rescored["config_hash"] == entry["config_hash"]


def test_leaderboard_imports_only_the_reader_side():
    code = "import sys, leaderboard, leaderboard.build, leaderboard.general; print(sorted(sys.modules))"
    mods = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'harness.rundir.read'" in mods and "harness.rundir.write" not in mods


def test_score_keeps_the_generating_command_and_records_its_own(data_dir, tmp_path, monkeypatch):
    """`harness score` rewrites the metrics, not the record of how the samples were made: `command`/`git` stay the
    generating run's, and `rescored` says which command and code recomputed them."""
    from harness.rundir import write

    out = tmp_path / "run"
    monkeypatch.setattr(write.provenance, "command_line", lambda: "harness run --tasks flores")
    generated = flores_run(data_dir, out)
    monkeypatch.setattr(write.provenance, "command_line", lambda: f"harness score {out}")
    run = reopen(out, "harness score:")
    entry, where = run.entry("flores")
    task = saved_task("flores", entry, DataSource.resolve(str(data_dir)), where)
    run.save(task, {"metrics": {}, "summary": {}, "n_samples": 0}, 0.0)
    res = read_results(out / "results.json")
    assert res["command"] == generated["command"] == "harness run --tasks flores"
    assert res["git"] == generated["git"]
    assert res["rescored"]["command"] == f"harness score {out}" and res["rescored"]["git"] == generated["git"]


def test_one_folder_two_limits_scores_and_reads_per_task(data_dir, tmp_path):
    """Two runs into one folder with different --limit (as the science run does): each entry keeps its own limit,
    `harness score` re-scores each task on its own documents, and the leaderboard reads the per-task limit."""
    from mt_harness import api
    from leaderboard.collect import find_results, load_runs

    out = tmp_path / "run"
    flores_run(data_dir, out, limit=3)
    task = load_task("mgsm", DataSource.resolve(str(data_dir)))
    task.select(["de"])
    docs = {d["id"]: d for d in task.docs("de")[:2]}
    ctx = EvalContext(out_dir=out, method=BASE, model=MODEL, seed=0, limit=2)
    evaluate(task, EchoBackend(docs, lambda doc, i: f"The answer is {doc['answer']}."), ctx)
    before = read_results(out / "results.json")
    assert before["tasks"]["flores"]["limit"] == 3 and before["tasks"]["mgsm"]["limit"] == 2
    after = api.score(out, data_dir)
    for name in ("flores", "mgsm"):
        assert after["tasks"][name]["summary"] == before["tasks"][name]["summary"]
        assert after["tasks"][name]["limit"] == before["tasks"][name]["limit"]
    assert after["limit"] == before["limit"] == 2  # the header keeps the generating run's
    runs = load_runs(find_results([out]), [])
    assert {tr.task: tr.settings["limit"] for tr in runs[0]} == {"flores": 3, "mgsm": 2}


WRITER = '''\
import sys
from pathlib import Path
from harness.rundir.context import EvalContext
from harness.rundir.lock import clear_tmp
from harness.rundir.phases import record_phase
from harness.rundir.write import merge_entry
out, who = Path(sys.argv[1]), sys.argv[2]
ctx = EvalContext(out_dir=out, method={"name": "base", "config": {}, "artifact": {"kind": "none"}},
                  model={"name": "tiny-test", "weights_sha256": "b" * 64}, seed=0, limit=2, extra={})
for i in range(40):
    if who == "driver":  # the study's driver records phases while the unit's evaluations run
        record_phase(out, f"phase{i}", {"seconds": float(i)})
    else:  # an evaluation starting clears a killed writer's temporary files, then adds its task
        clear_tmp(out)
        merge_entry(ctx, f"{who}:{i}", {"metrics": {"toy": {"acc": i / 40}}, "n_samples": 1})
'''


def test_processes_writing_one_folder_at_once_lose_nothing(tmp_path):
    # a study runs a unit's evaluation blocks in parallel: three `harness run` processes add their tasks to one
    # results.json and clear temporary files while the driver rewrites phases.json; every entry and record survives
    out = tmp_path / "unit"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(out), who], stderr=subprocess.PIPE, text=True)
             for who in ("flores", "ifeval", "safety", "driver")]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    res = read_results(out / "results.json")
    assert sorted(res["tasks"]) == sorted(f"{w}:{i}" for w in ("flores", "ifeval", "safety") for i in range(40))
    assert sorted(json.loads((out / "phases.json").read_text())) == sorted(f"phase{i}" for i in range(40))
    assert not list(out.glob(".*.tmp"))
