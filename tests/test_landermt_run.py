"""LANDeRMT through `harness run`: train, save, generate per pair, reload; an interrupted training resumes."""

from __future__ import annotations

import json

import pytest
import torch
from landermt_helpers import _features, _load, _logits

from mt_harness.cli import main
from harness.loading import BackendConfig
from methods.landermt.routing import RoutedIn, effective_weights


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_harness_run_trains_saves_and_generates_per_pair(arch, tiny_model_factory, data_dir, tmp_path):
    from types import SimpleNamespace

    from safetensors.torch import load_file

    from methods import get_method

    path = tiny_model_factory(arch)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("data:\n  pairs: [de-en, en-de, zh-en]\n  max_per_pair: 4\ntrain:\n  max_steps: 1\n"
                      "  batch_size: 2\n  max_length: 256\ntop_layers: 1\nra_samples: 2\nte_samples: 2\n"
                      "analysis_batch_size: 2\n")
    out = tmp_path / "out"
    rc = main(["run", "--method", "landermt", "--tasks", "flores", "--langs", "de-en,en-de", "--limit", "2",
               "--model", str(path), "--output", str(out), "--data-dir", str(data_dir), "--method-config",
               str(recipe), "--threads", "1", "--batch-size", "2"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    art = res["method"]["artifact"]
    summary = res["method"]["config"]["analysis"]
    assert art["kind"] == "composite" and res["tasks"]["flores"]["n_samples"] == 4
    assert set(summary["pairs"]) == {"de-en", "en-de", "zh-en"}
    assert all(len(v["layers"]) == 1 and len(v["layer_shift"]) == 2 for v in summary["pairs"].values())
    assert set(summary["overlap"]) == {"de-en|en-de", "de-en|zh-en", "en-de|zh-en"}
    folder = tmp_path / "cache" / "artifacts" / "landermt"
    (adir,) = list(folder.iterdir())
    for f in ("landermt.json", "landermt.safetensors", "awareness.safetensors", "loss.jsonl"):
        assert (adir / f).exists(), f
    assert (adir / "awareness.png").read_bytes()[:4] == b"\x89PNG"
    scores = load_file(str(adir / "awareness.safetensors"))
    assert {k for k in scores if k.startswith("awareness/")} == {f"awareness/{i}/{p}" for i in (0, 1) if any(
        i in v["layers"] for v in summary["pairs"].values()) for p in summary["pairs"]}
    assert all(float(v.min()) >= 0 and float(v.sum()) > 0 for v in scores.values())  # every pair has a loss signal
    # the no-pair route of the loaded artifact is exactly the base model with the general deltas merged in
    backend = get_method("landermt").backend(SimpleNamespace(path=adir), SimpleNamespace(path=path),
                                             BackendConfig(device="cpu", dtype="float32"))
    plain, tok = _load(path)
    merged = effective_weights(backend.model, backend.router.plan, "")
    sd = plain.state_dict()
    with torch.no_grad():
        for name, w in merged.items():
            key = name + ".weight"
            sd[key].copy_(w.T if sd[key].shape != w.shape else w)
        for name, mod in backend.model.named_modules():  # plain MLPs (GPT-2) also train the input bias rows
            if isinstance(mod, RoutedIn) and mod.delta.b is not None:
                sd[name + ".bias"][mod.route[0].general] += mod.delta.b["general"]
    ids = _features(tok, 1)[0]["input_ids"]
    backend.router.set("")
    assert torch.allclose(_logits(backend.model, ids), _logits(plain, ids), atol=1e-5)


def test_interrupted_training_resumes_to_the_same_artifact(tiny_model, data_dir, tmp_path, monkeypatch, capsys):
    """Killed (an exception) before step 3: the rerun reuses the saved analysis, resumes from the step-2
    checkpoint and ends with the deltas, gates and loss curve of an uninterrupted run."""
    from safetensors.torch import load_file

    from methods.landermt.routing import Router

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("data:\n  pairs: [de-en, en-de]\n  max_per_pair: 4\ntrain:\n  max_steps: 4\n  batch_size: 2\n"
                      "  max_length: 256\n  save_every: 1\n  precision: fp32\n  weight_decay: 0.1\ntop_layers: 1\n"
                      "ra_samples: 2\nte_samples: 2\nanalysis_batch_size: 2\n")
    args = ["train", "--method", "landermt", "--model", str(tiny_model), "--data-dir", str(data_dir),
            "--method-config", str(recipe), "--tasks", "flores", "--threads", "1"]

    def artifact(cache):
        (adir,) = list((cache / "artifacts" / "landermt").iterdir())
        return adir

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "full"))
    assert main(args) == 0
    full = artifact(tmp_path / "full")

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cut"))
    original, calls = Router.set, {"n": 0}

    def set_then_die(self, pair):
        calls["n"] += 1
        if calls["n"] == 3:  # the route switch before step 3
            raise RuntimeError("killed")
        original(self, pair)
    monkeypatch.setattr(Router, "set", set_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        main(args)
    monkeypatch.setattr(Router, "set", original)
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "reusing the neuron analysis" in out and "resuming from" in out
    cut = artifact(tmp_path / "cut")
    a, b = load_file(str(full / "landermt.safetensors")), load_file(str(cut / "landermt.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(float(v.abs().sum()) > 0 for v in b.values())
    la = [json.loads(x)["loss"] for x in (full / "loss.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (cut / "loss.jsonl").read_text().splitlines()]
    assert len(lb) == 4 and lb == pytest.approx(la, rel=1e-4)
