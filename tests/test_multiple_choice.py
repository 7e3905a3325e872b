"""Multiple-choice log-likelihood tasks: equal to lm-eval 0.4 itself on the same items, runner path, vLLM parts.

The reference is lm-eval's own `simple_evaluate` + `HFLM` on the same tiny model, with lm-eval's own
task YAMLs (tests/lmeval_mc_reference.py only swaps their dataset for the local files): its request
strings, per-choice log-likelihoods and per-sample acc / acc_norm must equal ours.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from harness.backends.loglik import (
    LoglikScorer,
    encode_pair,
    shared_prefix_len,
    truncate,
)
from harness.data import DataSource
from harness.errors import HarnessError
from tasks import load_task

N_ITEMS = 8
# our task name -> lm-eval reference task(s); MMLU is compared on two subjects
TASKS = {"arc_easy": ["arc_easy"], "arc_challenge": ["arc_challenge"], "hellaswag": ["hellaswag"],
         "piqa": ["piqa"], "winogrande": ["winogrande"], "truthfulqa_mc2": ["truthfulqa_mc2"],
         "mmlu": ["mmlu_anatomy", "mmlu_abstract_algebra"]}


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    return model, tok


@pytest.fixture(scope="module")
def lmeval_samples(tiny, data_dir, tmp_path_factory):
    pytest.importorskip("lm_eval")
    from tests.lmeval_mc_reference import run_lmeval

    model, tok = tiny
    refs = [r for rs in TASKS.values() for r in rs]
    return run_lmeval(model, tok, refs, data_dir, N_ITEMS, tmp_path_factory.mktemp("lmeval_yamls"))


def _our_docs(task, ref: str) -> list[dict]:
    docs = task.docs("en")
    if ref.startswith("mmlu_"):
        return [d for d in docs if d["subject"] == ref[len("mmlu_"):]][:N_ITEMS]
    return docs[:N_ITEMS]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_equal_to_lmeval(name, tiny, data_dir, lmeval_samples):
    from harness.backends.hf import HFBackend
    from harness.loading import BackendConfig

    model, tok = tiny
    task = load_task(name, DataSource(data_dir, allow_hub=False))
    backend = HFBackend(model, tok, BackendConfig(batch_size=7))  # groups split across batches
    for ref in TASKS[name]:
        docs = _our_docs(task, ref)
        samples = lmeval_samples[ref]
        assert len(samples) == len(docs) == N_ITEMS
        groups = [task.requests(d) for d in docs]
        results = backend.loglikelihood(groups)
        for doc, reqs, res, s in zip(docs, groups, results, samples):
            assert [tuple(a) for a in s["arguments"]] == reqs  # identical prompt and continuation strings
            ref_lls = [float(r[0]) for r in s["filtered_resps"]]
            ref_greedy = [bool(r[1]) for r in s["filtered_resps"]]
            ours = [r.logprob for r in res]
            assert ours == pytest.approx(ref_lls, rel=1e-5, abs=1e-3), (ref, s["doc_id"])
            assert [r.is_greedy for r in res] == ref_greedy
            scored = task.score(doc, [[r.logprob, r.is_greedy] for r in res])
            for metric in task.options.metrics:
                assert scored[metric] == pytest.approx(float(s[metric]), abs=1e-6), (ref, s["doc_id"], metric)


def test_shared_prefix_equals_whole_rows(tiny, data_dir):
    """Scoring the shared prefix once (KV cache repeated per choice) equals scoring every full row."""
    model, tok = tiny
    task = load_task("winogrande", DataSource(data_dir, allow_hub=False))
    groups = [task.requests(d) for d in task.docs("en")[:5]] + [[("", " hello"), ("", " world")]]
    shared = LoglikScorer(model, tok, batch_size=5).score(groups)
    whole = LoglikScorer(model, tok, batch_size=1, share_prefix=False).score(groups)
    for a, b in zip(shared, whole):
        assert [r.logprob for r in a] == pytest.approx([r.logprob for r in b], rel=1e-5, abs=1e-4)
        assert [r.n_tokens for r in a] == [r.n_tokens for r in b]


def test_sliding_window_model_falls_back(tiny_model_factory):
    """Gemma 3 (sliding-window cache layers) scores whole rows; results still equal a per-pair forward."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_model_factory("gemma3", False)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    groups = [[("Question: why is the sky blue?\nAnswer:", " light"),
               ("Question: why is the sky blue?\nAnswer:", " rain")]]
    got = LoglikScorer(model, tok, batch_size=4).score(groups)[0]
    for (c, k), r in zip(groups[0], got):
        ctx, cont = encode_pair(tok, c, k)
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ctx + cont])).logits[0].float(), -1)
        ref = sum(float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))
        assert r.logprob == pytest.approx(ref, rel=1e-5, abs=1e-4)


def test_encode_pair_moves_context_spaces(tiny):
    _, tok = tiny
    ctx, cont = encode_pair(tok, "Question: x\nAnswer: ", "yes")
    assert tok.decode(ctx) == "Question: x\nAnswer:" and tok.decode(cont) == " yes"
    assert shared_prefix_len([([1, 2, 3], [4]), ([1, 2, 3], [5, 6])]) == 3
    assert shared_prefix_len([([1, 2, 9], [4]), ([1, 2, 3], [4])]) == 2
    assert truncate([1, 2, 3, 4, 5], [6, 7], 4) == ([3, 4, 5], [6, 7])


def test_mc2_metric_and_norm_by_chars(data_dir):
    task = load_task("truthfulqa_mc2", DataSource(data_dir, allow_hub=False))
    doc = {"choices": ["a", "b", "c"], "labels": [1, 1, 0], "gold": 0}
    lls = [math.log(0.2), math.log(0.3), math.log(0.1)]
    assert task.score(doc, [[x, False] for x in lls])["acc"] == pytest.approx(0.5 / 0.6)
    arc = load_task("arc_easy", DataSource(data_dir, allow_hub=False))
    got = arc.score({"choices": ["a", "bbbb"], "gold": 1}, [[-2.0, False], [-4.0, False]])
    assert (got["acc"], got["acc_norm"]) == (0.0, 1.0)  # -4/4 > -2/1


def test_run_resume_score_and_backend_check(tiny_model, data_dir, tmp_path, capsys):
    from harness.backends.factory import check_serves
    from mt_harness.cli import main

    out = tmp_path / "run"
    args = ["run", "--model", str(tiny_model), "--method", "base", "--tasks", "arc_easy,winogrande", "--limit", "3",
            "--dtype", "float32", "--threads", "1", "--data-dir", str(data_dir), "--output", str(out),
            "--chunk-size", "2"]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    recs = [json.loads(x) for x in (out / "arc_easy" / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 3 and all(len(r["loglik"]) == len(r["continuations"]) == len(r["n_chars"]) for r in recs)
    assert res["tasks"]["arc_easy"]["metrics"]["en"]["acc"] == pytest.approx(sum(r["acc"] for r in recs) / 3)
    assert set(res["tasks"]["winogrande"]["metrics"]["en"]) == {"acc", "n"}
    before = (out / "arc_easy" / "samples.jsonl").read_text()
    assert main(args) == 0  # resume: nothing rescored
    assert (out / "arc_easy" / "samples.jsonl").read_text() == before
    assert main(["score", str(out), "--data-dir", str(data_dir)]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["tasks"]["arc_easy"]["metrics"] == res["tasks"]["arc_easy"]["metrics"]
    task = load_task("arc_easy", DataSource(data_dir, allow_hub=False))
    with pytest.raises(HarnessError, match="task arc_easy: needs log-likelihood scoring, which backend 'composite'"):
        check_serves(SimpleNamespace(name="composite", generate=lambda r: r), [task], [])


def test_group_general_and_validate(data_dir, capsys):
    from mt_harness.cli import main

    assert main(["validate", "--tasks", "general", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    for name in ("hellaswag", "arc_easy", "arc_challenge", "piqa", "winogrande", "mmlu", "truthfulqa_mc2"):
        assert f"ok    {name}/en" in out


def test_missing_local_copy_one_line_error(tmp_path):
    task = load_task("piqa", DataSource(tmp_path, allow_hub=False))
    with pytest.raises(HarnessError, match="task piqa: local copy .* not found and no hub access"):
        task.docs("en")


# -- vLLM pure parts --------------------------------------------------------------------------------
def test_vllm_prompt_logprobs_mapping(tiny):
    from harness.backends.vllm import loglik_from_prompt_logprobs, loglik_prompts

    _, tok = tiny
    [(ids, n)] = loglik_prompts(tok, [[("Question: x\nAnswer:", " yes")]], 2048)
    ctx, cont = encode_pair(tok, "Question: x\nAnswer:", " yes")
    assert ids == ctx + cont and n == len(cont)
    def lp(v, rank):
        return SimpleNamespace(logprob=v, rank=rank)
    prompt = [5, 6, 7, 8]
    plp = [None, {6: lp(-1.0, 1)}, {7: lp(-2.0, 3), 9: lp(-0.5, 1)}, {8: lp(-0.25, 1)}]
    assert loglik_from_prompt_logprobs(prompt, 2, plp) == (-2.25, False)
    assert loglik_from_prompt_logprobs(prompt, 1, plp) == (-0.25, True)
    with pytest.raises(HarnessError):
        loglik_from_prompt_logprobs(prompt, 4, plp)


def test_vllm_loglik_like_transformers(tiny_model, data_dir):
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("vllm needs a CUDA GPU")
    from harness.backends.hf import HFBackend
    from harness.backends.vllm import VLLMBackend, VLLMConfig
    from harness.loading import BackendConfig, load_model_and_tokenizer

    task = load_task("arc_easy", DataSource(data_dir, allow_hub=False))
    groups = [task.requests(d) for d in task.docs("en")[:4]]
    hf = HFBackend(*load_model_and_tokenizer(tiny_model, BackendConfig(dtype="float32", device="cuda")),
                   BackendConfig(dtype="float32"))
    vl = VLLMBackend(tiny_model, VLLMConfig(dtype="float32", gpu_memory_utilization=0.3))
    for a, b in zip(hf.loglikelihood(groups), vl.loglikelihood(groups)):
        assert [r.logprob for r in a] == pytest.approx([r.logprob for r in b], rel=1e-3, abs=1e-2)


def test_group_expands_next_to_tasks(data_dir):
    from tasks import load_tasks
    from tasks import expand_groups

    names = [n for n, _ in expand_groups(["flores", "general"])]
    assert names[0] == "flores" and {"hellaswag", "mmlu", "truthfulqa_mc2"} <= set(names)
    tasks = load_tasks(["flores", "general"], DataSource(data_dir, allow_hub=False), [])
    limits = {t.name: getattr(t, "doc_limit", None) for t in tasks}
    assert limits["flores"] is None and limits["hellaswag"] == 500 and limits["truthfulqa_mc2"] is None
