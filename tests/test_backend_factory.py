"""One way to build a backend (harness.backends.factory) and the one check of what it can do, before any work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from echo_backend import EchoBackend

from harness.backends.base import Capabilities, Request
from harness.backends.factory import backend_class, build_backend, check_serves
from harness.backends.hf import HFBackend
from harness.backends.vllm import VLLMBackend
from mt_harness.cli import main
from harness.errors import HarnessError
from harness.loading import BackendConfig, load_model_and_tokenizer
from harness.method import Artifact, Method
from harness.models import resolve_model
from harness.task_config import GenerationConfig
from methods import REGISTRY, get_method

CPU = BackendConfig(device="cpu", dtype="float32", batch_size=2)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


@dataclass
class CompositeConfig:
    """No settings."""


class CompositeMethod(Method):
    """A method with its own backend that can only generate (several models behind one request contract)."""

    name = "composite-test"
    Config = CompositeConfig
    calls: ClassVar[list] = []

    def train(self, cfg, ctx) -> Artifact:
        self.calls.append("train")
        return Artifact(self.name, "composite", None)

    def backend(self, artifact, model, cfg):
        self.calls.append("backend")
        return EchoBackend({}, lambda doc, i: "")

    def backend_class(self) -> type:
        return EchoBackend


@pytest.fixture
def composite(monkeypatch):
    monkeypatch.setitem(REGISTRY, CompositeMethod.name, f"{__name__}:CompositeMethod")
    CompositeMethod.calls = []
    return CompositeMethod


def _run(model, data_dir, out, method, tasks, langs=None, extra=()):
    argv = ["run", "--model", str(model), "--method", method, "--tasks", tasks, "--limit", "2", "--dtype", "float32",
            "--device", "cpu", "--threads", "1", "--data-dir", str(data_dir), "--output", str(out), *extra]
    return main(argv + (["--langs", langs] if langs else []))


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_factory_builds_the_kind_asked_for(tiny_model):
    model = resolve_model(str(tiny_model))
    base = build_backend("transformers", get_method("base"), Artifact("base", "none", None), model, CPU)
    assert type(base) is HFBackend and base.settings()["backend"] == "transformers"
    # a "full" artifact is its own weights folder; with no method the factory builds the untouched model
    full = build_backend("transformers", get_method("sft"), Artifact("sft", "full", tiny_model), model, CPU)
    plain = build_backend("transformers", None, None, tiny_model, CPU)
    ids = torch.tensor([[1, 5, 6, 7]])
    for b in (full, plain):
        assert type(b) is HFBackend and torch.equal(b.model(ids).logits, base.model(ids).logits)
    # the method's own backend goes through Method.backend; vLLM is the vLLM backend or a one-line refusal
    assert backend_class("transformers", get_method("landermt")).__name__ == "RoutedBackend"
    assert backend_class("vllm", get_method("lora")) is VLLMBackend
    with pytest.raises(HarnessError, match="--backend vllm: method relay generates through its own backend"):
        backend_class("vllm", get_method("relay"))
    with pytest.raises(HarnessError, match="--backend tgi: use transformers or vllm"):
        backend_class("tgi", get_method("base"))


def test_a_method_whose_backend_is_not_what_it_declares_is_a_bug(tiny_model):
    class Liar(CompositeMethod):
        def backend_class(self) -> type:
            return HFBackend

    with pytest.raises(TypeError, match=r"backend\(\) returned EchoBackend, but backend_class\(\) declares HFBackend"):
        build_backend("transformers", Liar(), Artifact("x", "composite", None), tiny_model, CPU)


def test_capability_flags():
    assert HFBackend.capabilities == Capabilities(generate=True, loglik=True, hf_weights=True)
    assert VLLMBackend.capabilities == Capabilities(generate=True, loglik=True, hf_weights=False)
    own = {name: backend_class("transformers", get_method(name)).capabilities for name in REGISTRY}
    assert own["relay"] == own["xbridge"] == Capabilities(generate=True, loglik=False, hf_weights=False)
    assert own["landermt"] == own["lms"] == own["base"] == HFBackend.capabilities  # one routed HF model each


def test_hf_backend_has_what_its_flags_promise(tiny_model):
    b = build_backend("transformers", None, None, tiny_model, CPU)
    ref, _ = load_model_and_tokenizer(tiny_model, CPU)
    ids = torch.tensor([[1, 5, 6, 7]])
    assert torch.equal(b.model(ids).logits, ref(ids).logits) and b.tok.pad_token_id is not None and b.cfg is CPU
    [[res]] = b.loglikelihood([[("Hallo", " Welt")]])
    assert res.n_tokens >= 1 and res.logprob < 0
    [gen] = b.generate([Request("0", [{"role": "user", "content": "Hi"}], GenerationConfig(max_new_tokens=3))])
    assert gen.n_new_tokens <= 3


def test_composite_backend_without_loglik_stops_a_loglik_run_before_any_work(composite, tiny_model, data_dir,
                                                                              tmp_path, capsys):
    rc = _run(tiny_model, data_dir, tmp_path / "out", composite.name, "flores,arc_easy", langs="de-en,en")
    assert rc == 2
    line = _one_line_error(capsys)
    assert "task arc_easy: needs log-likelihood scoring, which backend 'echo' cannot do" in line, line
    assert composite.calls == [] and not (tmp_path / "out").exists() and not (tmp_path / "cache" / "artifacts").exists()


def test_drift_phase_on_a_backend_without_hf_weights_stops_before_any_work(tiny_model, data_dir, tmp_path, capsys,
                                                                           monkeypatch):
    monkeypatch.setattr("harness.backends.vllm.require_vllm", lambda: None)  # the check is the factory's, not vLLM's
    rc = _run(tiny_model, data_dir, tmp_path / "out", "base", "mtbench", extra=["--backend", "vllm"])
    assert rc == 2
    line = _one_line_error(capsys)
    assert ("task mtbench (drift phase): needs the evaluated model's transformers weights (one model object + "
            "tokenizer), which backend 'vllm' cannot expose") in line, line
    assert not (tmp_path / "out").exists()


def test_composite_backend_stops_mtbench_and_lmeval_before_training(composite, tiny_model, data_dir, tmp_path,
                                                                    capsys, monkeypatch):
    assert _run(tiny_model, data_dir, tmp_path / "a", composite.name, "mtbench") == 2
    assert "task mtbench (drift phase): needs the evaluated model's transformers weights" in _one_line_error(capsys)
    from harness import lmeval
    from harness.lmeval import LmevalTask

    monkeypatch.setattr(lmeval, "load", lambda names, inc: [LmevalTask("lmeval:x", "x", None, {}, None)][:len(names)])
    assert _run(tiny_model, data_dir, tmp_path / "b", composite.name, "flores,lmeval:x", langs="de-en") == 2
    line = _one_line_error(capsys)
    assert "task lmeval:x (lm-eval bridge): needs the evaluated model's transformers weights" in line
    assert "backend 'echo' cannot expose" in line and composite.calls == []


def test_phases_check_the_backend_they_are_handed(tmp_path):
    """The same check guards write_drift and the lm-eval bridge when they are called directly."""
    from harness.judges.drift_ref import DriftPlan
    from harness.judges.phase import compute_drift
    from harness.rundir.context import EvalContext

    ref = tmp_path / "ref.jsonl"
    ref.write_text('{"id": "q1", "prompts": ["p"], "raw": ["a"]}\n')
    ectx = EvalContext(out_dir=tmp_path, method={"name": "x", "artifact": {"kind": "composite"}}, model={})
    task = type("T", (), {"name": "mtbench"})()
    (tmp_path / "mtbench").mkdir()
    with pytest.raises(HarnessError, match="task mtbench \\(drift phase\\): .* backend 'echo' cannot expose"):
        compute_drift(task, None, ["q1"], EchoBackend({}, None), ectx, DriftPlan(ref), CPU)
    with pytest.raises(HarnessError, match="task lmeval:y \\(lm-eval bridge\\): .* backend 'echo' cannot expose"):
        check_serves(EchoBackend, [], [type("L", (), {"name": "lmeval:y"})()])
