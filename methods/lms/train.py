"""`lms`: Language-Specific Matrix Synthesis + Fuse Distillation on a causal LM (Xu et al., EMNLP 2023;
methods/lms/README.md).

1. `prepare`: load the pairs (all ALMA directions by default), refuse train/test overlap, compute the cache key.
2. Wrap every MLP linear: y = W·x + V[a]·F[b]·x (methods/lms/modules.py). The route (a, b) of an example is
   its language pair: pair-wise V[src]·F[tgt] or language-wise V[l]·F[l]; the last row of V and F is the
   shared route. The base weights are frozen unless `train_base`.
3. Each example carries its route ids; a batch may mix pairs because the delta is computed per row.
4. Fuse Distillation (`fd_objective`): the batch goes through the pair route and the shared route in ONE
   forward (the batch stacked twice, each half with its routes; gradient checkpointing stays correct because
   the router does not change before backward). loss = (CE_pair + CE_shared)/2 + fd_weight · symmetric KL
   over the response tokens, every term a mean over the step's target tokens. Without FD: CE_pair only.
5. Save only V/F (+ `lms.json`; + full weights when the base trained). The parameter counts go to results.json, and
   the mechanism check (KL between each pair's route and the shared route on FLORES dev lines, whether the base
   trained: methods/lms/routes.py) to the artifact report.
"""

from __future__ import annotations

import torch

from harness.loading import load_for_training
from harness.method import Artifact, TrainContext
from harness.training import trainer
from harness.training.objective import CausalLMObjective
from harness.training.pipeline import finish, prepare, prompt_messages
from methods.lms.modules import (
    Router,
    RouteTable,
    attach,
    count_parameters,
    detach,
    save_lms,
)
from methods.lms.routes import route_kl, symmetric_kl


def fd_objective(router: Router, fuse: bool, fd_weight: float):
    """LMS's loss as `objective(forward, batch, positions, denom) -> (loss, parts)`, where `forward(ids, mask)`
    returns the logits at `positions` (`FDObjective` supplies it in training)."""

    def objective(forward, batch: dict, positions: torch.Tensor, denom: dict | None):
        route = batch["route"]  # (rows, 2): V row, F row of each example
        if not fuse:
            router.set(route[:, 0], route[:, 1])
            return trainer.loss_fn(forward(batch["input_ids"], batch["attention_mask"]), batch, 0.0, denom, positions)
        rows = route.shape[0]
        both = torch.cat([route, torch.full_like(route, router.shared)])  # pair routes, then the shared route
        router.set(both[:, 0], both[:, 1])
        logits = forward(batch["input_ids"].repeat(2, 1), batch["attention_mask"].repeat(2, 1))
        pair, shared = logits[:rows], logits[rows:]
        ce_pair, _ = trainer.loss_fn(pair, batch, 0.0, denom, positions)
        ce_shared, _ = trainer.loss_fn(shared, batch, 0.0, denom, positions)
        scored = batch["segments"][:, positions + 1] == trainer.TRANSLATION  # response tokens only
        n = denom["translation"] if denom is not None else scored.sum().clamp(min=1)
        kl = symmetric_kl(pair[scored], shared[scored]) / n
        loss = (ce_pair + ce_shared) / 2 + fd_weight * kl
        return loss, {"translation": float((ce_pair + ce_shared).detach()) / 2, "ce_pair": float(ce_pair.detach()),
                      "ce_shared": float(ce_shared.detach()), "kl": float(kl.detach())}

    return objective


class FDObjective(CausalLMObjective):
    """`fd_objective` as the shared trainer's objective (`harness.training.objective`): the batch carries each
    example's `route`; the loss is averaged over response tokens like the causal-LM objective's."""

    def __init__(self, router: Router, fuse: bool, fd_weight: float):
        super().__init__(lam=0.0)
        self.fn = fd_objective(router, fuse, fd_weight)

    def loss(self, model, batch, denom):
        keep = trainer.loss_positions(batch)
        return self.fn(lambda ids, attn: self.logits(model, ids, attn, keep), batch, keep, denom)


def train_lms(cfg, ctx: TrainContext, name: str = "lms") -> Artifact:
    prep = prepare(name, cfg, ctx)
    if prep.cached:
        return prep.cached

    model, tok = load_for_training(ctx.model.path, ctx.backend)
    # rows for the languages that have training examples (a configured pair left empty, e.g. is-en once FLORES
    # is excluded, gets none: its requests take the shared route instead of untrained random matrices)
    table = RouteTable.from_pairs(sorted({ex.pair for ex in prep.examples}), cfg.synthesis, cfg.language_key)
    router = attach(model, table, cfg.rank, cfg.init_std, cfg.mlp_name, cfg.targets, cfg.train_base, seed=ctx.seed)
    if cfg.train.gradient_checkpointing and not cfg.train_base:
        model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need a grad path
    params = count_parameters(model, table)
    print(f"[{name}] {params['wrapped_linears']} MLP linears wrapped, {len(table.languages)} languages + shared, "
          f"{params['added']:,} added parameters ({params['trainable']:,} trainable)")

    messages, chat = prompt_messages(ctx)
    features = [{**trainer.encode(tok, messages(ex), ex.reference, chat, cfg.train.max_length),
                 "route": list(table.route(ex.src, ex.tgt))} for ex in prep.examples]

    model, main = trainer.train(model, tok, features, cfg.train, prep.dir, seed=ctx.seed, device=ctx.backend.device,
                                desc=f"{name} train",
                                objective=FDObjective(router, cfg.fuse_distillation, cfg.fd_weight))
    check = {}  # the mechanism check (methods/lms/routes.py): how far each pair's route is from the shared one
    if main:
        pairs = sorted({ex.pair for ex in prep.examples})
        check = {"route_kl": route_kl(model, tok, router, table, messages, chat, pairs, ctx.data),
                 "base_trained": cfg.train_base}
    router.use_shared()
    if main:
        save_lms(model, prep.dir, table, {"rank": cfg.rank, "mlp_name": cfg.mlp_name, "targets": list(cfg.targets)})
        if cfg.train_base:  # the paper's setting: the trained base weights are part of the artifact
            detach(model)
            model.save_pretrained(prep.dir)
            tok.save_pretrained(prep.dir)
    # parameter counts join the recorded config; the route check goes to the artifact report (results.json
    # method.artifact.report)
    return finish(prep, name, "composite", check, report={"lms_parameters": params})
