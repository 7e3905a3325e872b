"""`lmeval:` tasks whose YAML holds `!function`s, and answers that survive a crash (issue 15)."""

from __future__ import annotations

import hashlib
import json
import textwrap

import pytest
import torch

from mt_harness.cli import main

pytest.importorskip("lm_eval")
from lm_eval.models.huggingface import HFLM

_MODEL_CALLS = {name: getattr(HFLM, name) for name in ("_model_call", "_model_generate")}

PROCESS_DOCS = textwrap.dedent('''\
    def process_docs(dataset):
        return dataset.map(lambda d: {**d, "question": d["question"].strip()})
''')
PROCESS_RESULTS = textwrap.dedent('''\
    def process_results(doc, results):
        lls = [r[0] for r in results]
        gold = doc["choices"]["label"].index(doc["answerKey"])
        return {"acc_fn": float(max(range(len(lls)), key=lls.__getitem__) == gold)}
''')
PROCESS_GEN = textwrap.dedent('''\
    def process_gen(doc, results):
        return {"has_answer": float(doc["answer"].lower() in results[0].lower()), "gen_len": float(len(results[0]))}
''')

MC_YAML = """\
task: arc_fn
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: multiple_choice
test_split: test
process_docs: !function utils.process_docs
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
doc_to_choice: "{{{{choices.text}}}}"
process_results: !function utils.process_results
metric_list:
  - metric: acc_fn
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

GEN_YAML = """\
task: qa_fn
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: generate_until
test_split: test
process_docs: !function utils.process_docs
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
process_results: !function utils.process_gen
generation_kwargs:
  until: ["Question:"]
  do_sample: false
  max_gen_toks: 6
metric_list:
  - metric: has_answer
    aggregation: mean
    higher_is_better: true
  - metric: gen_len
    aggregation: mean
    higher_is_better: false
metadata:
  version: 1.0
"""

MC_ROWS = [
    {"question": "  Which gas do plants take in for photosynthesis? ", "answerKey": "B",
     "choices": {"label": ["A", "B", "C"], "text": ["oxygen", "carbon dioxide", "helium"]}},
    {"question": "What is frozen water called?", "answerKey": "A",
     "choices": {"label": ["A", "B", "C"], "text": ["ice", "steam", "sand"]}},
    {"question": " Which planet is closest to the Sun?", "answerKey": "C",
     "choices": {"label": ["A", "B", "C"], "text": ["Mars", "Venus", "Mercury"]}},
    {"question": "Which animal barks?", "answerKey": "A",
     "choices": {"label": ["A", "B"], "text": ["dog", "fish"]}},
]
GEN_ROWS = [{"question": f" What is {a} plus {b}? ", "answer": str(a + b)}
            for a, b in [(1, 2), (3, 4), (5, 6), (7, 1), (2, 2)]]


@pytest.fixture
def include_dir(tmp_path):
    inc = tmp_path / "tasks"
    inc.mkdir()
    (inc / "utils.py").write_text(PROCESS_DOCS + "\n\n" + PROCESS_RESULTS + "\n\n" + PROCESS_GEN)
    for name, yaml_text, rows in (("arc_fn", MC_YAML, MC_ROWS), ("qa_fn", GEN_YAML, GEN_ROWS)):
        data = tmp_path / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        (inc / f"{name}.yaml").write_text(yaml_text.format(data=data))
    return inc


class ModelCalls:
    """Counts HFLM's forward/generate calls; raises once `fail_after` calls have been made."""

    def __init__(self, monkeypatch, fail_after: int | None = None):
        self.n, self.fail_after = 0, fail_after
        for name, orig in _MODEL_CALLS.items():  # wrap the originals, not an earlier counter
            monkeypatch.setattr(HFLM, name, self._wrap(orig))

    def _wrap(self, orig):
        def call(lm, *a, **kw):
            if self.fail_after is not None and self.n >= self.fail_after:
                raise RuntimeError("injected crash")
            self.n += 1
            return orig(lm, *a, **kw)
        return call


def _run(task, model, include, out, batch=2):
    return main(["run", "--tasks", f"lmeval:{task}", "--lmeval-include", str(include), "--model", str(model),
                 "--output", str(out), "--dtype", "float32", "--batch-size", str(batch)])


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _loglik(model, tok, context: str, continuation: str) -> float:
    ctx_ids = tok(context, add_special_tokens=False)["input_ids"]
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([whole])).logits.float(), dim=-1)[0]
    return sum(logp[len(ctx_ids) - 1 + i, t].item() for i, t in enumerate(whole[len(ctx_ids):]))


def test_function_task_written_and_rerun_reuses_answers(tiny_model, include_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    calls = ModelCalls(monkeypatch)
    assert _run("arc_fn", tiny_model, include_dir, out) == 0
    assert calls.n > 0
    results = json.loads((out / "results.json").read_text())
    entry = results["tasks"]["lmeval:arc_fn"]
    cfg = entry["config"]["task_configs"]["arc_fn"]
    # the functions are recorded by name and source hash (the nested copy in fewshot_config was a raw function)
    src_hash = hashlib.sha256(PROCESS_DOCS.encode()).hexdigest()[:16]
    assert cfg["fewshot_config"]["process_docs"] == f"function utils.process_docs sha256:{src_hash}"
    assert "def process_results" in cfg["process_results"]

    rows = _lines(out / "lmeval_arc_fn" / "samples.jsonl")
    assert len(rows) == len(MC_ROWS) == entry["n_samples"]
    # process_docs ran (prompts hold the stripped question) and process_results scored, checked here directly
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model)
    expected = []
    for row in rows:
        doc = row["doc"]
        context = f"Question: {doc['question']}\nAnswer:"
        assert doc["question"] == doc["question"].strip() and row["prompts"][0] == context
        mine = [_loglik(model, tok, context, " " + c) for c in doc["choices"]["text"]]
        assert mine == pytest.approx([r[0][0] for r in row["raw"]], abs=1e-4)
        gold = doc["choices"]["label"].index(doc["answerKey"])
        expected.append(float(max(range(len(mine)), key=mine.__getitem__) == gold))
        assert row["scores"]["acc_fn"] == expected[-1]
    assert entry["metrics"]["arc_fn"]["acc_fn"] == pytest.approx(sum(expected) / len(expected))

    # every answer was saved as it was produced, one line per (context, continuation)
    saved = _lines(out / "lmeval_arc_fn" / "requests.jsonl")
    n_requests = sum(len(r["choices"]["text"]) for r in MC_ROWS)
    assert len(saved) == n_requests == entry["requests"]["answered_now"]
    by_args = {tuple(s["args"]): s["result"][0] for s in saved}
    for row in rows:
        ctx = row["prompts"][0]
        for choice, resp in zip(row["doc"]["choices"]["text"], row["raw"]):
            assert by_args[(ctx, " " + choice)] == resp[0][0]

    # the same command again: same config hash (functions re-imported at new addresses), no model call
    again = ModelCalls(monkeypatch)
    assert _run("arc_fn", tiny_model, include_dir, out) == 0
    assert again.n == 0
    entry2 = json.loads((out / "results.json").read_text())["tasks"]["lmeval:arc_fn"]
    assert entry2["config_hash"] == entry["config_hash"] and entry2["metrics"] == entry["metrics"]
    assert entry2["requests"] == {"answered_now": 0, "reused": n_requests}


def test_crash_mid_run_keeps_answers_and_rerun_reuses_them(tiny_model, include_dir, tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    full = ModelCalls(monkeypatch)
    assert _run("qa_fn", tiny_model, include_dir, clean, batch=1) == 0
    assert full.n == len(GEN_ROWS)  # batch 1: one generate call per document

    out = tmp_path / "crashed"
    ModelCalls(monkeypatch, fail_after=3)
    with pytest.raises(RuntimeError, match="injected crash"):
        _run("qa_fn", tiny_model, include_dir, out, batch=1)
    saved = _lines(out / "lmeval_qa_fn" / "requests.jsonl")
    assert len(saved) == 3 and all(s["type"] == "generate_until" for s in saved)
    assert not (out / "results.json").exists()

    resumed = ModelCalls(monkeypatch)
    assert _run("qa_fn", tiny_model, include_dir, out, batch=1) == 0
    assert resumed.n == len(GEN_ROWS) - 3  # only the unanswered documents went to the model
    assert _lines(out / "lmeval_qa_fn" / "requests.jsonl")[:3] == saved  # earlier answers kept as they were
    got = json.loads((out / "results.json").read_text())["tasks"]["lmeval:qa_fn"]
    ref = json.loads((clean / "results.json").read_text())["tasks"]["lmeval:qa_fn"]
    assert got["requests"] == {"answered_now": len(GEN_ROWS) - 3, "reused": 3}
    assert got["metrics"] == ref["metrics"]
    outputs = {r["id"]: r["raw"] for r in _lines(out / "lmeval_qa_fn" / "samples.jsonl")}
    assert outputs == {r["id"]: r["raw"] for r in _lines(clean / "lmeval_qa_fn" / "samples.jsonl")}


def test_saved_answers_are_keyed_by_run_not_prompt(tmp_path):
    from types import SimpleNamespace

    from harness.lmeval_requests import RequestLog
    from harness.io import JsonlStore

    path = tmp_path / "requests.jsonl"
    asked = []

    def model_a(reqs):
        asked.extend(r.args for r in reqs)
        return [(-1.5, True) for _ in reqs]

    reqs = [SimpleNamespace(args=("Question: 2+2?\nAnswer:", " 4")), SimpleNamespace(args=("Q", " x"))]
    log = RequestLog(JsonlStore(path, key_field="key"), run_key="model-a")
    assert log.serve("loglikelihood", model_a)(reqs) == [(-1.5, True)] * 2
    log.close()
    again = RequestLog(JsonlStore(path, key_field="key"), run_key="model-a")
    assert again.serve("loglikelihood", model_a)(reqs) == [(-1.5, True)] * 2
    assert len(asked) == 2  # second time served from the file
    # same prompts, another model: nothing reused
    other = RequestLog(JsonlStore(path, key_field="key"), run_key="model-b")
    assert other.serve("loglikelihood", lambda rs: [(-9.0, False) for _ in rs])(reqs) == [(-9.0, False)] * 2
    assert other.reused == 0
