"""RaDis training contexts (`RaDisConfig.rationale_context`) and the mechanism check's rationale statistics.

* `generation` (the default since the FLORES-dev ablation, README.md "Ablations"): the rationale is trained where
  it was generated. For `explain*`: the two-turn conversation
  [prompt, reference, question, rationale]: the reference is the first reply (segment translation), the rationale
  the second (segment rationale), the question masked like a prompt. For `continue` both are the same context.
* `continuation` (the default before; the committed science artifacts were trained with it): target = reference ⊕
  rationale as one assistant reply after the translation prompt. For the `explain*` prompts the rationale was
  generated after a second user turn, so it is trained in another context than it was generated in (approximate
  self-distillation).
"""

from __future__ import annotations

from harness.errors import HarnessError
from harness.training import trainer
from harness.training.objective import PROMPT, RATIONALE
from methods.radis.rationales import PROMPTS, rationale_request


def second_turn_feature(tok, ex, messages, rationale: str, chat: str, max_length: int, mode: str) -> dict:
    """One `generation`-context training example of an `explain*` rationale (module docstring)."""
    first = trainer.encode(tok, messages(ex), ex.reference, chat, 10**9)
    msgs, _ = rationale_request(ex, messages, mode)
    second = trainer.encode(tok, msgs, rationale.strip(), chat, 10**9, split=0)
    n = len(first["input_ids"])
    if second["input_ids"][:n] != first["input_ids"]:
        raise HarnessError("radis rationale_context generation: the chat template does not render the second turn "
                           "as a continuation of the first; use rationale_context: continuation")
    seg = first["segments"] + [PROMPT if s == PROMPT else RATIONALE for s in second["segments"][n:]]
    return {"input_ids": second["input_ids"][:max_length], "segments": seg[:max_length]}


def features(tok, examples, messages, rats: list[str], chat: str, cfg) -> list[dict]:
    """The training features of `cfg.rationale_context` (module docstring)."""
    from methods.radis.rationales import join

    if cfg.rationale_context == "generation" and PROMPTS[cfg.rationale_prompt] is not None:
        return [second_turn_feature(tok, ex, messages, r, chat, cfg.train.max_length, cfg.rationale_prompt)
                if r.strip() else trainer.encode(tok, messages(ex), ex.reference, chat, cfg.train.max_length)
                for ex, r in zip(examples, rats)]
    targets = [join(ex.reference, r, cfg.rationale_prompt) for ex, r in zip(examples, rats)]
    return [trainer.encode(tok, messages(ex), t, chat, cfg.train.max_length, split=len(ex.reference))
            for ex, t in zip(examples, targets)]


def mechanism_text(record: dict) -> str:
    """Rationale statistics of a run's artifact report: how many, how long, the share cut at the token cap, and
    whether they were trained in the context they were generated in."""
    config = record.get("config") or {}
    rat = ((record.get("artifact") or {}).get("report") or {}).get("rationales") or {}
    mode = config.get("rationale_prompt", "continue")
    context = config.get("rationale_context", "continuation")
    same = PROMPTS.get(mode) is None or context == "generation"
    where = ("trained in the context they were generated in" if same else
             f"generated after a second user turn, trained as a continuation of the first reply ({context})")
    if not rat.get("n"):
        return f"rationale statistics not recorded; {where}"
    cut = rat.get("finish", {}).get("length", 0)
    cap = config.get("rationale_max_new_tokens", "?")
    return (f"{rat['n']} rationales ({mode}), mean {rat.get('mean_tokens', 0):.0f} tokens, "
            f"{cut} ({100 * cut / rat['n']:.0f}%) cut at the {cap}-token cap, empty {rat.get('empty', 0)}; {where}")
