"""The transformers backend's continuous batching: same outputs as one-at-a-time decoding, fewer steps."""

from __future__ import annotations

import pytest

from harness.backends.base import Request
from harness.backends.hf import HFBackend
from harness.loading import BackendConfig, load_model_and_tokenizer
from harness.task_config import GenerationConfig

WORDS = "the cat sat on a mat while seven green birds sang about rain and the old city".split()


def _requests(n: int = 13) -> list[Request]:
    reqs = []
    for i in range(n):
        prompt = " ".join(WORDS[: 2 + (i * 5) % len(WORDS)])
        cap = [3, 17, 6, 30, 1, 11][i % 6]  # rows finish at very different steps
        gen = GenerationConfig(max_new_tokens=cap, stop_plain=["\n"] if i % 3 == 0 else [])
        reqs.append(Request(id=str(i), messages=[{"role": "user", "content": prompt}], gen=gen, chat="off"))
    return reqs


def _backend(path, **kw) -> HFBackend:
    cfg = BackendConfig(dtype="float32", device="cpu", **kw)
    return HFBackend(*load_model_and_tokenizer(path, cfg), cfg)


def _count_forwards(backend: HFBackend) -> list[int]:
    calls = []
    backend.model.register_forward_pre_hook(lambda mod, args, kwargs: calls.append(1), with_kwargs=True)
    return calls


@pytest.mark.parametrize("arch", ["llama", "llama-untied", "qwen2", "gemma3"])
def test_batched_outputs_equal_one_at_a_time(tiny_model_factory, arch):
    path = tiny_model_factory(arch, False)
    reqs = _requests()
    alone = _backend(path, batch_size=1).generate(reqs)
    for kw in ({"batch_size": 4}, {"batch_size": 4, "refill_min_free": 2}, {"batch_size": 4, "scheduler": "static"}):
        got = _backend(path, **kw).generate(reqs)
        assert ([(g.text, g.n_new_tokens, g.finish) for g in got]
                == [(g.text, g.n_new_tokens, g.finish) for g in alone]), kw
    assert len({g.n_new_tokens for g in alone}) >= 4  # rows really did finish at different steps


def test_continuous_batching_refills_freed_rows(tiny_model_factory):
    path = tiny_model_factory("llama-untied", False)  # the tied tiny Llama repeats one token: outputs say little
    reqs = _requests(24)
    static, cont = _backend(path, batch_size=6, scheduler="static"), _backend(path, batch_size=6)
    n_static, n_cont = _count_forwards(static), _count_forwards(cont)
    a, b = static.generate(reqs), cont.generate(reqs)
    assert [g.text for g in a] == [g.text for g in b]
    # static batches run until their longest row ends; refilling keeps the batch full
    assert len(n_cont) < 0.8 * len(n_static), (len(n_cont), len(n_static))
    assert cont.settings()["scheduler"] == "continuous" and static.settings()["scheduler"] == "static"


def test_sliding_window_model_falls_back_to_static_batches(tiny_model_factory):
    path = tiny_model_factory("gemma3", False)
    backend = _backend(path, batch_size=4, scheduler="continuous")
    calls = _count_forwards(backend)
    backend.generate(_requests(8))
    static = _backend(path, batch_size=4, scheduler="static")
    calls_static = _count_forwards(static)
    static.generate(_requests(8))
    assert len(calls) == len(calls_static)


def test_auto_scheduler_is_static_in_half_precision(tiny_model):
    cfg = BackendConfig(dtype="bfloat16", device="cpu")
    assert HFBackend(*load_model_and_tokenizer(tiny_model, cfg), cfg).settings()["scheduler"] == "static"
    assert _backend(tiny_model).settings()["scheduler"] == "continuous"


def test_loaders_apply_the_configured_thread_count(tiny_model):
    """A Python caller who only loads a model (no CLI, no mt_harness.api) still gets BackendConfig.threads."""
    import torch

    from harness.loading import load_for_training

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        load_model_and_tokenizer(tiny_model, BackendConfig(dtype="float32", threads=1))
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        load_for_training(tiny_model, BackendConfig(threads=1))
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        # threads unset: left as the caller set them
        load_model_and_tokenizer(tiny_model, BackendConfig(dtype="float32"))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
