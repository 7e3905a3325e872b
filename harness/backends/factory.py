"""One way to build a backend: `build_backend(kind, method, artifact, model, cfg)` for every phase (generation,
MT-Bench/AlpacaEval base answers and drift, the lm-eval bridge, HF judges), and the one check of what a backend
can do (`check_serves`, run before any training or generation).

Backend kinds are `--backend transformers` (HFBackend, or the method's own backend when it has one, e.g. a
composite of several models) and `--backend vllm` (base weights, full weights or a LoRA adapter). Weights are
loaded by `harness.loading`.
"""

from __future__ import annotations

from pathlib import Path

from harness.backends.base import Capabilities
from harness.errors import HarnessError
from harness.loading import BackendConfig

KINDS = ("transformers", "vllm")

# what each capability is, and the verb of "backend X cannot ..."
_NEEDS = {"generate": ("text generation", "do"), "loglik": ("log-likelihood scoring", "do"),
          "hf_weights": ("the evaluated model's transformers weights (one model object + tokenizer)", "expose")}


def capabilities(backend) -> Capabilities:
    """The declared capabilities of a backend (instance or class); undeclared: generation only."""
    return getattr(backend, "capabilities", None) or Capabilities()


def backend_name(backend) -> str:
    return getattr(backend, "name", None) or getattr(backend, "__name__", None) or type(backend).__name__


def require(backend, ability: str, phase: str, fix: str) -> None:
    """One-line HarnessError naming the phase and the backend when `backend` cannot do `ability`."""
    if not getattr(capabilities(backend), ability):
        need, verb = _NEEDS[ability]
        raise HarnessError(f"{phase}: needs {need}, which backend {backend_name(backend)!r} cannot {verb}; {fix}")


def own_backend_class(method) -> type | None:
    """The class of the method's own backend (`Method.backend_class`), or None when it uses the standard one."""
    return None if method is None else method.backend_class()


def backend_class(kind: str, method=None) -> type:
    """The class of the backend `build_backend(kind, method, ...)` returns (for its name and capabilities),
    without loading anything; raises when that kind of backend cannot serve the method."""
    if kind not in KINDS:
        raise HarnessError(f"--backend {kind}: use {' or '.join(KINDS)}")
    own = own_backend_class(method)
    if own is not None:
        if kind == "vllm":
            raise HarnessError(f"--backend vllm: method {method.name} generates through its own backend "
                               f"({type(method).__module__}), which vLLM cannot load; use --backend transformers")
        return own
    if kind == "vllm":
        from harness.backends.vllm import VLLMBackend

        return VLLMBackend
    from harness.backends.hf import HFBackend

    return HFBackend


def check_serves(cls, tasks: list, lm_tasks: list) -> None:
    """Stop before any work when a phase of the run needs what the run's backend (a class or an instance, see
    `backend_class`) cannot do: log-likelihood tasks need `loglik`; the drift phase (drift-capable tasks) and
    `lmeval:` tasks need `hf_weights`."""
    for task in tasks:
        if task.kind == "loglik":
            require(cls, "loglik", f"task {task.name}",
                    "run it with a method whose backend is the transformers or vLLM backend")
        else:
            require(cls, "generate", f"task {task.name}", "drop it from --tasks")
        if task.drift_capable:
            require(cls, "hf_weights", f"task {task.name} (drift phase)",
                    f"drift scores the base model's answers with the evaluated weights; run {task.name} with "
                    f"--backend transformers and a method without a composite backend, or drop it from --tasks")
    for lt in lm_tasks:
        require(cls, "hf_weights", f"task {lt.name} (lm-eval bridge)",
                "lm-eval's HFLM wraps one transformers model; run it with --backend transformers and a method "
                "without a composite backend")


def build_backend(kind: str, method, artifact, model, cfg: BackendConfig, vllm_cfg=None):
    """The backend of `kind` for a method's artifact on `model` (a ResolvedModel, or a model folder).

    `--backend transformers`: the method's own backend (`method.backend`, when `method.backend_class()` names one),
    else base weights + an adapter or full weights; method None: that default (artifact None: the untouched base).
    `--backend vllm` serves base weights, full weights or a LoRA adapter (`vllm_cfg`: harness.backends.vllm)."""
    cls = backend_class(kind, method)
    if kind == "vllm":
        from harness.backends.vllm import VLLMConfig, backend_for_artifact

        vllm_cfg = vllm_cfg or VLLMConfig(dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
        return backend_for_artifact(artifact, model, vllm_cfg)
    own = own_backend_class(method) is not None
    backend = method.backend(artifact, model, cfg) if own else default_backend(artifact, model, cfg)
    if not isinstance(backend, cls):
        raise TypeError(f"method {method.name}: backend() returned {type(backend).__name__}, "
                        f"but backend_class() declares {cls.__name__}")
    return backend


def default_backend(artifact, model, cfg: BackendConfig):
    """The standard transformers backend of an artifact: base weights (artifact None or kind "none"), + a peft adapter,
    or full weights."""
    base = getattr(model, "path", model)
    if artifact is not None and artifact.kind == "full":
        return hf_backend(artifact.path, cfg)
    if artifact is not None and artifact.kind == "adapter":
        return hf_backend(base, cfg, adapter=artifact.path)
    return hf_backend(base, cfg)


def hf_backend(path: str | Path, cfg: BackendConfig, adapter: str | Path | None = None):
    """The transformers backend on the weights in `path` (+ a peft adapter merged in)."""
    from harness.backends.hf import HFBackend
    from harness.loading import load_model_and_tokenizer

    return HFBackend(*load_model_and_tokenizer(path, cfg, adapter=adapter), cfg)
