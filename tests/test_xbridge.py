"""XBridge: OT losses vs brute force, one training step per stage (what trains, what stays
bit-identical), padding invariance of the composed forward and of generation, data and guard."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from harness.loading import BackendConfig, load_tokenizer
from harness.data import DataSource
from harness.training import trainer
from methods.xbridge.config import XBridgeConfig
from methods.xbridge.data import Codes, Tuple, XBridgeObjective, check_overlap, features, stage1_tuples
from methods.xbridge.losses import entropic_ot, relaxed_ot
from xbridge_tiny import build_tiny_nmt


# -- OT ----------------------------------------------------------------------------------------
def _random_pair(seed=0, b=3, k=5, m=4, d=6):
    g = torch.Generator().manual_seed(seed)
    h, h2 = torch.randn(b, k, d, generator=g), torch.randn(b, m, d, generator=g)
    hm = torch.ones(b, k, dtype=torch.long)
    h2m = torch.ones(b, m, dtype=torch.long)
    hm[1, 3:], h2m[1, :2], h2m[2, 3:] = 0, 0, 0  # padding on both sides, left and right
    return h, hm, h2, h2m


def test_relaxed_ot_equals_explicit_loops():
    h, hm, h2, h2m = _random_pair()
    got = relaxed_ot(h, hm, h2, h2m)
    for r in range(h.shape[0]):
        ii = [i for i in range(h.shape[1]) if hm[r, i]]
        jj = [j for j in range(h2.shape[1]) if h2m[r, j]]
        norms = {i: float(np.linalg.norm(h[r, i].numpy())) for i in ii}
        total = 0.0
        for i in ii:
            costs = []
            for j in jj:
                a, c = h[r, i].numpy().astype(np.float64), h2[r, j].numpy().astype(np.float64)
                costs.append(1 - a @ c / (np.linalg.norm(a) * np.linalg.norm(c)))
            total += norms[i] / sum(norms.values()) * min(costs)
        assert abs(float(got[r]) - total) < 1e-5


def _sinkhorn_loops(a, b, c, reg, iters):
    """Plain Sinkhorn-Knopp, written out: the entropic plan's cost <P, C>."""
    kmat = [[np.exp(-c[i][j] / reg) for j in range(len(b))] for i in range(len(a))]
    u, v = [1.0] * len(a), [1.0] * len(b)
    for _ in range(iters):
        u = [a[i] / sum(kmat[i][j] * v[j] for j in range(len(b))) for i in range(len(a))]
        v = [b[j] / sum(kmat[i][j] * u[i] for i in range(len(a))) for j in range(len(b))]
    return sum(u[i] * kmat[i][j] * v[j] * c[i][j] for i in range(len(a)) for j in range(len(b)))


def test_entropic_ot_matches_bruteforce_sinkhorn_and_lp():
    import ot

    h, hm, h2, h2m = _random_pair(seed=1)
    h.requires_grad_(True)
    got = entropic_ot(h, hm, h2, h2m, reg=0.5, iters=300)
    got.sum().backward()  # differentiable
    small = entropic_ot(h.detach(), hm, h2, h2m, reg=0.005, iters=3000)
    assert h.grad is not None and torch.isfinite(h.grad).all()
    for r in range(h.shape[0]):
        ii = [i for i in range(h.shape[1]) if hm[r, i]]
        jj = [j for j in range(h2.shape[1]) if h2m[r, j]]
        x, y = h[r, ii].detach().double().numpy(), h2[r, jj].double().numpy()
        a = np.linalg.norm(x, axis=1) / np.linalg.norm(x, axis=1).sum()
        b = np.linalg.norm(y, axis=1) / np.linalg.norm(y, axis=1).sum()
        c = 1 - (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T
        assert abs(float(got[r].detach()) - _sinkhorn_loops(a, b, c, 0.5, 300)) < 1e-4
        # small regularisation approaches the exact LP optimum
        assert abs(float(small[r]) - ot.emd2(a, b, c)) < 2e-2
    # the relaxed (one-sided) problem is a lower bound of the full one
    assert (relaxed_ot(h.detach(), hm, h2, h2m) <= small + 1e-3).all()


# -- tiny composed models -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def parts(tmp_path_factory, tiny_model_factory):
    from transformers import AutoModelForCausalLM, M2M100ForConditionalGeneration

    nmt_path = build_tiny_nmt(tmp_path_factory.mktemp("tiny-nmt"), d_model=24)  # LLM hidden size is 32
    llm_path = tiny_model_factory("llama", True)
    return nmt_path, llm_path, M2M100ForConditionalGeneration, AutoModelForCausalLM


def _bridge(parts, cfg=None):
    from methods.xbridge.train import build_bridge

    nmt_path, llm_path, nmt_cls, llm_cls = parts
    nmt, llm = nmt_cls.from_pretrained(nmt_path), llm_cls.from_pretrained(llm_path)
    nmt_tok, llm_tok = load_tokenizer(nmt_path), load_tokenizer(llm_path)
    cfg = cfg or XBridgeConfig()
    torch.manual_seed(0)
    return build_bridge(cfg, nmt, llm, llm_tok), nmt_tok, llm_tok, cfg


TUPLES = [Tuple("de", "Guten Morgen, wie geht es dir heute?", "Good morning, how are you today?", "ru", "Доброе утро.",
                None, "t:1"),
          Tuple("en", "Thank you.", "Thank you.", "de", "Danke schön, mein Freund.", None, "t:2"),
          Tuple("zh", "你好", "Hello there, my friend.", "de", "Hallo.", "你好", "t:3")]


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_one_step_per_stage_trains_only_its_parts(parts, stage, tmp_path):
    bridge, nmt_tok, llm_tok, cfg = _bridge(parts)
    before = {n: p.detach().clone() for n, p in bridge.named_parameters()}
    bridge.set_stage(stage)
    feats = [features(t, Codes(nmt_tok, "nllb"), llm_tok, cfg) for t in TUPLES]
    tc = trainer.TrainConfig(lr=1e-2, max_steps=1, batch_size=3, save_every=0, warmup_ratio=0.0)
    trainer.train(bridge, llm_tok, feats, tc, tmp_path, device="cpu",
                  objective=XBridgeObjective(cfg.weights(stage), nmt_tok.pad_token_id))
    enc_side = ("map_enc.", "end_boundary")
    for n, p in bridge.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        trains = (n.startswith(enc_side) and stage in (1, 2)) or (
            (n.startswith("map_dec.") or ("nmt.model.decoder." in n and "encoder_attn" in n)) and stage in (1, 3))
        if not trains:
            assert not changed, f"stage {stage}: frozen {n} changed"
        elif n != "end_boundary" and not n.endswith("bias"):  # zero-initialised/bias terms may get no signal
            assert changed, f"stage {stage}: trainable {n} did not change"
    frozen = [n for n in before
              if n.startswith("llm.") or n.startswith("nmt.model.encoder.") or n == "nmt.model.shared.weight"]
    assert frozen and all(torch.equal(before[n], dict(bridge.named_parameters())[n]) for n in frozen)
    import json

    log = [json.loads(x) for x in (tmp_path / "loss.jsonl").read_text().splitlines()]
    active = {1: {"llm", "dec", "ot"}, 2: {"llm"}, 3: {"dec", "ot"}}[stage]
    assert {k for k in ("llm", "dec", "ot") if log[0][k] > 0} == active


def test_batched_losses_equal_sum_of_single_examples(parts):
    bridge, nmt_tok, llm_tok, cfg = _bridge(parts)
    bridge.eval()
    obj = XBridgeObjective(cfg.weights(1), nmt_tok.pad_token_id)
    feats = [features(t, Codes(nmt_tok, "nllb"), llm_tok, cfg) for t in TUPLES]
    with torch.no_grad():
        batched = bridge(obj.collate(feats, llm_tok.pad_token_id))
        single = [bridge(obj.collate([f], llm_tok.pad_token_id)) for f in feats]
    for k in ("llm", "dec", "ot"):
        assert abs(float(batched[k]) - sum(float(s[k]) for s in single)) < 1e-4 * max(1.0, abs(float(batched[k])))


def test_generation_padding_invariant_and_language_forced(parts):
    from methods.xbridge.backend import XBridgeBackend

    bridge, nmt_tok, llm_tok, cfg = _bridge(parts)
    cfg.max_dec_tokens = 6
    be = XBridgeBackend(bridge, nmt_tok, llm_tok, cfg, BackendConfig(device="cpu", batch_size=3), {})
    codes = Codes(nmt_tok, "nllb")
    srcs = [codes.encode(t.x, t.x_lang, 64) for t in TUPLES]
    prompts = [[], [], llm_tok("Below: 你好", add_special_tokens=False)["input_ids"]]
    batched = be.llm_generate(srcs, prompts, 5)
    for r in range(3):
        (one,) = be.llm_generate([srcs[r]], [prompts[r]], 5)
        assert one[0] == batched[r][0] and one[1] == batched[r][1]
        assert one[2].shape == batched[r][2].shape and torch.allclose(one[2], batched[r][2], atol=1e-5)
    mems = [b[2] for b in batched]
    dec = be.decode(mems, ["de", "ru", "de"])
    for r, lang in enumerate(["de", "ru", "de"]):
        (one,) = be.decode([mems[r]], [lang])
        assert one == dec[r]
    assert all(len(d[0]) >= 1 and d[0][0] == codes.id(lang) for d, lang in zip(dec, ["de", "ru", "de"]))
    with pytest.raises(Exception, match="no language token"):
        be.decode([mems[0]], ["sw"])


def test_flores_dev_tuples_and_guard_agree_with_bruteforce(data_dir):
    from tasks import load_task
    from harness.training.contamination import normalise

    data = DataSource(data_dir)
    cfg = XBridgeConfig().stage1
    cfg.languages, cfg.max_per_direction = ["de"], None
    tuples = stage1_tuples(cfg, data, 0)
    assert {(t.x_lang, t.y_lang) for t in tuples} == {("de", "en"), ("en", "de")} and len(tuples) == 2 * 997
    flores = load_task("flores", data)
    flores.select(["de-en", "en-de"])
    kept, report = check_overlap(tuples, [flores], drop=True)
    test = {normalise(x) for s in flores.selected for d in flores.docs(s) for x in (d["source"], d["reference"])}
    hits = [t for t in tuples if any(normalise(v) in test for v in (t.x, t.en, t.y))]
    assert report["tuples_dropped"] == len(hits) == len(tuples) - len(kept)
    assert len(hits) == 0  # FLORES dev is disjoint from devtest (measured: 0 of 1994 tuples)
    # positive control: a devtest sentence on any side of a tuple is caught
    leak = flores.docs("de-en")[5]
    planted = [Tuple("de", "harmlos", leak["reference"], "de", "harmlos", None, "p:1"),
               Tuple("de", "harmlos", "harmless", "de", leak["source"], None, "p:2")]
    kept, report = check_overlap(tuples[:10] + planted, [flores], drop=True)
    assert report["tuples_dropped"] == 2 and len(kept) == 10
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="overlaps the evaluation set"):
        check_overlap(planted, [flores], drop=False)


def test_recipes_load_and_config_is_strict(tmp_path):
    from mt_harness.api import load_method_config
    from harness.errors import HarnessError
    from methods import get_method, method_dir

    method = get_method("xbridge")
    for name in ("tiny", "small", "paper"):
        load_method_config(method, str(method_dir("xbridge") / "recipes" / f"{name}.yaml"), None)
    assert load_method_config(method, None, "small").nmt_model == "facebook/nllb-200-distilled-600M"
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [2, 3]\n")
    with pytest.raises(HarnessError, match="stages"):
        load_method_config(method, str(bad), None)


def test_code_and_paper_presets(parts):
    cfg = XBridgeConfig()
    assert cfg.weights(1) == {"llm": 1.0, "dec": 1.0, "ot": 6.0}
    assert cfg.weights(2) == {"llm": 1.0, "dec": 0.0, "ot": 0.0}
    assert cfg.weights(3) == {"llm": 0.0, "dec": 0.2, "ot": 1.0}
    cfg.loss_weights = "paper"
    assert cfg.weights(3) == {"llm": 0.0, "dec": 1.0, "ot": 6.0}
    code, *_ = _bridge(parts)
    paper, *_ = _bridge(parts, XBridgeConfig(widths="paper"))
    d_nmt, d_llm = 24, 32
    assert code.map_enc.blocks[0][1].weight.shape == (4 * d_nmt, d_nmt)
    assert code.map_dec.blocks[0][1].weight.shape == (2 * d_llm, d_llm)
    assert code.map_dec.blocks[1][3].weight.shape == (d_nmt, 2 * d_llm)
    assert paper.map_enc.blocks[0][1].weight.shape == (d_llm, d_nmt)
    assert paper.map_dec.blocks[1][3].weight.shape == (d_nmt, d_llm)
