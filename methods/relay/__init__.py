"""`relay`: Relay Decoding (arXiv 2405.02933) — a source LLM and a target LLM joined by a trained map.

What a relay run can serve (checked before any work by `check_run`, by the tasks' declared abilities, never
their names):
* translation tasks (`task.translation`: flores, wmt16, multi30k, any YAML test set of `hook: translation`), every
  selected direction served by a composition: the relay itself. An unserved direction is refused in one line.
* other generation tasks (safety, mgsm, gsm8k, xlsum): the *general model*, i.e. the target LLM of the
  composition whose target is `--model`. With frozen LLMs it is the base model itself (weights hash
  equal), so those results are marked "unchanged by construction" (results.json
  `tasks.<task>.backend.general`); with `target_lora` it carries the adapter and is measured for real.
* refused with one line: `--backend vllm` (cannot load a composite), `lmeval:*` tasks (lm-eval's HFLM
  wraps one HF model), drift-capable tasks such as `mtbench` (their drift phase scores answers with the evaluated
  model's weights, and a relay has no single set), non-translation tasks when no composition targets `--model`.
"""

from __future__ import annotations

from harness.abilities import refuse_directions
from harness.errors import HarnessError
from harness.method import Artifact, Method, TrainContext
from methods.relay.config import RelayConfig
from methods.relay.train import resolve, train_relay

DRIFT_REFUSAL = ("its drift phase scores the answers with the evaluated model's HF weights and a relay is two LLMs "
                 "joined by a map; run it with --method base (with frozen LLMs the relay's general model is the "
                 "base model)")


def general_composition(cfg: RelayConfig, model) -> int | None:
    """Index of the first composition whose target LLM has --model's weights (None if none)."""
    base = model.identity().get("weights_sha256")
    for i, comp in enumerate(cfg.relays):
        if comp.target == "{model}" or resolve(comp.target, model).identity().get("weights_sha256") == base:
            return i
    return None


class RelayMethod(Method):
    name = "relay"
    Config = RelayConfig
    description = "Relay Decoding: frozen source LLM -> trained linear (or cross-attention) map -> target LLM"

    def check_run(self, cfg: RelayConfig, tasks: list, lm_tasks: list, backend_kind: str, model) -> None:
        if lm_tasks:
            raise HarnessError(f"--tasks {lm_tasks[0].name}: not applicable to relay: lm-eval's HFLM wraps one HF "
                               f"model and a relay is two LLMs joined by a map; run it with --method base")
        served = [p for comp in cfg.relays for p in comp.pairs]
        refuse_directions(tasks, lambda d: d in served, "relay composition",
                          f"(served: {', '.join(served)}); select them with --langs or add a composition to relays")
        for task in tasks:
            if task.drift_capable:
                raise HarnessError(f"--tasks {task.name}: not applicable to relay: {DRIFT_REFUSAL}")
            if not task.translation and general_composition(cfg, model) is None:
                raise HarnessError(f"--tasks {task.name}: not applicable to relay: no composition's target LLM is "
                                   f"--model, so no single model answers non-translation prompts")
        super().check_run(cfg, tasks, lm_tasks, backend_kind, model)  # what RelayBackend can do; no vLLM

    def train(self, cfg: RelayConfig, ctx: TrainContext) -> Artifact:
        art = train_relay(cfg, ctx, self.name)
        if cfg.control != "none":  # the same artifact, decoded as the mechanism check's control (backend.py)
            art.config = {**art.config, "control": cfg.control}
        return art

    def mechanism(self, record: dict) -> str:
        """The relay's check is its shuffled-source control, paired by the leaderboard (leaderboard/control.py); this
        is what a row says when the pair is missing."""
        if (record.get("config") or {}).get("control"):
            return "shuffled-source control run: no relay run of the same artifact on this board"
        return ("content transfer not checked: no shuffled-source control run of this artifact on this board (run "
                "the same recipe with `control: shuffled_source` added; README 'Mechanism check')")

    def backend(self, artifact: Artifact, model, cfg):
        from harness.config import from_dict
        from methods.relay.backend import load_backend

        relay_cfg = from_dict(RelayConfig, {k: v for k, v in artifact.config.items() if k != "training_data"},
                              f"{artifact.path}/artifact.json")
        return load_backend(artifact, model, cfg, relay_cfg)

    def backend_class(self) -> type:
        from methods.relay.backend import RelayBackend

        return RelayBackend
