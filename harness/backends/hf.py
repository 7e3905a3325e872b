"""`transformers` backend: greedy/sampled generation with continuous batching.

Requests are sorted by prompt length (least padding), left-padded, and decoded with an explicit
KV-cache loop: a row that hits EOS, a stop string or its token cap leaves the batch at once, and
waiting requests are prefilled and merged into the running KV cache as soon as enough rows are free,
so finished sequences stop costing compute (HF `generate` and lm-eval keep a batch until its longest
row ends). Models whose cache cannot be merged (sliding-window layers, e.g. Gemma 3) fall back to
static batches that still shrink as rows finish. The KV cache appends into spare capacity instead of
re-concatenating at every step (`harness.backends.kvcache`; same values). `scheduler: auto` uses
continuous batching in float32 only: in bf16/fp16 a row's rounding depends on its batch neighbours, and
static batches keep outputs identical to a plain `generate` loop at the same batch size. Outputs are
returned in the original order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from harness.backends.base import Capabilities, Generation, Request, cut_at_stop
from harness.backends.kvcache import merge, mergeable, new_cache, select_rows, trim_left
from harness.errors import HarnessError
from harness.loading import BackendConfig, keeps_logits
from harness.prompting import adds_bos, render, uses_chat


class HFBackend:
    """Built by `harness.backends.factory.build_backend` (weights loaded by `harness.loading`)."""

    name = "transformers"
    capabilities = Capabilities(generate=True, loglik=True, hf_weights=True)  # .model/.tok are transformers objects

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
        self.last_logits_only = {"logits_to_keep": 1} if keeps_logits(self.model) else {}
        if cfg.scheduler not in ("auto", "continuous", "static"):
            raise HarnessError(f"--scheduler {cfg.scheduler}: use auto, continuous or static")
        if cfg.decode_attention not in ("sdpa", "matmul"):
            raise HarnessError(f"--decode-attention {cfg.decode_attention}: use sdpa or matmul")
        if cfg.decode_attention == "matmul":
            if getattr(model.config, "_attn_implementation", None) != "sdpa":
                raise HarnessError(f"--decode-attention matmul needs a model using sdpa attention (this one uses "
                                   f"{model.config._attn_implementation}): use --decode-attention sdpa")
            from harness.backends.decode_attention import use_decode_matmul

            use_decode_matmul(model)
        self.continuous = cfg.scheduler == "continuous" or (cfg.scheduler == "auto" and self.dtype == torch.float32)
        from harness.backends.prepack import MODES, prepack

        if cfg.prepack not in MODES:
            raise HarnessError(f"--prepack {cfg.prepack}: use auto, all or off")
        self.prepacked = prepack(model, cfg.prepack, cfg.batch_size) if self.device.type == "cpu" else 0

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
                "batch_size": self.cfg.batch_size, "threads": torch.get_num_threads(),
                "scheduler": "continuous" if self.continuous else "static",
                **({"decode_attention": "matmul"} if self.cfg.decode_attention == "matmul" else {}),
                **({"prepack": self.cfg.prepack, "prepacked_linears": self.prepacked} if self.prepacked else {})}

    def loglikelihood(self, groups: list[list[tuple[str, str]]], progress: tqdm | None = None) -> list:
        """Per group (one document's requests), a `LoglikResult` per (context, continuation) pair."""
        from harness.backends.loglik import LoglikScorer

        return LoglikScorer(self.model, self.tok, self.cfg.batch_size).score(groups, progress)

    def stops_for(self, req: Request) -> list[str]:
        chat = uses_chat(self.tok, req.chat)
        return list(req.gen.stop) + ([] if chat else list(req.gen.stop_plain))

    def generate(self, requests: list[Request], progress: tqdm | None = None) -> list[Generation]:
        prompts = [render(self.tok, r.messages, r.chat, r.assistant_prefix) for r in requests]
        encoded = [self.tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        bos = self.tok.bos_token_id
        if bos is not None and adds_bos(self.tok):
            encoded = [ids if ids[:1] == [bos] else [bos] + ids for ids in encoded]
        rows = [DecodeRow(i, encoded[i], r, self.stops_for(r)) for i, r in enumerate(requests)]
        # longest prompts first: rows admitted together have similar lengths (little padding)
        todo = sorted((row for row in rows if row.req.gen.max_new_tokens > 0), key=lambda row: -len(row.prompt))
        self.decode(todo, progress)
        return [self.to_generation(row, prompts[row.index], len(row.prompt)) for row in rows]

    def to_generation(self, row: DecodeRow, shown_prompt: str, n_prompt_tokens: int) -> Generation:
        """A decoded row as a Generation: text cut at the first stop string (then finish "stop")."""
        text, hit = cut_at_stop(self.tok.decode(row.tokens, skip_special_tokens=True), row.stops)
        finish = "stop" if hit and row.finish == "length" else row.finish
        return Generation(text, shown_prompt, n_prompt_tokens, len(row.tokens), finish)

    # -- hooks for backends that build their own model inputs --------------------------------------------------------
    # A backend whose prompts are not token ids (relay: soft tokens as `inputs_embeds`; any cross-attention memory)
    # subclasses HFBackend, makes one `DecodeRow` per request (its own inputs in `row.inputs`), overrides `prefill`
    # and calls `decode(rows)` then `to_generation(row, ...)`: EOS, stop strings, sampling, continuous batching and
    # the KV cache stay this class's. Rows are decoded in the order given (sort them longest first).

    @torch.inference_mode()
    def decode(self, rows, progress=None) -> None:
        """Decode every row of `rows` (an iterable of DecodeRow; their `tokens`/`finish` are filled in), at most
        `batch_size` at a time.

        At the top of each step every active row has its next-token logits. Rows that finish leave the
        batch at once; with continuous batching, waiting rows are prefilled and merged into the KV cache
        as soon as enough slots are free, so the batch stays full until the queue runs dry.
        """
        pending = deque(rows)
        bs = max(1, self.cfg.batch_size)
        refill_at = max(1, self.cfg.refill_min_free)
        active: list[DecodeRow] = []
        cache = attn = logits = None
        refill = self.continuous
        while pending or active:
            free = bs - len(active)
            if pending and (not active or (refill and free >= min(refill_at, len(pending)))):
                new = [pending.popleft() for _ in range(min(free, len(pending)))]
                n_cache, n_attn, n_logits = self.prefill(new)
                if not active:
                    cache, attn, logits = n_cache, n_attn, n_logits
                    refill = refill and mergeable(cache)
                else:
                    attn = merge(cache, attn, n_cache, n_attn)
                    logits = torch.cat([logits, n_logits])
                active += new
            next_ids = self._pick(logits, active)
            keep = [j for j, (row, tid) in enumerate(zip(active, next_ids.tolist())) if not self._advance(row, tid)]
            if progress is not None and len(keep) < len(active):
                progress.update(len(active) - len(keep))
            if not keep:
                active, cache = [], None
                continue
            if len(keep) < len(active):
                sel = torch.tensor(keep, device=self.device)
                select_rows(cache, sel)
                attn, next_ids = attn[sel], next_ids[sel]
                if refill:  # static batches keep their width: same arithmetic as a plain `generate` loop
                    attn = trim_left(cache, attn)
                active = [active[j] for j in keep]
            attn = torch.cat([attn, attn.new_ones((len(active), 1))], dim=-1)
            out = self.model(input_ids=next_ids[:, None], attention_mask=attn,
                             position_ids=attn.sum(-1, keepdim=True) - 1, past_key_values=cache, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1, :]

    def prefill(self, rows: list[DecodeRow]):
        """The hook a backend overrides to feed its own inputs: run the model over the rows' prompts (left-padded)
        and return (KV cache, attention mask [rows, width], next-token logits [rows, vocab]). Positions must count
        from each row's first real token, so that a row's result does not depend on its batch neighbours.
        `self.last_logits_only` (kwargs) makes the model compute the last position's logits only."""
        width = max(len(row.prompt) for row in rows)
        input_ids = torch.full((len(rows), width), self.tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            input_ids[r, width - len(row.prompt):] = torch.tensor(row.prompt)
            attn[r, width - len(row.prompt):] = 1
        input_ids, attn = input_ids.to(self.device), attn.to(self.device)
        cache = new_cache(self.model)
        out = self.model(input_ids=input_ids, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0),
                         use_cache=True, **({"past_key_values": cache} if cache is not None else {}),
                         **self.last_logits_only)
        return out.past_key_values, attn, out.logits[:, -1, :]

    def _advance(self, row: DecodeRow, tid: int) -> bool:
        """Append token `tid` to `row`; True when the row is finished."""
        if tid in self.eos_ids:
            row.finish = "eos"
            return True
        row.tokens.append(tid)
        if row.stops and self._hit_stop(row.tokens, row.stops):
            row.finish = "stop"
            return True
        return len(row.tokens) >= row.req.gen.max_new_tokens

    def _pick(self, logits: torch.Tensor, rows: list[DecodeRow]) -> torch.Tensor:
        greedy = greedy_ids(logits)
        if all(row.req.gen.temperature <= 0 for row in rows):
            return greedy
        out = greedy.clone()
        for j, row in enumerate(rows):
            gen = row.req.gen
            if gen.temperature > 0:
                probs = torch.softmax(logits[j].float() / gen.temperature, -1)
                if gen.top_p < 1.0:
                    sp, si = probs.sort(descending=True)
                    sp[sp.cumsum(-1) - sp > gen.top_p] = 0
                    probs = torch.zeros_like(probs).scatter_(0, si, sp)
                out[j] = torch.multinomial(probs.cpu(), 1, generator=row.rng).to(out.device)[0]
        return out

    def _hit_stop(self, tokens: list[int], stops: list[str]) -> bool:
        tail = self.tok.decode(tokens[-8:], skip_special_tokens=True)
        return any(s in tail for s in stops)


def greedy_ids(logits: torch.Tensor) -> torch.Tensor:
    """`logits.argmax(-1)`, computed in float32 on CPU: the same ids (the upcast is exact and ties still go to the
    first index), but torch's bf16/fp16 argmax on CPU is ~2.5x slower than an upcast plus fp32 argmax, and at batch
    32 over a 49k vocabulary it was ~5 % of a bf16 decode step (bench/RESULTS.md, long generations)."""
    if logits.device.type == "cpu" and logits.dtype in (torch.bfloat16, torch.float16):
        logits = logits.float()
    return logits.argmax(-1)


@dataclass
class DecodeRow:
    index: int  # position in the caller's request list
    prompt: list[int]
    req: Request
    stops: list[str]
    tokens: list[int] = field(default_factory=list)
    finish: str = "length"
    rng: torch.Generator | None = None
    inputs: Any = None  # what a backend's own `prefill` needs besides `prompt` (relay: the encoded source)

    def __post_init__(self):
        if self.req.gen.temperature > 0:
            self.rng = torch.Generator(device="cpu").manual_seed(self.req.seed)
