"""LANDeRMT: the analysis, the routing formula, the frozen mask under AdamW and reload (`harness run` and
resume: tests/test_landermt_run.py),
on tiny random models with a gated MLP (Llama: gate/up/down) and plain ones (GPT-2 Conv1D c_fc/c_proj,
BLOOM Linear dense_h_to_4h/dense_4h_to_h)."""

from __future__ import annotations

import math

import pytest
import torch
from landermt_helpers import _features, _load, _logits

from harness.training import trainer
from harness.training.trainer import TrainConfig
from methods.landermt.neurons import awareness, find_mlps, layer_shift, split_neurons
from methods.landermt.routing import (
    Plan,
    effective_weights,
    install,
    load_trainable,
    trainable_state,
)

PAIRS = ["de-en", "en-de"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


def _plan(gating="output", scale=2.0, layers=None) -> Plan:
    """Hand-made split of the 64 neurons: G = 0..29, S_de-en = 30..44, S_en-de = 40..54 (40..44 in both), rest."""
    layers = layers or {"de-en": [0, 1], "en-de": [1]}
    union = sorted({i for v in layers.values() for i in v})
    spec = {"de-en": list(range(30, 45)), "en-de": list(range(40, 55))}
    return Plan(PAIRS, layers, {i: list(range(30)) for i in union},
                {i: {p: spec[p] for p in PAIRS if i in layers[p]} for i in union}, gating, scale)


def _randomise(model, std=0.05, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _k, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * std)


# --- analysis ------------------------------------------------------------------------------------------------

def test_split_follows_the_na_mnmt_rule_brute_force():
    torch.manual_seed(0)
    scores = {p: torch.rand(40) * (k + 1) for k, p in enumerate(["a", "b", "c"])}
    general, specific = split_neurons(scores, 0.5, 0.9, normalise=True)
    phi = {p: [float(v) / float(scores[p].mean()) for v in scores[p]] for p in scores}  # independent loops
    total = [sum(phi[p][j] for p in phi) for j in range(40)]
    expect_g = sorted(sorted(range(40), key=lambda j: -total[j])[:20])
    assert general == expect_g
    for p in phi:
        expect = [j for j in range(40) if j not in expect_g and phi[p][j] > 0.9 * max(phi[q][j] for q in phi)]
        assert specific[p] == expect
    assert set().union(*map(set, specific.values())) == set(range(40)) - set(expect_g)  # the top pair always gets it


@pytest.mark.parametrize("arch", ["llama", "gpt2", "bloom"])
def test_mlp_sites_are_found_for_gated_and_plain_mlps(arch, tiny_model_factory):
    model, _ = _load(tiny_model_factory(arch))
    sites = find_mlps(model)
    width = 128 if arch == "bloom" else 64  # BLOOM's MLP is 4 x hidden
    assert [s.layer for s in sites] == [0, 1] and all(s.width == width for s in sites)
    assert sites[0].ins == {"llama": ("gate_proj", "up_proj"), "gpt2": ("c_fc",), "bloom": ("dense_h_to_4h",)}[arch]


def test_variance_split_keeps_the_least_varying_neurons_general():
    torch.manual_seed(1)
    scores = {p: torch.rand(40) * (k + 1) for k, p in enumerate(["a", "b", "c"])}
    general, specific = split_neurons(scores, 0.5, 0.9, normalise=True, rule="variance")
    phi = {p: [float(v) / float(scores[p].mean()) for v in scores[p]] for p in scores}  # independent loops
    mean = [sum(phi[p][j] for p in phi) / 3 for j in range(40)]
    var = [sum((phi[p][j] - mean[j]) ** 2 for p in phi) / 3 for j in range(40)]
    expect_g = sorted(sorted(range(40), key=lambda j: var[j])[:20])
    assert general == expect_g and general != split_neurons(scores, 0.5, 0.9, normalise=True)[0]
    for p in phi:
        assert specific[p] == [j for j in range(40)
                               if j not in expect_g and phi[p][j] > 0.9 * max(phi[q][j] for q in phi)]


def test_relative_and_cosine_layer_metrics_are_not_dominated_by_activation_norms():
    """Scaling a stretch of the residual stream by 100 (the few layers with massive activations) multiplies its L2
    shift by 100 and leaves the relative and cosine shifts unchanged; the formulas are checked by hand."""
    from methods.landermt.neurons import shift_metric

    torch.manual_seed(0)
    means = torch.randn(6, 8)
    big = means.clone()
    big[2:5] *= 100  # rows 2..4 = the outputs of layers 1..3: layers 2 and 3 have both of their states scaled
    l2, rel, cos = (shift_metric(means, m) for m in ("l2", "relative", "cosine"))
    b_l2, b_rel, b_cos = (shift_metric(big, m) for m in ("l2", "relative", "cosine"))
    assert torch.allclose(b_l2[2:4], 100 * l2[2:4], rtol=1e-5)
    assert torch.allclose(b_rel[2:4], rel[2:4], rtol=1e-5) and torch.allclose(b_cos[2:4], cos[2:4], atol=1e-6)
    for i in range(5):
        d = (means[i + 1] - means[i]).norm()
        assert torch.isclose(rel[i], d / means[i].norm()) and torch.isclose(l2[i], d)
        assert torch.isclose(cos[i], 1 - means[i + 1] @ means[i] / (means[i + 1].norm() * means[i].norm()), atol=1e-6)


def test_new_options_keep_the_config_hash_of_existing_artifacts():
    """layer_metric / split are left out of the recorded config and its hashes while at their legacy values (l2,
    na_mnmt: artifacts trained before the options existed keep their keys), and recorded otherwise, including the
    default layer_metric the dev ablation chose (cosine), so rows trained with l2 read as stale."""
    from harness.config import to_dict
    from harness.method import config_variant
    from methods.landermt.config import LANDeRMTConfig

    legacy = LANDeRMTConfig(layer_metric="l2")
    d = to_dict(legacy)
    assert "layer_metric" not in d and "split" not in d
    assert to_dict(LANDeRMTConfig())["layer_metric"] == "cosine" and "split" not in to_dict(LANDeRMTConfig())
    assert config_variant(LANDeRMTConfig()) != config_variant(legacy)
    other = LANDeRMTConfig(layer_metric="cosine", split="variance")
    assert to_dict(other)["split"] == "variance" and config_variant(other) != config_variant(LANDeRMTConfig())


def test_layer_shift_matches_hidden_states_from_transformers(tiny_model_factory):
    model, tok = _load(tiny_model_factory("gpt2"))
    feats = _features(tok)
    d = layer_shift(model, feats, 3, tok.pad_token_id)
    means = []  # reference: transformers' own hidden states, one sample at a time (no padding)
    for f in feats:
        with torch.no_grad():
            hs = model(input_ids=torch.tensor([f["input_ids"]]), output_hidden_states=True).hidden_states
        means.append(torch.stack([h[0].mean(0) for h in hs]))
    m = torch.stack(means).mean(0)
    ref = (m[1:] - m[:-1]).norm(dim=-1)
    # GPT-2's last hidden state has ln_f applied: compare the layers before it
    assert torch.allclose(d[:-1], ref[:-1], rtol=1e-4, atol=1e-6)


def test_awareness_equals_activation_times_gradient_through_down_proj(tiny_model_factory):
    """Reference: dL/dh_j = W_down[:, j] · dL/dy with y the MLP output (a different path than the hook)."""
    model, tok = _load(tiny_model_factory("llama"))
    feats = _features(tok, n=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = awareness(model, feats, [0, 1], 2, tok.pad_token_id)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no weight moved
    batch = trainer.collate(feats, tok.pad_token_id)
    acts, outs = {}, {}
    hooks = []
    for i, layer in enumerate(model.model.layers):
        mlp = layer.mlp
        hooks.append(mlp.down_proj.register_forward_pre_hook(lambda m, a, i=i: acts.__setitem__(i, a[0].detach())))
        def keep_out(m, a, o, i=i):
            o.retain_grad()
            outs[i] = o
        hooks.append(mlp.register_forward_hook(keep_out))
    emb = model.get_input_embeddings()
    hooks.append(emb.register_forward_hook(lambda m, a, o: o.requires_grad_(True)))
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    loss, _ = trainer.loss_fn(out.logits, batch, lam=0.0)
    loss.backward()
    for h in hooks:
        h.remove()
    mask = batch["attention_mask"][..., None].float()
    for i in (0, 1):
        dh = outs[i].grad @ model.model.layers[i].mlp.down_proj.weight  # [B, T, F]
        ref = ((acts[i] * dh).abs() * mask).sum((0, 1)) / mask.sum()
        assert torch.allclose(got[i], ref, rtol=1e-4, atol=1e-9) and float(ref.sum()) > 0


# --- routing ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["llama", "gpt2", "bloom"])
def test_untrained_routes_are_the_base_model(arch, tiny_model_factory):
    model, tok = _load(tiny_model_factory(arch))
    ids = _features(tok, 1)[0]["input_ids"]
    base = _logits(model, ids)
    router = install(model, _plan())
    for pair in ("", "de-en", "en-de", "fr-en"):
        router.set(pair)
        assert torch.allclose(_logits(model, ids), base, atol=1e-5), pair


def _gate_de_en(model, router, mlp, g: float, layer: str) -> dict:
    """Fix the de-en gate of `mlp` at g, route de-en, and return that layer's effective dense weights by name."""
    with torch.no_grad():
        mlp.landermt_route.gates["de-en"].zero_()
        mlp.landermt_route.gates["de-en"][-1] = math.log(g / (1 - g))
    router.set("de-en")
    return {k.split(".")[-1]: v for k, v in effective_weights(model, router.plan, "de-en").items() if layer in k}


@pytest.mark.parametrize("gating", ["output", "input"])
def test_routed_mlp_equals_the_formula(gating, tiny_model_factory):
    """One Llama MLP under route de-en with a known gate g, against explicit dense weights and masks."""
    model, _ = _load(tiny_model_factory("llama"))
    router = install(model, _plan(gating, scale=2.0))
    _randomise(model)
    mlp = model.model.layers[1].mlp
    g = 0.3
    w = _gate_de_en(model, router, mlp, g, ".layers.1.")
    x = torch.randn(2, 5, 32)
    coef = torch.ones(64)
    coef[:30] = 2 * g
    coef[30:45] = 2 * (1 - g)
    if gating == "output":
        h = torch.nn.functional.silu(x @ w["gate_proj"].T) * (x @ w["up_proj"].T) * coef
    else:
        h = torch.nn.functional.silu((x @ w["gate_proj"].T) * coef) * ((x @ w["up_proj"].T) * coef)
    ref = h @ w["down_proj"].T
    with torch.no_grad():
        assert torch.allclose(mlp(x), ref, atol=1e-5)


@pytest.mark.parametrize("gating", ["output", "input"])
def test_routed_plain_mlp_with_biases_equals_the_formula(gating, tiny_model_factory):
    """GPT-2 (Conv1D, biased c_fc): input gating scales the neurons' pre-activation but not their bias."""
    model, _ = _load(tiny_model_factory("gpt2"))
    router = install(model, _plan(gating, scale=2.0))
    _randomise(model)
    mlp = model.transformer.h[1].mlp
    g = 0.8
    w = _gate_de_en(model, router, mlp, g, ".h.1.")
    b_fc = mlp.c_fc.base.bias.detach().clone()
    b_fc[:30] += mlp.c_fc.delta.b["general"].detach()
    b_fc[30:45] += mlp.c_fc.delta.b["de-en"].detach()
    x = torch.randn(2, 5, 32)
    coef = torch.ones(64)
    coef[:30] = 2 * g
    coef[30:45] = 2 * (1 - g)
    a = x @ w["c_fc"].T
    h = mlp.act(a + b_fc) * coef if gating == "output" else mlp.act(a * coef + b_fc)
    ref = h @ w["c_proj"].T + mlp.c_proj.base.bias.detach()
    with torch.no_grad():
        assert torch.allclose(mlp(x), ref, atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_each_route_uses_its_own_neurons(arch, tiny_model_factory):
    model, tok = _load(tiny_model_factory(arch))
    ids = _features(tok, 1)[0]["input_ids"]
    router = install(model, _plan())
    _randomise(model)
    before = {}
    for pair in ("", "de-en", "en-de"):
        router.set(pair)
        before[pair] = _logits(model, ids)
    # perturb en-de's specific deltas and gate: only route en-de changes
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith(".en-de"):
                p.add_(0.5)
    for pair, changed in (("", False), ("de-en", False), ("en-de", True)):
        router.set(pair)
        assert torch.equal(_logits(model, ids), before[pair]) != changed, pair
    # the general deltas run in every route, the no-pair route included
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith(".general"):
                p.add_(0.5)
    for pair in ("", "de-en"):
        router.set(pair)
        assert not torch.equal(_logits(model, ids), before[pair])


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_only_selected_neurons_move_under_adamw_decay_and_momentum(arch, tiny_model_factory, tmp_path):
    model, tok = _load(tiny_model_factory(arch))
    plan = _plan(layers={"de-en": [1], "en-de": [1]})
    base = {k: v.clone() for k, v in model.state_dict().items()}
    router = install(model, plan)
    base_w = effective_weights(model, plan, "")  # dense base weights of the wrapped layers (deltas are zero)
    pairs = PAIRS
    steps: list[tuple[str, set]] = []
    snap = {}

    def route(g):  # before each step: which trainable tensors did the previous step change?
        cur = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
        if snap:
            steps.append((router.active, {k for k in cur if not torch.equal(cur[k], snap[k])}))
        snap.clear()
        snap.update(cur)
        router.set(pairs[g])

    feats = _features(tok, n=8)
    cfg = TrainConfig(lr=1e-2, max_steps=6, batch_size=2, weight_decay=0.1, max_length=64, warmup_ratio=0,
                      scheduler="constant", save_every=0, precision="fp32")
    model, _ = trainer.train(model, tok, feats, cfg, tmp_path, device="cpu", route=route)
    route(0)
    assert {p for p, _ in steps} == set(pairs) and len(steps) == 6
    # some step follows a step of the other pair, whose deltas are non-zero by then: decay/momentum could move them
    assert any(steps[i][0] != steps[i - 1][0] for i in range(1, len(steps)))
    for pair, changed in steps:  # a step moves the general deltas and its own pair's deltas + gate, nothing else
        other = next(p for p in pairs if p != pair)
        assert any(k.endswith(".general") for k in changed) and any(k.endswith(f".{pair}") for k in changed)
        assert not any(k.endswith(f".{other}") for k in changed), (pair, sorted(changed))
    state = model.state_dict()
    for k, v in base.items():  # every base weight, of every layer, is bit-identical
        k2 = next(s for s in (k, k.replace(k.rsplit(".", 1)[0], k.rsplit(".", 1)[0] + ".base")) if s in state)
        assert torch.equal(state[k2], v), k
    for pair in pairs:  # effective weights: changed rows/columns lie inside G ∪ S_pair, the rest bit-identical
        sel = set(plan.general[1]) | set(plan.specific[1][pair])
        for name, w in effective_weights(model, plan, pair).items():
            rows = ((w != base_w[name]).any(1) if not name.endswith(("down_proj", "c_proj"))
                    else (w != base_w[name]).any(0))
            moved = set(rows.nonzero().squeeze(1).tolist())
            assert moved and moved <= sel, (pair, name)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_saved_parts_reload_to_the_same_outputs(arch, tiny_model_factory, tmp_path):
    from safetensors.torch import save_file

    from harness.io import atomic_write_json
    from methods.landermt.backend import load_routed

    path = tiny_model_factory(arch)
    model, tok = _load(path)
    plan = _plan()
    router = install(model, plan)
    _randomise(model)
    save_file(trainable_state(model), str(tmp_path / "landermt.safetensors"))
    atomic_write_json(tmp_path / "landermt.json", {"plan": plan.to_json()})
    fresh, _ = _load(path)
    router2 = load_routed(fresh, tmp_path)
    ids = _features(tok, 1)[0]["input_ids"]
    for pair in ("", "de-en", "en-de"):
        router.set(pair), router2.set(pair)
        assert torch.equal(_logits(model, ids), _logits(fresh, ids)), pair
    with pytest.raises(KeyError):
        load_trainable(fresh, {})


def test_batches_never_mix_groups():
    feats = [{"input_ids": [1] * (3 + i % 5), "segments": [1] * (3 + i % 5), "group": i % 3} for i in range(23)]
    cfg = TrainConfig(batch_size=4)
    out = trainer.batches(feats, cfg, seed=0, epoch=0)
    assert sorted(i for b in out for i in b) == list(range(23))
    assert all(len({feats[i]["group"] for i in b}) == 1 and len(b) <= 4 for b in out)


# --- end to end ------------------------------------------------------------------------------------------------
