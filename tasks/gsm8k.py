"""GSM8K task hook (English): `gsm8k/test.jsonl` (hub openai/gsm8k, config main); gold = the number after '####'.

Prompts and scoring are MGSM's (tasks/math_reasoning.py); the 8 English MGSM exemplars are the
chain-of-thought exemplars of Wei et al. (2022) commonly used for GSM8K.
"""

from __future__ import annotations

import json
from harness.columns import Column
from harness.data import load_hub_dataset, read_lines
from harness.errors import HarnessError
from tasks.math_reasoning import MathTask


def gold_answer(solution: str) -> str:
    if "####" not in solution:
        raise ValueError("no '####' line")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


class GSM8KTask(MathTask):
    leaderboard = (Column("GSM8K acc", "exact_match_flexible", "correct.flexible", role="general", none=0.0,
                          family="math"),)

    def _load(self, lang: str) -> list[tuple[str, str]]:
        return self.memo(("_load", lang), lambda: self._read(lang))

    def _read(self, lang: str) -> list[tuple[str, str]]:
        ds = self.cfg.dataset
        if self.data.root is not None and ds.local:
            path = self.data.require_local("task gsm8k", ds.local, f"{ds.split}.jsonl")
            try:
                rows = [json.loads(line) for line in read_lines(path) if line.strip()]
            except json.JSONDecodeError as e:
                raise HarnessError(f"{path}: invalid JSON line ({e.msg}); expected GSM8K jsonl") from None
        else:
            rows = load_hub_dataset(ds.hub, "task gsm8k", name="main", split=ds.split)
        out = []
        for i, r in enumerate(rows):
            try:
                out.append((r["question"], gold_answer(r["answer"])))
            except (KeyError, ValueError, TypeError) as e:
                raise HarnessError(f"task gsm8k: row {i} lacks question/answer with '#### N' ({e})") from None
        return out


TASK_CLASS = GSM8KTask
