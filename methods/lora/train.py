"""`lora`: peft LoRA adapters trained on reference translations; the artifact is the adapter only.

Same data, prompts and loop as `sft`; only the adapter matrices receive gradients. At evaluation
the adapter is merged into the base weights (harness/method.py `Method.backend`).
"""

from __future__ import annotations

from harness.errors import HarnessError
from harness.loading import load_for_training
from harness.method import Artifact, TrainContext
from harness.training import trainer
from harness.training.pipeline import finish, prepare, prompt_messages


def train_lora(cfg, ctx: TrainContext, name: str = "lora") -> Artifact:
    from peft import LoraConfig, get_peft_model

    prep = prepare(name, cfg, ctx)
    if prep.cached:
        return prep.cached

    model, tok = load_for_training(ctx.model.path, ctx.backend)
    try:
        model = get_peft_model(model, LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                                 target_modules=list(cfg.targets), task_type="CAUSAL_LM"))
    except ValueError as e:
        raise HarnessError(f"lora.targets {cfg.targets}: {str(e).splitlines()[0]}") from None
    messages, chat = prompt_messages(ctx)
    features = [trainer.encode(tok, messages(ex), ex.reference, chat, cfg.train.max_length) for ex in prep.examples]

    trainer.train(model, tok, features, cfg.train, prep.dir, seed=ctx.seed,
                  device=ctx.backend.device, desc=f"{name} train", save_to=prep.dir)
    return finish(prep, name, "adapter")
