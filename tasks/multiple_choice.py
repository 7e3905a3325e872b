"""Multiple-choice log-likelihood tasks with lm-eval 0.4's prompts and metrics (HellaSwag, ARC-Easy/Challenge,
PIQA, WinoGrande, MMLU, TruthfulQA-MC2).

Each document becomes a list of (context, continuation) requests, scored by the backend's
`loglikelihood`; per sample we keep every choice's log-likelihood and the metrics:
- acc: the choice with the highest log-likelihood is the gold one (first maximum on ties, like numpy);
- acc_norm: the same after dividing each log-likelihood by the choice's length in characters;
- TruthfulQA-MC2 `acc`: the probability mass of the true answers, normalised over all answers.
WinoGrande ("partial scoring"): the choices are the sentence up to the blank with each option filled in
(the contexts) and the shared continuation is the rest of the sentence. MMLU is 0-shot with lm-eval's
description line ("The following are multiple choice questions (with answers) about <subject>.").

Data: the local copy under the data directory (`dataset.local`), else the hub id in the YAML.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from harness.columns import Column
from harness.data import load_hub_dataset, read_lines
from harness.errors import HarnessError
from harness.task import Task

TRUTHFULQA_PROMPT = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)
FORMATS = ("arc", "hellaswag", "piqa", "winogrande", "mmlu", "truthfulqa_mc2")
# leaderboard label of each task of this hook (others: the task name); the column shows acc_norm when the task
# reports it, else acc; TruthfulQA-MC2's `acc` is the MC2 score (probability mass on the true answers)
LABELS = {"hellaswag": "HellaSwag", "arc_easy": "ARC-E", "arc_challenge": "ARC-C", "piqa": "PIQA",
          "winogrande": "WinoGrande", "mmlu": "MMLU", "truthfulqa_mc2": "TruthfulQA MC2"}


@dataclass
class MCOptions:
    format: str = "arc"  # which dataset reader and prompt: one of FORMATS
    hub_config: str | None = None  # hub dataset config name (e.g. ARC-Easy, winogrande_xl, all)
    metrics: list[str] = field(default_factory=lambda: ["acc", "acc_norm"])  # reported, as lm-eval reports them
    target_delimiter: str = " "  # put between context and continuation, as lm-eval's default


def hellaswag_preprocess(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def mmlu_subject_name(subject: str) -> str:
    return subject.replace("_", " ")


class MultipleChoiceTask(Task):
    Options = MCOptions
    kind: ClassVar[str] = "loglik"
    content_fields = ("query",)

    def __init__(self, cfg, data, path=None):
        super().__init__(cfg, data, path)
        if self.options.format not in FORMATS:
            raise HarnessError(f"{path or cfg.task}: options.format: {self.options.format!r} is not one of "
                               f"{', '.join(FORMATS)}")

    def leaderboard_columns(self) -> list[Column]:
        metric = "acc_norm" if "acc_norm" in self.options.metrics else "acc"
        if metric not in self.options.metrics:
            return []
        label = LABELS.get(self.name, self.name)
        if self.options.format != "truthfulqa_mc2":
            label = f"{label} {metric}"
        return [Column(label, metric, metric, role="general", family="knowledge & commonsense", task=self.name)]

    # -- documents --------------------------------------------------------------------------------
    def load_docs(self, subset: str) -> list[dict]:
        return [dict(d, subset=subset) for d in self._docs()]

    def _docs(self) -> tuple[dict, ...]:
        return self.memo("all", self._read_docs)

    def _read_docs(self) -> tuple[dict, ...]:
        docs = getattr(self, f"_read_{self.options.format}")()
        if not docs:
            raise HarnessError(f"task {self.name}: the dataset has no documents")
        return tuple(docs)

    def _local(self) -> Path | None:
        ds = self.cfg.dataset
        return self.data.local(ds.local) if ds.local and self.data.root is not None else None

    def _hub(self, **kw):
        ds = self.cfg.dataset
        if not self.data.allow_hub or not ds.hub:
            where = (self.data.root / ds.local) if self.data.root and ds.local else ds.local
            raise HarnessError(f"task {self.name}: local copy {where} not found and no hub access; "
                               "set --data-dir to a folder that has it")
        cfg = self.options.hub_config
        return load_hub_dataset(ds.hub, f"task {self.name}", **({"name": cfg} if cfg else {}), split=ds.split, **kw)

    def _jsonl(self, path: Path) -> list[dict]:
        try:
            return [json.loads(line) for line in read_lines(path) if line.strip()]
        except json.JSONDecodeError as e:
            raise HarnessError(f"{path}: invalid JSON line ({e.msg})") from None

    def _read_arc(self) -> list[dict]:
        root = self._local()
        out = []
        if root is not None:
            files = sorted(root.glob(f"*-{self.cfg.dataset.split.capitalize()}.jsonl"))
            if not files:
                raise HarnessError(f"{root}: no *-{self.cfg.dataset.split.capitalize()}.jsonl (ARC jsonl) file")
            for r in self._jsonl(files[0]):
                q = r["question"]
                out.append({"id": r["id"], "question": q["stem"], "texts": [c["text"] for c in q["choices"]],
                            "labels": [c["label"] for c in q["choices"]], "answerKey": r["answerKey"]})
        else:
            for r in self._hub():
                out.append({"id": r["id"], "question": r["question"], "texts": list(r["choices"]["text"]),
                            "labels": list(r["choices"]["label"]), "answerKey": r["answerKey"]})
        return [{"id": d["id"], "query": f"Question: {d['question']}\nAnswer:", "choices": d["texts"],
                 "gold": d["labels"].index(d["answerKey"])} for d in out]

    def _read_hellaswag(self) -> list[dict]:
        root = self._local()
        if root is not None:
            import datasets

            rows = datasets.load_from_disk(str(root))
        else:
            rows = self._hub()
        out = []
        for i, r in enumerate(rows):
            ctx = r["ctx_a"] + " " + r["ctx_b"].capitalize()
            out.append({"id": f"hellaswag-{i}", "query": hellaswag_preprocess(r["activity_label"] + ": " + ctx),
                        "choices": [hellaswag_preprocess(e) for e in r["endings"]], "gold": int(r["label"])})
        return out

    def _read_piqa(self) -> list[dict]:
        root = self._local()
        if root is not None:
            rows = self._jsonl(root / "valid.jsonl")
            labels = [int(x) for x in read_lines(root / "valid-labels.lst")]
            if len(labels) != len(rows):
                raise HarnessError(f"{root}: valid.jsonl has {len(rows)} rows but valid-labels.lst {len(labels)}")
        else:
            rows = list(self._hub())
            labels = [int(r["label"]) for r in rows]
        return [{"id": f"piqa-{i}", "query": f"Question: {r['goal']}\nAnswer:", "choices": [r["sol1"], r["sol2"]],
                 "gold": lab} for i, (r, lab) in enumerate(zip(rows, labels))]

    def _read_winogrande(self) -> list[dict]:
        root = self._local()
        rows = self._jsonl(root / "dev.jsonl") if root is not None else list(self._hub())
        out = []
        for i, r in enumerate(rows):
            cut = r["sentence"].index("_")
            contexts = [r["sentence"][:cut] + opt for opt in (r["option1"], r["option2"])]
            out.append({"id": r.get("qID") or f"winogrande-{i}", "query": contexts[0], "contexts": contexts,
                        "choices": contexts, "continuation": r["sentence"][cut + 1:].strip(),
                        "gold": {"1": 0, "2": 1}[str(r["answer"])]})
        return out

    def _read_mmlu(self) -> list[dict]:
        root = self._local()
        by_subject: dict[str, list[dict]] = {}
        if root is not None:
            split = self.cfg.dataset.split
            files = sorted((root / split).glob(f"*_{split}.csv"))
            if not files:
                raise HarnessError(f"{root / split}: no *_{split}.csv files (MMLU csv layout)")
            for f in files:
                subject = f.name[: -len(f"_{split}.csv")]
                with f.open(encoding="utf-8", newline="") as fh:
                    for row in csv.reader(fh):
                        by_subject.setdefault(subject, []).append(
                            {"question": row[0], "options": row[1:5], "gold": "ABCD".index(row[5].strip())})
        else:
            for r in self._hub():
                by_subject.setdefault(r["subject"], []).append(
                    {"question": r["question"], "options": list(r["choices"]), "gold": int(r["answer"])})
        out = []
        # round-robin over subjects, so that a --limit covers every subject evenly (the full set is the same)
        for i in range(max(len(v) for v in by_subject.values())):
            for subject in sorted(by_subject):
                if i < len(by_subject[subject]):
                    d = by_subject[subject][i]
                    o = d["options"]
                    query = (f"The following are multiple choice questions (with answers) about "
                             f"{mmlu_subject_name(subject)}.\n\n{d['question'].strip()}\nA. {o[0]}\nB. {o[1]}\n"
                             f"C. {o[2]}\nD. {o[3]}\nAnswer:")
                    out.append({"id": f"{subject}-{i}", "subject": subject, "query": query,
                                "choices": ["A", "B", "C", "D"], "gold": d["gold"]})
        return out

    def _read_truthfulqa_mc2(self) -> list[dict]:
        root = self._local()
        out = []
        if root is not None:
            rows = json.loads((root / "data" / "mc_task.json").read_text(encoding="utf-8"))
            items = [(r["question"], list(r["mc2_targets"]), list(r["mc2_targets"].values())) for r in rows]
        else:
            items = [(r["question"], list(r["mc2_targets"]["choices"]), list(r["mc2_targets"]["labels"]))
                     for r in self._hub()]
        for i, (q, choices, labels) in enumerate(items):
            out.append({"id": f"truthfulqa-{i}", "query": f"{TRUTHFULQA_PROMPT}\n\nQ: {q}\nA:", "choices": choices,
                        "labels": [int(x) for x in labels], "gold": 0})
        return out

    # -- requests and scoring ---------------------------------------------------------------------
    def requests(self, doc: dict) -> list[tuple[str, str]]:
        delim = self.options.target_delimiter
        if "contexts" in doc:  # WinoGrande: the choices are contexts, the continuation is shared
            return [(c, f"{delim}{doc['continuation']}") for c in doc["contexts"]]
        return [(doc["query"], f"{delim}{c}") for c in doc["choices"]]

    def messages(self, doc: dict, history: list[str]) -> list[dict]:  # for `harness validate`
        return [{"role": "user", "content": "\n".join(c + k for c, k in self.requests(doc))}]

    def score(self, doc: dict, loglik: list) -> dict:
        lls = [float(x[0]) for x in loglik]
        pred = _argmax(lls)
        out: dict = {"gold": doc["gold"], "pred": pred}
        if self.options.format == "truthfulqa_mc2":
            probs = [math.exp(x) for x in lls]
            total = sum(probs)
            out["acc"] = sum(p for p, lab in zip(probs, doc["labels"]) if lab == 1) / total if total else 0.0
            return out
        lengths = [float(len(c)) for c in doc["choices"]]
        pred_norm = _argmax([x / n for x, n in zip(lls, lengths)])
        out.update(pred_norm=pred_norm, acc=float(pred == doc["gold"]), acc_norm=float(pred_norm == doc["gold"]))
        return {k: v for k, v in out.items() if k not in ("acc", "acc_norm") or k in self.options.metrics}

    def aggregate(self, subset: str, records: list[dict]) -> dict:
        out = {m: sum(r[m] for r in records) / len(records) for m in self.options.metrics}
        out["n"] = len(records)
        return out

    def metadata(self) -> dict:
        return {"scoring": "log-likelihood (lm-eval 0.4 prompts and metrics)", "format": self.options.format}


def _argmax(values: list[float]) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


TASK_CLASS = MultipleChoiceTask
