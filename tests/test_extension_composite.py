"""A sixth, composite method and a YAML-only test set touch only their own files plus one registration line
(issue #25): the composite method gets the shared artifact cache, trainer, partner-model loading, routed backend
and the transformers backend's public prefill/decode hooks from the framework, and learns what it can serve from
the tasks' declared `translation` ability, never from task names.

The test copies the project's packages into a temporary folder, adds there
  methods/toy_bridge/__init__.py   (a frozen reader LM and a frozen writer LM joined by a trained linear map;
                                    de-en goes reader -> map -> writer, en-de to the reader alone)
  tasks/toy_set.yaml               (a YAML-only translation test set, `hook: translation`, files in tmp)
  one line in methods/__init__.py's REGISTRY
and nothing else, then runs them in a fresh interpreter: the Python API twice (train + reuse) and the CLI once
with a direction no route serves (refused in one line before any work).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_extension_toy import _changed, _copy_project

METHOD = '''\
"""Toy composite (extension test): a frozen reader LM and a frozen writer LM (the run's --model) joined by a
trained linear map, routed by direction: de-en = reader reads the source, the map turns its last hidden states into
soft tokens, the writer decodes after them; en-de = the reader alone. Every other direction of any translation task
(YAML test sets included) and every non-translation task is refused in check_run, before any work."""

from dataclasses import dataclass, field

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from harness.abilities import refuse_directions
from harness.backends.base import Capabilities
from harness.backends.hf import DecodeRow, HFBackend
from harness.backends.routed import RoutedBackend
from harness.config import to_dict
from harness.errors import HarnessError
from harness.io import stable_hash
from harness.loading import device_and_dtype, load_frozen
from harness.method import Method
from harness.models import resolve_model
from harness.training import trainer
from harness.training.artifacts import artifact_cache
from harness.training.contamination import guard
from harness.training.data import TrainDataConfig, load_training_data

BRIDGED, ALONE = "de-en", "en-de"
FIELDS = ("src", "prompt", "target")


@dataclass
class Config:
    reader: str = ""  # folder of the reader model
    data: TrainDataConfig = field(default_factory=lambda: TrainDataConfig(pairs=[BRIDGED], max_per_pair=4))
    train: trainer.TrainConfig = field(default_factory=lambda: trainer.TrainConfig(
        lr=1e-2, max_steps=2, batch_size=2, max_length=48, save_every=0, precision="fp32"))


def prompt_ids(tok, doc):
    return tok(f" {doc['tgt_name']}:", add_special_tokens=False)["input_ids"]


class Bridge(nn.Module):
    def __init__(self, reader, writer):
        super().__init__()
        self.reader, self.writer = reader, writer
        self.map = nn.Linear(reader.config.hidden_size, writer.config.hidden_size)

    def inputs(self, rows):
        """rows of (source ids, prompt ids, target ids) -> left-padded inputs_embeds, mask, positions, labels."""
        emb = self.writer.get_input_embeddings()
        seqs, labels = [], []
        for src, prompt, target in rows:
            with torch.no_grad():
                h = self.reader(input_ids=torch.tensor([src]), output_hidden_states=True).hidden_states[-1][0]
            seqs.append(torch.cat([self.map(h), emb(torch.tensor(list(prompt) + list(target), dtype=torch.long))]))
            labels.append([-100] * (len(src) + len(prompt)) + list(target))
        width = max(len(s) for s in seqs)
        embeds = seqs[0].new_zeros((len(seqs), width, seqs[0].shape[-1]))
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        lab = torch.full((len(seqs), width), -100)
        for r, (s, y) in enumerate(zip(seqs, labels)):
            embeds[r, width - len(s):], attn[r, width - len(s):], lab[r, width - len(s):] = s, 1, torch.tensor(y)
        return embeds, attn, (attn.cumsum(-1) - 1).clamp(min=0), lab

    def forward(self, rows):
        embeds, attn, pos, lab = self.inputs(rows)
        logits = self.writer(inputs_embeds=embeds, attention_mask=attn, position_ids=pos).logits
        return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), lab[:, 1:].reshape(-1),
                                           ignore_index=-100, reduction="sum")


class BridgeObjective:
    """The shared trainer's Objective: mean NLL of the writer's target tokens over the step."""

    parts = ("target",)

    def collate(self, feats, pad_id):
        out = {}
        for k in FIELDS:
            n = torch.tensor([len(f[k]) for f in feats])
            ids = torch.zeros((len(feats), int(n.max())), dtype=torch.long)
            for r, f in enumerate(feats):
                ids[r, :len(f[k])] = torch.tensor(f[k])
            out[k], out[k + "_n"] = ids, n
        return out

    def counts(self, batch):
        return batch["target_n"].sum().reshape(1)

    def loss(self, model, batch, denom):
        rows = [tuple(batch[k][r, :int(batch[k + "_n"][r])].tolist() for k in FIELDS)
                for r in range(len(batch["src_n"]))]
        loss = model(rows) / denom["target"]
        return loss, {"target": float(loss.detach())}


class BridgeGenerator(HFBackend):
    """The writer's transformers backend, prefilled with the reader's mapped states (the public prefill hook)."""

    def __init__(self, bridge, reader_tok, writer_tok, cfg):
        super().__init__(bridge.writer, writer_tok, cfg)
        self.bridge, self.reader_tok = bridge, reader_tok

    def generate(self, requests, progress=None):
        rows = [DecodeRow(i, prompt_ids(self.tok, r.doc), r, list(r.gen.stop) + list(r.gen.stop_plain),
                          inputs=self.reader_tok(r.doc["source"], add_special_tokens=False)["input_ids"])
                for i, r in enumerate(requests)]
        self.decode(sorted(rows, key=lambda row: -len(row.inputs)), progress)
        return [self.to_generation(row, f"<{len(row.inputs)} soft tokens>{self.tok.decode(row.prompt)}",
                                   len(row.inputs) + len(row.prompt)) for row in rows]

    def prefill(self, rows):
        embeds, attn, pos, _ = self.bridge.inputs([(row.inputs, row.prompt, []) for row in rows])
        out = self.model(inputs_embeds=embeds, attention_mask=attn, position_ids=pos, use_cache=True,
                         **self.last_logits_only)
        return out.past_key_values, attn, out.logits[:, -1, :]


class ToyBridgeBackend(RoutedBackend):
    name = "toy-bridge"
    capabilities = Capabilities(generate=True, loglik=False, hf_weights=False)

    def __init__(self, routes):
        self.routes = routes

    def route_of(self, request):
        return request.pair

    def generate_route(self, key, requests, progress=None):
        return self.routes[key].generate(requests, progress)

    def settings(self):
        return {"backend": self.name, **{k: b.settings() for k, b in self.routes.items()}}


class ToyBridgeMethod(Method):
    name = "toy_bridge"
    description = "two frozen LMs joined by a trained linear map, routed by direction (extension test)"
    Config = Config

    def check_run(self, cfg, tasks, lm_tasks, backend_kind, model):
        for task in tasks:
            if not task.translation:
                raise HarnessError(f"--tasks {task.name}: not applicable to toy_bridge: it only translates")
        refuse_directions(tasks, lambda d: d in (BRIDGED, ALONE), "toy_bridge route", f"(routes: {BRIDGED}, {ALONE})")
        super().check_run(cfg, tasks, lm_tasks, backend_kind, model)

    def train(self, cfg, ctx):
        examples, stats = load_training_data(cfg.data, ctx.data, seed=ctx.seed)
        examples, report = guard(examples, ctx.eval_tasks, drop=ctx.allow_overlap)
        reader = resolve_model(cfg.reader)
        fingerprint = stable_hash([(e.src, e.tgt, e.source, e.reference) for e in examples])
        key = {**to_dict(cfg), "seed": ctx.seed, "reader": reader.identity().get("weights_sha256")}
        cache = artifact_cache(self.name, key, fingerprint, ctx.out_dir, ctx.model.identity().get("weights_sha256", ""))
        if cache.cached:
            return cache.cached
        (reader_m, rtok), (writer_m, wtok) = load_frozen(reader.path), load_frozen(ctx.model.path)
        torch.manual_seed(ctx.seed)
        bridge = Bridge(reader_m, writer_m)
        feats = []
        for e in examples:
            f = {"src": rtok(e.source, add_special_tokens=False)["input_ids"][:16], "prompt": prompt_ids(wtok, e.doc()),
                 "target": wtok(" " + e.reference, add_special_tokens=False)["input_ids"][:16] + [wtok.eos_token_id]}
            feats.append({**f, "input_ids": f["src"] + f["target"]})  # input_ids: length grouping only
        cache.folder.mkdir(parents=True, exist_ok=True)
        trainer.train(bridge, wtok, feats, cfg.train, cache.folder, seed=ctx.seed, device=ctx.backend.device,
                      desc="toy_bridge", objective=BridgeObjective())
        save_file({k: v.detach().contiguous() for k, v in bridge.map.state_dict().items()},
                  str(cache.folder / "map.safetensors"))
        config = {**to_dict(cfg), "training_data": {**stats, "contamination": report, "fingerprint": fingerprint}}
        return cache.save("composite", config, {"reader": reader.identity()})

    def backend(self, artifact, model, cfg):
        device, dtype = device_and_dtype(cfg)
        reader = resolve_model(artifact.config["reader"])
        (reader_m, rtok), (writer_m, wtok) = load_frozen(reader.path, dtype=dtype), load_frozen(model.path, dtype=dtype)
        bridge = Bridge(reader_m, writer_m)
        bridge.map.load_state_dict(load_file(str(artifact.path / "map.safetensors")))
        bridge.to(device=device, dtype=dtype).eval()
        return ToyBridgeBackend({BRIDGED: BridgeGenerator(bridge, rtok, wtok, cfg),
                                 ALONE: HFBackend(reader_m, rtok, cfg)})

    def backend_class(self):
        return ToyBridgeBackend
'''

TASK_YAML = """\
task: toy_set
hook: translation
description: A YAML-only test set (three directions of three lines each) for the composite extension test.
languages: [de-en, en-de, fr-en]
prompt:
  template: "Translate the following {{src_name}} text into {{tgt_name}}.\\n{{src_name}}: {{source}}\\n{{tgt_name}}:"
generation:
  max_new_tokens: 6
  stop_plain: ["\\n"]
options:
  source: "{folder}/toy.{{src}}"
  references: ["{folder}/toy.{{tgt}}"]
"""

LINES = {"de": ["Das Haus ist klein.", "Ich trinke Wasser.", "Der Hund schläft."],
         "en": ["The house is small.", "I drink water.", "The dog sleeps."],
         "fr": ["La maison est petite.", "Je bois de l'eau.", "Le chien dort."]}

DRIVER = '''\
import json, sys
from pathlib import Path

import torch
from mt_harness.api import RunSpec, run
from harness.loading import BackendConfig, load_model_and_tokenizer

writer, reader, out = sys.argv[1:4]
settings = BackendConfig(dtype="float32", device="cpu", batch_size=2, threads=1)
cfg = Path(out).parent / "toy_bridge.yaml"
cfg.write_text(f"reader: {reader}\\n")
runs = []
for name in ("a", "b"):  # the second run finds the artifact in the shared cache
    spec = RunSpec(tasks=["toy_set"], langs=["de-en", "en-de"], method="toy_bridge", model=writer, method_config=cfg,
                   output=Path(out) / name, settings=settings, limit=2)
    runs.append(run(spec).results)
model, tok = load_model_and_tokenizer(reader, settings)
direct = {}
for line in (Path(out) / "a" / "toy_set" / "samples.jsonl").read_text().splitlines():
    rec = json.loads(line)
    if rec["subset"] == "en-de":
        ids = tok(rec["prompts"][0], add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        direct[rec["id"]] = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
print(json.dumps({"runs": [{"artifact": r["method"]["artifact"], "backend": r["tasks"]["toy_set"]["backend"],
                            "summary": r["tasks"]["toy_set"]["summary"]} for r in runs], "direct": direct}))
'''


def test_composite_method_and_yaml_test_set_touch_only_their_files(tmp_path, tiny_model_factory, data_dir):
    clean, proj = tmp_path / "clean", tmp_path / "proj"
    _copy_project(clean)
    _copy_project(proj)
    files = tmp_path / "toyset"
    files.mkdir()
    for lang, lines in LINES.items():
        (files / f"toy.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (proj / "tasks" / "toy_set.yaml").write_text(TASK_YAML.format(folder=files))
    (proj / "methods" / "toy_bridge").mkdir()
    (proj / "methods" / "toy_bridge" / "__init__.py").write_text(METHOD)
    registry = proj / "methods" / "__init__.py"
    text = registry.read_text()
    registry.write_text(text.replace('REGISTRY: dict[str, str] = {\n',
                                     'REGISTRY: dict[str, str] = {\n    "toy_bridge": '
                                     '"methods.toy_bridge:ToyBridgeMethod",\n', 1))
    assert len(registry.read_text().splitlines()) == len(text.splitlines()) + 1
    assert _changed(clean, proj) == ["methods/__init__.py", "methods/toy_bridge", "tasks/toy_set.yaml"]

    writer, reader = tiny_model_factory("llama-untied"), tiny_model_factory("qwen2")
    (tmp_path / "driver.py").write_text(DRIVER)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(proj), "HARNESS_CACHE": str(cache), "HARNESS_DATA_DIR": str(data_dir),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(writer), str(reader),
                           str(tmp_path / "run")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    first, second = got["runs"]

    # trained once through the shared trainer into the shared cache, reused by the second run
    art = first["artifact"]
    folder = Path(art["path"])
    assert art["kind"] == "composite" and folder.parent == cache / "artifacts" / "toy_bridge"
    assert second["artifact"] == art and "reusing artifact" in proc.stdout
    manifest = json.loads((folder / "artifact.json").read_text())
    assert manifest["config_hash"] == art["config_hash"] and (folder / "map.safetensors").is_file()
    losses = [json.loads(x) for x in (folder / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses] == [1, 2] and all(r["loss"] > 0 for r in losses)
    assert not (folder / "checkpoint").exists()

    # routed by direction: de-en through reader -> map -> writer (soft tokens), en-de by the reader alone
    assert first["backend"]["backend"] == "toy-bridge" and set(first["backend"]) >= {"de-en", "en-de"}
    recs = {name: [json.loads(x) for x in (tmp_path / "run" / name / "toy_set" / "samples.jsonl").read_text()
                   .splitlines()] for name in ("a", "b")}
    assert sorted(r["subset"] for r in recs["a"]) == ["de-en", "de-en", "en-de", "en-de"]
    for r in recs["a"]:
        assert ("soft tokens" in r["prompts"][0]) == (r["subset"] == "de-en")
        if r["subset"] == "en-de":
            assert r["raw"][0] == got["direct"][r["id"]]
    assert [r["raw"] for r in recs["b"]] == [r["raw"] for r in recs["a"]]
    assert 0 <= first["summary"]["chrf"] <= 100

    # a direction of the YAML test set that no route serves: one line from the CLI, before any work
    before = sorted(p.name for p in (cache / "artifacts" / "toy_bridge").iterdir())
    proc = subprocess.run([sys.executable, "-m", "mt_harness.cli", "run", "--method", "toy_bridge",
                           "--tasks", "toy_set", "--langs", "fr-en", "--model", str(writer),
                           "--output", str(tmp_path / "refused"),
                           "--method-config", str(tmp_path / "toy_bridge.yaml"), "--limit", "2"],
                          cwd=proj, env=env, capture_output=True, text=True, timeout=300, check=False)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr[-2000:]
    assert "--tasks toy_set: direction fr-en is served by no toy_bridge route" in err[0]
    assert not (tmp_path / "refused").exists()
    assert sorted(p.name for p in (cache / "artifacts" / "toy_bridge").iterdir()) == before
