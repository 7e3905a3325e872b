"""IFEval (instruction following verified by rules) scored with lm-eval's own instruction checkers.

Reference implementation: lm-eval 0.4.13 `lm_eval/tasks/ifeval` (itself Google Research's
instruction_following_eval). We import its `instructions_registry` and run every checker of a prompt
on the model's raw output, exactly as lm-eval's `utils.process_results` does:

* strict: instruction i is followed when the response is non-blank and `check_following(response)`;
* loose: followed when any of 8 variants passes (the response; with its first line, last line, or both
  removed; each of those with every `*` deleted);
* kwargs of an instruction are passed without their falsy values; instructions whose arguments take the
  prompt get `build_description(prompt=...)`, as lm-eval does.

Metrics (as lm-eval's aggregation): prompt_level_{strict,loose}_acc = mean over prompts of "all
instructions followed"; inst_level_{strict,loose}_acc = mean over all instructions of all prompts.
tests/test_ifeval.py checks per-sample and aggregate values against `utils.process_results` +
`utils.agg_inst_level_acc` called directly. The output is scored unstripped (lm-eval scores the raw
continuation). The checkers need nltk's `punkt_tab`: NLTK_DATA defaults to `<data dir>/general/ifeval/nltk_data`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from harness.columns import Column
from harness.data import load_hub_dataset
from harness.errors import HarnessError
from harness.io import read_jsonl
from harness.task import Task

RANDOM_NOTE = ("two IFEval prompts (keys 1122, 1129) ask for a count of a non-letter ('#', '!') in "
               "keywords:letter_frequency; lm-eval's checker then draws a random letter and count from the global "
               "`random` state, so lm-eval's score for them varies with the run. We seed `random` with "
               "seed_for(key) before building a prompt's checkers (deterministic; equal to lm-eval when its random "
               "state is the same, which tests/test_ifeval.py checks).")


LANGDETECT_SEED = 0
LANGDETECT_NOTE = ("the language checks (change_case:english_capital/english_lowercase, language:response_language) "
                   "call langdetect, which samples at random and is unseeded in lm-eval, so lm-eval's verdict on "
                   "borderline texts varies between runs; we set langdetect.DetectorFactory.seed = 0 (langdetect's "
                   "documented way to get deterministic results) for the whole process.")


def seed_for(key) -> str:
    return f"ifeval:{key}"


# lm-eval utils.test_instruction_following_loose: the response variants tried by the loose metric
def loose_variants(response: str) -> list[str]:
    lines = response.split("\n")
    first, last, both = ("\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(),
                         "\n".join(lines[1:-1]).strip())
    plain = [response, first, last, both]
    return [response, response.replace("*", ""), first, last, both,
            *(v.replace("*", "") for v in plain[1:])]


@dataclass
class IFEvalOptions:
    input_file: str = "input_data.jsonl"  # under dataset.local (google's input_data.jsonl)
    nltk_data: str = "nltk_data"  # under dataset.local; used as NLTK_DATA when that is unset


def use_nltk_data(path: Path | None) -> None:
    """Point nltk at `path` (when NLTK_DATA is unset) before lm-eval's checkers import nltk."""
    if path is None or os.environ.get("NLTK_DATA"):
        return
    os.environ["NLTK_DATA"] = str(path)
    import nltk

    if str(path) not in nltk.data.path:
        nltk.data.path.insert(0, str(path))


class IFEvalTask(Task):
    Options = IFEvalOptions
    content_fields = ("prompt",)
    leaderboard = (Column("IFEval prompt strict", "prompt_level_strict_acc", "ifeval.prompt_level_strict",
                          role="general", family="instruction following"),)

    def __init__(self, cfg, data, path=None):
        super().__init__(cfg, data, path)
        local = cfg.dataset.local
        use_nltk_data(data.local(local, self.options.nltk_data) if local else None)

    # -- data ---------------------------------------------------------------------------------
    @cached_property
    def rows(self) -> list[dict]:
        local = self.cfg.dataset.local
        path = self.data.local(local, self.options.input_file) if local else None
        if path is not None:
            rows = read_jsonl(path)
        elif self.cfg.dataset.hub and self.data.allow_hub:
            rows = [dict(r) for r in load_hub_dataset(self.cfg.dataset.hub, f"task {self.name}",
                                                      split=self.cfg.dataset.split)]
        else:
            raise HarnessError(f"task {self.name}: no local {local}/{self.options.input_file} and no hub access; "
                               f"set --data-dir to a folder with it")
        for i, r in enumerate(rows):
            missing = [k for k in ("key", "prompt", "instruction_id_list", "kwargs") if k not in r]
            if missing:
                raise HarnessError(f"task {self.name}: row {i + 1} lacks field {missing[0]!r}")
            if len(r["kwargs"]) != len(r["instruction_id_list"]):
                raise HarnessError(f"task {self.name}: row {i + 1} (key {r['key']}): kwargs and "
                                   f"instruction_id_list differ in length")
        return rows

    def load_docs(self, subset: str) -> list[dict]:
        return [{"id": f"{subset}/{r['key']}", "subset": subset, "key": r["key"], "prompt": r["prompt"],
                 "instruction_id_list": list(r["instruction_id_list"]), "kwargs": list(r["kwargs"])}
                for r in self.rows]

    def preflight(self) -> None:
        self.registry()
        import nltk

        try:
            nltk.data.find("tokenizers/punkt_tab")
        except LookupError:
            raise HarnessError(f"task {self.name}: nltk's punkt_tab not found (NLTK_DATA="
                               f"{os.environ.get('NLTK_DATA')}); put it under <data dir>/{self.cfg.dataset.local}/"
                               f"{self.options.nltk_data} or run `python -m nltk.downloader punkt_tab`") from None
        unknown = sorted({i for r in self.rows for i in r["instruction_id_list"]} - set(self.registry()))
        if unknown:
            raise HarnessError(f"task {self.name}: instruction {unknown[0]!r} is not in lm-eval's registry")

    @staticmethod
    def registry() -> dict:
        try:
            from langdetect import DetectorFactory
            from lm_eval.tasks.ifeval import instructions_registry
        except ImportError as e:
            raise HarnessError(f"ifeval needs lm-eval with nltk, langdetect and immutabledict installed ({e}); "
                               f"pip install 'lm-eval>=0.4.12' langdetect immutabledict nltk") from None
        DetectorFactory.seed = LANGDETECT_SEED  # see LANGDETECT_NOTE
        return instructions_registry.INSTRUCTION_DICT

    # -- scoring ------------------------------------------------------------------------------
    def clean(self, doc: dict, text: str) -> tuple[str, list[str]]:
        return text, []  # lm-eval scores the raw continuation

    def _checker(self, doc: dict, index: int):
        inst_id = doc["instruction_id_list"][index]
        checker = self.registry()[inst_id](inst_id)
        checker.build_description(**{k: v for k, v in (doc["kwargs"][index] or {}).items() if v})
        args = checker.get_instruction_args()
        if args and "prompt" in args:
            checker.build_description(prompt=doc["prompt"])
        return checker

    def score(self, doc: dict, outputs: list[str]) -> dict:
        response = outputs[0]
        variants = [v for v in loose_variants(response) if v.strip()]
        n = len(doc["instruction_id_list"])
        state = random.getstate()
        random.seed(seed_for(doc["key"]))  # see RANDOM_NOTE; the caller's random state is restored below
        try:  # build order as lm-eval: every checker for the strict pass, then every checker for the loose pass
            strict_checkers = [self._checker(doc, i) for i in range(n)]
            loose_checkers = [self._checker(doc, i) for i in range(n)]
        finally:
            random.setstate(state)
        strict = [bool(response.strip()) and bool(c.check_following(response)) for c in strict_checkers]
        loose = [any(c.check_following(v) for v in variants) for c in loose_checkers]
        return {"instruction_id_list": doc["instruction_id_list"],
                "ifeval": {"prompt_level_strict": all(strict), "prompt_level_loose": all(loose),
                           "inst_level_strict": strict, "inst_level_loose": loose}}

    def aggregate(self, subset: str, records: list[dict]) -> dict:
        out: dict = {"n": len(records)}
        for level in ("strict", "loose"):
            out[f"prompt_level_{level}_acc"] = _mean([r["ifeval"][f"prompt_level_{level}"] for r in records])
            out[f"inst_level_{level}_acc"] = _mean([x for r in records for x in r["ifeval"][f"inst_level_{level}"]])
        out["n_instructions"] = sum(len(r["ifeval"]["inst_level_strict"]) for r in records)
        by_type: dict[str, list[bool]] = {}
        for r in records:
            for inst, ok in zip(r["instruction_id_list"], r["ifeval"]["inst_level_strict"]):
                by_type.setdefault(inst.split(":")[0], []).append(ok)
        out["inst_strict_by_group"] = {k: _mean(v) for k, v in sorted(by_type.items())}
        out["mean_new_tokens"] = _mean([n for r in records for n in r["n_new_tokens"]])
        return out

    def metadata(self) -> dict:
        import importlib.metadata as md

        return {"reference": f"lm-eval {md.version('lm_eval')} lm_eval.tasks.ifeval (instructions_registry)",
                "nltk_data": os.environ.get("NLTK_DATA"),
                "lm_eval_max_gen_toks": 1280, "random_checkers": RANDOM_NOTE,
                "langdetect": LANGDETECT_NOTE}


def _mean(vals: list) -> float | None:
    return sum(vals) / len(vals) if vals else None


TASK_CLASS = IFEvalTask
