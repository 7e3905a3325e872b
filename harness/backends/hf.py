"""`transformers` backend: batched greedy/sampled generation with a batch that shrinks as rows finish.

Requests are sorted by prompt length (least padding), left-padded, and decoded with an explicit
KV-cache loop: a row that hits EOS, a stop string or its token cap leaves the batch at once, so
finished sequences stop costing compute (HF `generate` keeps them until the longest row ends).
Outputs are returned in the original order.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from harness.backends.base import Generation, Request, cut_at_stop
from harness.errors import HarnessError
from harness.prompting import render, uses_chat


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
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 32
    threads: int | None = None
    trust_remote_code: bool = False


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
    from transformers import AutoModelForCausalLM

    device = pick_device(cfg.device)
    dtype = pick_dtype(cfg.dtype, device)
    tok = load_tokenizer(path, cfg.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.to(device).eval()
    return model, tok


class HFBackend:
    name = "transformers"

    def __init__(self, model, tokenizer, cfg: BackendConfig):
        self.model = model
        self.tok = tokenizer
        self.cfg = cfg
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.eos_ids = self._eos_ids()
        # prefill computes logits for the last position only (the full [batch, width, vocab] matmul is wasted work)
        params = inspect.signature(self.model.forward).parameters
        self._last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    def _eos_ids(self) -> set[int]:
        ids = set()
        gc_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for v in (self.tok.eos_token_id, gc_eos):
            if isinstance(v, int):
                ids.add(v)
            elif isinstance(v, (list, tuple)):
                ids.update(int(x) for x in v)
        for special in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>"):
            tid = self.tok.convert_tokens_to_ids(special) if special in self.tok.get_vocab() else None
            if tid is not None:
                ids.add(tid)
        return ids

    def settings(self) -> dict:
        return {"backend": self.name, "dtype": str(self.dtype).replace("torch.", ""), "device": str(self.device),
                "batch_size": self.cfg.batch_size, "threads": torch.get_num_threads()}

    def stops_for(self, req: Request) -> list[str]:
        chat = uses_chat(self.tok, req.chat)
        return list(req.gen.stop) + ([] if chat else list(req.gen.stop_plain))

    def generate(self, requests: list[Request], progress: tqdm | None = None) -> list[Generation]:
        prompts = [render(self.tok, r.messages, r.chat, r.assistant_prefix) for r in requests]
        encoded = [self.tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        bos = self.tok.bos_token_id
        if bos is not None and getattr(self.tok, "add_bos_token", False):
            encoded = [ids if ids[:1] == [bos] else [bos] + ids for ids in encoded]
        order = sorted(range(len(requests)), key=lambda i: -len(encoded[i]))
        results: list[Generation | None] = [None] * len(requests)
        bs = max(1, self.cfg.batch_size)
        for start in range(0, len(order), bs):
            idx = order[start : start + bs]
            outs = self._generate_batch([encoded[i] for i in idx], [requests[i] for i in idx], progress)
            for i, (text, n_new, finish) in zip(idx, outs):
                results[i] = Generation(text, prompts[i], len(encoded[i]), n_new, finish)
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(self, batch: list[list[int]], reqs: list[Request], progress) -> list[tuple[str, int, str]]:
        n = len(batch)
        width = max(len(x) for x in batch)
        pad = self.tok.pad_token_id
        input_ids = torch.full((n, width), pad, dtype=torch.long)
        attn = torch.zeros((n, width), dtype=torch.long)
        for r, ids in enumerate(batch):
            input_ids[r, width - len(ids):] = torch.tensor(ids)
            attn[r, width - len(ids):] = 1
        input_ids, attn = input_ids.to(self.device), attn.to(self.device)
        stops = [self.stops_for(r) for r in reqs]
        caps = [r.gen.max_new_tokens for r in reqs]
        sampling = [r.gen.temperature > 0 for r in reqs]
        gens = [torch.Generator(device="cpu").manual_seed(r.seed) for r in reqs]
        new_tokens: list[list[int]] = [[] for _ in range(n)]
        finish = ["length"] * n
        alive = list(range(n))  # original row of each row still in the batch
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, attention_mask=attn, position_ids=pos, use_cache=True,
                         **self._last_logits_only)
        cache = out.past_key_values
        logits = out.logits[:, -1, :]
        for _step in range(max(caps)):
            next_ids = self._pick(logits, [reqs[r] for r in alive], [sampling[r] for r in alive],
                                  [gens[r] for r in alive])
            keep = []
            for j, (r, tid) in enumerate(zip(alive, next_ids.tolist())):
                done = False
                if tid in self.eos_ids:
                    finish[r], done = "eos", True
                else:
                    new_tokens[r].append(tid)
                    if stops[r] and self._hit_stop(new_tokens[r], stops[r]):
                        finish[r], done = "stop", True
                    elif len(new_tokens[r]) >= caps[r]:
                        finish[r], done = "length", True
                if done and progress is not None:
                    progress.update(1)
                if not done:
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(alive):
                sel = torch.tensor(keep, device=self.device)
                _select_rows(cache, sel)
                attn, next_ids = attn[sel], next_ids[sel]
                alive = [alive[j] for j in keep]
            attn = torch.cat([attn, attn.new_ones((len(alive), 1))], dim=-1)
            pos = (attn.sum(-1, keepdim=True) - 1)
            out = self.model(input_ids=next_ids[:, None], attention_mask=attn, position_ids=pos,
                             past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :]
        else:
            if progress is not None:
                progress.update(len(alive))
        results = []
        for r in range(n):
            text = self.tok.decode(new_tokens[r], skip_special_tokens=True)
            text, hit = cut_at_stop(text, stops[r])
            if hit and finish[r] == "length":
                finish[r] = "stop"
            results.append((text, len(new_tokens[r]), finish[r]))
        return results

    def _pick(self, logits: torch.Tensor, reqs: list[Request], sampling: list[bool], gens) -> torch.Tensor:
        greedy = logits.argmax(-1)
        if not any(sampling):
            return greedy
        out = greedy.clone()
        for j, (req, s) in enumerate(zip(reqs, sampling)):
            if s:
                probs = torch.softmax(logits[j].float() / req.gen.temperature, -1)
                if req.gen.top_p < 1.0:
                    sp, si = probs.sort(descending=True)
                    mask = sp.cumsum(-1) - sp > req.gen.top_p
                    sp[mask] = 0
                    probs = torch.zeros_like(probs).scatter_(0, si, sp)
                out[j] = torch.multinomial(probs.cpu(), 1, generator=gens[j]).to(out.device)[0]
        return out

    def _hit_stop(self, tokens: list[int], stops: list[str]) -> bool:
        tail = self.tok.decode(tokens[-8:], skip_special_tokens=True)
        return any(s in tail for s in stops)


def _select_rows(cache, sel: torch.Tensor) -> None:
    """Keep only rows `sel` of a KV cache (transformers 4.57 and 5.x)."""
    if hasattr(cache, "batch_select_indices"):
        cache.batch_select_indices(sel)
    else:
        cache.reorder_cache(sel)

