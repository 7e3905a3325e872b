"""vLLM backend: the pure mapping code is tested with fake objects shaped like vLLM's outputs.

Nothing here runs vLLM itself except `test_vllm_generates_like_transformers`, which needs vllm and a
CUDA GPU and is skipped otherwise.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from harness.backends.base import Request
from harness.backends.vllm import (VLLMConfig, encode_prompt, llm_kwargs, map_output, sampling_kwargs,
                                   stops_for)
from mt_harness.cli import main
from harness.errors import HarnessError
from harness.task_config import GenerationConfig


def fake_output(text, token_ids, finish_reason, stop_reason=None, prompt_ids=(1, 2, 3)):
    comp = SimpleNamespace(text=text, token_ids=list(token_ids), finish_reason=finish_reason, stop_reason=stop_reason)
    return SimpleNamespace(prompt_token_ids=list(prompt_ids), outputs=[comp])


def test_sampling_kwargs_greedy_and_sampled():
    gen = GenerationConfig(max_new_tokens=7, temperature=0.0, top_p=0.5, stop=["###"])
    kw = sampling_kwargs(Request("a", [], gen, seed=3), ["###", ""])
    assert kw == {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_tokens": 7, "stop": ["###"],
                  "include_stop_str_in_output": False, "skip_special_tokens": True, "seed": 3}
    kw = sampling_kwargs(Request("b", [], GenerationConfig(temperature=0.7, top_p=0.9), seed=11), [])
    assert (kw["temperature"], kw["top_p"], kw["seed"], kw["max_tokens"]) == (0.7, 0.9, 11, 256)


def test_stop_plain_only_without_chat_template():
    from tests.conftest import build_tokenizer

    gen = GenerationConfig(stop=["</s>"], stop_plain=["\n"])
    chat_tok, plain_tok = build_tokenizer(chat=True), build_tokenizer(chat=False)
    assert stops_for(chat_tok, Request("a", [], gen, chat="auto")) == ["</s>"]
    assert stops_for(chat_tok, Request("a", [], gen, chat="off")) == ["</s>", "\n"]
    assert stops_for(plain_tok, Request("a", [], gen, chat="auto")) == ["</s>", "\n"]


def test_encode_prompt_matches_transformers_backend(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt = "German: Guten Tag\nEnglish:"
    assert encode_prompt(tok, prompt) == tok(prompt, add_special_tokens=False)["input_ids"]
    tok.add_bos_token = True  # tokenizers that add BOS get exactly one
    ids = encode_prompt(tok, prompt)
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id


@pytest.mark.parametrize("out,stops,expected", [
    (fake_output("Hello", [5, 6], "stop", None), ["\n"], ("Hello", "eos", 2)),  # EOS
    (fake_output("Hello", [5, 6, 7], "stop", "\n"), ["\n"], ("Hello", "stop", 3)),  # stop string
    (fake_output("Hello world", [5] * 4, "length"), ["\n"], ("Hello world", "length", 4)),  # token cap
    (fake_output("Hi\nthere", [5] * 3, "length"), ["\n"], ("Hi", "stop", 3)),  # stop not cut by the engine
])
def test_map_output(out, stops, expected):
    g = map_output(out, "the prompt", stops)
    assert (g.text, g.finish, g.n_new_tokens) == expected
    assert g.prompt == "the prompt" and g.n_prompt_tokens == 3


def test_aborted_request_is_a_clear_error():
    with pytest.raises(HarnessError, match="aborted"):
        map_output(fake_output("", [], "abort"), "p", [])


def test_llm_kwargs_pass_parallelism_and_lora(tmp_path):
    cfg = VLLMConfig(dtype="bfloat16", tensor_parallel_size=2, data_parallel_size=4, seed=5)
    kw = llm_kwargs("/m", cfg, None)
    assert kw["tensor_parallel_size"] == 2 and kw["data_parallel_size"] == 4 and kw["seed"] == 5
    assert "enable_lora" not in kw and kw["trust_remote_code"] is False
    assert "data_parallel_size" not in llm_kwargs("/m", VLLMConfig(), None)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 32}))
    kw = llm_kwargs("/m", cfg, tmp_path)
    assert kw["enable_lora"] is True and kw["max_lora_rank"] == 32
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(HarnessError, match="LoRA rank"):
        llm_kwargs("/m", cfg, tmp_path)


def test_cli_backend_vllm_without_vllm_is_one_line_error(capsys, tmp_path):
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed")
    except ImportError:
        pass
    rc = main(["run", "--tasks", "flores", "--backend", "vllm", "--limit", "1", "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: --backend vllm: vllm is not installed") and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_vllm_generates_like_transformers(tiny_model, data_dir):
    pytest.importorskip("vllm")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vllm needs a CUDA GPU")
    from harness.backends.hf import HFBackend
    from harness.backends.vllm import VLLMBackend
    from harness.loading import BackendConfig, load_model_and_tokenizer

    gen = GenerationConfig(max_new_tokens=16, stop_plain=["\n"])
    reqs = [Request(str(i), [{"role": "user", "content": f"German: Satz {i}\nEnglish:"}], gen, chat="off")
            for i in range(4)]
    hf = HFBackend(*load_model_and_tokenizer(tiny_model, BackendConfig(dtype="float32", device="cuda")),
                   BackendConfig())
    ours = VLLMBackend(tiny_model, VLLMConfig(dtype="float32", gpu_memory_utilization=0.3)).generate(reqs)
    ref = hf.generate(reqs)
    assert [g.prompt for g in ours] == [g.prompt for g in ref]
    assert [g.n_prompt_tokens for g in ours] == [g.n_prompt_tokens for g in ref]
    assert sum(a.text == b.text for a, b in zip(ours, ref)) >= 3  # kernels differ; greedy ties may flip
