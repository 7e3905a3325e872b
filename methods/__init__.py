"""Method registry: one line per method, `name: "package:Class"`, imported when first used (so `harness run
--method base` does not import every method's training code). Each method is a package `methods/<name>/`."""

from __future__ import annotations

import importlib
from pathlib import Path

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
