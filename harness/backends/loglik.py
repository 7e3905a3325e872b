"""Log-likelihood scoring of (context, continuation) pairs for multiple-choice tasks.

Tokenisation follows lm-eval 0.4's `_encode_pair` exactly, so sums equal lm-eval's on the same pairs:
trailing whitespace of the context moves to the start of the continuation, the whole string is
encoded and split at the length of the encoded context (the tokenizer's own special-token default,
as lm-eval's HFLM uses it), and an empty context is replaced by the BOS (else EOS) token.

Speed: the requests of one document (its choices) are scored as a *group*. The longest token prefix
the group shares (the question; for WinoGrande the sentence up to the blank) is run once, its KV
cache is repeated for the group's rows, and only the differing tails are run on top of it. Groups of
several documents are batched together (left-padded prefixes, right-padded tails).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LoglikResult:
    logprob: float  # sum of the continuation tokens' log-probabilities
    is_greedy: bool  # every continuation token is the argmax of its position
    n_tokens: int  # number of continuation tokens


def tok_encode(tok, text: str) -> list[int]:
    """lm-eval HFLM.tok_encode with add_bos_token unset: the tokenizer's default special tokens, none when
    the text already starts with the BOS string."""
    prefix = prefix_token_id(tok)
    if prefix is not None and text.startswith(tok.decode([prefix])):
        return tok(text, add_special_tokens=False)["input_ids"]
    return tok(text)["input_ids"]


def prefix_token_id(tok) -> int | None:
    return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id


def encode_pair(tok, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as lm-eval builds them for a causal model."""
    if context == "":
        cont = tok_encode(tok, continuation)
        prefix = prefix_token_id(tok)
        return ([prefix], cont) if cont[:1] != [prefix] else ([prefix], cont[1:])
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok_encode(tok, context + continuation)
    ctx = tok_encode(tok, context)
    return ctx, whole[len(ctx):]


def model_max_length(model, tok, default: int = 2048) -> int:
    """The longest input, found as lm-eval's HFLM finds it (model config, else the tokenizer, else 2048)."""
    for cfg in (getattr(model.config, "text_config", None), model.config):
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(cfg, attr, None) if cfg is not None else None
            if value:
                return int(value)
    limit = getattr(tok, "model_max_length", None)
    return int(limit) if limit and limit < 10**12 else default


def truncate(ctx: list[int], cont: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """lm-eval's left truncation: the model input (context + continuation minus its last token) keeps its
    last `max_length` tokens."""
    if len(ctx) + len(cont) <= max_length + 1:
        return ctx, cont
    if len(cont) > max_length:
        raise ValueError(f"a continuation of {len(cont)} tokens exceeds the model's {max_length}-token window")
    return (ctx + cont)[-(max_length + 1):][:-len(cont)], cont


def shared_prefix_len(rows: list[tuple[list[int], list[int]]]) -> int:
    """Tokens every row's model input shares, never past the shortest context (its last position's logits
    must be the prefix's last logits or lie in the tail)."""
    inputs = [(c + k)[:-1] for c, k in rows]
    limit = min(min(len(c) for c, _ in rows), min(len(x) for x in inputs))
    n = 0
    while n < limit and all(x[n] == inputs[0][n] for x in inputs):
        n += 1
    return n


MIN_FILL = 0.75  # a tail joins the current chunk when it is at least this fraction of the chunk's longest


class LoglikScorer:
    """Scores groups of (context, continuation) pairs with a transformers causal LM."""

    def __init__(self, model, tok, batch_size: int = 32, share_prefix: bool = True):
        self.model, self.tok = model, tok
        self.batch_size = max(1, batch_size)
        self.share_prefix = share_prefix
        self.device = next(model.parameters()).device
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.max_length = model_max_length(model, tok)

    def score(self, groups: list[list[tuple[str, str]]], progress=None) -> list[list[LoglikResult]]:
        encoded = [[truncate(*encode_pair(self.tok, c, k), self.max_length) for c, k in g] for g in groups]
        for g, rows in zip(groups, encoded):
            for (c, k), (_, ids) in zip(g, rows):
                if not ids:
                    raise ValueError(f"continuation {k!r} of context {c[-40:]!r} encodes to no tokens")
        out: list[list[LoglikResult] | None] = [None] * len(groups)
        order = sorted(range(len(groups)), key=lambda i: -max(len(c) + len(k) for c, k in encoded[i]))
        batch: list[int] = []
        for i in order + [None]:
            if batch and (i is None or sum(len(encoded[j]) for j in batch) + len(encoded[i]) > self.batch_size):
                for j, res in zip(batch, self._score_batch([encoded[j] for j in batch])):
                    out[j] = res
                if progress is not None:
                    progress.update(len(batch))
                batch = []
            if i is not None:
                batch.append(i)
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _score_batch(self, groups: list[list[tuple[list[int], list[int]]]]) -> list[list[LoglikResult]]:
        prefixes = [shared_prefix_len(g) if self.share_prefix else 0 for g in groups]
        if any(prefixes):
            prefix_logits, cache, prefix_mask = self._prefix(
                [(g[0][0] + g[0][1])[:p] for g, p in zip(groups, prefixes)])
            if not _repeatable(cache):  # sliding-window caches: score whole rows instead
                prefixes = [0] * len(groups)
        rows = [(gi, c, k) for gi, g in enumerate(groups) for c, k in g]
        tails = [(c + k)[:-1][prefixes[gi]:] for gi, c, k in rows]
        shared = (cache, prefix_mask) if any(prefixes) else None
        logits = self._tails(tails, [gi for gi, _, _ in rows], shared)
        out: list[list[LoglikResult]] = [[] for _ in groups]
        for r, (gi, c, k) in enumerate(rows):
            p = prefixes[gi]
            first = len(c) - 1  # input position whose logits predict k[0]
            parts = [prefix_logits[gi][None]] if first == p - 1 else []
            lo = max(first - p, 0)
            if lo < len(k) + first - p:  # the continuation's other positions lie in the tail
                parts.append(logits[r][lo:len(k) + first - p].float())
            dist = torch.cat(parts)  # [len(k), vocab] raw logits, only the positions needed
            target = torch.tensor(k, device=dist.device)[:, None]
            logp = dist.gather(1, target)[:, 0] - torch.logsumexp(dist, -1)
            greedy = bool((dist.argmax(-1) == target[:, 0]).all())
            out[gi].append(LoglikResult(float(logp.sum()), greedy, len(k)))
        return out

    def _tails(self, tails: list[list[int]], group_of: list[int], shared) -> list[torch.Tensor | None]:
        """Logits of every tail position (None for an empty tail). Tails run right-padded on top of their
        group's prefix cache, longest first, in chunks of similar length (less padding)."""
        out: list[torch.Tensor | None] = [None] * len(tails)
        order = [r for r in sorted(range(len(tails)), key=lambda r: -len(tails[r])) if tails[r]]
        chunks: list[list[int]] = []
        for r in order:
            if chunks and len(tails[r]) >= MIN_FILL * len(tails[chunks[-1][0]]):
                chunks[-1].append(r)
            else:
                chunks.append([r])
        for chunk in chunks:
            width = len(tails[chunk[0]])
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, r in enumerate(chunk):
                ids[j, :len(tails[r])] = torch.tensor(tails[r], dtype=torch.long)
                mask[j, :len(tails[r])] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            if shared is not None:
                cache, prefix_mask = shared
                sel = torch.tensor([group_of[r] for r in chunk], device=self.device)
                pmask = prefix_mask[sel]
                pos = pmask.sum(-1, keepdim=True) + torch.arange(width, device=self.device)[None, :]
                logits = self.model(input_ids=ids, attention_mask=torch.cat([pmask, mask], dim=1), position_ids=pos,
                                    past_key_values=_select(cache, sel), use_cache=True).logits
            else:
                logits = self.model(input_ids=ids, attention_mask=mask).logits
            for j, r in enumerate(chunk):
                out[r] = logits[j, :len(tails[r])]
        return out

    def _prefix(self, prefixes: list[list[int]]):
        """Run the shared prefixes left-padded; returns (last-position logits in float32, KV cache, mask)."""
        width = max(len(p) for p in prefixes)
        ids = torch.full((len(prefixes), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prefixes), width), dtype=torch.long)
        for r, p in enumerate(prefixes):
            if p:
                ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
                mask[r, width - len(p):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        kw = {"logits_to_keep": 1} if _accepts(self.model, "logits_to_keep") else {}
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                         use_cache=True, **kw)
        return out.logits[:, -1, :].float(), out.past_key_values, mask


def _select(cache, sel: torch.Tensor):
    """A new cache holding rows `sel` (repeats allowed) of a plain growing cache; the original is untouched."""
    from transformers.cache_utils import DynamicCache

    new = DynamicCache()
    for i, layer in enumerate(cache.layers):
        new.update(layer.keys[sel], layer.values[sel], i)
    return new


def _accepts(model, name: str) -> bool:
    import inspect

    return name in inspect.signature(model.forward).parameters


def _repeatable(cache) -> bool:
    """Only plain growing cache layers can be row-repeated and extended (no sliding window)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)
