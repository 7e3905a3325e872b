"""Judge-free drift: how far a model has moved from its base model on a set of prompts.

Definition (deterministic, offline). Take the BASE model's own answers a_i to prompts p_i (the
exact rendered prompt strings and raw answers of a base run's samples.jsonl, every round of
multi-turn samples). Tokenize both with the base tokenizer, once, and teacher-force them through
the evaluated model E and the base model B (each in the dtype it was loaded in, i.e. the run's --dtype;
log-softmax and every sum below in float32):

    nll_M    = (1/N) Σ_i Σ_t  −log P_M(a_i,t | p_i, a_i,<t)         (N = answer tokens in total)
    drift_nll = nll_E − nll_B                                        (nats per token, signed)
    kl_base_eval = (1/N) Σ_i Σ_t  KL(P_B(·|ctx) ‖ P_E(·|ctx))        (full next-token distributions)

drift_nll is how much less likely the evaluated model finds what the base model would have said; 0 for an
untouched model. It is signed and has no better/worse direction: it is negative when fine-tuning made the
model *sharper* on the base's own greedy answers (e.g. self-distillation on the model's own greedy text), which
is change, not less forgetting. kl_base_eval (≥ 0, 0 only for an identical distribution) is the full-distribution
change at the same positions, the measure of how far the model moved (lower = less change). Neither needs a judge.
The answer is scored without an end-of-turn token; the prompt keeps the base run's BOS handling. Requires the two
models to share a tokenizer (same vocabulary); otherwise it is reported as not computed.
"""

from __future__ import annotations

import torch

from harness.errors import HarnessError
from harness.loading import keeps_logits
from harness.prompting import adds_bos


def _encode(tok, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    bos = tok.bos_token_id
    if bos is not None and adds_bos(tok) and p[:1] != [bos]:
        p = [bos] + p
    a = tok(answer, add_special_tokens=False)["input_ids"]
    return p, a


@torch.inference_mode()
def _logprobs(model, ids: list[int], spans: list[tuple[int, int]]) -> list[torch.Tensor]:
    """log-softmax (float32) of the next-token distributions that predict each answer span [start, end) of `ids`
    (one tensor per span, computed from one forward pass).

    Only those positions go through the output layer (`logits_to_keep`): on MT-Bench's second turns most of
    the sequence is prompt, and the vocabulary projection is a fifth of a small model's compute per token."""
    device = next(model.parameters()).device
    x = torch.tensor([ids], device=device)
    keep = torch.cat([torch.arange(s - 1, e - 1) for s, e in spans]).to(device)
    if keeps_logits(model):
        logits = model(input_ids=x, logits_to_keep=keep).logits[0]
    else:
        logits = model(input_ids=x).logits[0, keep]
    out, at = [], 0
    for s, e in spans:  # float32 one span at a time: a long vocabulary makes the whole chain's copy large
        out.append(torch.log_softmax(logits[at : at + e - s].float(), dim=-1).cpu())
        at += e - s
    return out


def _chains(encoded: list[tuple[list[int], list[int]]]) -> list[list[int]]:
    """Consecutive pairs grouped so that each one's prompt begins with the previous one's full token sequence
    (a multi-turn conversation: turn 2's prompt is turn 1's prompt + answer + the next user turn). One forward pass
    over a chain's last sequence gives the log-probs of every answer in it: on MT-Bench that skips turn 1's tokens,
    a third of the drift phase's tokens, with the same numbers (causal attention: a position never sees what
    follows it; equal up to float rounding)."""
    chains: list[list[int]] = []
    for i, (p, a) in enumerate(encoded):
        if chains and p and a:
            q, b = encoded[chains[-1][-1]]
            if q and b and p[: len(q) + len(b)] == q + b:
                chains[-1].append(i)
                continue
        chains.append([i])
    return chains


def same_vocab(tok_a, tok_b) -> bool:
    return tok_a is tok_b or tok_a.get_vocab() == tok_b.get_vocab()


def drift(eval_model, base_model, base_tok, pairs: list[tuple[str, str]], eval_tok=None, progress=None) -> dict:
    """Drift of `eval_model` from `base_model` on (prompt, base answer) pairs; see the module docstring."""
    if eval_tok is not None and not same_vocab(eval_tok, base_tok):
        raise HarnessError("drift: the evaluated model's tokenizer differs from the base model's")
    same = eval_model is base_model
    tot_e = tot_b = tot_kl = 0.0
    n_tok = n_ans = 0
    encoded = [_encode(base_tok, prompt, answer) for prompt, answer in pairs]
    # (Σ nll eval, Σ nll base, answer tokens, Σ KL(base||eval)) in order; 0s when skipped
    per_pair = [(0.0, 0.0, 0, 0.0)] * len(pairs)
    for chain in _chains(encoded):
        if not all(encoded[i][0] and encoded[i][1] for i in chain):
            continue  # an empty prompt or answer: a chain of one, skipped
        p, a = encoded[chain[-1]]
        spans = [(len(encoded[i][0]), len(encoded[i][0]) + len(encoded[i][1])) for i in chain]
        lps_b = _logprobs(base_model, p + a, spans)
        lps_e = lps_b if same else _logprobs(eval_model, p + a, spans)
        for i, lp_b, lp_e in zip(chain, lps_b, lps_e):
            if lp_e.shape[-1] != lp_b.shape[-1]:
                raise HarnessError(f"drift: vocabulary sizes differ ({lp_e.shape[-1]} vs {lp_b.shape[-1]})")
            target = torch.tensor(encoded[i][1])
            nll_b = -lp_b.gather(1, target[:, None]).sum().item()
            nll_e = -lp_e.gather(1, target[:, None]).sum().item()
            tot_b, tot_e = tot_b + nll_b, tot_e + nll_e
            kl = 0.0 if same else (lp_b.exp() * (lp_b - lp_e)).sum().item()
            per_pair[i] = (nll_e, nll_b, len(target), kl)
            tot_kl += kl
            n_tok += len(target)
            n_ans += 1
            if progress is not None:
                progress.update(1)
    if n_tok == 0:
        raise HarnessError("drift: the base answers are all empty")
    # the definition text is written into results.json; it keeps the module's old path (harness/drift.py) so that
    # records before and after the move to harness/metrics/ stay identical
    return {"nll_eval": tot_e / n_tok, "nll_base": tot_b / n_tok, "drift_nll": (tot_e - tot_b) / n_tok,
            "kl_base_eval": tot_kl / n_tok, "n_tokens": n_tok, "n_answers": n_ans, "same_model": same,
            "per_pair": per_pair,
            "definition": "mean per-token NLL of the base model's answers under the evaluated model minus under "
                          "the base model (nats/token); KL(base||eval) at the same positions; harness/drift.py"}
