"""The transformers backend against an independent reference: transformers' own `model.generate`.

Greedy, float32. The reference decodes each prompt alone (no padding, no batch neighbours) with
`model.generate`; our backend decodes the same prompts in batches of 3 and 5 (both schedulers,
continuous batching with refills at 1 and 2 free rows), prompts of 1 to 29 words, on tiny random
Llama, Qwen2 and Gemma 3 (its sliding window of 16 is shorter than the long prompts). The Llama has
untied embeddings: the suite's tied tiny Llama repeats its last token forever (every reply is one
token repeated), which would let a wrong KV cache or position pass unseen. So that every way
a row can end is exercised, one token the model does produce becomes an extra EOS id (the model's
generation_config lists it, as multi-EOS models do) and a letter it produces becomes a stop string.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
import torch

from harness.backends.base import Request
from harness.backends.hf import HFBackend
from harness.loading import BackendConfig, load_model_and_tokenizer
from harness.task_config import GenerationConfig

WORDS = ("the cat sat on a mat while seven green birds sang about rain and the old city woke up slowly "
         "under a grey sky full of kites").split()
CAPS = [5, 19, 2, 27, 9, 14, 1, 23]


def _requests(chat: str, stop: str | None = None, n: int = 11) -> list[Request]:
    reqs = []
    for i in range(n):
        prompt = " ".join(WORDS[: 1 + (i * 7) % len(WORDS)])  # 1 to 29 words
        gen = GenerationConfig(max_new_tokens=CAPS[i % len(CAPS)], stop=[stop] if stop and i % 2 else [])
        reqs.append(Request(id=str(i), messages=[{"role": "user", "content": prompt}], gen=gen, chat=chat))
    return reqs


def _reference(path, reqs: list[Request], chat: bool, extra_eos: int | None = None) -> list[dict]:
    """model.generate on each prompt alone; the prompt string is built here, not by harness.prompting."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    # the backend's end-of-reply policy: the tokenizer's EOS, the model's generation_config EOS ids, ChatML's <|im_end|>
    stop_ids = sorted({tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")} | ({extra_eos} - {None}))
    out = []
    for req in reqs:
        text = req.messages[0]["content"]
        if chat:
            text = f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"  # ChatML, written out by hand
        ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=req.gen.max_new_tokens,
                                 do_sample=False, eos_token_id=stop_ids, pad_token_id=tok.pad_token_id,
                                 temperature=None, top_p=None, top_k=None)
        new = gen[0, ids.shape[1]:].tolist()
        ended = bool(new) and new[-1] in stop_ids
        tokens = new[:-1] if ended else new
        decoded = tok.decode(tokens, skip_special_tokens=True)
        cuts = [decoded.find(s) for s in req.gen.stop if s in decoded]
        out.append({"prompt": text, "n_prompt": ids.shape[1], "tokens": tokens, "ended": ended,
                    "text": decoded[: min(cuts)] if cuts else decoded, "stopped": bool(cuts)})
    return out


def _with_extra_eos(path, tmp_path, token_id: int):
    """A copy of the model folder whose generation_config lists `token_id` as a second EOS id."""
    dst = tmp_path / "model"
    shutil.copytree(path, dst)
    cfg_path = dst / "generation_config.json"
    cfg = json.loads(cfg_path.read_text())
    first = cfg["eos_token_id"]
    cfg["eos_token_id"] = [first] if isinstance(first, int) else list(first)
    cfg["eos_token_id"].append(token_id)
    cfg_path.write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("arch", ["llama-untied", "qwen2", "gemma3"])
@pytest.mark.parametrize("chat", [False, True])
def test_backend_equals_model_generate(tiny_model_factory, tmp_path, arch, chat):
    base = tiny_model_factory(arch, chat)
    mode = "on" if chat else "off"
    plain = _reference(base, _requests(mode), chat)
    half = len(plain) / 2
    # an EOS the model produces mid-reply, in some replies only: from the longest reply, after its first step
    in_replies = Counter(t for r in plain for t in set(r["tokens"]))
    longest = max(plain, key=lambda r: len(r["tokens"]))
    extra_eos = next(t for t in longest["tokens"][1:] if in_replies[t] <= half)
    # a stop string the model produces: of the characters in the replies that get one (odd rows), the one
    # found in closest to half of them (a whole character: not the U+FFFD of a split multi-byte one)
    path = _with_extra_eos(base, tmp_path, extra_eos)
    stopped = _reference(path, _requests(mode), chat, extra_eos)[1::2]
    chars = Counter(c for r in stopped for c in set(r["text"][1:]) if c.isprintable() and c != "\ufffd")
    stop = min(chars, key=lambda c: (abs(chars[c] - len(stopped) / 2), c))
    reqs = _requests(mode, stop)
    ref = _reference(path, reqs, chat, extra_eos)
    assert len({r["n_prompt"] for r in ref}) >= 6  # prompts of many lengths
    assert len({len(r["tokens"]) for r in ref}) >= 3  # rows end at different steps
    assert any(r["ended"] for r in ref) and any(not r["ended"] for r in ref) and any(r["stopped"] for r in ref)

    for kw in ({"batch_size": 3, "scheduler": "continuous"},
               {"batch_size": 5, "scheduler": "continuous", "refill_min_free": 2},
               {"batch_size": 3, "scheduler": "static"}, {"batch_size": 5, "scheduler": "static"}):
        cfg = BackendConfig(dtype="float32", device="cpu", **kw)
        got = HFBackend(*load_model_and_tokenizer(path, cfg), cfg).generate(reqs)
        for g, r, req in zip(got, ref, reqs, strict=True):
            where = (kw, req.id, r["text"])
            assert g.prompt == r["prompt"] and g.n_prompt_tokens == r["n_prompt"], where
            assert g.text == r["text"], where
            if r["stopped"]:  # stopped at the stop string: a prefix of the reference's tokens
                assert g.finish == "stop" and g.n_new_tokens <= len(r["tokens"]), where
            else:
                assert g.n_new_tokens == len(r["tokens"]), where
                assert g.finish == ("eos" if r["ended"] else "length"), where
