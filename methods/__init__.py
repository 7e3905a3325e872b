"""Method registry: one line per method, `name: "package:Class"`, imported when first used (so `harness run
--method base` does not import every method's training code). Each method is a package `methods/<name>/`.
`load_method_config` builds a run's method config: defaults <- budget recipe <- --method-config <- --set."""

from __future__ import annotations

import importlib
from pathlib import Path

from harness.config import from_dict, load_yaml, to_dict
from harness.errors import HarnessError
from harness.method import Method

REGISTRY: dict[str, str] = {
    "base": "methods.base:BaseMethod",
    "sft": "methods.sft:SFTMethod",
    "lora": "methods.lora:LoRAMethod",
    "radis": "methods.radis:RaDisMethod",
    "xbridge": "methods.xbridge:XBridgeMethod",
    "landermt": "methods.landermt:LANDeRMTMethod",
    "lms": "methods.lms:LMSMethod",
    "relay": "methods.relay:RelayMethod",
}


def method_dir(name: str) -> Path:
    """methods/<name>/ (recipes/ there hold YAML configs such as small.yaml)."""
    return Path(__file__).resolve().parent / name


def method_class(name: str) -> type[Method]:
    if name not in REGISTRY:
        raise HarnessError(f"unknown method {name!r} (known: {', '.join(REGISTRY)}; see `harness ls methods`)")
    module, _, attr = REGISTRY[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Method)) or cls.name != name:
        raise HarnessError(f"methods/__init__.py: REGISTRY[{name!r}] = {REGISTRY[name]!r} is not the Method "
                           f"subclass named {name!r}")
    return cls


def get_method(name: str) -> Method:
    return method_class(name)()


def load_method_config(method: Method, config_file: str | Path | None, budget: str | None,
                       options: dict | None = None):
    """Defaults <- methods/<name>/recipes/<budget>.yaml (if any) <- config_file <- options (dotted keys, e.g.
    {"train.lr": 1e-4}); strict keys throughout."""
    merged, where = to_dict(method.Config()), f"method {method.name}"
    sources = []
    if budget and budget != "full":
        recipe = method_dir(method.name) / "recipes" / f"{budget}.yaml"
        if recipe.exists():
            sources.append(recipe)
    if config_file:
        if not Path(config_file).is_file():
            raise HarnessError(f"--method-config {config_file}: file not found")
        sources.append(Path(config_file))
    for src in sources:
        merged, where = _deep_merge(merged, load_yaml(src) or {}), str(src)
    if options:
        merged, where = _deep_merge(merged, nest_options(options)), "--set"
    return from_dict(method.Config, merged, where)


def nest_options(options: dict) -> dict:
    """{"train.lr": 1e-4, "layer": 8} -> {"train": {"lr": 1e-4}, "layer": 8}."""
    out: dict = {}
    for key, value in options.items():
        *parents, leaf = str(key).split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise HarnessError(f"--set {key}: {part} is set both as a value and as a section")
        node[leaf] = value
    return out


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
