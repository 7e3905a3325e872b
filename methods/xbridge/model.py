"""The composed XBridge module: NMT encoder -> Map_enc -> frozen LLM -> Map_dec -> NMT decoder.

LLM input per example [CODE]: [bos_emb ; Map_enc(Enc(x)) ; end_boundary ; prompt_emb ; z_emb], padding
squeezed out of the encoder states and the whole row LEFT-padded (explicit attention mask and
position ids, so a row's numbers do not depend on its batch neighbours). The decoder's memory is
Map_dec(h^{(L-1)}) at the positions whose next token is a label: the state that predicts z_t is the
memory slot for z_t (last prompt position, z_1 .. z_n; n + 1 slots for z + eos).

Only these train: Map_enc + end_boundary (stages 1, 2), Map_dec + every decoder parameter whose
name contains `encoder_attn` (cross-attention q/k/v/out and its layer norm; stages 1, 3). The LLM,
the NMT encoder, embeddings and the rest of the decoder never change.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from harness.loading import keeps_logits
from methods.xbridge.losses import entropic_ot, relaxed_ot

TRAINABLE = {1: ("enc", "dec"), 2: ("enc",), 3: ("dec",)}


class Mapping(nn.Module):
    """`n_blocks` blocks of RMSNorm(d) -> Linear(d, d_mid) -> SiLU -> Linear(d_mid, d_next) [CODE]."""

    def __init__(self, d_in: int, d_mid: int, d_out: int, n_blocks: int):
        super().__init__()
        dims = [d_in] + [d_mid] * (n_blocks - 1) + [d_out]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.RMSNorm(dims[i], eps=1e-6), nn.Linear(dims[i], d_mid), nn.SiLU(),
                          nn.Linear(d_mid, dims[i + 1]))
            for i in range(n_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def widths(d_nmt: int, d_llm: int, which: str) -> tuple[int, int]:
    """(Map_enc intermediate, Map_dec intermediate): code 4*d_nmt and 2*d_llm, paper d_llm and d_llm."""
    return (4 * d_nmt, 2 * d_llm) if which == "code" else (d_llm, d_llm)


class XBridge(nn.Module):
    def __init__(self, nmt, llm, width: str = "code", hidden_layer: int = -2, bos_id: int | None = None,
                 ot: str = "relaxed", ot_reg: float = 0.1, ot_iters: int = 100):
        super().__init__()
        self.nmt, self.llm = nmt, llm
        d_nmt, d_llm = nmt.config.d_model, llm.get_input_embeddings().embedding_dim
        enc_mid, dec_mid = widths(d_nmt, d_llm, width)
        self.map_enc = Mapping(d_nmt, enc_mid, d_llm, 1)
        self.end_boundary = nn.Parameter(torch.zeros(d_llm))  # the <sep> after the mapped source [CODE]
        self.map_dec = Mapping(d_llm, dec_mid, d_nmt, 2)
        self.hidden_layer, self.bos_id = hidden_layer, bos_id
        self.ot, self.ot_reg, self.ot_iters = ot, ot_reg, ot_iters
        self._keep = keeps_logits(llm)
        self.set_stage(0)

    # -- what trains --------------------------------------------------------------------------
    def bridge_names(self) -> list[str]:
        """Every parameter XBridge ever trains (what an artifact stores)."""
        return [n for n, _ in self.named_parameters() if self._group(n)]

    @staticmethod
    def _group(name: str) -> str | None:
        if name.startswith(("map_enc.", "end_boundary")):
            return "enc"
        if name.startswith("map_dec.") or (name.startswith("nmt.model.decoder.") and "encoder_attn" in name):
            return "dec"
        return None

    def set_stage(self, stage: int) -> None:
        """requires_grad for stage 1/2/3 (0 = nothing trains)."""
        groups = TRAINABLE.get(stage, ())
        for n, p in self.named_parameters():
            p.requires_grad_(self._group(n) in groups)
        self.stage = stage

    def gradient_checkpointing_enable(self, **kwargs):  # the shared loop's `gradient_checkpointing` switch
        self.llm.gradient_checkpointing_enable(**kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.llm.eval()  # frozen parts never run in training mode (no dropout)
        self.nmt.model.encoder.eval()
        return self

    # -- pieces ------------------------------------------------------------------------------
    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the NMT encoder is frozen throughout
            return self.nmt.model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state

    def assemble(self, mapped: torch.Tensor, src_mask: torch.Tensor, prompt: list[torch.Tensor],
                 target: list[torch.Tensor]):
        """Left-padded LLM inputs_embeds, attention mask, position ids from per-row pieces."""
        emb = self.llm.get_input_embeddings()
        dev, dt = mapped.device, mapped.dtype
        bos = (emb(torch.tensor([self.bos_id], device=dev)).to(dt) if self.bos_id is not None
               else mapped.new_zeros(0, mapped.shape[-1]))
        rows = []
        for r in range(mapped.shape[0]):
            parts = [bos, mapped[r][src_mask[r].bool()], self.end_boundary.to(dt)[None]]
            for ids in (prompt[r], target[r]):
                if len(ids):
                    parts.append(emb(ids.to(dev)).to(dt))
            rows.append(torch.cat(parts))
        width = max(len(x) for x in rows)
        embeds = mapped.new_zeros(len(rows), width, mapped.shape[-1])
        attn = torch.zeros(len(rows), width, dtype=torch.long, device=dev)
        for r, x in enumerate(rows):
            embeds[r, width - len(x):] = x
            attn[r, width - len(x):] = 1
        return embeds, attn, (attn.cumsum(-1) - 1).clamp(min=0)

    def memory(self, hidden: torch.Tensor, n_slots: torch.Tensor):
        """Map_dec over each row's last `n_slots` states before the final position (left-padded memory)."""
        width = int(n_slots.max())
        states = hidden[:, -width - 1:-1]
        mask = (torch.arange(width, device=hidden.device)[None, :] >= width - n_slots[:, None]).long()
        return self.map_dec(states), mask

    # -- training forward --------------------------------------------------------------------
    def forward(self, batch: dict, need_llm: bool = True, need_dec: bool = True, need_ot: bool = True) -> dict:
        """Summed losses of one batch: {"llm": NLL sum over z tokens, "dec": NLL sum over y tokens,
        "ot": OT sum over samples with >= 1 y token} (terms not needed are 0)."""
        enc = self.encode(batch["src_ids"], batch["src_mask"])
        z_len = batch["z_mask"].sum(-1)
        prompt = [batch["prompt_ids"][r][batch["prompt_mask"][r].bool()] for r in range(len(z_len))]
        target = [batch["z_ids"][r][batch["z_mask"][r].bool()] for r in range(len(z_len))]
        zero = enc.new_zeros((), dtype=torch.float32)
        out = {"llm": zero, "dec": zero, "ot": zero}
        grad_llm = need_llm and self.map_enc.blocks[0][1].weight.requires_grad
        with torch.set_grad_enabled(torch.is_grad_enabled() and grad_llm):
            embeds, attn, pos = self.assemble(self.map_enc(enc), batch["src_mask"], prompt, target)
            keep = {"logits_to_keep": int(z_len.max()) + 1} if self._keep and need_llm else {}
            res = self.llm(inputs_embeds=embeds, attention_mask=attn, position_ids=pos,
                           output_hidden_states=need_dec or need_ot, use_cache=False, **keep)
        if need_llm:
            width = int(z_len.max())
            logits = res.logits[:, -width - 1:-1].float()
            labels = batch["z_ids"].new_full((len(z_len), width), -100)
            for r, t in enumerate(target):
                labels[r, width - len(t):] = t
            out["llm"] = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                     ignore_index=-100, reduction="sum")
        if need_dec or need_ot:
            mem, mem_mask = self.memory(res.hidden_states[self.hidden_layer], z_len)
            y_mask = batch["y_mask"]
            if need_dec:
                logits = self.nmt(encoder_outputs=BaseModelOutput(last_hidden_state=mem), attention_mask=mem_mask,
                                  decoder_input_ids=batch["dec_in"], decoder_attention_mask=y_mask).logits.float()
                labels = batch["y_ids"].masked_fill(~y_mask.bool(), -100)
                out["dec"] = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                         ignore_index=-100, reduction="sum")
            if need_ot:
                hz = self.encode(batch["zn_ids"], batch["zn_mask"])
                per = self.ot_loss(hz, batch["zn_mask"], mem, mem_mask)
                out["ot"] = (per * (y_mask.sum(-1) > 0).float()).sum()
        return out

    def ot_loss(self, h, h_mask, h2, h2_mask) -> torch.Tensor:
        if self.ot == "entropic":
            return entropic_ot(h, h_mask, h2, h2_mask, self.ot_reg, self.ot_iters)
        return relaxed_ot(h, h_mask, h2, h2_mask)
