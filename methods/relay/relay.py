"""Relay Decoding's model: a frozen source LLM, a trainable map, a frozen (or LoRA-tuned) target LLM.

    source LLM (tokenizer A) reads   source_prompt(x)            -> hidden states H (layer `layer`)
    map                               H -> S (soft tokens in the target LLM's embedding space)
    target LLM (tokenizer B) reads   [S ; embed_B(target_prompt) ; (y + eos when training)]

Nothing here assumes a shared vocabulary: the source side is tokenized by A only, the target side by
B only, and the two meet as vectors. Both models are left-padded; every forward pass gets an explicit
attention mask and position ids counted from the first real position of each row, so a row's result
does not depend on its batch neighbours' lengths (tests/test_relay.py checks batched == one at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.prompting import adds_bos

IGNORE = -100


class LinearMap(nn.Module):
    """The paper's map: one linear layer d_source -> d_target applied to every source state."""

    def __init__(self, d_source: int, d_target: int, out_rms: float):
        super().__init__()
        self.proj = nn.Linear(d_source, d_target)
        # initial outputs have the RMS of the target's token embeddings (for unit-RMS inputs)
        nn.init.normal_(self.proj.weight, std=out_rms / d_source ** 0.5)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj(h), mask


class CrossAttentionMap(nn.Module):
    """Variant: `n_queries` learned queries cross-attend over the source states -> n_queries soft tokens."""

    def __init__(self, d_source: int, d_target: int, out_rms: float, n_queries: int, heads: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_queries, d_target) * out_rms)
        self.attn = nn.MultiheadAttention(d_target, heads, kdim=d_source, vdim=d_source, batch_first=True)
        self.out = LinearMap(d_target, d_target, out_rms)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.queries.unsqueeze(0).expand(h.shape[0], -1, -1).to(h.dtype)
        # padded rows never attend to padding: key_padding_mask is True where a key must be ignored
        mixed, _ = self.attn(q, h, h, key_padding_mask=mask == 0, need_weights=False)
        soft, _ = self.out(mixed, None)
        return soft, torch.ones(soft.shape[:2], dtype=mask.dtype, device=mask.device)


@dataclass
class Encoded:
    """One example on both sides: source-model token ids, target-prompt ids, target continuation ids."""

    prefix_ids: list[int]  # target-side tokens before the soft tokens (the target's BOS when it uses one)
    source_ids: list[int]
    prompt_ids: list[int]
    target_ids: list[int]  # empty at inference; y + eos when training


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        if s:
            ids[r, width - len(s):] = torch.tensor(s)
            attn[r, width - len(s):] = 1
    return ids, attn


def positions(attn: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (left padding gets 0)."""
    return (attn.cumsum(-1) - 1).clamp(min=0)


class Relay(nn.Module):
    """source LLM -> map -> target LLM. Only `map` (and a peft adapter inside `target`, if any) trains."""

    def __init__(self, source, target, source_pad_id: int, layer: int = -1, normalize_source: bool = True,
                 kind: str = "linear", n_queries: int = 32, heads: int = 4):
        super().__init__()
        self.source, self.target = source, target
        self.source_pad_id, self.layer, self.normalize_source = source_pad_id, layer, normalize_source
        d_a = source.config.get_text_config().hidden_size
        d_b = target.config.get_text_config().hidden_size
        emb = target.get_input_embeddings()
        with torch.no_grad():  # RMS of real token embeddings as the target would see them (Gemma scales them)
            sample = emb(torch.arange(min(4096, emb.num_embeddings), device=emb.weight.device))
            out_rms = float(sample.float().pow(2).mean().sqrt())
        if kind == "linear":
            self.map = LinearMap(d_a, d_b, out_rms)
        else:
            self.map = CrossAttentionMap(d_a, d_b, out_rms, n_queries, heads)
        for p in self.source.parameters():
            p.requires_grad_(False)

    def soft_tokens(self, source_ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mapped source states (batch, n, d_target) and their mask; the source model runs without gradients."""
        dev = next(self.source.parameters()).device
        ids, attn = left_pad(source_ids, self.source_pad_id)
        ids, attn = ids.to(dev), attn.to(dev)
        with torch.no_grad():
            out = self.source(input_ids=ids, attention_mask=attn, position_ids=positions(attn),
                              output_hidden_states=True, use_cache=False, logits_to_keep=1)
            h = out.hidden_states[self.layer].float()
            if self.normalize_source:
                h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        dtype = self.map_dtype()
        return self.map(h.to(dtype), attn)

    def map_dtype(self) -> torch.dtype:
        return next(self.map.parameters()).dtype

    def target_inputs(self, examples: list[Encoded], pad_id: int):
        """inputs_embeds, attention mask, position ids and labels for [S ; prompt ; target] rows, left-padded.

        Each row's real positions are contiguous at the right end: padding | BOS | soft tokens | prompt | target."""
        soft, soft_mask = self.soft_tokens([e.source_ids for e in examples])
        emb = self.target.get_input_embeddings()
        dev = emb.weight.device
        rows, labels = [], []
        for r, e in enumerate(examples):
            s = soft[r][soft_mask[r].bool()]
            head = torch.tensor(e.prefix_ids, dtype=torch.long, device=dev)
            tail = torch.tensor(e.prompt_ids + e.target_ids, dtype=torch.long, device=dev)
            rows.append(torch.cat([emb(head), s.to(emb.weight.dtype), emb(tail)]))
            labels.append([IGNORE] * (len(e.prefix_ids) + len(s) + len(e.prompt_ids)) + list(e.target_ids))
        width = max(len(x) for x in rows)
        embeds = rows[0].new_zeros((len(rows), width, rows[0].shape[-1]))
        attn = torch.zeros((len(rows), width), dtype=torch.long, device=dev)
        lab = torch.full((len(rows), width), IGNORE, dtype=torch.long, device=dev)
        for r, (x, y) in enumerate(zip(rows, labels)):
            embeds[r, width - len(x):] = x
            attn[r, width - len(x):] = 1
            lab[r, width - len(x):] = torch.tensor(y, dtype=torch.long, device=dev)
        return embeds, attn, positions(attn), lab

    def forward(self, examples: list[Encoded], pad_id: int) -> tuple[torch.Tensor, int]:
        """Summed NLL over the target tokens (y + eos) of the batch, and their count (what `RelayObjective`
        divides by the step's token count)."""
        embeds, attn, pos, lab = self.target_inputs(examples, pad_id)
        keep = (lab[:, 1:] != IGNORE).any(0).nonzero().squeeze(1)  # positions that predict a target token
        out = self.target(inputs_embeds=embeds, attention_mask=attn, position_ids=pos, use_cache=False,
                          logits_to_keep=keep)
        targets = lab[:, keep + 1]
        nll = nn.functional.cross_entropy(out.logits.float().reshape(-1, out.logits.shape[-1]), targets.reshape(-1),
                                          ignore_index=IGNORE, reduction="sum")
        return nll, int((targets != IGNORE).sum())

    def loss(self, examples: list[Encoded], pad_id: int) -> tuple[torch.Tensor, int]:
        """Mean NLL over the target tokens (y + eos) of the batch, and their count."""
        nll, n = self(examples, pad_id)
        return nll / max(1, n), n

    def train(self, mode: bool = True):
        """Training mode for the map (and a target carrying a trainable adapter: LoRA dropout); the frozen LLMs
        stay in eval mode."""
        super().train(mode)
        self.source.eval()
        if not any(p.requires_grad for p in self.target.parameters()):
            self.target.eval()
        return self

    def gradient_checkpointing_enable(self) -> None:
        self.target.gradient_checkpointing_enable()


def token_ids(tok, text: str, bos: bool) -> list[int]:
    """Token ids of `text` with the tokenizer's BOS prepended when `bos` and the tokenizer uses one
    (the same rule as the transformers backend)."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    b = tok.bos_token_id
    if bos and b is not None and adds_bos(tok) and ids[:1] != [b]:
        ids = [b] + ids
    return ids


NATIVE_HEAD = "####[{src_name}]:"  # tags: native, the target-side text before the soft tokens


def source_text(cfg, doc: dict) -> str:
    """What the source LLM reads: the source prompt with its language tags (tags: mapped), or the sentence alone
    (tags: native: the tags are target-side text, `NATIVE_HEAD` and the target prompt)."""
    return doc["source"] if cfg.tags == "native" else cfg.source_prompt.format(**doc)


def encode(source_tok, target_tok, cfg, doc: dict, reference: str | None = None,
           max_length: int | None = None) -> Encoded:
    """One example for `Relay`: `doc` has the FLORES fields (source, src_name, tgt_name, ...).

    `cfg` is a RelayConfig; with `reference` the target continuation is " reference" (+ EOS when
    cfg.loss_on_eos), cut so that prompt + target fit in `max_length` target-side tokens."""
    source_ids = token_ids(source_tok, source_text(cfg, doc), bos=True)
    # native tags: the source-language tag is target-model text before the soft tokens (the paper's prompt generator)
    prefix = token_ids(target_tok, NATIVE_HEAD.format(**doc) if cfg.tags == "native" else "", bos=True)
    prompt_ids = target_tok(cfg.target_prompt.format(**doc), add_special_tokens=False)["input_ids"]
    target_ids: list[int] = []
    if reference is not None:
        target_ids = target_tok(" " + reference, add_special_tokens=False)["input_ids"]
        if cfg.loss_on_eos and target_tok.eos_token_id is not None:
            target_ids = target_ids + [target_tok.eos_token_id]
    if max_length:
        source_ids = source_ids[:max_length]
        target_ids = target_ids[:max(1, max_length - len(prefix) - len(prompt_ids))]
    return Encoded(prefix, source_ids, prompt_ids, target_ids)
