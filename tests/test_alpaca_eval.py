"""AlpacaEval: data and baseline alignment, the judge-reply parser, win-rate bookkeeping over both orders
(a canned judge behind a real local HTTP server, and a real tiny local `transformers` judge), and drift that is
always measured: a trained method computes it from cached base-model answers, generated once and reused."""

from __future__ import annotations

import json

import pytest

from mt_harness.cli import main
from harness.data import DataSource
from tasks import load_task
from tasks.alpaca_eval import ORDERS, parse_identifier
from test_judges import serve_judge


@pytest.fixture(scope="module")
def task(data_dir):
    t = load_task("alpaca_eval", DataSource.resolve(str(data_dir)))
    t.preflight()
    return t


def test_docs_and_baseline(task):
    docs = task.docs("en")
    assert len(docs) == 805 and len(task.baseline) == 805
    assert task.messages(docs[0], []) == [{"role": "user", "content": docs[0]["instruction"]}]
    msgs = task.judge_messages({"id": "en/0", "instruction": docs[0]["instruction"], "outputs": ["MINE"]},
                               "baseline_first")
    user = msgs[1]["content"]
    assert user.index(task.baseline[docs[0]["instruction"]]) < user.index("## Response M\nMINE")


@pytest.mark.parametrize("text,expected", [("m", "m"), ("M", "M"), (" M\n", "M"), ("'m'", "m"), ("(M)", "M"),
                                           ("Response M", "M"), ("model m is better", "m"), ("Maybe", None),
                                           ("m.", "m"), ("", None), ("I think M", None), ("mM", None)])
def test_parse_identifier(text, expected):
    assert parse_identifier(text) == expected


def _samples(out):
    return [json.loads(x) for x in (out / "alpaca_eval" / "samples.jsonl").read_text().splitlines()]


def test_win_rate_both_orders_with_canned_http_judge(tiny_model, data_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--data-dir", str(data_dir), "--threads", "1"]
    assert main(["run", "--method", "base", "--tasks", "alpaca_eval", "--limit", "3", "--model", str(tiny_model),
                 "--output", str(out), *common]) == 0
    res = json.loads((out / "results.json").read_text())["tasks"]["alpaca_eval"]
    m = res["metrics"]["en"]
    assert m["judge"] == "not judged" and m["drift_nll"] == 0.0  # --method base: its own answers, drift 0
    recs = _samples(out)
    assert m["mean_chars"] == pytest.approx(sum(len(r["outputs"][0]) for r in recs) / 3)
    first, second, third = (r["instruction"] for r in recs)

    # canned (scripted) judge: always "m" on the 1st instruction (pure position bias), always picks the baseline
    # on the 2nd, no verdict on the 3rd when the model's answer comes first (the tiny model's answers may be empty,
    # so the slots are told apart by the baseline's text)
    baseline = load_task("alpaca_eval", DataSource.resolve(str(data_dir))).baseline

    def baseline_is_m(user: str, instruction: str) -> bool:
        slot_m = user.split("## Response m\n", 1)[1].split("## Response M\n", 1)[0]
        return baseline[instruction][:60] in slot_m

    def responder(body, n):
        user = body["messages"][-1]["content"]
        if first in user:
            return "m"
        if second in user:
            return "m" if baseline_is_m(user, second) else "M"
        return "M" if baseline_is_m(user, third) else "no idea"

    with serve_judge(responder) as (url, calls):
        assert main(["judge", str(out), "--judge", "openai", "--judge-model", "canned", "--judge-url", url,
                     "--data-dir", str(data_dir)]) == 0
        assert len(calls) == 6 and all(c["max_tokens"] == 16 for c in calls)
    m = json.loads((out / "results.json").read_text())["tasks"]["alpaca_eval"]["metrics"]["en"]
    # wins: 1st = (1 + 0)/2, 2nd = 0, 3rd = only baseline_first parsed, "M" = the model -> 1
    assert m["win_rate"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert m["win_rate_model_first"] == pytest.approx((1 + 0) / 2)
    assert m["win_rate_baseline_first"] == pytest.approx((0 + 0 + 1) / 3)
    assert m["position_consistency"] == pytest.approx(1 / 2)  # 1st inconsistent, 2nd consistent
    assert m["parse_failures"] == 1 and m["n_unjudged"] == 0 and m["n_judgments"] == 6
    assert m["judge"].startswith("openai:canned@") and len(m["judge_prompts_hash"]) == 16
    assert m["drift_nll"] == 0.0  # drift survives judging


def test_real_tiny_hf_judge(tiny_model, data_dir, tmp_path):
    """A real (random, tiny) transformers model as judge: its replies mostly do not parse; the bookkeeping must
    count that, and whatever parses must add up."""
    out = tmp_path / "run"
    assert main(["run", "--method", "base", "--tasks", "alpaca_eval", "--limit", "2", "--model", str(tiny_model),
                 "--output", str(out), "--data-dir", str(data_dir), "--threads", "1", "--judge", "hf",
                 "--judge-model", str(tiny_model)]) == 0
    m = json.loads((out / "results.json").read_text())["tasks"]["alpaca_eval"]["metrics"]["en"]
    assert m["judge"].startswith("hf:") and m["n_judgments"] == 4
    recs = _samples(out)
    verdicts = [v for r in recs for o in ORDERS for v in r["judgment"]["orders"][o]["verdicts"]]
    assert m["parse_failures"] == sum(v is None for v in verdicts)
    wins = []
    for r in recs:
        prefs = [float(r["judgment"]["orders"][o]["verdicts"][0] == ("m" if o == "model_first" else "M"))
                 for o in ORDERS if r["judgment"]["orders"][o]["verdicts"][0] is not None]
        if prefs:
            wins.append(sum(prefs) / len(prefs))
    assert m["n_judged"] == len(wins)
    assert m.get("win_rate") == (pytest.approx(sum(wins) / len(wins)) if wins else None)
    cache = [json.loads(x) for x in (out / "alpaca_eval" / "judgments.jsonl").read_text().splitlines()]
    assert len(cache) == 4 and all(c["judge"] == m["judge"] for c in cache)


def test_trained_method_always_gets_drift_from_cached_base_answers(tiny_model, data_dir, tmp_path, monkeypatch,
                                                                   capsys):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("data:\n  pairs: [de-en]\n  max_per_pair: 4\ntrain:\n  max_steps: 2\n  batch_size: 2\n"
                      "  max_length: 256\n  lr: 1.0e-2\n  warmup_ratio: 0.0\n  precision: fp32\n")
    common = ["run", "--method", "sft", "--tasks", "mtbench", "--limit", "1", "--model", str(tiny_model),
              "--data-dir", str(data_dir), "--method-config", str(recipe), "--threads", "1", "--batch-size", "2"]
    assert main([*common, "--output", str(tmp_path / "a")]) == 0
    cap = capsys.readouterr()
    first = cap.out + cap.err
    assert "generating the base model's answers (1 documents)" in first
    m = json.loads((tmp_path / "a" / "results.json").read_text())["tasks"]["mtbench"]["metrics"]["en"]
    assert isinstance(m["drift_nll"], float) and m["drift_kl"] > 0  # sft moved the model; no --drift-ref given
    ref = m["drift"]["ref"]
    assert ref.startswith(str(tmp_path / "cache" / "base_answers")) and m["drift"]["same_model"] is False
    cached = tmp_path / "cache" / "base_answers"
    (folder,) = list(cached.iterdir())
    run_json = json.loads((folder / "mtbench" / "run.json").read_text())
    assert run_json["method"] == "base" and run_json["artifact"] is None
    before = (folder / "mtbench" / "samples.jsonl").read_bytes()
    drift1 = json.loads((tmp_path / "a" / "mtbench" / "drift.json").read_text())
    assert set(drift1["per_id"]) == set(drift1["ids"])
    assert sum(v[2] for v in drift1["per_id"].values()) == drift1["n_tokens"]

    assert main([*common, "--output", str(tmp_path / "b")]) == 0
    cap = capsys.readouterr()
    second = cap.out + cap.err
    assert "reusing cached base-model answers" in second and "generating the base model" not in second
    assert (folder / "mtbench" / "samples.jsonl").read_bytes() == before and len(list(cached.iterdir())) == 1
    m2 = json.loads((tmp_path / "b" / "results.json").read_text())["tasks"]["mtbench"]["metrics"]["en"]
    assert m2["drift"]["ref"] == ref and m2["drift_nll"] == pytest.approx(m["drift_nll"])


def test_bad_baseline_file_is_one_clear_error(tmp_path):
    from harness.errors import HarnessError

    root = tmp_path / "data" / "general" / "alpaca_eval"
    (root / "cs336/data/alpaca_eval").mkdir(parents=True)
    (root / "results/gpt4_1106_preview").mkdir(parents=True)
    (root / "cs336/data/alpaca_eval/alpaca_eval.jsonl").write_text('{"instruction": "Say hi."}\n')
    (root / "results/gpt4_1106_preview/model_outputs.json").write_text('[{"instruction": "Say hi."}]')
    t = load_task("alpaca_eval", DataSource.resolve(str(tmp_path / "data"), allow_hub=False))
    with pytest.raises(HarnessError, match="record 1 needs 'instruction' and 'output'"):
        t.preflight()
    (root / "results/gpt4_1106_preview/model_outputs.json").write_text('[{"instruction": "Other", "output": "x"}]')
    t = load_task("alpaca_eval", DataSource.resolve(str(tmp_path / "data"), allow_hub=False))
    with pytest.raises(HarnessError, match="no baseline output for 1 instruction"):
        t.preflight()
