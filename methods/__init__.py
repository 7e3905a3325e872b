"""Method registry. Each method is a package `methods/<name>/` registered here explicitly."""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.method import Method
from methods.base import BaseMethod
from methods.landermt import LANDeRMTMethod
from methods.lms import LMSMethod
from methods.lora import LoRAMethod
from methods.radis import RaDisMethod
from methods.relay import RelayMethod
from methods.sft import SFTMethod
from methods.xbridge import XBridgeMethod

REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if cls.name in REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


register(BaseMethod)
register(SFTMethod)
register(LoRAMethod)
register(RaDisMethod)
register(XBridgeMethod)
register(LANDeRMTMethod)
register(LMSMethod)
register(RelayMethod)


def method_dir(name: str) -> Path:
    """methods/<name>/ (recipes/ there hold YAML configs such as small.yaml)."""
    return Path(__file__).resolve().parent / name


def get_method(name: str) -> Method:
    if name not in REGISTRY:
        raise HarnessError(f"unknown method {name!r} (known: {', '.join(REGISTRY)}; see `harness ls methods`)")
    return REGISTRY[name]()
