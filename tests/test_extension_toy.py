"""Adding a task that uses a judge and COMET, and a method with a composite backend, touches only their own files
plus one registration line (issue #11).

The test copies the project's packages into a temporary folder, adds there
  tasks/toy_judged.yaml + tasks/toy_judged.py   (a translation task rated by a judge; reports COMET when given)
  methods/toy_composite/__init__.py              (a method whose backend routes each request to one of two models)
  one line in methods/__init__.py's REGISTRY
and nothing else, then runs them through the Python API (`mt_harness.api.run`, `mt_harness.api.leaderboard`) in a fresh
interpreter with an OpenAI-compatible judge endpoint (a local test server that answers "Rating: [[n]]").
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_judges import serve_judge

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "tasks", "methods", "leaderboard")

TASK_YAML = """\
task: toy_judged
hook: toy_judged
description: A toy translation task whose outputs a judge rates 1-10 (the extension test's task).
languages: [de, en]
dataset:
  local: flores/flores200_dataset/devtest
  split: devtest
prompt:
  template: "Translate into {tgt}: {source}"
generation:
  max_new_tokens: 6
"""

TASK_HOOK = '''\
"""Toy task: the first lines of FLORES devtest de<->en, chrF per sample, a judge's 1-10 rating, COMET if given."""

import sacrebleu

from harness.data import read_lines
from harness.judges import JudgeItem, judge_id, median_verdict, parse_rating, run_judgments
from harness.columns import Column
from harness.task import Task

FILES = {"de": "deu_Latn.devtest", "en": "eng_Latn.devtest"}


class ToyJudged(Task):
    uses_judge = True
    uses_comet = True
    leaderboard = (
        Column(label="Toy chrF", key="chrf", sample="chrf", role="translation", scale=100),
        Column(label="Toy judge", key="judge_score", sample="judgment.score", role="general", scale=10,
               family="toy", when="judged"),
    )

    def all_subsets(self):
        return ["de-en", "en-de"]

    def docs(self, subset):
        src, tgt = subset.split("-")
        folder = self.data.require_local("FLORES devtest", self.cfg.dataset.local)
        pairs = zip(read_lines(folder / FILES[src])[:3], read_lines(folder / FILES[tgt])[:3])
        return [{"id": f"{subset}/{i}", "subset": subset, "src": src, "tgt": tgt, "source": s, "ref": r}
                for i, (s, r) in enumerate(pairs)]

    def score(self, doc, outputs):
        return {"reference": doc["ref"], "source": doc["source"],
                "chrf": sacrebleu.sentence_chrf(outputs[0], [doc["ref"]]).score}

    def aggregate(self, subset, records):
        out = {"chrf": sum(r["chrf"] for r in records) / len(records)}
        scores = [r["judgment"]["score"] for r in records if r.get("judgment", {}).get("score") is not None]
        if scores:
            out["judge_score"] = sum(scores) / len(scores)
        return out

    def summarize(self, per_subset, records):
        summary = super().summarize(per_subset, records)
        comet = self.context.comet
        if comet.available:
            recs = [r for rs in records.values() for r in rs]
            scores = comet.predict([r["source"] for r in recs], [r["outputs"][0] for r in recs],
                                   [r["reference"] for r in recs])
            summary["comet"] = sum(scores) / len(scores)
        return summary

    def judge_records(self, records, judge, spec, cache):
        items = [JudgeItem(r["id"], [{"role": "user", "content": f"Rate 1-10: {r['outputs'][0]}"}]) for r in records]
        verdicts = run_judgments(judge, spec.settings(), items, cache, parse_rating, desc="toy judge")
        for r in records:
            r["judgment"] = {"score": median_verdict(verdicts[r["id"]]), "judge": judge_id(judge)}

    def metadata(self):
        return {"comet": self.context.comet.metadata()}


TASK_CLASS = ToyJudged
'''

METHOD = '''\
"""Toy composite method: no training; X->en requests go to the run's model, en->X requests to a partner model."""

from dataclasses import dataclass

from harness.backends.base import Capabilities
from harness.backends.hf import HFBackend
from harness.config import to_dict
from harness.io import stable_hash
from harness.loading import load_model_and_tokenizer
from harness.method import Artifact, Method


@dataclass
class Config:
    partner: str = ""  # folder of the model that writes non-English targets


class Router:
    name = "toy-router"
    capabilities = Capabilities(generate=True, loglik=False, hf_weights=False)

    def __init__(self, members):
        self.members = members  # {"anchor": HFBackend, "partner": HFBackend}

    def member(self, request):
        return "anchor" if request.langs is None or request.langs[1] == "en" else "partner"

    def generate(self, requests, progress=None):
        out = {}
        for name, backend in self.members.items():
            mine = [r for r in requests if self.member(r) == name]
            if mine:
                out.update(zip((r.id for r in mine), backend.generate(mine, progress)))
        return [out[r.id] for r in requests]

    def settings(self):
        return {"backend": self.name, **{n: b.settings() for n, b in self.members.items()}}


class ToyCompositeMethod(Method):
    name = "toy_composite"
    description = "two models, routed by target language (extension test)"
    Config = Config

    def train(self, cfg, ctx):
        config = to_dict(cfg)
        return Artifact(self.name, "composite", None, config, stable_hash(config), stable_hash(config))

    def backend(self, artifact, model, cfg):
        members = {"anchor": model.path, "partner": artifact.config["partner"]}
        return Router({n: HFBackend(*load_model_and_tokenizer(p, cfg), cfg) for n, p in members.items()})

    def backend_class(self):
        return Router
'''

DRIVER = '''\
import json, sys
from pathlib import Path

import torch
from mt_harness.api import RunSpec, leaderboard, run
from harness.errors import HarnessError
from harness.judges import JudgeSpec
from harness.loading import BackendConfig, load_model_and_tokenizer

anchor, partner, url, out = sys.argv[1:5]
settings = BackendConfig(dtype="float32", device="cpu", batch_size=1, threads=1)
cfg = Path(out).parent / "toy.yaml"
cfg.write_text(f"partner: {partner}\\n")
spec = RunSpec(tasks=["toy_judged"], method="toy_composite", model=anchor, method_config=cfg, output=out,
               settings=settings, judge=JudgeSpec(kind="openai", model="toy-judge", url=url))
done = run(spec)
tables, written = leaderboard([out], output=Path(out).parent / "board")
try:  # a log-likelihood task cannot be served by the router: one line, before any model loads
    run(RunSpec(tasks=["arc_easy"], method="toy_composite", model=anchor, method_config=cfg,
                output=Path(out).parent / "refused", settings=settings, limit=2))
    refused = None
except HarnessError as e:
    refused = str(e)

# what each member alone generates for the recorded prompts (greedy, batch 1: the same tokens)
direct = {}
for name, path in (("anchor", anchor), ("partner", partner)):
    model, tok = load_model_and_tokenizer(path, settings)
    for line in (Path(out) / "toy_judged" / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        ids = tok(rec["prompts"][0], add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        direct[name + ":" + rec["id"]] = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
print(json.dumps({"summary": done.results["tasks"]["toy_judged"]["summary"], "refused": refused,
                  "backend": done.results["tasks"]["toy_judged"]["backend"],
                  "metadata": done.results["tasks"]["toy_judged"]["metadata"],
                  "board": [str(p) for p in written], "direct": direct}))
'''


def _copy_project(dst: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__"))


def _changed(a: Path, b: Path) -> list[str]:
    """Files that differ between two trees (added, removed or modified), relative to the tree roots."""
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    out = [str(Path(x)) for x in cmp.left_only + cmp.right_only + cmp.diff_files]
    for sub, _sc in cmp.subdirs.items():
        out += [str(Path(sub) / x) for x in _changed(a / sub, b / sub)]
    return sorted(out)


def test_toy_judged_task_and_composite_method_touch_only_their_files(tmp_path, tiny_model_factory, data_dir):
    clean, proj = tmp_path / "clean", tmp_path / "proj"
    _copy_project(clean)
    _copy_project(proj)
    (proj / "tasks" / "toy_judged.yaml").write_text(TASK_YAML)
    (proj / "tasks" / "toy_judged.py").write_text(TASK_HOOK)
    (proj / "methods" / "toy_composite").mkdir()
    (proj / "methods" / "toy_composite" / "__init__.py").write_text(METHOD)
    registry = proj / "methods" / "__init__.py"
    text = registry.read_text()
    registry.write_text(text.replace('REGISTRY: dict[str, str] = {\n',
                                     'REGISTRY: dict[str, str] = {\n    "toy_composite": '
                                     '"methods.toy_composite:ToyCompositeMethod",\n', 1))
    assert len(registry.read_text().splitlines()) == len(text.splitlines()) + 1
    assert _changed(clean, proj) == ["methods/__init__.py", "methods/toy_composite", "tasks/toy_judged.py",
                                     "tasks/toy_judged.yaml"]

    anchor, partner = tiny_model_factory("llama"), tiny_model_factory("qwen2")
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(proj), "HARNESS_CACHE": str(tmp_path / "cache"),
           "HARNESS_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    def rating(content: str) -> int:
        return 1 + len(content) % 9

    with serve_judge(lambda body, n: f"Rating: [[{rating(body['messages'][-1]['content'])}]]") as (url, calls):
        proc = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(anchor), str(partner), url,
                               str(tmp_path / "run")], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])

    # the task's declared abilities reached it: judged (one call per distinct prompt), COMET context (skipped here)
    records = [json.loads(x) for x in (tmp_path / "run" / "toy_judged" / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 6 and len(calls) == len({r["outputs"][0] for r in records})
    scores = [r["judgment"]["score"] for r in records]
    assert scores == [float(rating(f"Rate 1-10: {r['outputs'][0]}")) for r in records]
    assert abs(got["summary"]["judge_score"] - sum(scores) / 6) < 1e-9
    assert 0 <= got["summary"]["chrf"] <= 100 and "comet" not in got["summary"]
    assert got["metadata"]["comet"]["skipped"] == "no --comet-model given"
    # every request went through the composite backend, to the member its target language names
    assert got["backend"]["backend"] == "toy-router"
    for r in records:
        member = "anchor" if r["id"].startswith("de-en") else "partner"
        assert r["raw"][0] == got["direct"][f"{member}:{r['id']}"]
    assert any(got["direct"][f"anchor:{r['id']}"] != got["direct"][f"partner:{r['id']}"] for r in records)
    # the leaderboard shows the task's declared columns without any leaderboard change
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "Toy chrF" in board and "Toy judge" in board
    # a phase the composite backend cannot serve stops the run before any work, in one line
    assert got["refused"] and "\n" not in got["refused"]
    assert "log-likelihood" in got["refused"] and "toy-router" in got["refused"]
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
