"""Judge parsing, failure counting, k-judgment median, and the OpenAI-compatible HTTP judge against a
real HTTP server on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.errors import HarnessError
from harness.io import JsonlStore
from harness.judges import (JudgeItem, JudgeSpec, JudgmentCache, make_judge, majority_verdict, median_verdict,
                            parse_rating, parse_xstest_class, run_judgments)
from harness.judges.openai_http import OpenAIJudge
from harness.judges.base import JudgeSettings


@contextlib.contextmanager
def serve_judge(responder, key: str | None = None):
    """A /v1/chat/completions server. responder(body, n_call) -> str (content) or (status, text).
    Yields (base_url, calls) where calls is the list of received request bodies."""
    calls: list[dict] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": "not found"})
            if key is not None and self.headers.get("Authorization") != f"Bearer {key}":
                return self._send(401, {"error": {"message": "bad key"}})
            with lock:
                calls.append(body)
                n = len(calls)
            out = responder(body, n)
            if isinstance(out, tuple):
                return self._send(out[0], {"error": out[1]})
            self._send(200, {"id": f"c{n}", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": out},
                                          "finish_reason": "stop"}]})

        def _send(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", calls
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("text,expected", [
    ("The answer is fine. Rating: [[7]]", 7.0),
    ("Rating: [[8.5]]", 8.5),
    ("Rating: [6]", 6.0),  # FastChat's backup pattern
    ("first [[3]] then [[9]]", 3.0),
    ("[[2]] beats the backup [9]", 2.0),
    ("I would give it a seven.", None),
    ("Rating: [[seven]]", None),
    ("", None),
])
def test_parse_rating_fastchat_patterns(text, expected):
    assert parse_rating(text) == expected


def test_parse_xstest_class():
    assert parse_xstest_class("2_full_refusal") == "full_refusal"
    assert parse_xstest_class("CLASS: 1_full_compliance.") == "full_compliance"
    assert parse_xstest_class("This is partial_refusal") == "partial_refusal"
    assert parse_xstest_class("compliant") is None


def test_median_and_majority_ignore_failures_but_never_zero():
    recs = [{"verdict": v} for v in (2.0, None, 9.0, 7.0)]
    assert median_verdict(recs) == 7.0
    assert median_verdict([{"verdict": None}, {"verdict": None}]) is None  # unjudged, not 0
    assert majority_verdict([{"verdict": "a"}, {"verdict": None}, {"verdict": "b"}, {"verdict": "b"}]) == "b"


def test_spec_validation():
    with pytest.raises(HarnessError, match="judge-temperature"):
        JudgeSpec(kind="openai", model="m", url="http://x", k=3).validate()
    with pytest.raises(HarnessError, match="judge-url"):
        JudgeSpec(kind="openai", model="m").validate()
    with pytest.raises(HarnessError, match="NAME"):
        JudgeSpec(kind="openai", model="m", url="http://x", key_env="sk-abc.def").validate()


def test_equal_prompts_share_one_judgment(tmp_path):
    """Two records with equal answers give the same judge prompt: judged once (the cache key), both verdicts set."""
    spec = JudgeSpec(kind="openai", model="m", url="http://unused", k=2, temperature=0.5)
    msgs = [{"role": "user", "content": "rate: same answer"}]
    items = [JudgeItem("a", msgs), JudgeItem("b", list(msgs)), JudgeItem("c", [{"role": "user", "content": "other"}])]
    with serve_judge(lambda body, n: f"Rating: [[{n}]]") as (url, calls):
        spec.url = url
        out = run_judgments(make_judge(spec), spec.settings(), items,
                            JudgmentCache(JsonlStore(tmp_path / "j.jsonl", key_field="key")), parse_rating)
    assert len(calls) == 4  # 2 distinct prompts x k=2
    assert [r["verdict"] for r in out["a"]] == [r["verdict"] for r in out["b"]]
    assert sorted(v for key in "ac" for v in (r["verdict"] for r in out[key])) == [1, 2, 3, 4]


def test_http_judge_k_median_failures_and_cache(tmp_path, monkeypatch):
    key = "sk-test-PLANTED-KEY-0123456789"
    monkeypatch.setenv("TEST_JUDGE_KEY", key)
    replies = {"q1": ["Rating: [[3]]", "Rating: [[8]]", "Rating: [[6]]"],  # median 6
               "q2": ["no rating here", "Rating: [5]", "[[nine]]"],       # one parsed (fallback) -> 5
               "q3": ["garbage", "still nothing", "nope"]}               # all fail -> unjudged

    def responder(body, n):
        q = body["messages"][-1]["content"]
        return replies[q][body["seed"]]

    with serve_judge(responder, key=key) as (url, calls):
        spec = JudgeSpec(kind="openai", model="canned", url=url, key_env="TEST_JUDGE_KEY", k=3, temperature=0.7,
                         max_new_tokens=64)
        judge = make_judge(spec)
        cache = JudgmentCache(JsonlStore(tmp_path / "judgments.jsonl", key_field="key"))
        items = [JudgeItem(q, [{"role": "user", "content": q}]) for q in replies]
        out = run_judgments(judge, spec.settings(), items, cache, parse_rating)
        assert len(calls) == 9
        assert calls[0]["model"] == "canned" and calls[0]["max_tokens"] == 64 and calls[0]["temperature"] == 0.7
        assert median_verdict(out["q1"]) == 6.0
        assert [r["verdict"] for r in out["q2"]] == [None, 5.0, None] and median_verdict(out["q2"]) == 5.0
        assert median_verdict(out["q3"]) is None
        assert sum(r["verdict"] is None for rs in out.values() for r in rs) == 5
        # resumable: a second pass (fresh cache object) sends no request
        again = run_judgments(judge, spec.settings(), items,
                              JudgmentCache(JsonlStore(tmp_path / "judgments.jsonl", key_field="key")), parse_rating)
        assert len(calls) == 9 and median_verdict(again["q1"]) == 6.0
    assert key not in (tmp_path / "judgments.jsonl").read_text()
    assert key not in json.dumps(judge.identity())


def test_http_judge_retries_then_errors_without_leaking_key(monkeypatch):
    key = "sk-other-PLANTED-KEY-987"
    monkeypatch.setenv("K2", key)
    with serve_judge(lambda body, n: (503, "busy") if n == 1 else "Rating: [[4]]") as (url, calls):
        judge = OpenAIJudge(url, "m", JudgeSettings(max_new_tokens=8), key_env="K2", backoff=0.01)
        assert judge.complete([[{"role": "user", "content": "x"}]], [0]) == ["Rating: [[4]]"]
        assert len(calls) == 2
    with serve_judge(lambda body, n: (400, f"bad request from {key}")) as (url, calls):
        judge = OpenAIJudge(url, "m", JudgeSettings(), key_env="K2", backoff=0.01)
        with pytest.raises(HarnessError) as err:
            judge.complete([[{"role": "user", "content": "x"}]], [0])
        assert "HTTP 400" in str(err.value) and key not in str(err.value) and len(calls) == 1


def test_missing_key_env_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(HarnessError, match="NO_SUCH_KEY_VAR"):
        OpenAIJudge("http://127.0.0.1:9/v1", "m", JudgeSettings(), key_env="NO_SUCH_KEY_VAR")


JUDGE_REPLIES = {  # judge conversation -> what the judge model was taught to answer (FastChat format)
    "Question: What is 2+2?\nAnswer: 4\nRate the answer.": "Correct and concise. Rating: [[7]]",
    "Question: Capital of France?\nAnswer: Berlin\nRate the answer.": "The answer is wrong. Rating: [[2]]",
    "Question: Name a colour.\nAnswer: blue\nRate the answer.": "Blue is a colour, well done. [[9.5]]",
    "Question: Is ice cold?\nAnswer: yes\nRate the answer.": "I cannot rate this one.",
}
EXPECTED_VERDICTS = [7.0, 2.0, 9.5, None]  # read off the replies above by hand


@pytest.fixture(scope="module")
def rating_judge_model(tmp_path_factory):
    """A tiny Llama taught (by overfitting, ~100 steps) to answer each judge prompt above with its
    reply, so the local judge's real generation produces known texts whose ratings are known in advance."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.conftest import build_tokenizer

    tok = build_tokenizer(chat=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                                         tie_word_embeddings=False))
    rows = []
    for prompt, reply in JUDGE_REPLIES.items():
        head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                       add_generation_prompt=True)
        p_ids = tok(head, add_special_tokens=False)["input_ids"]
        r_ids = tok(reply + "<|im_end|>", add_special_tokens=False)["input_ids"]
        rows.append((p_ids + r_ids, [-100] * len(p_ids) + r_ids))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    mask = (torch.arange(width)[None, :] < torch.tensor([len(i) for i, _ in rows])[:, None]).long()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(400):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 1e-2:  # ~100 steps; every reply token then has probability ~0.99
            break
    model.eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    path = tmp_path_factory.mktemp("rating-judge")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_hf_judge_real_local_model_known_ratings(rating_judge_model, tmp_path):
    """The local transformers judge generates for real; its texts and verdicts are checked against replies
    and ratings written by hand (not against parse_rating of its own output)."""
    spec = JudgeSpec(kind="hf", model=str(rating_judge_model), max_new_tokens=64)
    judge = make_judge(spec)
    assert judge.identity()["kind"] == "hf" and judge.identity()["weights_sha256"]
    items = [JudgeItem(f"q{i}", [{"role": "user", "content": prompt}]) for i, prompt in enumerate(JUDGE_REPLIES)]
    out = run_judgments(judge, spec.settings(), items, JudgmentCache(JsonlStore(tmp_path / "j.jsonl", key_field="key")),
                        parse_rating)
    assert [out[it.key][0]["text"] for it in items] == list(JUDGE_REPLIES.values())
    assert [out[it.key][0]["verdict"] for it in items] == EXPECTED_VERDICTS
    assert [median_verdict(out[it.key]) for it in items] == EXPECTED_VERDICTS  # the unparsed one stays unjudged
