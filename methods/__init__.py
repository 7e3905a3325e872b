"""Method registry. Each method is a package `methods/<name>/` registered here explicitly."""

from __future__ import annotations

from harness.errors import HarnessError
from harness.method import Method
from methods.base import BaseMethod

REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if cls.name in REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


register(BaseMethod)


def get_method(name: str) -> Method:
    if name not in REGISTRY:
        raise HarnessError(f"unknown method {name!r} (known: {', '.join(REGISTRY)}; see `harness ls methods`)")
    return REGISTRY[name]()
