"""Device, dtype and thread policy, and tokenizer/model loading: the one place both training and generation
load weights from.

Generation backends (`harness.backends`) and method trainers (`methods/*/train.py`) call these; building a
generation backend from loaded weights is `harness.backends.factory`. Nothing here generates.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.errors import HarnessError

# transformers draws a "Loading weights" (and, after a GGUF conversion, "Writing model shards") bar every time a
# model loads: seconds of noise per run here. `harness` sets HARNESS_QUIET_LOAD_BARS=1 to drop exactly those bars
# (downloads and the one-time GGUF conversion keep theirs); the Python API leaves transformers as it is.
QUIET_BARS = ("Loading weights", "Writing model shards")


def _quiet_hook(factory, args, kwargs):
    if kwargs.get("desc") in QUIET_BARS:
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


def quiet_load_bars() -> None:
    """Install the hook that drops QUIET_BARS when HARNESS_QUIET_LOAD_BARS=1 (idempotent).

    Called on import and again by `mt_harness.cli.main` after it sets the variable: in a process that imported this
    module first (a test session, a notebook that later calls main), the import-time call saw no variable."""
    if os.environ.get("HARNESS_QUIET_LOAD_BARS") != "1":
        return
    from transformers.utils import logging as hf_logging

    if hasattr(hf_logging, "set_tqdm_hook"):  # absent in transformers < 5 (the COMET environment)
        hf_logging.set_tqdm_hook(_quiet_hook)


quiet_load_bars()


def pick_device(requested: str = "auto") -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(amx_bf16|avx512_bf16)\b", flags))


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if requested != "auto":
        if requested not in table:
            raise HarnessError(f"--dtype {requested}: use auto, float32, bfloat16 or float16")
        return table[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    return torch.float32


def set_threads(n: int | None) -> int:
    """Set torch's intra-op threads explicitly (oversubscription makes CPU generation ~5x slower)."""
    if not n:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


@dataclass
class BackendConfig:
    """How weights are loaded and run (the --dtype/--device/--batch-size/--threads/--scheduler options)."""

    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 32
    threads: int | None = None
    trust_remote_code: bool = False
    # continuous: refill freed batch rows from the queue; static: fixed batches that only shrink as rows
    # finish; auto: continuous in float32, static in bf16/fp16, where a row's arithmetic depends on its
    # batch neighbours and static batches keep outputs identical to a plain `generate` loop
    scheduler: str = "auto"
    refill_min_free: int = 1  # continuous: admit waiting requests once this many rows are free
    # sdpa: transformers' attention; matmul: grouped matmuls for decode steps (faster on CPU, not bit-identical in
    # bf16; harness.backends.decode_attention)
    decode_attention: str = "sdpa"
    # CPU inference: linear weights pre-packed for oneDNN (harness.backends.prepack; one extra copy of the weights).
    # auto: bf16 weights (bit-identical to F.linear, faster decoding); all: fp32 too (faster, not bit-identical to
    # F.linear's MKL sgemm); off: plain F.linear
    prepack: str = "auto"


def device_and_dtype(cfg: BackendConfig) -> tuple[torch.device, torch.dtype]:
    """The device and dtype that generation with `cfg` uses."""
    device = pick_device(cfg.device)
    return device, pick_dtype(cfg.dtype, device)


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    """AutoTokenizer, falling back to PreTrainedTokenizerFast for folders saved by transformers 5
    (`tokenizer_class: TokenizersBackend`, unknown to transformers 4.57)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except ValueError as e:
        if "TokenizersBackend" not in str(e):
            raise
        return PreTrainedTokenizerFast.from_pretrained(path)


def load_model_and_tokenizer(path: str | Path, cfg: BackendConfig, adapter: str | Path | None = None):
    """Causal LM (+ a peft adapter merged in) on `cfg`'s device and dtype, in eval mode, and its tokenizer.
    `cfg.threads`, when set, is applied here too, so a Python caller who only builds a backend gets it."""
    from transformers import AutoModelForCausalLM

    if cfg.threads:
        set_threads(cfg.threads)
    device, dtype = device_and_dtype(cfg)
    tok = load_tokenizer(path, cfg.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.to(device).eval()
    return model, tok


def load_for_training(path, backend_cfg: BackendConfig):
    """Tokenizer (pad = eos when unset) + model in float32 (the training loop casts to the configured precision).
    `backend_cfg.threads`, when set, is applied (as in load_model_and_tokenizer)."""
    from transformers import AutoModelForCausalLM

    if backend_cfg.threads:
        set_threads(backend_cfg.threads)
    tok = load_tokenizer(path, backend_cfg.trust_remote_code)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                 trust_remote_code=backend_cfg.trust_remote_code)
    return model, tok


def keeps_logits(model) -> bool:
    """Whether `model` can compute logits at chosen positions only (`logits_to_keep`; DDP and peft unwrapped).
    The output layer is a fifth of a small model's compute per token: prefill, training and drift skip it where
    its logits are not needed."""
    import inspect

    base = getattr(model, "module", model)  # DDP
    base = base.get_base_model() if hasattr(base, "get_base_model") else base  # peft
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def load_frozen(path: str | Path, trust_remote_code: bool = False, dtype: torch.dtype = torch.float32,
                model_class=None):
    """A partner model of a composite method (relay's source/target LLMs, XBridge's NMT model and LLM) and its
    tokenizer (pad = eos when unset): every parameter frozen (requires_grad False), eval mode, on the CPU in
    `dtype`; the method moves it and switches on what it trains. `model_class`: a transformers class with
    `from_pretrained` (default AutoModelForCausalLM; e.g. M2M100ForConditionalGeneration)."""
    if model_class is None:
        from transformers import AutoModelForCausalLM as model_class

    tok = load_tokenizer(path, trust_remote_code)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = model_class.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), tok


def merge_adapter(model, adapter: str | Path):
    """`model` with the peft adapter saved in folder `adapter` merged into its weights."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
