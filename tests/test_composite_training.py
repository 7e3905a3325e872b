"""Composite and routed methods train through the one shared loop (issue #25): relay's `RelayObjective` (with its
2-row forward passes as accumulated micro-batches) and LANDeRMT's `RoutedObjective` (the former `route=` argument)
give the numbers the previous code gave."""

from __future__ import annotations

import json

import torch

from harness.loading import load_for_training
from harness.training import trainer
from harness.training.objective import RoutedObjective
from methods.relay.relay import encode
from methods.relay.train import fit, micro_rows
from tests.test_relay import DOCS, _cfg, _relay, pair  # noqa: F401  (pair: the module-scoped fixture)


def test_relay_step_loss_is_the_token_mean_over_its_batch(pair, tmp_path):  # noqa: F811
    cfg = _cfg(train={"max_steps": 1, "batch_size": 4, "max_length": 64, "lr": 1e-2, "save_every": 0,
                      "precision": "fp32"})
    split = micro_rows(cfg.train)
    assert (split.batch_size, split.grad_accum) == (2, 2)  # 4 rows train as 2 accumulated forward passes of 2
    relay, stok, ttok = _relay(*pair, cfg)
    feats = [encode(stok, ttok, cfg, d, ref, 64) for d, ref in zip(DOCS + DOCS[:1], ["Hello.", "A longer one, yes.",
                                                                                    "Yes", "Hello world again."])]
    with torch.no_grad():
        expected, n = relay.eval().loss(feats, ttok.pad_token_id)  # the whole batch in one pass, before the update
    fit(relay, feats, ttok.pad_token_id, cfg.train, tmp_path, seed=0, device="cpu", desc="t")
    rec = json.loads((tmp_path / "loss.jsonl").read_text().splitlines()[0])
    assert n == sum(len(f.target_ids) for f in feats) and abs(rec["loss"] - float(expected)) < 1e-5
    assert not relay.training and not relay.source.training  # fit leaves the module in eval mode


def test_routed_objective_is_the_route_argument(tiny_model, tmp_path):
    from harness.loading import BackendConfig

    runs = []
    for how in ("route", "objective"):
        model, tok = load_for_training(tiny_model, BackendConfig(device="cpu"))
        msgs = [{"role": "user", "content": f"Translate {i}"} for i in range(6)]
        feats = [{**trainer.encode(tok, [m], f"answer {i}", "auto", 32), "group": i % 2} for i, m in enumerate(msgs)]
        groups: list = []
        cfg = trainer.TrainConfig(lr=1e-2, max_steps=3, batch_size=2, max_length=32, save_every=0, precision="fp32")
        kw = {"route": groups.append} if how == "route" else {"objective": RoutedObjective(groups.append)}
        model, _ = trainer.train(model, tok, feats, cfg, tmp_path / how, device="cpu", **kw)
        runs.append((groups, {k: v.detach().clone() for k, v in model.state_dict().items()}))
    (g1, w1), (g2, w2) = runs
    assert g1 == g2 and len(g1) == 3 and set(g1) <= {0, 1}
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
