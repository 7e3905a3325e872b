"""XBridge inference: NMT encoder -> LLM greedy generation -> penultimate states -> NMT decoder.

1. The source goes through the NMT encoder with its language token, Map_enc, then the LLM input
   [bos ; mapped source ; end boundary ; prompt] (left-padded batch, explicit positions).
2. Greedy LLM generation with a KV cache, keeping h^{(L-1)} of every position that predicts a
   generated token: the last prompt position and each generated token up to the first eos [CODE].
3. Those states (left-padded) -> Map_dec -> the NMT decoder's cross-attention memory; `generate`
   starts from </s> and forces the target language token (`forced_bos_token_id`), greedy.
Which text a request gets ("language on demand"): an English target is the LLM's output; any other
target the NMT model has a language token for is the decoder's output (as the paper scores FLORES).

What a request asks is read from the request itself: a translation request (`Request.langs`) translates its
document's `source`; a math request (MGSM/GSM8K: no langs) answers its document's `question` in `lang`, in round 0
with the LLM and in round 1 (`Request.round`, added by `XBridgeMethod.prepare_task`) with the NMT decoder.
"""

from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutput

from harness.backends.base import Capabilities, Generation, Request, cut_at_stop
from harness.errors import HarnessError
from harness.languages import short_code
from methods.xbridge.data import Codes, pad_rows, llm_prompt

def job_of(req: Request) -> dict:
    """The request as an XBridge job: kind, source text, source and target language, round."""
    doc = req.doc or {}
    if req.langs and "source" in doc:
        return {"kind": "translation", "src": req.langs[0], "tgt": req.langs[1], "source": doc["source"]}
    if "question" in doc and "lang" in doc:
        return {"kind": "math", "src": doc["lang"], "tgt": doc["lang"], "source": doc["question"], "round": req.round}
    raise HarnessError(f"xbridge backend: request {req.id} is neither a translation (source + languages) nor a math "
                       f"question (question + lang); only flores, mgsm and gsm8k run through it")


class XBridgeBackend:
    name = "xbridge"
    # the composed encoder-LLM-decoder system is not one causal LM: no lm-eval bridge, no drift, no log-likelihoods
    # (the frozen LLM alone is the base model's result)
    capabilities = Capabilities(generate=True, loglik=False, hf_weights=False)

    def __init__(self, bridge, nmt_tok, llm_tok, cfg, backend_cfg, identity: dict):
        self.bridge, self.nmt_tok, self.llm_tok = bridge.eval(), nmt_tok, llm_tok
        self.cfg, self.backend_cfg, self.identity = cfg, backend_cfg, identity
        self.codes = Codes(nmt_tok, cfg.language_codes)
        p = next(bridge.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.eos_ids = {llm_tok.eos_token_id} | _ids(getattr(bridge.llm.generation_config, "eos_token_id", None))
        self._last: dict = {}  # LLM results of the previous call (round 1 of a math task reuses round 0's)

    def settings(self) -> dict:
        return {"backend": self.name, "dtype": str(self.dtype).replace("torch.", ""), "device": str(self.device),
                "batch_size": self.backend_cfg.batch_size, "threads": torch.get_num_threads(),
                "scheduler": "static", "decoding": "greedy (LLM) + greedy (NMT decoder)", **self.identity}

    # -- requests -> jobs ----------------------------------------------------------------------
    def _plan(self, job: dict) -> tuple[list[int], list[int], str | None, str]:
        """(encoder ids, LLM prompt ids, decoder target language or None, rendered prompt)."""
        src, tgt, text = job["src"], job["tgt"], job["source"]
        if job["kind"] == "translation":
            query = text if self.cfg.translation_prompt == "instruction" else None
            dec = None if short_code(tgt) == "en" else tgt
        else:  # math: round 0 = the LLM's English answer, round 1 = the decoder's answer in the query language
            query, dec = text, (src if job.get("round", 0) == 1 else None)
        src_ids = self.codes.encode(text, src, self.cfg.max_src_tokens)
        if dec is not None:
            self.codes.id(dec)  # a language the NMT model cannot write is an error, not an empty output
        prompt = llm_prompt(self.llm_tok, self.cfg.prompt, query)
        shown = (f"<nmt {self.codes.token(src)}> {text} <end_boundary>"
                 + (self.cfg.prompt.format(q=query) if query is not None else "")
                 + (f" => <nmt decoder {self.codes.token(dec)}>" if dec else ""))
        return src_ids, prompt, dec, shown

    def generate(self, requests: list[Request], progress=None) -> list[Generation]:
        plans = [self._plan(job_of(r)) for r in requests]
        out: list[Generation | None] = [None] * len(requests)
        bs = max(1, self.backend_cfg.batch_size)
        order = sorted(range(len(requests)), key=lambda i: -len(plans[i][0]) - len(plans[i][1]))
        cache, self._last = self._last, {}
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            keys = [(tuple(plans[i][0]), tuple(plans[i][1]), requests[i].gen.max_new_tokens) for i in idx]
            todo = [j for j, k in enumerate(keys) if k not in cache]
            if todo:
                res = self.llm_generate([plans[idx[j]][0] for j in todo], [plans[idx[j]][1] for j in todo],
                                        max(keys[j][2] for j in todo))
                for j, r in zip(todo, res):
                    cache[keys[j]] = r
            dec_rows = [j for j, i in enumerate(idx) if plans[i][2] is not None]
            dec_out = self.decode([cache[keys[j]][2] for j in dec_rows], [plans[idx[j]][2] for j in dec_rows])
            dec = dict(zip(dec_rows, dec_out))
            for j, i in enumerate(idx):
                tokens, finish, _ = self._last[keys[j]] = cache[keys[j]]
                tokens = tokens[:requests[i].gen.max_new_tokens]
                if j in dec:
                    tokens, finish = dec[j]
                    text = self.nmt_tok.decode(tokens, skip_special_tokens=True)
                else:
                    text = self.llm_tok.decode(tokens, skip_special_tokens=True)
                text, hit = cut_at_stop(text, list(requests[i].gen.stop))
                n_prompt = len(plans[i][0]) + len(plans[i][1]) + 2
                out[i] = Generation(text, plans[i][3], n_prompt, len(tokens), "stop" if hit else finish)
            if progress is not None:
                progress.update(len(idx))
        return out

    # -- the two generation steps ----------------------------------------------------------------
    @torch.inference_mode()
    def llm_generate(self, src_ids: list[list[int]], prompts: list[list[int]], max_new: int):
        """Greedy LLM continuation per row: (tokens, finish, memory states (n, d_llm))."""
        b, llm = self.bridge, self.bridge.llm
        src, smask = (t.to(self.device) for t in pad_rows(src_ids, self.nmt_tok.pad_token_id))
        embeds, attn, pos = b.assemble(b.map_enc(b.encode(src, smask)), smask,
                                       [torch.tensor(p, dtype=torch.long) for p in prompts],
                                       [torch.zeros(0, dtype=torch.long)] * len(prompts))
        res = llm(inputs_embeds=embeds, attention_mask=attn, position_ids=pos, use_cache=True,
                  output_hidden_states=True)
        n = len(src_ids)
        states = [[s] for s in res.hidden_states[b.hidden_layer][:, -1]]
        tokens: list[list[int]] = [[] for _ in range(n)]
        finish, done = ["length"] * n, [False] * n
        cache, logits = res.past_key_values, res.logits[:, -1]
        for _ in range(max_new):
            nxt = logits.argmax(-1)
            for r, t in enumerate(nxt.tolist()):
                if done[r]:
                    continue
                if t in self.eos_ids:
                    done[r], finish[r] = True, "eos"
                else:
                    tokens[r].append(t)
                    done[r] = len(tokens[r]) >= max_new
            if all(done):
                break
            attn = torch.cat([attn, attn.new_ones(n, 1)], -1)
            res = llm(input_ids=nxt[:, None], attention_mask=attn, position_ids=attn.sum(-1, keepdim=True) - 1,
                      past_key_values=cache, use_cache=True, output_hidden_states=True)
            cache, logits = res.past_key_values, res.logits[:, -1]
            h = res.hidden_states[b.hidden_layer][:, -1]
            for r in range(n):
                if not done[r]:
                    states[r].append(h[r])
        return [(tokens[r], finish[r], torch.stack(states[r])) for r in range(n)]

    @torch.inference_mode()
    def decode(self, memories: list[torch.Tensor], langs: list[str]) -> list[tuple[list[int], str]]:
        """NMT decoder outputs for LLM state sequences, forcing each row's target language token."""
        out: list = [None] * len(memories)
        eos = self.nmt_tok.eos_token_id
        for lang in dict.fromkeys(langs):
            rows = [r for r, x in enumerate(langs) if x == lang]
            width = max(len(memories[r]) for r in rows)
            mem = memories[rows[0]].new_zeros(len(rows), width, memories[rows[0]].shape[-1])
            mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
            for k, r in enumerate(rows):  # left padding [CODE]
                mem[k, width - len(memories[r]):] = memories[r]
                mask[k, width - len(memories[r]):] = 1
            gen = self.bridge.nmt.generate(encoder_outputs=BaseModelOutput(last_hidden_state=self.bridge.map_dec(mem)),
                                           attention_mask=mask, decoder_start_token_id=eos,
                                           forced_bos_token_id=self.codes.id(lang),
                                           max_new_tokens=self.cfg.max_dec_tokens,
                                           num_beams=1, do_sample=False)
            for k, r in enumerate(rows):
                ids = gen[k].tolist()[1:]  # drop the start token </s>
                finish = "eos" if eos in ids else "length"
                ids = ids[:ids.index(eos)] if eos in ids else ids
                out[r] = (ids, finish)
        return out


def _ids(v) -> set[int]:
    if isinstance(v, int):
        return {v}
    return {int(x) for x in v} if isinstance(v, (list, tuple)) else set()
