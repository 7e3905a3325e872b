"""`xbridge`: NMT encoder -> frozen LLM -> NMT decoder, bridged by trained mapping layers (three stages)."""

from __future__ import annotations

from harness.abilities import refuse_directions, translation_tasks
from harness.config import from_dict
from harness.errors import HarnessError
from harness.loading import BackendConfig, device_and_dtype
from harness.method import Artifact, Method, TrainContext
from harness.models import ResolvedModel
from methods.xbridge.config import XBridgeConfig
from methods.xbridge.train import check_tasks, train_xbridge


class XBridgeMethod(Method):
    name = "xbridge"
    Config = XBridgeConfig
    description = "XBridge: NMT encoder -> Map_enc -> frozen LLM -> Map_dec -> NMT decoder cross-attention (3 stages)"

    def __init__(self):
        self.cfg: XBridgeConfig | None = None

    def check_run(self, cfg: XBridgeConfig, tasks: list, lm_tasks: list, backend_kind: str, model) -> None:
        check_tasks(tasks)  # (train() checks them again for `harness train`)
        if translation_tasks(tasks):  # every direction of every translation task needs both NMT language tokens
            from harness.loading import load_tokenizer
            from methods.xbridge.data import Codes
            from methods.xbridge.train import resolve_parts

            codes = Codes(load_tokenizer(resolve_parts(cfg, model)[0].path), cfg.language_codes)
            refuse_directions(tasks, lambda d: all(codes.token(x) in codes.vocab for x in d.split("-", 1)),
                              "xbridge NMT model", f"({cfg.nmt_model} has no {cfg.language_codes} language token for "
                              f"one side); drop it from --langs or set nmt_model / language_codes")
        super().check_run(cfg, tasks, lm_tasks, backend_kind, model)  # what XBridgeBackend can do; no vLLM

    def train(self, cfg: XBridgeConfig, ctx: TrainContext) -> Artifact:
        self.cfg = cfg  # evaluation-only settings (translation_prompt) come from the run's config
        return train_xbridge(cfg, ctx, self.name)

    def prepare_task(self, task, artifact: Artifact) -> None:
        """Math tasks get a second round: round 0 is the LLM's English answer (scored as the task's own metrics,
        the paper's XBridge_LLM), round 1 the decoder's answer in the question's language (scored by the task as
        `decoder_*` metrics, XBridge_Dec: the task's declared `add_answer_round`). The backend reads each
        request's document and round itself (backend.job_of)."""
        if task.answer_rounds:
            task.add_answer_round("decoder")

    def backend(self, artifact: Artifact, model: ResolvedModel, cfg: BackendConfig):
        from methods.xbridge.backend import XBridgeBackend
        from methods.xbridge.train import bridge_meta, build_bridge, load_bridge, load_parts, resolve_parts

        xcfg = self.cfg or from_dict(XBridgeConfig, {k: v for k, v in artifact.config.items()
                                                     if k in XBridgeConfig.__dataclass_fields__}, "artifact config")
        meta = bridge_meta(artifact)
        nmt_res, llm_res = resolve_parts(xcfg, model)
        for part, res in (("nmt", nmt_res), ("llm", llm_res)):
            if res.identity().get("weights_sha256") != meta[part].get("weights_sha256"):
                raise HarnessError(f"{artifact.path}: trained with {part} {meta[part].get('name')!r} "
                                   f"whose weights differ from {res.path}; retrain or point the config at the "
                                   f"original model")
        device, dtype = device_and_dtype(cfg)
        nmt, llm, nmt_tok, llm_tok = load_parts(nmt_res.path, llm_res.path, cfg, dtype)
        bridge = build_bridge(xcfg, nmt, llm, llm_tok)
        load_bridge(bridge, artifact.path)
        bridge.to(device=device, dtype=dtype)
        identity = {"nmt_model": meta["nmt"].get("name"), "nmt_weights_sha256": meta["nmt"].get("weights_sha256"),
                    "llm_model": meta["llm"].get("name")}
        return XBridgeBackend(bridge, nmt_tok, llm_tok, xcfg, cfg, identity)

    def backend_class(self) -> type:
        from methods.xbridge.backend import XBridgeBackend

        return XBridgeBackend

