"""Shared trainer + sft/lora: one step on a tiny model, evaluation through `harness run`, resume, reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mt_harness.cli import main
from harness.errors import HarnessError
from harness.loading import load_for_training
from harness.training import trainer
from harness.training.trainer import TrainConfig


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


def _recipe(tmp_path, extra: str = "") -> str:
    p = tmp_path / "tiny.yaml"
    p.write_text("data:\n  pairs: [de-en]\n  max_per_pair: 4\ntrain:\n  max_steps: 1\n  batch_size: 2\n"
                 "  max_length: 96\n" + extra)
    return str(p)


def _run(method, tiny_model, data_dir, out, recipe, *extra) -> dict:
    rc = main(["run", "--method", method, "--tasks", "flores", "--langs", "de-en", "--limit", "2", "--model",
               str(tiny_model), "--output", str(out), "--data-dir", str(data_dir), "--method-config", recipe,
               "--threads", "1", "--batch-size", "2", *extra])
    assert rc == 0
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("method,kind", [("sft", "full"), ("lora", "adapter")])
def test_method_trains_one_step_and_evaluates(method, kind, tiny_model, data_dir, tmp_path, capsys):
    res = _run(method, tiny_model, data_dir, tmp_path / "out", _recipe(tmp_path))
    art = res["method"]["artifact"]
    assert res["method"]["name"] == method and art["kind"] == kind and len(art["hash"]) == 16
    folder = tmp_path / "cache" / "artifacts" / method
    (adir,) = list(folder.iterdir())
    manifest = json.loads((adir / "artifact.json").read_text())
    assert manifest["config_hash"] == art["config_hash"]
    assert manifest["config"]["training_data"]["n_train"] == 4
    assert [json.loads(x)["step"] for x in (adir / "loss.jsonl").read_text().splitlines()] == [1]
    assert (adir / "loss.png").stat().st_size > 0 and not (adir / "checkpoint").exists()
    assert res["tasks"]["flores"]["n_samples"] == 2
    capsys.readouterr()
    res2 = _run(method, tiny_model, data_dir, tmp_path / "out2", _recipe(tmp_path))  # same config: reused
    assert "reusing artifact" in capsys.readouterr().out
    assert res2["method"]["artifact"]["hash"] == art["hash"]


def test_lora_changes_only_adapter_weights(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tok = load_for_training(tiny_model, _backend())
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM"))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    feats = [trainer.encode(tok, [{"role": "user", "content": "Translate: Hallo"}], "Hello", "auto", 64)] * 2
    model, _ = trainer.train(model, tok, feats, TrainConfig(lr=1e-2, max_steps=2, batch_size=2, warmup_ratio=0,
                                                            precision="fp32", save_every=0), tmp_path)
    changed = {k for k, v in model.named_parameters() if not torch.equal(v.detach(), before[k])}
    assert changed and all("lora_" in k for k in changed)
    assert any("lora_B" in k for k in changed)  # B starts at zero: the adapter really learned


def test_checkpoint_resume_continues_from_saved_step(tiny_model, tmp_path):
    feats = _features(tiny_model)
    cfg = TrainConfig(lr=1e-3, max_steps=3, batch_size=2, save_every=1, precision="fp32", warmup_ratio=0)
    model, tok = load_for_training(tiny_model, _backend())
    trainer.train(model, tok, feats, cfg, tmp_path / "a", seed=1)
    full = [json.loads(x) for x in (tmp_path / "a" / "loss.jsonl").read_text().splitlines()]
    # a run interrupted after step 2: its checkpoint holds step 2, the rerun does step 3 only
    model, tok = load_for_training(tiny_model, _backend())
    _train_until(model, tok, feats, cfg, tmp_path / "b", stop_after=2)
    assert json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())["step"] == 2
    model, tok = load_for_training(tiny_model, _backend())
    trainer.train(model, tok, feats, cfg, tmp_path / "b", seed=1)
    resumed = [json.loads(x) for x in (tmp_path / "b" / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [1, 2, 3]
    assert resumed[2]["loss"] == pytest.approx(full[2]["loss"], rel=1e-4)  # same data, same state


def test_method_config_is_strict(tmp_path):
    from mt_harness.api import load_method_config
    from methods import get_method

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  learning_rate: 1.0\n")
    with pytest.raises(HarnessError, match="learning_rate"):
        load_method_config(get_method("sft"), str(bad), None)
    cfg = load_method_config(get_method("radis"), None, "small")
    assert cfg.train.max_steps == 4 and cfg.data.max_per_pair == 16 and cfg.train.lr == 2e-5


def test_encode_masks_prompt_tokens(tiny_model):
    _, tok = load_for_training(tiny_model, _backend())
    f = trainer.encode(tok, [{"role": "user", "content": "Translate: Hallo Welt"}], "Hello world", "auto", 128)
    seg = f["segments"]
    assert seg[0] == trainer.PROMPT and trainer.TRANSLATION in seg
    first = seg.index(trainer.TRANSLATION)
    assert all(s == trainer.PROMPT for s in seg[:first])
    assert tok.decode(f["input_ids"][first:]).startswith("Hello world")


# -- helpers --------------------------------------------------------------------------------------
def _backend():
    from harness.loading import BackendConfig

    return BackendConfig(device="cpu")


def _features(tiny_model):
    _, tok = load_for_training(tiny_model, _backend())
    pairs = [("Hallo", "Hello"), ("Guten Tag", "Good day"), ("Danke", "Thanks"), ("Ja", "Yes")]
    return [trainer.encode(tok, [{"role": "user", "content": f"Translate: {s}"}], t, "auto", 64) for s, t in pairs]


def _train_until(model, tok, feats, cfg, work_dir, stop_after: int):
    """Run the real loop but kill it (KeyboardInterrupt) right after the checkpoint of step `stop_after`."""
    real = trainer.save_checkpoint

    def save_then_stop(acc, ckpt, step):
        real(acc, ckpt, step)
        if step == stop_after:
            raise KeyboardInterrupt

    trainer.save_checkpoint = save_then_stop
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.train(model, tok, feats, cfg, work_dir, seed=1)
    finally:
        trainer.save_checkpoint = real


def test_bf16_mixed_after_fp32_in_one_process(tiny_model, tmp_path):
    """Two trainings with different precision in one process (accelerate's state is a singleton)."""
    feats = _features(tiny_model)
    for i, precision in enumerate(["fp32", "bf16-mixed"]):
        model, tok = load_for_training(tiny_model, _backend())
        trainer.train(model, tok, feats, TrainConfig(max_steps=1, batch_size=2, precision=precision, save_every=0),
                      tmp_path / str(i))
        assert (tmp_path / str(i) / "loss.jsonl").read_text().count("\n") == 1


def test_nan_loss_stops_with_one_line_and_keeps_weights_finite(tiny_model, data_dir, tmp_path, capsys):
    """A diverging run (absurd lr) stops before applying a NaN/inf update, with a one-line error."""
    recipe = _recipe(tmp_path, "  lr: 1.0e+30\n  precision: fp32\n").replace("max_steps: 1", "max_steps: 6")
    from pathlib import Path

    Path(recipe).write_text(Path(recipe).read_text().replace("max_steps: 1", "max_steps: 6"))
    rc = main(["train", "--method", "sft", "--model", str(tiny_model), "--data-dir", str(data_dir),
               "--method-config", recipe, "--threads", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("error: training loss is") and "lower train.lr" in err[-1]


@pytest.mark.parametrize("damage", ["config_hash", "weights"])
def test_tampered_artifact_is_refused(damage, tiny_model, data_dir, tmp_path, capsys):
    recipe = _recipe(tmp_path)
    args = ["train", "--method", "sft", "--model", str(tiny_model), "--data-dir", str(data_dir),
            "--method-config", recipe, "--threads", "1"]
    assert main(args) == 0
    folder = next((tmp_path / "cache" / "artifacts" / "sft").iterdir())
    manifest = folder / "artifact.json"
    if damage == "config_hash":
        m = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**m, "config_hash": "0" * 16}))
    else:
        weights = next(folder.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    before = manifest.read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("does not match" in err[0] or "content hash mismatch" in err[0])
    assert manifest.read_bytes() == before  # nothing overwritten


def test_grad_accumulation_equals_the_bigger_batch(tiny_model, tmp_path):
    """batch 4, batch 2 x 2 accumulation steps and batch 1 x 4 see the same examples per step and, with the
    step's token count as the loss denominator, give the same loss curve and weights (fp32 summation order
    aside). Examples of different lengths make a per-micro-batch mean visibly wrong."""
    _, tok = load_for_training(tiny_model, _backend())
    pairs = [("Hallo", "Hello there, my good old friend"), ("Guten Tag", "Good day"), ("Danke", "Thanks a lot"),
             ("Ja", "Yes"), ("Nein, heute nicht", "No, not today"), ("Bitte", "Please")] * 2
    feats = [trainer.encode(tok, [{"role": "user", "content": f"Translate: {s}"}], t, "auto", 64) for s, t in pairs]
    curves, weights = {}, {}
    for bs, accum in ((4, 1), (2, 2), (1, 4)):
        cfg = TrainConfig(lr=1e-3, max_steps=3, batch_size=bs, grad_accum=accum, save_every=0, precision="fp32",
                          warmup_ratio=0)
        model, tok = load_for_training(tiny_model, _backend())
        model, _ = trainer.train(model, tok, feats, cfg, tmp_path / f"{bs}x{accum}", seed=1)
        log = [json.loads(x) for x in (tmp_path / f"{bs}x{accum}" / "loss.jsonl").read_text().splitlines()]
        curves[bs] = [(r["step"], r["tokens"], r["loss"]) for r in log]
        weights[bs] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert [c[0] for c in curves[4]] == [1, 2, 3]
    for bs in (2, 1):
        assert [c[:2] for c in curves[bs]] == [c[:2] for c in curves[4]]  # same examples in each step
        assert [c[2] for c in curves[bs]] == pytest.approx([c[2] for c in curves[4]], rel=1e-5)
        worst = max(float((weights[bs][k] - weights[4][k]).abs().max()) for k in weights[4])
        assert worst < 1e-5, worst
    moved = max(float((weights[4][k] - load_for_training(tiny_model, _backend())[0].state_dict()[k]).abs().max())
                for k in weights[4])
    assert moved > 1e-3  # the weights did change: equal-but-frozen would also "match"


def test_examples_cut_to_prompt_only_are_reported(tiny_model, tmp_path, capsys):
    _, tok = load_for_training(tiny_model, _backend())
    long = [{"role": "user", "content": "Translate: " + "Hallo Welt, " * 40}]
    short = [{"role": "user", "content": "Translate: Hallo"}]
    cut = trainer.encode(tok, long, "Hello world", "auto", 32)
    assert all(s == trainer.PROMPT for s in cut["segments"])  # the target fell off the end
    cfg = TrainConfig(max_steps=1, batch_size=2, max_length=32, save_every=0, precision="fp32")
    with pytest.raises(HarnessError, match="raise train.max_length"):
        trainer.train(*load_for_training(tiny_model, _backend()), [cut, cut], cfg, tmp_path / "a")
    ok = trainer.encode(tok, short, "Hello", "auto", 32)
    trainer.train(*load_for_training(tiny_model, _backend()), [cut, ok], cfg, tmp_path / "b")
    assert "1 of 2 examples have no target token" in capsys.readouterr().out


_LOW_MEMORY_PROBE = """
import sys, torch
from harness.memory import returned_memory

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

with returned_memory(sys.argv[1] == "on"):
    before = rss_mb()
    many = [torch.ones(64 * 1024) for _ in range(400)]  # 400 x 256 KiB = 100 MiB
    pin = torch.ones(64 * 1024)  # allocated after them: pins the heap top
    grown = rss_mb() - before
    del many
    left = rss_mb() - before
print(grown, left)
"""


@pytest.mark.parametrize("mode", ["on", "off"])
def test_low_memory_gives_freed_mid_sized_tensors_back(mode):
    """train.low_memory: 256 KiB tensors freed under the context leave RSS at once, even with a live tensor
    allocated after them (which pins the heap top, so a plain heap cannot shrink: checked with the context off).
    Measured in a fresh interpreter: in a long-lived process (the test session) earlier tests leave free heap
    chunks that malloc reuses before it would mmap, so the measurement would depend on test order."""
    import ctypes
    import os
    import subprocess
    import sys

    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc (Linux)")
    try:
        _ = ctypes.CDLL("libc.so.6").mallopt  # raises AttributeError without glibc's mallopt
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _LOW_MEMORY_PROBE, mode], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.split()
    grown, left = float(out[0]), float(out[1])
    assert grown > 80, (grown, left)
    assert (left < 20) if mode == "on" else (left > 80), (grown, left)


def test_seeds_of_one_trained_config_are_seed_rows_of_the_leaderboard(tiny_model, data_dir, tmp_path):
    """Real `harness run` artifacts: each seed has its own artifact config hash (seed and sampled data are part of
    it), yet the leaderboard shows them as seeds of one variant, with the seed-spread note."""
    from harness.rundir.read import method_variant
    from leaderboard import make_leaderboard

    rc = main(["run", "--method", "base", "--tasks", "flores", "--langs", "de-en", "--limit", "2", "--model",
               str(tiny_model), "--output", str(tmp_path / "r" / "base"), "--data-dir", str(data_dir), "--threads", "1",
               "--batch-size", "2"])
    assert rc == 0
    recipe = tmp_path / "seeds.yaml"  # another seed samples other (longer) pairs: room for them
    recipe.write_text("data:\n  pairs: [de-en]\n  max_per_pair: 2\ntrain:\n  max_steps: 1\n  batch_size: 2\n"
                      "  max_length: 512\n")
    runs = [_run("sft", tiny_model, data_dir, tmp_path / "r" / f"sft-{s}", str(recipe), "--seed", str(s))
            for s in (0, 1)]
    assert runs[0]["method"]["artifact"]["config_hash"] != runs[1]["method"]["artifact"]["config_hash"]
    assert runs[0]["method"]["variant"] == runs[1]["method"]["variant"]
    # results written before `variant` was recorded get the same one from their config (sft joins no report)
    old = {k: v for k, v in runs[0]["method"].items() if k != "variant"}
    assert method_variant(old) == runs[0]["method"]["variant"]
    (table,), _ = make_leaderboard([tmp_path / "r"], tmp_path / "lb", n_boot=20)
    assert [r.label for r in table.rows] == ["base", "sft seed 0", "sft seed 1"]
    assert any(n.startswith("sft on ") and "over 2 seeds (0, 1)" in n for n in table.notes), table.notes
