"""LMS + Fuse Distillation on tiny random models of both MLP shapes: gated (Llama: gate/up/down) and plain
(GPT-2: Conv1D c_fc/c_proj; BLOOM: nn.Linear dense_h_to_4h/dense_4h_to_h)."""

from __future__ import annotations

import json

import pytest
import torch

from harness.backends.base import Request
from harness.backends.hf import HFBackend
from mt_harness.cli import main
from harness.loading import BackendConfig, load_for_training
from harness.method import Artifact
from harness.models import resolve_model
from harness.training.artifacts import LOCK
from harness.task_config import GenerationConfig
from harness.training import trainer
from harness.training.trainer import TrainConfig
from methods.lms import LMSBackend, LMSMethod
from methods.lms.modules import RouteTable, attach, lms_layers, save_lms
from methods.lms.train import FDObjective, fd_objective, symmetric_kl

# (hidden, MLP width, layers, linears per layer) of the tiny models in conftest.py
SHAPES = {"llama": (32, 64, 2, 3), "gpt2": (32, 64, 2, 2), "bloom": (32, 128, 2, 2)}  # conftest: GPT-2 n_inner 64


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


def _recipe(tmp_path, extra: str = "") -> str:
    p = tmp_path / "tiny.yaml"
    p.write_text("data:\n  pairs: [de-en, en-de]\n  max_per_pair: 2\ntrain:\n  max_steps: 1\n  batch_size: 4\n"
                 "  max_length: 96\n  lr: 0.01\n  precision: fp32\nrank: 4\n" + extra)
    return str(p)


def _hand_count(arch: str, rank: int, rows: int) -> int:
    h, m, layers, per_layer = SHAPES[arch]
    # each wrapped linear: V (rows, out, d) + F (rows, d, in); in+out = h+m for every MLP linear
    return layers * per_layer * rows * rank * (h + m)


def _load(path):
    return load_for_training(path, BackendConfig(device="cpu"))


def _features(tok, table, pairs):
    out = []
    for src, tgt, text, ref in pairs:
        f = trainer.encode(tok, [{"role": "user", "content": f"Translate {src} to {tgt}: {text}"}], ref, "auto", 64)
        out.append({**f, "route": list(table.route(src, tgt))})
    return out


PAIRS = [("de", "en", "Guten Morgen.", "Good morning."), ("en", "de", "Thank you.", "Danke."),
         ("de", "en", "Das Haus ist alt.", "The house is old."), ("en", "de", "Good night.", "Gute Nacht.")]


def _forward(model, keep):
    return lambda ids, attn: model(input_ids=ids, attention_mask=attn, use_cache=False).logits[:, keep]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "bloom"])
def test_run_trains_one_step_saves_only_added_parameters_and_evaluates(arch, tiny_model_factory, data_dir, tmp_path):
    path = tiny_model_factory(arch)
    rc = main(["run", "--method", "lms", "--tasks", "flores", "--langs", "de-en,en-de", "--limit", "2", "--model",
               str(path), "--output", str(tmp_path / "out"), "--data-dir", str(data_dir), "--method-config",
               _recipe(tmp_path), "--threads", "1", "--batch-size", "2", "--dtype", "float32"])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    counts = res["method"]["config"]["lms_parameters"]
    base_total = sum(p.numel() for p in _load(path)[0].parameters())
    assert counts["languages"] == ["de", "en"] and counts["rows"] == 3
    assert counts["added"] == _hand_count(arch, 4, 3) and counts["added_shared_route"] == _hand_count(arch, 4, 1)
    assert counts["trainable"] == counts["added"] and counts["base"] == base_total  # base frozen
    assert counts["wrapped_linears"] == SHAPES[arch][2] * SHAPES[arch][3]
    assert res["method"]["artifact"]["kind"] == "composite" and res["tasks"]["flores"]["n_samples"] == 4
    assert res["tasks"]["flores"]["backend"]["lms_route"] == "shared"
    (adir,) = list((tmp_path / "cache" / "artifacts" / "lms").iterdir())
    content = {p.name for p in adir.iterdir()} - {LOCK}  # the training lock file (harness/training/artifacts.py)
    assert content == {"lms.safetensors", "lms.json", "artifact.json", "loss.jsonl", "loss.png"}  # no base weights
    rec = json.loads((adir / "loss.jsonl").read_text().splitlines()[0])
    assert rec["kl"] == pytest.approx(0.0, abs=1e-9)  # F = 0 at init: both routes are the base model
    assert rec["ce_pair"] == pytest.approx(rec["ce_shared"], rel=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_routing_keys_reach_only_their_pair_rows(arch, tiny_model_factory):
    model, tok = _load(tiny_model_factory(arch))
    table = RouteTable(["cs", "de", "en", "ru"])  # rows 0..3 + shared row 4
    router = attach(model, table, rank=4, std=0.01)
    with torch.no_grad():  # F = 0 would give V no gradient at all; make both matrices live
        for layer in lms_layers(model).values():
            layer.F.normal_(0, 0.05)
    feats = [f for f in _features(tok, table, PAIRS) if f["route"] == list(table.route("de", "en"))]
    batch = trainer.collate(feats, tok.pad_token_id)
    keep = trainer.loss_positions(batch)
    for fuse, rows_v, rows_f in ((False, {1}, {2}), (True, {1, 4}, {2, 4})):  # de = 1, en = 2, shared = 4
        model.zero_grad()
        loss, _ = fd_objective(router, fuse, 1.0)(_forward(model, keep), batch, keep, None)
        loss.backward()
        for name, layer in lms_layers(model).items():
            got_v = {i for i in range(table.n_rows) if layer.V.grad[i].abs().sum() > 0}
            got_f = {i for i in range(table.n_rows) if layer.F.grad[i].abs().sum() > 0}
            assert (got_v, got_f) == (rows_v, rows_f), name
        assert all(p.grad is None for n, p in model.named_parameters() if not n.endswith((".V", ".F")))


@pytest.mark.parametrize("arch", ["llama", "bloom"])
def test_per_row_routes_equal_one_route_per_batch(arch, tiny_model_factory):
    model, tok = _load(tiny_model_factory(arch))
    table = RouteTable(["de", "en"])
    router = attach(model, table, rank=4, std=0.05)
    with torch.no_grad():
        for layer in lms_layers(model).values():
            layer.F.normal_(0, 0.05)
    feats = _features(tok, table, PAIRS[:2])  # de-en and en-de in one batch
    batch = trainer.collate(feats, tok.pad_token_id)
    with torch.no_grad():
        router.set(batch["route"][:, 0], batch["route"][:, 1])
        mixed = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        for r, f in enumerate(feats):
            router.set(*f["route"])
            one = model(input_ids=batch["input_ids"][r:r + 1], attention_mask=batch["attention_mask"][r:r + 1]).logits
            torch.testing.assert_close(mixed[r:r + 1], one, rtol=1e-5, atol=1e-6)
        router.use_shared()
        shared = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert not torch.allclose(shared, mixed)  # the routes really differ


def test_fd_loss_is_ce_mean_plus_symmetric_kl(tiny_model_factory):
    model, tok = _load(tiny_model_factory("llama"))
    table = RouteTable(["de", "en"])
    router = attach(model, table, rank=4, std=0.5)  # large V: a clearly visible KL once F moves
    batch = trainer.collate(_features(tok, table, PAIRS), tok.pad_token_id)
    keep = trainer.loss_positions(batch)
    fwd = _forward(model, keep)
    with torch.no_grad():
        loss0, parts0 = fd_objective(router, True, 1.0)(fwd, batch, keep, None)
        assert parts0["kl"] == 0.0 and parts0["ce_pair"] == parts0["ce_shared"]  # F = 0: the routes agree
        for layer in lms_layers(model).values():
            layer.F[:2].normal_(0, 0.1)  # language rows only: the pair route now differs from the shared one
        loss, parts = fd_objective(router, True, 0.5)(fwd, batch, keep, None)
        # independent reference: torch's kl_div in both directions, over response-token positions
        router.set(batch["route"][:, 0], batch["route"][:, 1])
        lp = torch.log_softmax(fwd(batch["input_ids"], batch["attention_mask"]).float(), -1)
        router.use_shared()
        ls = torch.log_softmax(fwd(batch["input_ids"], batch["attention_mask"]).float(), -1)
        mask = batch["segments"][:, keep + 1] == trainer.TRANSLATION
        kl = torch.nn.functional.kl_div
        ref = 0.5 * (kl(ls[mask], lp[mask], log_target=True, reduction="sum")
                     + kl(lp[mask], ls[mask], log_target=True, reduction="sum")) / mask.sum()
        ce_p = torch.nn.functional.nll_loss(lp[mask], batch["input_ids"][:, keep + 1][mask])
        ce_s = torch.nn.functional.nll_loss(ls[mask], batch["input_ids"][:, keep + 1][mask])
    assert parts["kl"] > 1e-6
    assert parts["kl"] == pytest.approx(float(ref), rel=1e-4)
    assert float(loss) == pytest.approx(float((ce_p + ce_s) / 2 + 0.5 * ref), rel=1e-5)
    assert float(symmetric_kl(lp[mask], lp[mask])) == 0.0


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_frozen_base_is_bit_identical_and_artifact_reloads_identically(arch, tiny_model_factory, tmp_path):
    path = tiny_model_factory(arch)
    model, tok = _load(path)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    table = RouteTable(["de", "en"])
    router = attach(model, table, rank=4, std=0.01)
    start = {n: (m.V.detach().clone(), m.F.detach().clone()) for n, m in lms_layers(model).items()}
    cfg = TrainConfig(lr=1e-2, max_steps=3, batch_size=4, warmup_ratio=0, precision="fp32", save_every=0,
                      weight_decay=0.1)  # weight decay must not touch the frozen base either
    model, _ = trainer.train(model, tok, _features(tok, table, PAIRS), cfg, tmp_path / "work", device="cpu",
                             objective=FDObjective(router, True, 1.0))
    after = model.state_dict()
    for k, v in before.items():
        wrapped = k.replace(".weight", ".base.weight").replace(".bias", ".base.bias")
        assert torch.equal(after[k] if k in after else after[wrapped], v), k
    for n, m in lms_layers(model).items():
        assert not torch.equal(m.F, start[n][1]) and not torch.equal(m.V, start[n][0]), n

    art_dir = tmp_path / "artifact"
    art_dir.mkdir()
    router.use_shared()
    save_lms(model, art_dir, table, {"rank": 4, "mlp_name": "mlp", "targets": []})
    reqs = [Request("a", [{"role": "user", "content": "Translate: Guten Morgen."}], GenerationConfig(max_new_tokens=6),
                    langs=("de", "en")),
            Request("b", [{"role": "user", "content": "Tell me a joke."}], GenerationConfig(max_new_tokens=6))]
    bcfg = BackendConfig(device="cpu", dtype="float32", batch_size=2)
    for route in ("shared", "pair"):
        live = LMSBackend(model.eval(), tok, bcfg, router, table, route)
        art = Artifact("lms", "composite", art_dir, config={"eval_route": route})
        loaded = LMSMethod().backend(art, resolve_model(str(path)), bcfg)
        assert [g.text for g in loaded.generate(reqs)] == [g.text for g in live.generate(reqs)]
        ids = torch.tensor([tok("Guten Morgen")["input_ids"]])
        for r in (table.route("de", "en"), table.shared_route()):
            live.router.set(*r), loaded.router.set(*r)
            with torch.no_grad():
                assert torch.equal(live.model(ids).logits, loaded.model(ids).logits)


def test_fd_ls_routes_translation_requests_by_pair_and_the_rest_shared(tiny_model_factory, monkeypatch):
    model, tok = _load(tiny_model_factory("llama"))
    table = RouteTable(["de", "en"])
    router = attach(model, table, rank=4, std=0.01)
    seen = []

    def fake_generate(self, requests, progress=None):
        seen.append(((self.router.v, self.router.f), [r.id for r in requests]))
        return [r.id for r in requests]

    monkeypatch.setattr(HFBackend, "generate", fake_generate)
    gen = GenerationConfig(max_new_tokens=2)
    reqs = [Request("de-en", [], gen, langs=("de", "en")), Request("chat", [], gen),
            Request("en-de", [], gen, langs=("en", "de")), Request("fr-en", [], gen, langs=("fr", "en")),
            Request("de-en2", [], gen, langs=("de", "en"))]
    ls = LMSBackend(model, tok, BackendConfig(device="cpu"), router, table, "pair")
    assert ls.generate(reqs) == [r.id for r in reqs]  # original order
    assert sorted(seen) == sorted([((0, 1), ["de-en", "de-en2"]), ((2, 2), ["chat", "fr-en"]), ((1, 0), ["en-de"])])
    assert (router.v, router.f) == (2, 2)  # back on the shared route afterwards
    seen.clear()
    LMSBackend(model, tok, BackendConfig(device="cpu"), router, table, "shared").generate(reqs)
    assert seen == [((2, 2), [r.id for r in reqs])]


def test_trainable_base_saves_full_weights_and_reloads(tiny_model_factory, data_dir, tmp_path):
    path = tiny_model_factory("gpt2")
    rc = main(["run", "--method", "lms", "--tasks", "flores", "--langs", "de-en", "--limit", "1", "--model",
               str(path), "--output", str(tmp_path / "out"), "--data-dir", str(data_dir), "--method-config",
               _recipe(tmp_path, "train_base: true\neval_route: pair\n"), "--threads", "1", "--dtype", "float32"])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    counts = res["method"]["config"]["lms_parameters"]
    assert counts["trainable"] == counts["base"] + counts["added"]
    (adir,) = list((tmp_path / "cache" / "artifacts" / "lms").iterdir())
    assert (adir / "config.json").exists() and (adir / "lms.safetensors").exists()
    trained, _ = _load(adir)
    base, _ = _load(path)
    assert any(not torch.equal(a, b) for a, b in zip(trained.parameters(), base.parameters()))  # the base trained
    backend = LMSMethod().backend(Artifact("lms", "composite", adir, config={"eval_route": "pair"}),
                                  resolve_model(str(path)), BackendConfig(device="cpu", dtype="float32"))
    got = dict(backend.model.named_parameters())
    for n, p in trained.named_parameters():
        key = n if n in got else n.rsplit(".", 1)[0] + ".base." + n.rsplit(".", 1)[1]
        assert torch.equal(got[key], p), n  # the backend serves the trained base weights, not the original ones


def test_bad_config_is_one_line(tmp_path, tiny_model, data_dir, capsys):
    rc = main(["train", "--method", "lms", "--model", str(tiny_model), "--data-dir", str(data_dir),
               "--method-config", _recipe(tmp_path, "fuse_distillation: false\n")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "eval_route shared needs fuse_distillation" in err and "\n" not in err


def test_gradient_checkpointing_recomputes_the_right_routes(tiny_model_factory):
    """FD stacks both routes into one forward, so a recomputation in backward sees the same routes."""
    grads = []
    for checkpointing, switch in ((False, False), (True, False), (True, True)):
        model, tok = _load(tiny_model_factory("llama"))
        table = RouteTable(["de", "en"])
        torch.manual_seed(1)
        router = attach(model, table, rank=4, std=0.1)
        with torch.no_grad():
            for layer in lms_layers(model).values():
                layer.F.normal_(0, 0.05)
        if checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
        model.train()
        batch = trainer.collate(_features(tok, table, PAIRS), tok.pad_token_id)
        keep = trainer.loss_positions(batch)
        loss, _ = fd_objective(router, True, 1.0)(_forward(model, keep), batch, keep, None)
        if switch:  # a router changed before backward: the recomputation must notice (checkpointing is active)
            router.set(torch.zeros(8, dtype=torch.long), torch.zeros(8, dtype=torch.long))
        loss.backward()
        grads.append({n: (m.V.grad.clone(), m.F.grad.clone()) for n, m in lms_layers(model).items()})
    for n in grads[0]:
        for a, b in zip(grads[0][n], grads[1][n]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    assert any(not torch.allclose(a, b) for n in grads[0] for a, b in zip(grads[1][n], grads[2][n]))


def test_init_is_seeded(tiny_model_factory):
    inits = []
    for seed in (0, 0, 1):
        model, _ = _load(tiny_model_factory("llama"))
        attach(model, RouteTable(["de", "en"]), rank=4, std=0.01, seed=seed)
        inits.append(torch.cat([m.V.flatten() for m in lms_layers(model).values()]))
        assert all(not m.F.any() for m in lms_layers(model).values())  # F = 0
    assert torch.equal(inits[0], inits[1]) and not torch.equal(inits[0], inits[2])
    assert inits[0].std().item() == pytest.approx(0.01, rel=0.05)


def test_run_reports_the_route_kl_and_whether_the_base_trained(tiny_model_factory, data_dir, tmp_path):
    """The mechanism check: after training, the artifact report holds the KL between each pair's route and the shared
    route on FLORES dev lines (> 0 once V/F trained), and the leaderboard text says the base stayed frozen."""
    path = tiny_model_factory("llama")
    rc = main(["run", "--method", "lms", "--tasks", "flores", "--langs", "de-en", "--limit", "1", "--model",
               str(path), "--output", str(tmp_path / "out"), "--data-dir", str(data_dir), "--method-config",
               _recipe(tmp_path), "--threads", "1", "--batch-size", "2", "--dtype", "float32"])
    assert rc == 0
    record = json.loads((tmp_path / "out" / "results.json").read_text())["method"]
    check = record["artifact"]["report"]
    assert check["base_trained"] is False and set(check["route_kl"]["per_pair"]) == {"de-en", "en-de"}
    assert all(v > 0 for v in check["route_kl"]["per_pair"].values())
    text = LMSMethod().mechanism(record)
    assert "de-en" in text and "base frozen" in text
    assert "not recorded" in LMSMethod().mechanism({"config": {}, "artifact": {}})
