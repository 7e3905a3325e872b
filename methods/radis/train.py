"""`radis`: Rationale Distillation (Wu et al., ACL Findings 2025; methods/radis/README.md).

1. `prepare`: load pairs, refuse train/test overlap, compute the cache key (reuse a finished artifact).
2. Rationales: the FROZEN initial model explains the reference (methods/radis/rationales.py, cached,
   generated once): it continues its reply forced to start with the reference (`rationale_prompt:
   continue`, the paper's form) or answers a second turn asking for an explanation (`explain`).
   Their statistics (empty rate, lengths, finish reasons) are printed and stored in artifact.json.
3. Target = reference ⊕ rationale. Tokens of the reference are segment "translation", tokens of the
   rationale are segment "rationale"; loss = NLL(translation) + λ·NLL(rationale), prompt masked.
4. Full fine-tuning with the shared loop; the artifact is the full weights.
At evaluation the translation is extracted from outputs that continue with a rationale
(`eval_keep`, applied to translation tasks through `RaDisMethod.prepare_task`).
"""

from __future__ import annotations

from harness.loading import load_for_training, pick_device
from harness.memory import returned_memory
from harness.method import Artifact, TrainContext
from harness.training import trainer
from harness.training.objective import CausalLMObjective
from harness.training.pipeline import finish, prepare, prompt_messages
from methods.radis.context import features as training_features
from methods.radis.rationales import empty_warning, rationales, stats_line


def train_radis(cfg, ctx: TrainContext, name: str = "radis") -> Artifact:
    prep = prepare(name, cfg, ctx)
    if prep.cached:
        rat = prep.cached.report.get("rationales", {})
        if "empty_rate" in rat:  # the rationale statistics are printed by every run, also a reusing one
            print(stats_line(name, rat, prep.cached.config.get("rationale_prompt", "?"),
                             " of this artifact's training"))
            if rat.get("warning"):
                print(rat["warning"])
        return prep.cached

    messages, chat = prompt_messages(ctx)
    # train.low_memory also covers the frozen generation model: none of its memory stays behind for training
    with returned_memory(cfg.train.low_memory and pick_device(ctx.backend.device).type == "cpu"):
        rats, rat_stats = rationales(prep.examples, messages, chat, ctx, cfg.rationale_max_new_tokens,
                                     cfg.rationale_batch_size, cfg.rationale_prompt)
    print(stats_line(name, rat_stats, cfg.rationale_prompt))
    warning = empty_warning(rat_stats, cfg.rationale_prompt)
    if warning:
        print(warning)

    model, tok = load_for_training(ctx.model.path, ctx.backend)
    features = training_features(tok, prep.examples, messages, rats, chat, cfg)  # cfg.rationale_context

    trainer.train(model, tok, features, cfg.train, prep.dir, seed=ctx.seed, objective=CausalLMObjective(cfg.lam),
                  device=ctx.backend.device, desc=f"{name} train", save_to=prep.dir)
    # rationale statistics are part of the output: artifact.json "rationales", results.json method.artifact.report
    cut = rat_stats.get("finish", {}).get("length", 0)
    report = {**rat_stats, "cut_at_cap": cut, "cut_share": round(cut / max(1, rat_stats.get("n", 0)), 4),
              "context": cfg.rationale_context, **({"warning": warning} if warning else {})}
    return finish(prep, name, "full", {"rationales": report})
