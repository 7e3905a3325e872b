"""Helpers shared by the LANDeRMT tests: load a tiny model for training, toy features, logits."""

from __future__ import annotations

import torch

from harness.loading import BackendConfig, load_for_training


def _load(path):
    model, tok = load_for_training(path, BackendConfig(device="cpu"))
    return model.eval(), tok


def _features(tok, n=4, groups=(0, 1)):
    texts = ["Guten Morgen, wie geht es dir heute?", "The weather is nice today.", "Ich lese ein Buch.",
             "We are going to the station now, quickly."]
    feats = []
    for k in range(n):
        ids = tok(texts[k % len(texts)], add_special_tokens=False)["input_ids"][: 10 + k]
        feats.append({"input_ids": ids, "segments": [0] * 3 + [1] * (len(ids) - 3), "group": groups[k % len(groups)]})
    return feats


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits
