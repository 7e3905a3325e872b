"""Optional vLLM backend (`harness run --backend vllm`; `pip install -e .[vllm]`, needs a GPU).

Same contract as the transformers backend: `generate(list[Request]) -> list[Generation]` in order.
Prompts are rendered and tokenised by the harness (`harness.prompting.render`, same BOS rule as
`HFBackend`) and handed to vLLM as token ids, so both backends see identical prompts. A peft
adapter artifact is served as a LoRA request on the base model; tensor and data parallel sizes are
passed through to `vllm.LLM`. Log-likelihoods (multiple-choice tasks) come from `prompt_logprobs=1` on the
prompt context + continuation, tokenised as the transformers backend does (lm-eval's `_encode_pair`). The pure
parts (sampling kwargs, stop handling, result mapping, log-likelihood prompts and sums) are plain functions,
unit-tested without vLLM.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends.base import Capabilities, Generation, Request, cut_at_stop
from harness.errors import HarnessError
from harness.prompting import adds_bos, render, uses_chat


@dataclass
class VLLMConfig:
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    trust_remote_code: bool = False
    seed: int = 0


def require_vllm():
    try:
        import vllm
    except ImportError:
        raise HarnessError("--backend vllm: vllm is not installed; `pip install -e .[vllm]` on a CUDA machine, "
                           "or use --backend transformers") from None
    return vllm


def stops_for(tokenizer, req: Request) -> list[str]:
    """Stop strings of a request: `stop`, plus `stop_plain` when the prompt is rendered without a chat template."""
    return list(req.gen.stop) + ([] if uses_chat(tokenizer, req.chat) else list(req.gen.stop_plain))


def sampling_kwargs(req: Request, stops: list[str]) -> dict[str, Any]:
    """`vllm.SamplingParams(**kwargs)` for one request (greedy when temperature == 0)."""
    greedy = req.gen.temperature == 0
    return {
        "n": 1,
        "temperature": 0.0 if greedy else float(req.gen.temperature),
        "top_p": 1.0 if greedy else float(req.gen.top_p),
        "max_tokens": int(req.gen.max_new_tokens),
        "stop": [s for s in stops if s],
        "include_stop_str_in_output": False,
        "skip_special_tokens": True,
        "seed": int(req.seed),
    }


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Token ids exactly as `HFBackend` builds them (no special tokens, BOS only if the tokenizer adds one)."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and adds_bos(tokenizer) and ids[:1] != [bos]:
        ids = [bos] + ids
    return ids


def map_output(output: Any, prompt: str, stops: list[str]) -> Generation:
    """A vLLM `RequestOutput` → `Generation` (finish: eos / stop / length, as the transformers backend reports)."""
    comp = output.outputs[0]
    text, hit = cut_at_stop(comp.text, stops)  # vLLM already cuts; this keeps the contract if it did not
    if comp.finish_reason == "length":
        finish = "stop" if hit else "length"
    elif comp.finish_reason == "stop":
        finish = "stop" if isinstance(comp.stop_reason, str) or hit else "eos"
    else:
        raise HarnessError(f"vllm: request finished with {comp.finish_reason!r} (aborted); rerun to resume")
    return Generation(text=text, prompt=prompt, n_prompt_tokens=len(output.prompt_token_ids),
                      n_new_tokens=len(comp.token_ids), finish=finish)


def lora_rank(adapter: Path) -> int:
    cfg = adapter / "adapter_config.json"
    try:
        return int(json.loads(cfg.read_text())["r"])
    except (OSError, KeyError, ValueError) as e:
        raise HarnessError(f"{cfg}: cannot read the LoRA rank 'r' ({e}); is this a peft adapter folder?") from None


def llm_kwargs(model_path: str | Path, cfg: VLLMConfig, adapter: Path | None) -> dict[str, Any]:
    kw: dict[str, Any] = {"model": str(model_path), "tokenizer": str(model_path), "dtype": cfg.dtype,
                          "tensor_parallel_size": cfg.tensor_parallel_size, "seed": cfg.seed,
                          "gpu_memory_utilization": cfg.gpu_memory_utilization,
                          "trust_remote_code": cfg.trust_remote_code}
    if cfg.data_parallel_size > 1:
        kw["data_parallel_size"] = cfg.data_parallel_size
    if cfg.max_model_len:
        kw["max_model_len"] = cfg.max_model_len
    if adapter is not None:
        kw.update(enable_lora=True, max_lora_rank=max(8, lora_rank(adapter)), max_loras=1)
    return kw


class VLLMBackend:
    """Built by `harness.backends.factory.build_backend` for `--backend vllm`."""

    name = "vllm"
    capabilities = Capabilities(generate=True, loglik=True, hf_weights=False)  # the weights live inside vllm.LLM

    def __init__(self, model_path: str | Path, cfg: VLLMConfig, adapter: str | Path | None = None):
        vllm = require_vllm()
        self.cfg = cfg
        self.adapter = Path(adapter) if adapter else None
        self.llm = vllm.LLM(**llm_kwargs(model_path, cfg, self.adapter))
        self.tok = self.llm.get_tokenizer()
        self._sampling = vllm.SamplingParams
        self._lora = None
        if self.adapter is not None:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("artifact", 1, str(self.adapter))

    def settings(self) -> dict:
        return {"backend": self.name, "dtype": self.cfg.dtype, "device": "cuda",
                "tensor_parallel_size": self.cfg.tensor_parallel_size,
                "data_parallel_size": self.cfg.data_parallel_size, "lora": bool(self._lora)}

    def generate(self, requests: list[Request], progress=None) -> list[Generation]:
        prompts = [render(self.tok, r.messages, r.chat, r.assistant_prefix) for r in requests]
        stops = [stops_for(self.tok, r) for r in requests]
        inputs = [{"prompt_token_ids": encode_prompt(self.tok, p)} for p in prompts]
        params = [self._sampling(**sampling_kwargs(r, s)) for r, s in zip(requests, stops)]
        outputs = self.llm.generate(inputs, sampling_params=params, lora_request=self._lora, use_tqdm=False)
        if progress is not None:
            progress.update(len(requests))
        return [map_output(o, p, s) for o, p, s in zip(outputs, prompts, stops)]

    def loglikelihood(self, groups: list[list[tuple[str, str]]], progress=None) -> list:
        """Per group, a `LoglikResult` per (context, continuation) pair, from `prompt_logprobs`."""
        from harness.backends.loglik import LoglikResult

        max_len = self.llm.llm_engine.model_config.max_model_len
        prompts = loglik_prompts(self.tok, groups, max_len - 2)  # the prompt plus one generated token must fit
        params = self._sampling(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids, _ in prompts], sampling_params=params,
                                    lora_request=self._lora, use_tqdm=False)
        flat = [LoglikResult(*loglik_from_prompt_logprobs(ids, n, o.prompt_logprobs), n)
                for (ids, n), o in zip(prompts, outputs)]
        out, i = [], 0
        for g in groups:
            out.append(flat[i:i + len(g)])
            i += len(g)
        if progress is not None:
            progress.update(len(groups))
        return out


def backend_for_artifact(artifact, model, cfg: VLLMConfig) -> VLLMBackend:
    """vLLM backend for a method artifact (None: the untouched base model): base weights, full weights, or base +
    LoRA adapter."""
    if artifact is None or artifact.kind in ("none", ""):
        return VLLMBackend(model.path, cfg)
    if artifact.kind == "full":
        return VLLMBackend(artifact.path, cfg)
    if artifact.kind == "adapter":
        return VLLMBackend(model.path, cfg, adapter=artifact.path)
    raise HarnessError(f"--backend vllm: artifacts of kind {artifact.kind!r} are not supported; "
                       f"use --backend transformers")


# -- log-likelihood scoring (prompt_logprobs) ------------------------------------------------------
def loglik_prompts(tokenizer, groups: list[list[tuple[str, str]]], max_length: int) -> list[tuple[list[int], int]]:
    """One (prompt token ids, continuation length) per pair, tokenised exactly as the transformers backend
    (lm-eval's `_encode_pair` + left truncation). vLLM scores the whole prompt; the continuation is its tail."""
    from harness.backends.loglik import encode_pair, truncate

    out = []
    for group in groups:
        for context, continuation in group:
            ctx, cont = truncate(*encode_pair(tokenizer, context, continuation), max_length)
            out.append((ctx + cont, len(cont)))
    return out


def loglik_from_prompt_logprobs(prompt_ids: list[int], n_cont: int, prompt_logprobs: list) -> tuple[float, bool]:
    """(sum of the continuation tokens' log-probs, all of them greedy) from vLLM's `prompt_logprobs`: per
    prompt position None (the first) or a dict token id -> Logprob(logprob, rank), which always holds the
    actual token; with `prompt_logprobs=1` it also holds the top-1 token (rank 1)."""
    total, greedy = 0.0, True
    for pos in range(len(prompt_ids) - n_cont, len(prompt_ids)):
        entry = prompt_logprobs[pos]
        tid = prompt_ids[pos]
        if entry is None or tid not in entry:
            raise HarnessError(f"vllm: prompt_logprobs lack the token at position {pos}; cannot score")
        lp = entry[tid]
        total += float(getattr(lp, "logprob", lp))
        rank = getattr(lp, "rank", None)
        if rank is None:  # a plain float map: greedy when no other token has a higher log-prob
            rank = 1 + sum(float(getattr(v, "logprob", v)) > float(getattr(lp, "logprob", lp))
                           for k, v in entry.items() if k != tid)
        greedy = greedy and rank == 1
    return total, greedy
