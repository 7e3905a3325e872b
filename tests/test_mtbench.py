"""MT-Bench: FastChat settings, judge prompts, run → "not judged" → later judging over a real local HTTP
server (no regeneration), a planted API key that must appear nowhere, and drift on tiny models."""

from __future__ import annotations

import json

import pytest
import torch

from mt_harness.cli import main
from harness.data import DataSource
from harness.metrics.drift import drift
from tasks import load_task
from test_judges import serve_judge


@pytest.fixture(scope="module")
def task(data_dir):
    return load_task("mtbench", DataSource.resolve(str(data_dir)))


def test_docs_and_fastchat_settings(task):
    docs = task.docs("en")
    assert len(docs) == 80 and all(len(d["turns"]) == 2 for d in docs)
    cats = {d["category"] for d in docs}
    assert cats == {"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"}
    temps = {d["category"]: task.generation(d, 1).temperature for d in docs}
    assert temps == {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
                     "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}
    assert task.generation(docs[0], 0).max_new_tokens >= 1024
    msgs = task.messages(docs[0], ["first answer"])
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[0]["content"] == docs[0]["turns"][0] and msgs[2]["content"] == docs[0]["turns"][1]


def test_judge_prompts_follow_fastchat(task):
    math_doc = next(d for d in task.docs("en") if d["category"] == "math")
    rec = {"id": math_doc["id"], "question_id": math_doc["question_id"], "outputs": ["A1", "A2"]}
    name, msgs = task.judge_messages(rec, 1)
    ref = task.references[math_doc["question_id"]]
    assert name == "single-math-v1" and ref[0] in msgs[1]["content"] and "A1" in msgs[1]["content"]
    name2, msgs2 = task.judge_messages(rec, 2)
    assert name2 == "single-math-v1-multi-turn" and ref[1] in msgs2[1]["content"] and "A2" in msgs2[1]["content"]
    writing = task.docs("en")[0]
    name3, msgs3 = task.judge_messages({"id": writing["id"], "question_id": writing["question_id"],
                                        "outputs": ["X", "Y"]}, 1)
    assert name3 == "single-v1" and msgs3[0]["content"] == "You are a helpful assistant."


def _run(args: list[str]) -> int:
    return main(args)


def test_run_unjudged_then_judge_later_over_http(tiny_model, data_dir, tmp_path, monkeypatch, capsys):
    key = "sk-PLANTED-mtbench-key-5f3a9c"
    monkeypatch.setenv("MTB_JUDGE_KEY", key)
    out = tmp_path / "run"
    common = ["--data-dir", str(data_dir), "--threads", "1"]
    assert _run(["run", "--method", "base", "--tasks", "mtbench", "--limit", "2", "--model", str(tiny_model),
                 "--output", str(out), *common]) == 0
    res = json.loads((out / "results.json").read_text())
    m = res["tasks"]["mtbench"]["metrics"]["en"]
    assert m["judge"] == "not judged" and "score" not in m
    assert m["drift_nll"] == 0.0 and m["drift"]["same_model"] is True  # --method base: drift of the base is 0
    samples_before = [json.loads(x) for x in (out / "mtbench" / "samples.jsonl").read_text().splitlines()]
    assert all(len(s["outputs"]) == 2 for s in samples_before)

    # canned judge: turn 1 of question 81 malformed, other turn-1 judgments 8, turn-2 judgments 4
    def responder(body, n):
        user = body["messages"][-1]["content"]
        if "Assistant A's Conversation" in user:
            return "The second answer is weak. Rating: [[4]]"
        return "no verdict given" if "travel blog post about a recent trip to Hawaii" in user else "Fine. [[8]]"

    with serve_judge(responder, key=key) as (url, calls):
        assert _run(["judge", str(out), "--judge", "openai", "--judge-model", "canned-judge", "--judge-url", url,
                     "--judge-key-env", "MTB_JUDGE_KEY", "--data-dir", str(data_dir)]) == 0
        assert len(calls) == 4
        res = json.loads((out / "results.json").read_text())
        m = res["tasks"]["mtbench"]["metrics"]["en"]
        assert m["judge"].startswith("openai:canned-judge@")
        assert m["parse_failures"] == 1 and m["n_turns_unjudged"] == 1 and m["n_judgments"] == 4
        assert m["score_turn1"] == 8.0 and m["score_turn2"] == 4.0
        assert m["score"] == pytest.approx((8 + 4 + 4) / 3)  # the failed turn is excluded, not 0
        assert m["drift_nll"] == 0.0  # drift survives rejudging
        # judging again resumes from the cache: no new request
        assert _run(["judge", str(out), "--judge", "openai", "--judge-model", "canned-judge", "--judge-url", url,
                     "--judge-key-env", "MTB_JUDGE_KEY", "--data-dir", str(data_dir)]) == 0
        assert len(calls) == 4
    samples_after = [json.loads(x) for x in (out / "mtbench" / "samples.jsonl").read_text().splitlines()]
    assert [s["outputs"] for s in samples_after] == [s["outputs"] for s in samples_before]  # no regeneration
    meta = res["tasks"]["mtbench"]["metadata"]
    assert meta["judge_settings"]["key_env"] == "MTB_JUDGE_KEY"
    captured = capsys.readouterr()
    blobs = [captured.out, captured.err] + [p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()]
    assert not any(key in b for b in blobs)


def _base_and_moved(tiny_model, seed: int):
    """Tokenizer, the tiny model, and a copy whose weights are nudged by seeded noise (float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    moved = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    return tok, base, moved


def test_drift_definition_on_tiny_models(tiny_model):
    tok, base, moved = _base_and_moved(tiny_model, 1)
    pairs = [("<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n", "Guten Tag und hallo"),
             ("<|im_start|>user\nTranslate<|im_end|>\n<|im_start|>assistant\n", "The weather is nice today")]
    same = drift(base, base, tok, pairs)
    assert same["drift_nll"] == 0.0 and same["kl_base_eval"] == 0.0
    d1, d2 = drift(moved, base, tok, pairs), drift(moved, base, tok, pairs)
    assert d1 == d2  # deterministic
    assert d1["kl_base_eval"] > 0 and d1["drift_nll"] != 0.0
    assert d1["nll_base"] == pytest.approx(same["nll_base"])
    # nll_base agrees with transformers' own causal-LM loss on the answer tokens
    total, n = 0.0, 0
    for prompt, answer in pairs:
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        a = tok(answer, add_special_tokens=False)["input_ids"]
        labels = torch.tensor([[-100] * len(p) + a])
        with torch.no_grad():
            loss = base(input_ids=torch.tensor([p + a]), labels=labels).loss.item()
        total, n = total + loss * len(a), n + len(a)
    assert same["nll_base"] == pytest.approx(total / n, rel=1e-5)


def test_drift_ref_from_another_model_is_refused_honestly(tiny_model, tiny_model_factory, data_dir, tmp_path):
    other = tiny_model_factory("qwen2", True)
    base_out = tmp_path / "base"
    common = ["--data-dir", str(data_dir), "--threads", "1", "--limit", "1", "--tasks", "mtbench"]
    assert _run(["run", "--method", "base", "--model", str(tiny_model), "--output", str(base_out), *common]) == 0
    out = tmp_path / "other"
    assert _run(["run", "--method", "base", "--model", str(other), "--output", str(out),
                 "--drift-ref", str(base_out), *common]) == 0
    m = json.loads((out / "results.json").read_text())["tasks"]["mtbench"]["metrics"]["en"]
    assert "drift_nll" not in m and m["drift"].startswith("not computed:")
    assert main(["run", "--method", "base", "--model", str(other), "--output", str(tmp_path / "x"),
                 "--drift-ref", str(tmp_path / "nowhere"), *common]) == 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_drift_scores_answer_positions_only_with_the_same_numbers(tiny_model, monkeypatch, dtype):
    """The output layer runs on the answer positions only (`logits_to_keep`); the log-probs equal those of the
    full-sequence forward pass up to float rounding (a matmul over fewer rows may sum in another order; often, e.g.
    on SmolLM2 at one thread, they are bit-identical)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.metrics import drift as drift_mod

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=dtype).eval()
    p, a = drift_mod._encode(tok, "<|im_start|>user\nA long question about the weather<|im_end|>\n", "Sunny, then rain")
    span = [(len(p), len(p) + len(a))]
    (kept,) = drift_mod._logprobs(model, p + a, span)
    monkeypatch.setattr(drift_mod, "keeps_logits", lambda m: False)
    (full,) = drift_mod._logprobs(model, p + a, span)
    assert kept.shape == (len(a), model.config.vocab_size)
    fp32 = dtype == torch.float32
    torch.testing.assert_close(kept, full, rtol=1e-6 if fp32 else 1e-2, atol=1e-5 if fp32 else 5e-2)


def test_drift_scores_a_conversation_in_one_pass_with_the_same_numbers(tiny_model, monkeypatch):
    """A second turn's prompt holds the first turn's prompt and answer: one forward pass over it scores both answers.
    Its numbers equal one pass per answer (causal attention) up to float rounding; a pair whose prompt does not
    continue the previous pair's tokens starts a new pass."""
    from harness.metrics import drift as drift_mod

    tok, base, moved = _base_and_moved(tiny_model, 2)
    t1 = "<|im_start|>user\nName a colour<|im_end|>\n<|im_start|>assistant\n"
    a1, a2 = "Blue, like the sea", "Green"
    t2 = t1 + a1 + "<|im_end|>\n<|im_start|>user\nAnother one<|im_end|>\n<|im_start|>assistant\n"
    other = "<|im_start|>user\nCount to three<|im_end|>\n<|im_start|>assistant\n"
    pairs = [(t1, a1), (t2, a2), (other, "1, 2, 3"), (other, ""), (other, "one two three")]
    encoded = [drift_mod._encode(tok, p, a) for p, a in pairs]
    assert drift_mod._chains(encoded) == [[0, 1], [2], [3], [4]]

    calls = []
    real = drift_mod._logprobs
    monkeypatch.setattr(drift_mod, "_logprobs", lambda m, ids, spans: calls.append(len(ids)) or real(m, ids, spans))
    chained = drift(moved, base, tok, pairs)
    assert len(calls) == 2 * 3  # (turns 1+2), "1, 2, 3", "one two three"; the empty answer is skipped; two models
    monkeypatch.setattr(drift_mod, "_chains", lambda enc: [[i] for i in range(len(enc))])
    separate = drift(moved, base, tok, pairs)
    assert chained["n_tokens"] == separate["n_tokens"] and chained["n_answers"] == separate["n_answers"] == 4
    for key in ("nll_eval", "nll_base", "drift_nll", "kl_base_eval"):
        assert chained[key] == pytest.approx(separate[key], rel=1e-5, abs=1e-6)
    for c, s in zip(chained["per_pair"], separate["per_pair"]):
        assert c == pytest.approx(s, rel=1e-5, abs=1e-5)
    assert chained["per_pair"][3] == (0.0, 0.0, 0, 0.0)
    # the per-answer KL sums (drift.json's 4th per-document element) add up to the summary KL
    assert sum(p[3] for p in chained["per_pair"]) / chained["n_tokens"] == pytest.approx(chained["kl_base_eval"])
    assert all(p[3] >= -1e-6 for p in chained["per_pair"]) and chained["kl_base_eval"] > 0
