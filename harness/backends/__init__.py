"""Generation backends. All take `Request`s and return `Generation`s in the same order."""

from harness.backends.base import Generation, Request

__all__ = ["Generation", "Request"]
