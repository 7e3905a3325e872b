"""`sft`: full fine-tuning on reference translations, loss on the response tokens only.

1. `prepare`: load the configured pairs, refuse train/test overlap, compute the cache key; reuse a
   finished artifact with the same key.
2. Render each pair with the FLORES evaluation prompt (chat template when the model has one).
3. Train every weight with the shared loop; save full weights + tokenizer as the artifact.
"""

from __future__ import annotations

from harness.loading import load_for_training
from harness.method import Artifact, TrainContext
from harness.training import trainer
from harness.training.pipeline import finish, prepare, prompt_messages


def train_sft(cfg, ctx: TrainContext, name: str = "sft") -> Artifact:
    prep = prepare(name, cfg, ctx)
    if prep.cached:
        return prep.cached

    model, tok = load_for_training(ctx.model.path, ctx.backend)
    messages, chat = prompt_messages(ctx)
    features = [trainer.encode(tok, messages(ex), ex.reference, chat, cfg.train.max_length) for ex in prep.examples]

    trainer.train(model, tok, features, cfg.train, prep.dir, seed=ctx.seed,
                  device=ctx.backend.device, desc=f"{name} train", save_to=prep.dir)
    return finish(prep, name, "full")
