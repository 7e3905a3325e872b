"""MGSM task hook: 250 grade-school math problems in 11 languages (`mgsm/mgsm_<lang>.tsv`, hub juletxara/mgsm)."""

from __future__ import annotations

from harness.columns import Column
from harness.data import load_hub_dataset, read_lines
from harness.errors import HarnessError
from tasks.math_reasoning import MathTask


class MGSMTask(MathTask):
    leaderboard = (Column("MGSM acc", "exact_match_flexible", "correct.flexible", role="general", none=0.0,
                          family="math"),)

    def _load(self, lang: str) -> list[tuple[str, str]]:
        return self.memo(("_load", lang), lambda: self._read(lang))

    def _read(self, lang: str) -> list[tuple[str, str]]:
        ds = self.cfg.dataset
        if self.data.root is not None and ds.local:
            path = self.data.require_local(f"task mgsm ({lang})", ds.local, f"mgsm_{lang}.tsv")
            rows = []
            for n, line in enumerate(read_lines(path), 1):
                question, tab, answer = line.rpartition("\t")
                if not tab or not question.strip() or not answer.strip():
                    raise HarnessError(f"{path}:{n}: expected 'question<TAB>answer'")
                rows.append((question, answer.strip()))
            return rows
        rows = load_hub_dataset(ds.hub, f"task mgsm ({lang})", name=lang, split=ds.split)
        return [(r["question"], _number_text(r["answer_number"])) for r in rows]


def _number_text(x) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


TASK_CLASS = MGSMTask
