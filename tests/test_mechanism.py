"""Mechanism checks on the leaderboard (issue #27): the relay's shuffled-source control passes for a "relay" whose
output copies the content of the source it is given and fails for one that ignores its input; each method's check
from its run record reaches the row (md note, CSV field).

The relay stand-in is a test double that reads `Request.doc` exactly where the relay backend does, decoded as the
real control decodes it (methods/relay/backend.py `shuffled_sources`), and runs through the real runner; the tiny-model
generation path of the control is tested in tests/test_relay.py."""

from __future__ import annotations

import csv
import io
import json

import pytest

from harness.backends.base import Capabilities, Generation
from harness.data import DataSource
from harness.errors import HarnessError
from harness.rundir.context import EvalContext
from harness.runner import evaluate
from methods.relay.backend import shuffled_sources
from mt_harness import api
from tasks import load_task

MODEL = {"name": "tiny-test", "weights_sha256": "d" * 64}
LIMIT = 30


class SourceReader:
    """A relay stand-in: `copy` translates the source it is given (looks its reference up), `ignore` answers the
    same sentence whatever the source; with `control` each line gets another line's source, as the relay control."""

    capabilities = Capabilities(generate=True, loglik=False, hf_weights=False)

    def __init__(self, refs: dict[str, str], mode: str, control: bool):
        self.refs, self.mode, self.control = refs, mode, control

    def generate(self, requests, progress=None):
        docs = [r.doc for r in requests]
        given = shuffled_sources(docs) if self.control else docs
        return [Generation(self.refs[d["source"]] if self.mode == "copy" else "The team said that it was a success.",
                           "p", 3, 5, "stop") for d in given]

    def settings(self):
        return {"backend": "source-reader-test-double"}


def _run(data_dir, out, method: dict, backend=None):
    task = load_task("flores", DataSource.resolve(str(data_dir)))
    task.select(["de-en", "en-de"])
    docs = [d for s in task.selected for d in task.docs(s)[:LIMIT]]
    refs = {d["source"]: d["reference"] for d in docs}
    ctx = EvalContext(out_dir=out, method=method, model=MODEL, limit=LIMIT)
    evaluate(task, backend(refs) if backend else SourceReader(refs, "ignore", False), ctx)


def _relay(control: bool, art: str) -> dict:
    """A relay run record; the control's label sorts after the relay's (the order that once lost its pairing)."""
    config = {"layer": -1, **({"control": "shuffled_source"} if control else {})}
    return {"name": "relay", "config": config, "variant": "z" if control else "r",
            "artifact": {"kind": "composite", "config_hash": "k", "hash": art}}


def _board(data_dir, tmp_path, mode: str):
    root = tmp_path / mode
    _run(data_dir, root / "base", {"name": "base", "config": {}, "artifact": {"kind": "none", "config_hash": ""}})
    _run(data_dir, root / "relay", _relay(False, "h1"), lambda refs: SourceReader(refs, mode, False))
    _run(data_dir, root / "control", _relay(True, "h1"), lambda refs: SourceReader(refs, mode, True))
    tables, _ = api.leaderboard([root], tmp_path / f"board-{mode}", resamples=200)
    return {r.label: r for r in tables[0].rows}, tmp_path / f"board-{mode}"


def test_relay_control_passes_for_a_map_that_copies_its_input(data_dir, tmp_path):
    rows, out = _board(data_dir, tmp_path, "copy")
    relay = next(r for k, r in rows.items() if k.startswith("relay") and r.variant == "r")
    control = next(r for k, r in rows.items() if k.startswith("relay") and r.variant == "z")
    assert relay.mechanism.startswith("content transfer: chrF++ minus its shuffled_source control")
    assert control.mechanism.startswith("shuffled_source control of")
    assert (relay.label, control.label) == ("relay", "relay shuffled_source control")  # not told apart by a hash
    assert not relay.control and control.control == "shuffled_source"  # not compared with sft, not plotted
    # the verdict's numbers are the paired chrF++ difference, recomputed from the two rows' own cells
    diff = relay.cells["chrF++"].value - control.cells["chrF++"].value
    assert diff > 20 and f"{diff:+.2f}" in relay.mechanism
    md = (out / "leaderboard.md").read_text()
    assert f"{relay.label} on tiny-test: mechanism check: content transfer" in md
    got = {r["method"]: r for r in csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text()))}
    assert got[relay.label]["mechanism"] == relay.mechanism


def test_relay_control_fails_for_a_map_that_ignores_its_input(data_dir, tmp_path):
    rows, _ = _board(data_dir, tmp_path, "ignore")
    relay = next(r for k, r in rows.items() if k.startswith("relay") and r.variant == "r")
    assert relay.mechanism.startswith("no content transfer: chrF++ minus its shuffled_source control")
    assert "+0.00 [+0.00, +0.00]" in relay.mechanism


def test_relay_without_its_control_says_unchecked_and_other_artifacts_do_not_pair(data_dir, tmp_path):
    root = tmp_path / "runs"
    _run(data_dir, root / "base", {"name": "base", "config": {}, "artifact": {"kind": "none", "config_hash": ""}})
    _run(data_dir, root / "relay", _relay(False, "h1"), lambda refs: SourceReader(refs, "copy", False))
    _run(data_dir, root / "control", _relay(True, "other"), lambda refs: SourceReader(refs, "copy", True))
    tables, _ = api.leaderboard([root], tmp_path / "b", resamples=50)
    rows = {r.variant: r for r in tables[0].rows if r.method == "relay"}
    assert rows["r"].mechanism.startswith("content transfer not checked")
    assert rows["z"].mechanism.startswith("shuffled-source control run: no relay run")


def test_method_checks_from_run_records(data_dir, tmp_path):
    """LANDeRMT's layers per pair (a note when every pair chose the same ones) and RaDis's rationale statistics."""
    from methods import get_method

    same = {"pairs": {p: {"layers": [11, 24], "specific_neurons": 5, "general_neurons": 9} for p in ("de-en", "en-de")}}
    text = get_method("landermt").mechanism({"config": {"analysis": same}})
    assert text.startswith("layers 11,24 for all 2 pairs: the layer analysis (l2) did not separate pairs")
    differ = json.loads(json.dumps(same))
    differ["pairs"]["en-de"]["layers"] = [3, 4]
    differ["layer_metric"] = "cosine"
    assert get_method("landermt").mechanism({"config": {"analysis": differ}}).startswith(
        "layers de-en 11,24; en-de 3,4 (analysis: cosine)")
    rec = {"config": {"rationale_prompt": "explain", "rationale_max_new_tokens": 96},
           "artifact": {"report": {"rationales": {"n": 10, "mean_tokens": 90.0, "finish": {"length": 8, "eos": 2}}}}}
    text = get_method("radis").mechanism(rec)
    assert "8 (80%) cut at the 96-token cap" in text and "trained as a continuation" in text
    rec["config"]["rationale_context"] = "generation"
    assert "trained in the context they were generated in" in get_method("radis").mechanism(rec)


def test_ablation_table_compares_arms_with_the_reference_and_with_their_controls(data_dir, tmp_path, capsys):
    """`harness ablation`: an arm that carries source content beats the reference arm that does not and passes its
    control check; the reference fails its own; the untouched model is a row and a column."""
    from mt_harness.cli import main

    root = tmp_path / "study" / "tiny"
    _run(data_dir, root / "base", {"name": "base", "config": {}, "artifact": {"kind": "none", "config_hash": ""}})
    for arm, mode in (("ignore", "ignore"), ("copy", "copy")):
        _run(data_dir, root / arm, _relay(False, arm), lambda refs, m=mode: SourceReader(refs, m, False))
        _run(data_dir, root / f"{arm}-control", _relay(True, arm), lambda refs, m=mode: SourceReader(refs, m, True))
    assert main(["ablation", str(tmp_path / "study"), "--reference", "ignore", "--task", "flores",
                 "--resamples", "200"]) == 0
    rows = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| tiny/")}
    assert set(rows) == {"tiny/ignore (reference)", "tiny/copy", "tiny/base (alone)"}
    copy = rows["tiny/copy"].split(" | ")
    delta = float(copy[1].split("(")[1].split(" ")[0])
    assert delta > 20 and copy[1].split("[")[1].startswith("+")  # interval above 0 vs the reference
    assert copy[4].endswith("✓")
    assert rows["tiny/ignore (reference)"].split(" | ")[4].endswith("✗ not above its control")
    with pytest.raises(HarnessError, match="--reference nope: 0 units"):
        from mt_harness.ablation import ablation_table
        ablation_table(tmp_path / "study", "nope", "flores", ["chrF++"])


def test_refresh_report_copies_the_mechanism_check_of_the_same_artifact_and_nothing_else(data_dir, tmp_path,
                                                                                         monkeypatch, capsys):
    """A run evaluated before LMS's route KL existed gets it from its artifact once the cache holds that artifact (same
    content hash) with the report: found under this cache even when the run recorded another cache's path; scores,
    samples and the header stay; other weights (a changed file) are refused."""
    from harness.training.artifacts import artifact_dir, artifacts_root, save_artifact
    from mt_harness import cli
    from mt_harness.study.run import _stale

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    folder = artifact_dir(artifacts_root(), "lms", "d" * 64, "cfg1")
    folder.mkdir(parents=True)
    (folder / "lms.safetensors").write_bytes(b"weights")
    kl = {"per_pair": {"de-en": 0.018}, "lines": 4, "split": "FLORES-200 dev"}
    art = save_artifact(folder, "lms", "composite", {"rank": 16}, "cfg1", {"route_kl": kl, "base_trained": False})
    record = {"name": "lms", "config": {"rank": 16, "train_base": False}, "variant": "v",
              "artifact": {"kind": "composite", "path": f"/elsewhere/artifacts/lms/{folder.name}",
                           "config_hash": "cfg1", "hash": art.hash}}
    out = tmp_path / "runs" / "lms"
    _run(data_dir, out, record)
    before = json.loads((out / "results.json").read_text())
    assert get_method_text(before) == "route KL not recorded (trained before the check existed); base frozen " \
                                      "(train_base false: a routed low-rank adapter)"
    assert cli.main(["refresh-report", str(out)]) == 0
    assert f"report refreshed from {folder} (base_trained, route_kl)" in capsys.readouterr().out
    after = json.loads((out / "results.json").read_text())
    assert after["method"]["artifact"]["report"] == {"route_kl": kl, "base_trained": False}
    assert after["report_refreshed"]["from"] == str(folder)
    assert {k: v for k, v in after.items() if k not in ("method", "report_refreshed")} == \
           {k: v for k, v in before.items() if k != "method"}  # scores, sample hashes, provenance: unchanged
    assert get_method_text(after).startswith("symmetric KL pair route vs shared route per token (4 FLORES-200 dev "
                                             "lines/pair): de-en 0.018")
    assert cli.main(["refresh-report", str(out)]) == 0 and "report already that of" in capsys.readouterr().out
    # the study does the same when a train phase finds the artifact its results used (nothing moved aside)
    (out / "results.json").write_text(json.dumps(before))
    unit = type("U", (), {"out": out, "phases": []})()
    assert _stale(unit, {"hash": art.hash, "path": str(folder)}) is None
    assert json.loads((out / "results.json").read_text())["method"]["artifact"]["report"]["route_kl"] == kl
    # other weights under the same folder name: not this run's artifact, nothing written
    (out / "results.json").write_text(json.dumps(before))
    (folder / "artifact.json").write_text(json.dumps({**json.loads((folder / "artifact.json").read_text()),
                                                      "hash": "other"}))
    assert cli.main(["refresh-report", str(out)]) == 0
    assert f"artifact {art.hash} not found in this cache" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text()) == before


def get_method_text(results: dict) -> str:
    from methods import get_method

    return get_method("lms").mechanism(results["method"])


def test_study_preload_imports_every_module_a_board_build_uses(data_dir, tmp_path):
    """A study preloads at start what its final leaderboard rebuild uses (code edited during a long study must not
    mix into that rebuild): building a board afterwards, with a mechanism check and a control row, imports nothing
    more."""
    import subprocess
    import sys

    root = tmp_path / "runs"
    _run(data_dir, root / "base", {"name": "base", "config": {}, "artifact": {"kind": "none", "config_hash": ""}})
    _run(data_dir, root / "relay", _relay(False, "h1"), lambda refs: SourceReader(refs, "copy", False))
    _run(data_dir, root / "control", _relay(True, "h1"), lambda refs: SourceReader(refs, "copy", True))
    code = ("import sys\nfrom mt_harness import api\nfrom mt_harness.study.run import StudyOptions, _preload\n"
            "_preload(StudyOptions())\n"
            "before = set(sys.modules)\n"
            f"api.leaderboard([{str(root)!r}], {str(tmp_path / 'board')!r}, resamples=20)\n"
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
            "('leaderboard', 'harness', 'mt_harness', 'methods', 'tasks')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "HARNESS_DATA_DIR": str(data_dir)})
    assert (tmp_path / "board" / "leaderboard.html").is_file()
    assert out.stdout.strip().splitlines()[-1] == "[]"
