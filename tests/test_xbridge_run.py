"""`harness run --method xbridge` end to end on tiny models: three stages (one step each) chained by
hash, FLORES in both directions (X->en from the LLM, en->X from the NMT decoder), artifact reuse with
identical generations, MGSM with both answers, and the one-line stops before any work."""

from __future__ import annotations

import json

import pytest

from mt_harness.cli import main
from xbridge_tiny import build_tiny_nmt


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def nmt_path(tmp_path_factory):
    return build_tiny_nmt(tmp_path_factory.mktemp("tiny-nmt"), d_model=24)


def _config(tmp_path, nmt, **extra) -> str:
    """methods/xbridge/recipes/tiny.yaml with nmt_model pointing at the tiny NMT model (+ overrides)."""
    import yaml

    from harness.config import load_yaml
    from methods import method_dir

    cfg = load_yaml(method_dir("xbridge") / "recipes" / "tiny.yaml")
    cfg["nmt_model"] = str(nmt)
    for stage in (1, 2, 3):
        if f"lr{stage}" in extra:
            cfg[f"train{stage}"]["lr"] = extra[f"lr{stage}"]
    path = tmp_path / f"xbridge_{len(list(tmp_path.glob('xbridge_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _run(model, cfg, out, tasks="flores", langs="de-en,en-de", limit="3"):
    return main(["run", "--method", "xbridge", "--model", str(model), "--method-config", cfg, "--tasks", tasks,
                 "--langs", langs, "--limit", limit, "--output", str(out), "--device", "cpu", "--dtype", "float32",
                 "--threads", "1"])


def _samples(out, task="flores"):
    return [json.loads(x) for x in (out / task / "samples.jsonl").read_text().splitlines()]


def test_flores_end_to_end_three_stages_and_reuse(tiny_model, nmt_path, tmp_path, capsys):
    cfg = _config(tmp_path, nmt_path)
    assert _run(tiny_model, cfg, tmp_path / "a") == 0
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    metrics = res["tasks"]["flores"]["metrics"]
    assert set(metrics) == {"de-en", "en-de"} and all(metrics[s]["n"] == 3 for s in metrics)
    assert res["method"]["name"] == "xbridge" and res["method"]["artifact"]["kind"] == "composite"
    assert res["tasks"]["flores"]["backend"]["backend"] == "xbridge"
    by_subset = {}
    for rec in _samples(tmp_path / "a"):
        by_subset.setdefault(rec["subset"], []).append(rec)
    assert all("nmt decoder" not in r["prompts"][0] for r in by_subset["de-en"])  # X->en: the LLM's output
    assert all("<nmt decoder deu_Latn>" in r["prompts"][0] for r in by_subset["en-de"])  # en->X: the decoder's
    assert all(r["prompts"][0].startswith("<nmt deu_Latn>") for r in by_subset["de-en"])
    # one artifact per stage, each keyed on the previous one
    arts = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "artifacts" / "xbridge").glob("*/artifact.json")]
    by_stage = {a["stage"]: a for a in arts}
    assert sorted(by_stage) == [1, 2, 3]
    assert by_stage[1]["previous_artifact"] == ""
    assert by_stage[2]["previous_artifact"] == by_stage[1]["hash"]
    assert by_stage[3]["previous_artifact"] == by_stage[2]["hash"]
    assert res["method"]["artifact"]["hash"] == by_stage[3]["hash"]
    capsys.readouterr()

    # a second run reuses all three artifacts and reloads them into identical generations
    assert _run(tiny_model, cfg, tmp_path / "b") == 0
    assert capsys.readouterr().out.count("reusing artifact") == 3
    assert [r["raw"] for r in _samples(tmp_path / "b")] == [r["raw"] for r in _samples(tmp_path / "a")]

    # resume: a run that lost its last sample regenerates only that one, identically
    path = tmp_path / "a" / "flores" / "samples.jsonl"
    full = path.read_text()
    path.write_text("".join(full.splitlines(keepends=True)[:-1]))
    assert _run(tiny_model, cfg, tmp_path / "a") == 0
    assert path.read_text() == full
    capsys.readouterr()

    # changing stage 3 only retrains stage 3
    cfg3 = _config(tmp_path, nmt_path, lr3=2e-3)
    assert main(["train", "--method", "xbridge", "--model", str(tiny_model), "--method-config", cfg3,
                 "--tasks", "flores", "--langs", "de-en", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("reusing artifact") == 2 and "stage 3: reusing" not in out and out.count("artifact saved") == 1


def test_mgsm_reports_llm_and_decoder_answers(tiny_model, nmt_path, tmp_path):
    cfg = _config(tmp_path, nmt_path)
    assert _run(tiny_model, cfg, tmp_path / "m", tasks="mgsm", langs="de", limit="2") == 0
    m = json.loads((tmp_path / "m" / "results.json").read_text())["tasks"]["mgsm"]["metrics"]["de"]
    for k in ("exact_match_strict", "decoder_exact_match_strict", "decoder_exact_match_flexible"):
        assert 0.0 <= m[k] <= 1.0
    recs = _samples(tmp_path / "m", "mgsm")
    assert all(len(r["raw"]) == 2 and "decoder" in r for r in recs)
    assert all("<nmt decoder deu_Latn>" in r["prompts"][1] and "### Instruction:" in r["prompts"][0] for r in recs)


def test_unavailable_nmt_model_stops_before_training(tiny_model, tmp_path, capsys):
    cfg = tmp_path / "hub.yaml"
    cfg.write_text("nmt_model: facebook/nllb-200-distilled-600M\n")
    assert _run(tiny_model, str(cfg), tmp_path / "x") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NMT model 'facebook/nllb-200-distilled-600M' is not available" in err
    assert not (tmp_path / "cache" / "artifacts").exists() and not (tmp_path / "x" / "results.json").exists()


def test_task_it_cannot_serve_stops_before_training(tiny_model, nmt_path, tmp_path, capsys):
    assert _run(tiny_model, _config(tmp_path, nmt_path), tmp_path / "x", tasks="flores,mtbench", langs="de-en",
                limit="1") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot serve task 'mtbench'" in err
    assert not (tmp_path / "cache" / "artifacts").exists()
