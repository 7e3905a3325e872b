"""`--tasks lmeval:<task>`: lm-evaluation-harness tasks on local data, run on the run's own model object."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from mt_harness.cli import main

pytest.importorskip("lm_eval")

GSM8K_YAML = """\
task: gsm8k_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {test}
    train: {train}
output_type: generate_until
test_split: test
fewshot_split: train
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    regexes_to_ignore: [",", "\\\\$", "(?s).*#### ", "\\\\.$"]
generation_kwargs:
  until: ["Question:", "</s>", "<|im_end|>"]
  do_sample: false
  max_gen_toks: 16
num_fewshot: 1
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"
      - function: take_first
metadata:
  version: 1.0
"""

ARC_YAML = """\
task: tiny_arc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {test}
output_type: multiple_choice
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
doc_to_choice: "{{{{choices.text}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

ARC_ROWS = [
    {"question": "Which gas do plants take in for photosynthesis?", "answerKey": "B",
     "choices": {"label": ["A", "B", "C"], "text": ["oxygen", "carbon dioxide", "helium"]}},
    {"question": "What is frozen water called?", "answerKey": "A",
     "choices": {"label": ["A", "B", "C"], "text": ["ice", "steam", "sand"]}},
    {"question": "Which planet is closest to the Sun?", "answerKey": "C",
     "choices": {"label": ["A", "B", "C"], "text": ["Mars", "Venus", "Mercury"]}},
]


@pytest.fixture
def include_dir(tmp_path, data_dir):
    inc = tmp_path / "lmeval_tasks"
    inc.mkdir()
    gsm = data_dir / "gsm8k"
    (inc / "gsm8k_local.yaml").write_text(GSM8K_YAML.format(test=gsm / "test.jsonl", train=gsm / "train.jsonl"))
    arc = tmp_path / "tiny_arc.jsonl"
    arc.write_text("".join(json.dumps(r) + "\n" for r in ARC_ROWS))
    (inc / "tiny_arc.yaml").write_text(ARC_YAML.format(test=arc))
    return inc


def _continuation_loglik(model, tok, context: str, continuation: str) -> float:
    """log P(continuation | context), split into tokens the way lm-eval's HFLM does (whole minus context)."""
    ctx_ids = tok(context, add_special_tokens=False)["input_ids"]
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    cont = whole[len(ctx_ids):]
    ids = torch.tensor([whole])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits.float(), dim=-1)[0]
    return sum(logp[len(ctx_ids) - 1 + i, t].item() for i, t in enumerate(cont))


def test_lmeval_tasks_from_local_data_land_in_results(tiny_model, data_dir, include_dir, tmp_path):
    out = tmp_path / "out"
    rc = main(["run", "--tasks", "flores,lmeval:gsm8k_local,lmeval:tiny_arc", "--langs", "de-en", "--limit", "2",
               "--lmeval-include", str(include_dir), "--model", str(tiny_model), "--output", str(out),
               "--data-dir", str(data_dir), "--dtype", "float32", "--batch-size", "2"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert {"flores", "lmeval:gsm8k_local", "lmeval:tiny_arc"} <= set(results["tasks"])  # merged, not replaced

    gsm = results["tasks"]["lmeval:gsm8k_local"]
    em = gsm["metrics"]["gsm8k_local"]["exact_match,strict-match"]
    assert 0.0 <= em <= 1.0 and gsm["n_samples"] == 2
    assert gsm["metadata"]["lm_eval_version"] and len(gsm["config_hash"]) == 16
    assert gsm["config"]["task_configs"]["gsm8k_local"]["dataset_path"] == "json"
    rows = [json.loads(x) for x in (out / "lmeval_gsm8k_local" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {"id", "subset", "prompts", "raw", "outputs", "reference", "scores"} <= set(rows[0])
    assert "Question:" in rows[0]["prompts"][0] and "####" in rows[0]["reference"]
    assert em == sum(r["scores"]["exact_match"] for r in rows) / 2

    arc = results["tasks"]["lmeval:tiny_arc"]
    rows = [json.loads(x) for x in (out / "lmeval_tiny_arc" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and arc["metrics"]["tiny_arc"]["acc"] == sum(r["scores"]["acc"] for r in rows) / 2

    # lm-eval scored the run's own model: its log-likelihoods match the tiny model's, computed here directly.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model)
    for row in rows:
        doc = row["doc"]
        context = f"Question: {doc['question']}\nAnswer:"
        mine = [_continuation_loglik(model, tok, context, " " + c) for c in doc["choices"]["text"]]
        theirs = [resp[0][0] for resp in row["raw"]]
        assert mine == pytest.approx(theirs, abs=1e-3)
        gold = doc["choices"]["label"].index(doc["answerKey"])
        assert row["scores"]["acc"] == float(max(range(len(mine)), key=mine.__getitem__) == gold)


def test_hub_task_offline_is_one_line_error(tiny_model, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "mt_harness.cli", "run", "--tasks", "lmeval:arc_easy", "--model",
                           str(tiny_model), "--limit", "1", "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env)
    if proc.returncode == 0:
        pytest.skip("arc_easy's dataset is in the local HF cache on this machine")
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "lmeval:arc_easy" in err[0] and "--lmeval-include" in err[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "results.json").exists()


def test_unknown_lmeval_task_in_include_only(tiny_model, include_dir, tmp_path, capsys):
    rc = main(["run", "--tasks", "lmeval:", "--model", str(tiny_model), "--output", str(tmp_path / "o"),
               "--lmeval-include", str(include_dir)])
    assert rc == 2 and "needs a task name" in capsys.readouterr().err
