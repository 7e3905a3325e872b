"""`lms`: Language-Specific Matrix Synthesis + Fuse Distillation (Xu et al., EMNLP 2023) on a causal LM."""

from __future__ import annotations

from harness.backends.base import Request
from harness.backends.hf import HFBackend
from harness.backends.routed import RoutedBackend
from harness.loading import BackendConfig, load_model_and_tokenizer
from harness.method import Artifact, Method, TrainContext
from harness.models import ResolvedModel
from methods.lms.config import LMSConfig
from methods.lms.modules import Router, RouteTable, load_lms
from methods.lms.train import train_lms


class LMSBackend(RoutedBackend, HFBackend):
    """The transformers backend with a route per request.

    `eval_route: shared` (FD-Share) sends every request through W + V[sh]F[sh]. `pair` (FD-LS) sends a
    translation request (one whose `Request.langs` is set) through its pair's route and every other prompt,
    or a pair with a language the artifact has no row for, through the shared route. Requests are grouped by
    route and each group is generated as one batch stream, so routes never mix inside a batch
    (`harness.backends.routed.RoutedBackend`).
    """

    name = "transformers"

    def __init__(self, model, tokenizer, cfg: BackendConfig, router: Router, table: RouteTable, eval_route: str):
        super().__init__(model, tokenizer, cfg)
        self.router, self.table, self.eval_route = router, table, eval_route

    def route_of(self, req: Request) -> tuple[int, int]:
        if self.eval_route == "pair" and req.langs is not None:
            route = self.table.route(*req.langs)
            if route is not None:
                return route
        return self.table.shared_route()

    def activate(self, route: tuple[int, int]) -> None:
        self.router.set(*route)

    def reset(self) -> None:
        self.router.use_shared()

    def settings(self) -> dict:
        return {**super().settings(), "lms_route": self.eval_route}


class LMSMethod(Method):
    name = "lms"
    Config = LMSConfig
    description = "LMS + Fuse Distillation: low-rank language-pair deltas V[src]F[tgt] on MLP linears + a shared route"

    def train(self, cfg: LMSConfig, ctx: TrainContext) -> Artifact:
        return train_lms(cfg, ctx, self.name)

    def mechanism(self, record: dict) -> str:
        from methods.lms.routes import mechanism_text

        return mechanism_text(record)

    def backend(self, artifact: Artifact, model: ResolvedModel, cfg: BackendConfig):
        """Base weights (or the trained ones when the base trained) + the saved V/F, routed per request."""
        base = artifact.path if (artifact.path / "config.json").exists() else model.path
        hf_model, tok = load_model_and_tokenizer(base, cfg)
        router, table, _ = load_lms(hf_model, artifact.path)
        return LMSBackend(hf_model, tok, cfg, router, table, artifact.config.get("eval_route", "shared"))

    def backend_class(self) -> type:
        return LMSBackend
