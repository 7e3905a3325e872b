"""`xbridge`: three training stages through the shared loop, one artifact per stage, chained by hash.

For each stage in `cfg.stages`:
1. Data: stage 1 = trilingual (x, en, y) tuples, stages 2/3 = instruction tuples (query, English
   response, response in the query's language); every side checked by the contamination guard.
2. Key: the stage's own settings + both models' weight hashes + the previous stage's artifact hash,
   so changing stage 3 never retrains stage 1, and a retrained stage 1 invalidates stages 2 and 3.
   A finished artifact with that key is reused (`harness.training.artifacts.artifact_cache`).
3. Build the composed module (the NMT model and the LLM are loaded once), load the previous stage's
   bridge weights, switch on the stage's trainable set, train with `harness.training.trainer.train`
   and the stage's `XBridgeObjective`, save the bridge weights (`bridge.safetensors` + `bridge.json`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from harness.config import to_dict
from harness.errors import HarnessError
from harness.io import read_json, stable_hash
from harness.method import Artifact, TrainContext
from harness.models import resolve_model
from harness.training import trainer
from harness.training.artifacts import artifact_cache
from methods.xbridge.config import STAGE_LOSSES
from methods.xbridge.data import Codes, XBridgeObjective, check_overlap, features, stage1_tuples, stage23_tuples

BRIDGE_FILE, META_FILE = "bridge.safetensors", "bridge.json"


def check_tasks(tasks: list) -> None:
    """Stop before any work when a task cannot run through the composed system: it serves translation tasks
    (the `translation` ability: flores, wmt16, any YAML test set) and math tasks that accept an extra answer
    round (`answer_rounds`: mgsm, gsm8k), whatever their names."""
    for task in tasks:
        if not (task.translation or task.answer_rounds):
            raise HarnessError(f"xbridge cannot serve task {task.name!r}: the composed encoder-LLM-decoder system "
                               f"answers translation tasks and math tasks with answer rounds only (drop it from "
                               f"--tasks)")


def resolve_parts(cfg, base_model):
    """(NMT ResolvedModel, LLM ResolvedModel); an unavailable NMT model is a one-line error."""
    try:
        nmt = resolve_model(cfg.nmt_model)
    except HarnessError as e:
        raise HarnessError(f"xbridge: NMT model {cfg.nmt_model!r} is not available ({str(e).split(': ', 1)[-1]}); "
                           f"set nmt_model in --method-config to a local NLLB-200/M2M100 folder") from None
    return nmt, (resolve_model(cfg.llm) if cfg.llm else base_model)


def load_parts(nmt_path, llm_path, backend_cfg, dtype=torch.float32):
    """The NMT model and the LLM (frozen: `XBridge.set_stage` switches on what a stage trains) + tokenizers."""
    from transformers import M2M100ForConditionalGeneration

    from harness.loading import load_frozen

    nmt, nmt_tok = load_frozen(nmt_path, dtype=dtype, model_class=M2M100ForConditionalGeneration)
    nmt.tie_weights()  # lm_head re-tied to the shared embeddings (as the official code does after loading)
    llm, llm_tok = load_frozen(llm_path, backend_cfg.trust_remote_code, dtype)
    return nmt, llm, nmt_tok, llm_tok


def build_bridge(cfg, nmt, llm, llm_tok):
    from methods.xbridge.model import XBridge

    bos = llm_tok.bos_token_id if llm_tok.bos_token_id is not None else None
    return XBridge(nmt, llm, cfg.widths, cfg.hidden_layer, bos, cfg.ot, cfg.ot_reg, cfg.ot_iters)


def save_bridge(bridge, folder: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    from harness.io import atomic_write_json

    state = {n: p.detach().float().cpu().contiguous() for n, p in bridge.named_parameters()
             if n in set(bridge.bridge_names())}
    save_file(state, str(folder / BRIDGE_FILE))
    atomic_write_json(folder / META_FILE, meta)


def load_bridge(bridge, folder: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(Path(folder) / BRIDGE_FILE))
    names = set(bridge.bridge_names())
    if set(state) != names:
        raise HarnessError(f"{folder / BRIDGE_FILE}: holds {len(state)} tensors, this bridge has {len(names)}; "
                           f"it was trained with other models or widths")
    params = dict(bridge.named_parameters())
    with torch.no_grad():
        for n, t in state.items():
            if params[n].shape != t.shape:
                raise HarnessError(f"{folder / BRIDGE_FILE}: {n} has shape {tuple(t.shape)}, "
                                   f"expected {tuple(params[n].shape)}")
            params[n].copy_(t.to(params[n].dtype))


def stage_key(cfg, stage: int, nmt_id: dict, llm_id: dict, previous: str) -> dict:
    """Everything that decides what stage `stage` produces (eval-only settings excluded)."""
    c = to_dict(cfg)
    key = {k: c[k] for k in ("language_codes", "widths", "hidden_layer", "max_src_tokens", "max_dec_tokens")}
    key.update(stage=stage, weights=cfg.weights(stage), train=c[f"train{stage}"], previous=previous,
               nmt=nmt_id.get("weights_sha256"), llm=llm_id.get("weights_sha256"),
               data=c["stage1"] if stage == 1 else c["stage23"])
    if stage > 1:
        key["prompt"] = cfg.prompt
    if "ot" in STAGE_LOSSES[stage]:
        key["ot"] = {"kind": cfg.ot, **({"reg": cfg.ot_reg, "iters": cfg.ot_iters} if cfg.ot == "entropic" else {})}
    return key


def train_xbridge(cfg, ctx: TrainContext, name: str = "xbridge") -> Artifact:
    check_tasks(ctx.eval_tasks)
    nmt_res, llm_res = resolve_parts(cfg, ctx.model)
    nmt_id, llm_id = nmt_res.identity(), llm_res.identity()
    loaded = None
    art: Artifact | None = None
    for stage in cfg.stages:
        make = (stage1_tuples(cfg.stage1, ctx.data, ctx.seed) if stage == 1
                else stage23_tuples(cfg.stage23, ctx.data, ctx.seed))
        tuples, report = check_overlap(make, ctx.eval_tasks, ctx.allow_overlap)
        if not tuples:
            raise HarnessError(f"xbridge stage {stage}: no training tuples left after the overlap check")
        fingerprint = stable_hash([(t.x_lang, t.x, t.en, t.y_lang, t.y, t.query) for t in tuples])
        previous = art.hash if art else ""
        cache = artifact_cache(name, {**stage_key(cfg, stage, nmt_id, llm_id, previous), "seed": ctx.seed},
                               fingerprint, ctx.out_dir, llm_id.get("weights_sha256", ""), label=f"stage {stage}")
        folder = cache.folder
        if cache.cached:
            art = cache.cached
            continue
        if loaded is None:
            loaded = load_parts(nmt_res.path, llm_res.path, ctx.backend)
        nmt, llm, nmt_tok, llm_tok = loaded
        torch.manual_seed(ctx.seed)  # the maps' initialisation is part of what the seed reproduces
        bridge = build_bridge(cfg, nmt, llm, llm_tok)
        if art is not None:
            load_bridge(bridge, art.path)
        bridge.set_stage(stage)
        codes = Codes(nmt_tok, cfg.language_codes)
        feats = [features(t, codes, llm_tok, cfg) for t in tuples]
        folder.mkdir(parents=True, exist_ok=True)
        objective = XBridgeObjective(cfg.weights(stage), nmt_tok.pad_token_id)
        bridge, is_main = trainer.train(bridge, llm_tok, feats, cfg.train_for(stage), folder, seed=ctx.seed,
                                        device=ctx.backend.device, desc=f"{name} stage {stage}", objective=objective)
        if is_main:
            save_bridge(bridge, folder, {"stage": stage, "nmt": nmt_id, "llm": llm_id, "nmt_path": str(nmt_res.path),
                                         "llm_path": str(llm_res.path), "d_nmt": nmt.config.d_model,
                                         "d_llm": llm.get_input_embeddings().embedding_dim})
        bridge.cpu()  # the next stage starts from this module's weights on the loading device
        config = {**to_dict(cfg), "stage": stage, "previous_artifact": previous,
                  "training_data": {**report, "fingerprint": fingerprint, "n_train": len(tuples)}}
        art = cache.save("composite", config, {"stage": stage, "previous_artifact": previous})
    return art


def bridge_meta(artifact: Artifact) -> dict:
    return read_json(Path(artifact.path) / META_FILE)
