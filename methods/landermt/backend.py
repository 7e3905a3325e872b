"""Generation with a LANDeRMT artifact: the base model, the saved deltas and gates, and a router that
follows each request's language pair (requests are generated in groups of one pair)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from harness.backends import routed
from harness.backends.hf import HFBackend
from harness.errors import HarnessError
from harness.io import read_json
from methods.landermt.routing import Plan, Router, install, load_trainable


def load_routed(model, folder: Path) -> Router:
    """Wrap `model` as the artifact in `folder` says and load its trained deltas and gates."""
    folder = Path(folder)
    device = next(model.parameters()).device
    plan = Plan.from_json(read_json(folder / "landermt.json")["plan"])
    router = install(model, plan)
    try:
        load_trainable(model, load_file(str(folder / "landermt.safetensors")))
    except (KeyError, RuntimeError) as e:
        raise HarnessError(f"{folder}/landermt.safetensors does not fit this model ({e}); delete the folder to "
                           f"retrain") from None
    model.to(device).eval()
    return router


class RoutedBackend(routed.RoutedBackend, HFBackend):
    """HFBackend that sets the route before generating each pair's requests. A request without a pair
    (non-translation task) or with a pair that was not trained runs the general route; after each call (also a
    failed one) the general route is set again."""

    def __init__(self, model, tokenizer, cfg, router: Router):
        super().__init__(model, tokenizer, cfg)
        self.router = router

    def route_of(self, request) -> str:
        return self.router.key_for(request.pair)

    def activate(self, key: str) -> None:
        self.router.set(key)

    def reset(self) -> None:
        self.router.set("")

    def settings(self) -> dict:
        return {**super().settings(), "routing": "per language pair (landermt)"}
