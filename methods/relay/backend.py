"""The composite backend of `relay`: one request contract, several LLMs behind it.

* Translation requests (`Request.langs`, set from the task's declared translation ability, + the document's
  `source`) go to the composition serving their direction: the source LLM reads the source prompt, the map
  turns its states into soft tokens, the target LLM decodes from `[BOS ; soft tokens ; target prompt]`
  with the transformers backend's KV-cache loop (stop strings, EOS, sampling, batching as usual).
* Every other request (safety, MGSM, ...) goes to the *general model*: the target LLM of the first
  composition whose target is the run's `--model` (with its LoRA merged in the "+ target fine-tuning"
  variant). Its prompts are rendered exactly like `--method base` renders them.
  `methods/relay/__init__.py` refuses, before any work, runs whose tasks this backend cannot serve.
"""

from __future__ import annotations

from harness.backends.base import Capabilities, Generation, Request
from harness.backends.hf import DecodeRow, HFBackend
from harness.backends.routed import RoutedBackend
from harness.errors import HarnessError
from harness.io import read_json
from harness.loading import BackendConfig, device_and_dtype, merge_adapter
from methods.relay.relay import NATIVE_HEAD, encode, source_text
from methods.relay.train import build_relay, load_lm


def shuffled_sources(docs: list[dict]) -> list[dict]:
    """The shuffled-source control's inputs: each document with the `source` of the next document of the same
    direction in this batch (cyclic), everything else its own, so the target sees its own prompt after another
    line's hidden states. Needs two lines per direction in a batch."""
    groups: dict[tuple, list[int]] = {}
    for i, d in enumerate(docs):
        groups.setdefault((d.get("src"), d.get("tgt")), []).append(i)
    out = list(docs)
    for (src, tgt), idx in groups.items():
        if len(idx) < 2:
            raise HarnessError(f"relay control shuffled_source: only one {src}-{tgt} line in a batch; it needs two "
                               f"or more (raise --chunk-size and --limit)")
        for k, i in enumerate(idx):
            out[i] = {**docs[i], "source": docs[idx[(k + 1) % len(idx)]]["source"]}
    return out


class RelayGenerator(HFBackend):
    """One composition: the transformers backend of the target LLM, prefilled with relay embeddings (its public
    `prefill` hook; `decode` and `to_generation` are the transformers backend's own)."""

    name = "relay"

    def __init__(self, relay, source_tok, target_tok, cfg: BackendConfig, relay_cfg, pairs: list[str]):
        super().__init__(relay.target, target_tok, cfg)
        self.relay, self.source_tok, self.relay_cfg, self.pairs = relay, source_tok, relay_cfg, pairs
        if self.source_tok.pad_token_id is None:
            self.source_tok.pad_token = self.source_tok.eos_token

    def stops_for(self, req: Request) -> list[str]:
        return list(req.gen.stop) + list(req.gen.stop_plain)  # the target reads plain text, never a chat template

    def generate(self, requests: list[Request], progress=None) -> list[Generation]:
        rows = []
        shuffled = self.relay_cfg.control == "shuffled_source"
        sources = shuffled_sources([r.doc for r in requests]) if shuffled else [r.doc for r in requests]
        for i, (r, src_doc) in enumerate(zip(requests, sources)):
            e = encode(self.source_tok, self.tok, self.relay_cfg, src_doc)
            rows.append(DecodeRow(i, e.prefix_ids + e.prompt_ids, r, self.stops_for(r), inputs=e))
        todo = sorted((row for row in rows if row.req.gen.max_new_tokens > 0),
                      key=lambda row: -(len(row.inputs.source_ids) + len(row.prompt)))
        self.decode(todo, progress)
        out = []
        for row in rows:
            d = row.req.doc
            head = NATIVE_HEAD.format(**d) if self.relay_cfg.tags == "native" else ""
            shown = (("[control: another line's source] " if shuffled else "")
                     + f"[source LLM] {source_text(self.relay_cfg, sources[row.index])}\n"
                     f"[target LLM] {head}<{self._n_soft(row.inputs)} soft tokens>"
                     f"{self.relay_cfg.target_prompt.format(**d)}")
            out.append(self.to_generation(row, shown, len(row.inputs.source_ids) + len(row.prompt)))
        return out

    def _n_soft(self, enc) -> int:
        return self.relay_cfg.xattn_queries if self.relay_cfg.map == "xattn" else len(enc.source_ids)

    def prefill(self, rows):
        embeds, attn, pos, _ = self.relay.target_inputs([row.inputs for row in rows], self.tok.pad_token_id)
        out = self.model(inputs_embeds=embeds.to(self.dtype), attention_mask=attn, position_ids=pos,
                         use_cache=True, **self.last_logits_only)
        return out.past_key_values, attn, out.logits[:, -1, :]


class RelayBackend(RoutedBackend):
    """Routes each request to the composition serving its direction, or to the general model (the shared
    `RoutedBackend`: grouped by route, outputs in the caller's order)."""

    name = "relay"
    capabilities = Capabilities(generate=True, loglik=False, hf_weights=False)  # two LLMs joined by a map

    def __init__(self, generators: dict[str, RelayGenerator], general: HFBackend | None, general_info: dict,
                 describe: list[dict]):
        self.generators, self.general, self.general_info, self.describe = generators, general, general_info, describe

    def route_of(self, req: Request) -> str:
        """The direction of a translation request (`Request.langs`, set from the task's translation ability),
        "" (the general model) for any other request."""
        if req.langs is not None and req.doc is not None and "source" in req.doc:
            pair = req.pair
            if pair not in self.generators:
                raise HarnessError(f"relay: no composition serves {pair} (served: {', '.join(self.generators)})")
            return pair
        if self.general is None:
            raise HarnessError(f"relay: request {req.id} is not a translation and {self.general_info['reason']}")
        return ""

    def generate_route(self, key: str, requests: list[Request], progress=None) -> list[Generation]:
        return (self.generators[key] if key else self.general).generate(requests, progress)

    def settings(self) -> dict:
        any_gen = next(iter(self.generators.values()))
        control = any_gen.relay_cfg.control
        return {**any_gen.settings(), "backend": "relay", "relays": self.describe, "general": self.general_info,
                **({"control": f"{control}: each line decoded from the source states of the next line of its "
                               f"direction in its chunk (methods/relay/backend.py shuffled_sources)"}
                   if control != "none" else {})}


def load_backend(artifact, model, cfg: BackendConfig, relay_cfg) -> RelayBackend:
    """Rebuild every composition from the artifact (frozen LLMs + saved map [+ adapter])."""
    from safetensors.torch import load_file

    from methods.relay.train import resolve

    device, dtype = device_and_dtype(cfg)
    base_sha = model.identity().get("weights_sha256")
    generators: dict[str, RelayGenerator] = {}
    general, general_info, describe = None, None, []
    for i, comp in enumerate(relay_cfg.relays):
        folder = artifact.path / f"relay{i}"
        saved = read_json(folder / "relay.json")
        src_m, tgt_m = resolve(comp.source, model), resolve(comp.target, model)
        for side, m in (("source", src_m), ("target", tgt_m)):
            if m.identity()["weights_sha256"] != saved[side]["weights_sha256"]:
                raise HarnessError(f"{folder}/relay.json: the {side} LLM {getattr(comp, side)} now resolves to other "
                                   f"weights than the map was trained with; retrain (delete {artifact.path})")
        source, source_tok = load_lm(src_m.path, cfg.trust_remote_code, dtype)
        target, target_tok = load_lm(tgt_m.path, cfg.trust_remote_code, dtype)
        if (folder / "adapter").is_dir():
            target = merge_adapter(target, folder / "adapter")
        relay = build_relay(relay_cfg, source, source_tok, target)
        relay.map.load_state_dict(load_file(str(folder / "map.safetensors")))
        # only the map is cast: `.to(dtype)` on the LLMs would also cast buffers that transformers keeps in float32
        # (rotary inv_freq), and the general model would no longer be the base model
        relay.to(device)
        relay.map.to(dtype=dtype)
        relay.eval()
        gen = RelayGenerator(relay, source_tok, target_tok, cfg, relay_cfg, comp.pairs)
        for p in comp.pairs:
            generators[p] = gen
        describe.append({"pairs": comp.pairs, "source": saved["source"]["name"], "target": saved["target"]["name"],
                         "lora": (folder / "adapter").is_dir()})
        if general is None and saved["target"]["weights_sha256"] == base_sha:
            lora = (folder / "adapter").is_dir()
            general = HFBackend(target, target_tok, cfg)
            general_info = {"model": saved["target"]["name"], "composition": i, "target_lora": lora,
                            "unchanged_by_construction": not lora}
    if general is None:
        general_info = {"reason": "no composition's target LLM is the run's --model, so no single model answers "
                                  "non-translation prompts"}
    return RelayBackend(generators, general, general_info, describe)
