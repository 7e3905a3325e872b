"""Run lm-eval 0.4 itself on the same items as our multiple-choice tasks (the equality tests' reference).

For each task, a YAML written to a temporary folder `include`s lm-eval's own task YAML (prompt,
choices, metrics, `!function` hooks) and only swaps the dataset for a local file in the layout of the
hub dataset lm-eval normally loads. The local files are converted here straight from the raw files of
the data directory (independently of tasks/multiple_choice.py's readers).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lm_eval

LMEVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def hub_layout_rows(task: str, data: Path, n: int) -> tuple[list[dict] | str, str]:
    """Rows in the hub dataset's layout (or an arrow file path) and the split lm-eval reads."""
    g = data / "general"
    if task in ("arc_easy", "arc_challenge"):
        name = "ARC-Easy" if task == "arc_easy" else "ARC-Challenge"
        lines = (g / "arc" / name / f"{name}-Test.jsonl").read_text().splitlines()[:n]
        rows = []
        for line in lines:
            r = json.loads(line)
            ch = r["question"]["choices"]
            rows.append({"id": r["id"], "question": r["question"]["stem"], "answerKey": r["answerKey"],
                         "choices": {"text": [c["text"] for c in ch], "label": [c["label"] for c in ch]}})
        return rows, "test"
    if task == "hellaswag":
        return str(g / "hellaswag/hf_arrow/hellaswag/none/validation/data-00000-of-00001.arrow"), "validation"
    if task == "piqa":
        goals = [json.loads(x) for x in (g / "piqa/valid.jsonl").read_text().splitlines()[:n]]
        labels = (g / "piqa/valid-labels.lst").read_text().split()[:n]
        return [dict(r, label=int(lab)) for r, lab in zip(goals, labels)], "validation"
    if task == "winogrande":
        lines = (g / "winogrande/winogrande_1.1/dev.jsonl").read_text().splitlines()[:n]
        return [json.loads(x) for x in lines], "validation"
    if task.startswith("mmlu_"):
        subject = task[len("mmlu_"):]
        with open(g / "mmlu/data/mmlu/test" / f"{subject}_test.csv", newline="", encoding="utf-8") as f:
            rows = [{"question": r[0], "subject": subject, "choices": r[1:5], "answer": "ABCD".index(r[5])}
                    for r in list(csv.reader(f))[:n]]
        return rows, "test"
    if task == "truthfulqa_mc2":
        items = json.loads((g / "truthfulqa/013686a/data/mc_task.json").read_text())[:n]
        return [{"question": r["question"],
                 "mc1_targets": {"choices": list(r["mc1_targets"]), "labels": list(r["mc1_targets"].values())},
                 "mc2_targets": {"choices": list(r["mc2_targets"]), "labels": list(r["mc2_targets"].values())}}
                for r in items], "validation"
    raise ValueError(task)


LMEVAL_YAML = {
    "arc_easy": "arc/arc_easy.yaml", "arc_challenge": "arc/arc_challenge.yaml", "hellaswag": "hellaswag/hellaswag.yaml",
    "piqa": "piqa/piqa.yaml", "winogrande": "winogrande/default.yaml",
    "truthfulqa_mc2": "truthfulqa/truthfulqa_mc2.yaml",
}


def write_task_yaml(task: str, data: Path, n: int, folder: Path) -> str:
    rows, split = hub_layout_rows(task, data, n)
    include = LMEVAL_TASKS / (f"mmlu/default/{task}.yaml" if task.startswith("mmlu_") else LMEVAL_YAML[task])
    if isinstance(rows, str):
        fmt, path = "arrow", rows
    else:
        fmt, path = "json", _jsonl(folder / f"{task}.jsonl", rows)
    name = f"localmc_{task}"
    cfg = {"include": str(include), "task": name, "dataset_path": fmt, "dataset_name": None,
           "dataset_kwargs": {"data_files": {split: path}}, "training_split": None, "fewshot_split": None,
           "validation_split": split if split == "validation" else None,
           "test_split": split if split == "test" else None,
           "tag": [], "num_fewshot": 0}
    (folder / f"{name}.yaml").write_text(json.dumps(cfg), encoding="utf-8")  # JSON is valid YAML
    return name


def run_lmeval(model, tok, tasks: list[str], data: Path, n: int, folder: Path, batch_size: int = 4) -> dict:
    """{task: [sample dict per doc, in doc order]} from lm-eval's simple_evaluate with log_samples."""
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    names = {t: write_task_yaml(t, data, n, folder) for t in tasks}
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
    res = simple_evaluate(model=lm, tasks=list(names.values()), task_manager=TaskManager(include_path=str(folder)),
                          limit=n, log_samples=True, bootstrap_iters=0)
    return {t: sorted(res["samples"][name], key=lambda s: s["doc_id"]) for t, name in names.items()}
