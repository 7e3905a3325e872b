"""Generation with a LANDeRMT artifact: the base model, the saved deltas and gates, and a router that
follows each request's language pair (requests are generated in groups of one pair)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

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


class RoutedBackend(HFBackend):
    """HFBackend that sets the route before generating each pair's requests. A request without a pair
    (non-translation task) or with a pair that was not trained runs the general route."""

    def __init__(self, model, tokenizer, cfg, router: Router):
        super().__init__(model, tokenizer, cfg)
        self.router = router

    def generate(self, requests, progress=None):
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(self.router.key_for(r.pair), []).append(i)
        out = [None] * len(requests)
        for key, idx in groups.items():
            self.router.set(key)
            for i, g in zip(idx, super().generate([requests[i] for i in idx], progress)):
                out[i] = g
        self.router.set("")
        return out

    def settings(self) -> dict:
        return {**super().settings(), "routing": "per language pair (landermt)"}
