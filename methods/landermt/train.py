"""`landermt`: LANDeRMT (Zhu et al., ACL 2024; methods/landermt/README.md), top to bottom.

0. `prepare`: load the pairs (all ALMA directions by default, FLORES excluded), refuse train/test overlap,
   compute the cache key; reuse a finished artifact. Each direction (e.g. de-en) is one route.
1. Representation analysis: per pair, the `top_layers` decoder layers that move the mean hidden state most
   (N = `ra_samples` examples; neurons.layer_shift).
2. Taylor awareness |h_j · dL/dh_j| of every FFN neuron of the chosen layers, per pair, accumulated with
   hooks over `te_samples` examples, no optimiser step (neurons.awareness).
3. Split per chosen layer: general neurons (top `general_ratio` of the summed awareness) and each pair's
   specific neurons (awareness > `specific_threshold` × the top pair's) (neurons.split_neurons).
4. Wrap the chosen layers (routing.install): the base weights are frozen, the selected neurons get
   zero-initialised delta rows/columns and each (pair, layer) a gate. Train with homogeneous batches per
   pair; before each step the router switches to that step's pair.
5. Save the deltas + gates (landermt.safetensors), the plan (landermt.json), the scores
   (awareness.safetensors) and their heat map (awareness.png); summary into the artifact config
   (and so into results.json).
Steps 1-3 are saved before training, so a resumed training reuses them.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from harness.errors import HarnessError
from harness.io import atomic_write_json, read_json
from harness.loading import load_for_training, pick_device
from harness.method import Artifact, TrainContext
from harness.training import trainer
from harness.training.objective import RoutedObjective
from harness.training.pipeline import finish, prepare, prompt_messages
from harness.training.trainer import PROMPT
from methods.landermt.neurons import awareness, layer_shift, split_neurons
from methods.landermt.report import heatmap, summarise
from methods.landermt.routing import Plan, install, trainable_state

PLAN, SCORES, WEIGHTS, PICTURE = "landermt.json", "awareness.safetensors", "landermt.safetensors", "awareness.png"


def analyse(model, pad: int, features: list[dict], pairs: list[str], cfg, device) -> tuple[Plan, dict, dict]:
    """Steps 1-3: (plan, layer shift per pair, awareness per layer and pair)."""
    model.to(device).eval()
    # examples cut to their prompt by max_length have no loss: they would add nothing to the awareness
    by_pair = {p: [f for f in features if f["group"] == g and any(s != PROMPT for s in f["segments"])]
               for g, p in enumerate(pairs)}
    shift = {p: layer_shift(model, by_pair[p][:cfg.ra_samples], cfg.analysis_batch_size, pad, f"layers {p}",
                            cfg.layer_metric) for p in pairs}
    k = min(cfg.top_layers, len(next(iter(shift.values()))))
    chosen = {p: sorted(torch.topk(shift[p], k).indices.tolist()) for p in pairs}
    union = sorted({i for p in pairs for i in chosen[p]})
    scores: dict[int, dict[str, torch.Tensor]] = {i: {} for i in union}
    for p in pairs:  # every pair is scored on every chosen layer: the split compares pairs neuron by neuron
        for i, s in awareness(model, by_pair[p][:cfg.te_samples], union, cfg.analysis_batch_size, pad,
                              f"awareness {p}").items():
            scores[i][p] = s
    general, specific = {}, {}
    for i in union:
        general[i], spec = split_neurons(scores[i], cfg.general_ratio, cfg.specific_threshold, cfg.normalise_scores,
                                         cfg.split)
        specific[i] = {p: spec[p] for p in pairs if i in chosen[p]}
    plan = Plan(pairs, chosen, general, specific, cfg.gating, cfg.gate_scale)
    return plan, shift, scores


def save_analysis(folder: Path, plan: Plan, shift: dict, scores: dict) -> None:
    tensors = {f"layer_shift/{p}": v.contiguous() for p, v in shift.items()}
    tensors.update({f"awareness/{i}/{p}": v.contiguous() for i, d in scores.items() for p, v in d.items()})
    save_file(tensors, str(folder / SCORES))
    atomic_write_json(folder / PLAN, {"plan": plan.to_json()})


def load_analysis(folder: Path) -> tuple[Plan, dict, dict]:
    plan = Plan.from_json(read_json(folder / PLAN)["plan"])
    t = load_file(str(folder / SCORES))
    shift = {k.split("/", 1)[1]: v for k, v in t.items() if k.startswith("layer_shift/")}
    scores: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in t.items():
        if key.startswith("awareness/"):
            _, i, p = key.split("/")
            scores.setdefault(int(i), {})[p] = v
    return plan, shift, scores


def train_landermt(cfg, ctx: TrainContext, name: str = "landermt") -> Artifact:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # DDP would need find_unused_parameters (other pairs' deltas)
        raise HarnessError("landermt trains in one process (each step leaves the other pairs' deltas unused); "
                           "run it without `accelerate launch`")
    prep = prepare(name, cfg, ctx)
    if prep.cached:
        return prep.cached

    model, tok = load_for_training(ctx.model.path, ctx.backend)
    messages, chat = prompt_messages(ctx)
    pairs = [p for p in cfg.data.pairs if any(ex.pair == p for ex in prep.examples)]
    for p in cfg.data.pairs:
        if p not in pairs:  # e.g. ALMA is-en, whose lines are all FLORES dev/devtest
            print(f"[{name}] {p}: no training example left (see training_data in the artifact); it gets no route "
                  f"and translates with the general route")
    features = [{**trainer.encode(tok, messages(ex), ex.reference, chat, cfg.train.max_length),
                 "group": pairs.index(ex.pair)} for ex in prep.examples]

    # 1-3: which layers, which neurons (saved first: a resumed training reuses them)
    prep.dir.mkdir(parents=True, exist_ok=True)
    if (prep.dir / PLAN).exists() and (prep.dir / SCORES).exists():
        plan, shift, scores = load_analysis(prep.dir)
        print(f"[{name}] reusing the neuron analysis in {prep.dir}")
    else:
        plan, shift, scores = analyse(model, tok.pad_token_id, features, pairs, cfg, pick_device(ctx.backend.device))
        save_analysis(prep.dir, plan, shift, scores)

    # 4: frozen base + routed deltas; the router follows each step's pair
    router = install(model, plan)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"[{name}] layers per pair: {plan.layers}; {n_trainable:,} trainable parameters")
    model, main = trainer.train(model, tok, features, cfg.train, prep.dir, seed=ctx.seed, device=ctx.backend.device,
                                desc=f"{name} train", objective=RoutedObjective(lambda g: router.set(pairs[g])))

    # 5: the trained parts, the picture, the summary
    if main:
        save_file(trainable_state(model), str(prep.dir / WEIGHTS))
        heatmap(plan, shift, scores, prep.dir / PICTURE)
    analysis = summarise(plan, shift, n_trainable)
    analysis.update(layer_metric=cfg.layer_metric, split=cfg.split)  # records without them are l2 / na_mnmt
    prep.config = {**prep.config, "analysis": analysis}
    return finish(prep, name, "composite")
