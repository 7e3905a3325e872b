"""AlpacaEval instructions: answers, answer length, judge-free drift, and a pairwise win rate with a judge.

Data: the 805 AlpacaEval instructions and the AlpacaEval 2.0 baseline outputs (`gpt4_1106_preview`,
tatsu-lab/alpaca_eval `results/gpt4_1106_preview/model_outputs.json`), both matched by instruction text.

Win rate (with `--judge hf|openai`). AlpacaEval 2.0's default annotator (`weighted_alpaca_eval_gpt4_turbo`,
prompt `alpaca_eval_clf.txt`) shows the judge the instruction and two outputs identified as `m` and `M` and
asks for the identifier of the better one. We use that comparison format with our own wording (JUDGE_SYSTEM,
JUDGE_USER below). Each instruction is judged twice, the evaluated model's answer as `m` then as `M` (AlpacaEval
randomises the order instead; both orders cancel position bias exactly). Per order the preference for the
evaluated model is 1 (its identifier chosen) or 0; with k > 1 judgments per order, the mean of the parsed ones.
An instruction's win is the mean over the orders with a parsed verdict; an instruction with no parsed verdict
is unjudged (counted, never scored). win_rate = mean win over judged instructions (0..1; AlpacaEval prints
×100). Not length-controlled, and the judge is whatever you configure: the numbers are comparable between runs
with the same judge id and prompt hash (both recorded), not with the public AlpacaEval leaderboard.

Drift: as MT-Bench (harness/metrics/drift.py), from `<out>/alpaca_eval/drift.json` written by `harness run`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from functools import cached_property

from harness.columns import Column
from harness.data import load_hub_dataset
from harness.errors import HarnessError
from harness.io import sha256_text
from harness.judges.base import judge_of
from harness.task import Task

JUDGE_SYSTEM = ("You compare two AI assistants' responses to the same instruction and pick the one a careful "
                "human reader would prefer.")
JUDGE_USER = ("Below are an instruction and two responses to it, identified as m and M.\n\n"
              "## Instruction\n{instruction}\n\n## Response m\n{output_m}\n\n## Response M\n{output_M}\n\n"
              "## Task\nDecide which response follows the instruction better and is more accurate, helpful and "
              "relevant. The order in which they are listed says nothing about their quality, and a longer "
              "response is not better for being longer. Reply with one character: m or M.")
ORDERS = ("model_first", "baseline_first")  # model's answer as m / as M
_VERDICT = re.compile(r"^[\s\"'`*(\[]*(?:(?:response|output|model)\s*)?([mM])(?![A-Za-z0-9])", re.IGNORECASE)


def parse_identifier(text: str) -> str | None:
    """'m' or 'M' when the reply starts with that identifier (optionally after quotes/'Response'), else None."""
    match = _VERDICT.match(text or "")
    return match.group(1) if match else None


@dataclass
class AlpacaEvalOptions:
    instructions: str = "cs336/data/alpaca_eval/alpaca_eval.jsonl"  # under dataset.local; JSONL or JSON array
    baseline: str = "results/gpt4_1106_preview/model_outputs.json"  # under dataset.local
    baseline_name: str = "gpt4_1106_preview"
    hub_baseline_config: str = "alpaca_eval_gpt4_baseline"  # hub config of the baseline when not local
    judge_max_new_tokens: int = 16  # caps --judge-max-tokens: the judge answers one character

    def validate(self, where: str) -> None:
        if self.judge_max_new_tokens < 1:
            raise HarnessError(f"{where}.judge_max_new_tokens: must be >= 1")


class AlpacaEvalTask(Task):
    Options = AlpacaEvalOptions
    content_fields = ("instruction",)
    uses_judge = True
    drift_capable = True
    leaderboard = (
        Column("AlpacaEval win rate", "win_rate", "judgment.win", role="general", family="instruction following",
               when="judged"),
        # judge-free drift (nats/token): shown with intervals, not in the composite (it measures change, not loss).
        # KL to the base (>= 0, lower = less change) is the drift column; the signed NLL drift beside it has no
        # better/worse direction (negative = sharper on the base's own greedy answers, not less forgetting)
        Column("AlpacaEval KL to base", "drift_kl", "kl", direction="lower", kind="drift", when="drift computed"),
        Column("AlpacaEval signed drift", "drift_nll", "nll", direction="none", kind="drift", when="drift computed"),
    )

    # -- data ---------------------------------------------------------------------------------
    def _records(self, rel: str, hub_config: str) -> list[dict]:
        local = self.cfg.dataset.local
        path = self.data.local(local, rel) if local else None
        if path is not None:
            text = path.read_text(encoding="utf-8")
            try:
                if text.lstrip().startswith("["):
                    return json.loads(text)
                return [json.loads(line) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError as e:
                raise HarnessError(f"{path}: not valid JSON/JSONL ({e.msg} at line {e.lineno})") from None
        if self.cfg.dataset.hub and self.data.allow_hub:
            return [dict(r) for r in load_hub_dataset(self.cfg.dataset.hub, f"task {self.name}", name=hub_config,
                                                      split=self.cfg.dataset.split)]
        raise HarnessError(f"task {self.name}: no local {local}/{rel} and no hub access; set --data-dir")

    @cached_property
    def rows(self) -> list[dict]:
        rows = self._records(self.options.instructions, "alpaca_eval")
        for i, r in enumerate(rows):
            if not isinstance(r, dict) or not isinstance(r.get("instruction"), str):
                raise HarnessError(f"{self.options.instructions}: record {i + 1} has no 'instruction' text")
        return rows

    @cached_property
    def baseline(self) -> dict[str, str]:
        out = {}
        for i, r in enumerate(self._records(self.options.baseline, self.options.hub_baseline_config)):
            if (not isinstance(r, dict) or not isinstance(r.get("instruction"), str)
                    or not isinstance(r.get("output"), str)):
                raise HarnessError(f"{self.options.baseline}: record {i + 1} needs 'instruction' and 'output' texts")
            out[r["instruction"]] = r["output"]
        return out

    def preflight(self) -> None:
        missing = [r["instruction"] for r in self.rows if r["instruction"] not in self.baseline]
        if missing:
            raise HarnessError(f"{self.options.baseline}: no baseline output for {len(missing)} instruction(s), "
                               f"e.g. {missing[0][:60]!r}")

    def load_docs(self, subset: str) -> list[dict]:
        return [{"id": f"{subset}/{i}", "subset": subset, "instruction": r["instruction"],
                 "dataset": r.get("dataset", "")} for i, r in enumerate(self.rows)]

    def score(self, doc: dict, outputs: list[str]) -> dict:
        return {"instruction": doc["instruction"], "dataset": doc["dataset"], "n_chars": len(outputs[0]),
                "n_words": len(outputs[0].split())}

    # -- judging ------------------------------------------------------------------------------
    def judge_messages(self, rec: dict, order: str) -> list[dict]:
        base = self.baseline.get(rec["instruction"])
        if base is None:
            raise HarnessError(f"task {self.name}: sample {rec['id']} has no baseline output")
        model = rec["outputs"][0]
        m, big_m = (model, base) if order == "model_first" else (base, model)
        return [{"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": JUDGE_USER.format(instruction=rec["instruction"], output_m=m,
                                                              output_M=big_m)}]

    def judge_records(self, records: list[dict], judge, spec, cache) -> None:
        """Judge every record in both orders (k times each, cached) and set rec['judgment'] in place."""
        from harness.judges import JudgeItem, judge_id, prompt_hash, run_judgments

        settings = spec.settings()
        settings = dataclasses.replace(settings, max_new_tokens=min(settings.max_new_tokens,
                                                                    self.options.judge_max_new_tokens))
        items, hashes = [], {}
        for rec in records:
            for order in ORDERS:
                msgs = self.judge_messages(rec, order)
                items.append(JudgeItem(f"{rec['id']}#{order}", msgs))
                hashes[f"{rec['id']}#{order}"] = prompt_hash(msgs)
        own = getattr(judge, "settings", None)  # the judges decode with their own settings: cap them for this task
        if own is not None:
            judge.settings = settings
        try:
            verdicts = run_judgments(judge, settings, items, cache, parse_identifier, desc=f"{self.name} judge")
        finally:
            if own is not None:
                judge.settings = own
        jid = judge_id(judge)
        for rec in records:
            orders = {}
            for order in ORDERS:
                js = verdicts[f"{rec['id']}#{order}"]
                model_id = "m" if order == "model_first" else "M"
                prefs = [float(j["verdict"] == model_id) for j in js if j["verdict"] is not None]
                orders[order] = {"verdicts": [j["verdict"] for j in js], "preference": _mean(prefs),
                                 "parse_failures": sum(j["verdict"] is None for j in js),
                                 "prompt_hash": hashes[f"{rec['id']}#{order}"]}
            wins = [o["preference"] for o in orders.values() if o["preference"] is not None]
            rec["judgment"] = {"judge": jid, "k": spec.k, "baseline": self.options.baseline_name,
                               "max_new_tokens": settings.max_new_tokens, "orders": orders, "win": _mean(wins)}

    # -- metrics ------------------------------------------------------------------------------
    def aggregate(self, subset: str, records: list[dict]) -> dict:
        base_chars = [len(self.baseline.get(r["instruction"], "")) for r in records]
        out: dict = {"n": len(records), "mean_new_tokens": _mean([n for r in records for n in r["n_new_tokens"]]),
                     "mean_chars": _mean([r["n_chars"] for r in records]),
                     "mean_words": _mean([r["n_words"] for r in records]),
                     "baseline_mean_chars": _mean(base_chars)}
        judge, judged = judge_of(records)
        if judged:
            out.update(self._win_metrics(judged))
        out["judge"] = judge
        from harness.judges.phase import drift_metrics

        out.update(drift_metrics(self.context.out_dir, self.name, records))
        return out

    def _win_metrics(self, records: list[dict]) -> dict:
        wins = [r["judgment"]["win"] for r in records if r["judgment"]["win"] is not None]
        by_order = {o: [r["judgment"]["orders"][o]["preference"] for r in records
                        if r["judgment"]["orders"][o]["preference"] is not None] for o in ORDERS}
        both = [r for r in records if all(r["judgment"]["orders"][o]["preference"] is not None for o in ORDERS)]
        failures = sum(r["judgment"]["orders"][o]["parse_failures"] for r in records for o in ORDERS)
        n_judgments = sum(len(r["judgment"]["orders"][o]["verdicts"]) for r in records for o in ORDERS)
        hashes = sorted(r["judgment"]["orders"][o]["prompt_hash"] for r in records for o in ORDERS)
        return {
            "win_rate": _mean(wins),
            "win_rate_model_first": _mean(by_order["model_first"]),
            "win_rate_baseline_first": _mean(by_order["baseline_first"]),
            # share of doubly judged instructions where the judge preferred the same answer in both orders
            "position_consistency": _mean([float(r["judgment"]["orders"]["model_first"]["preference"]
                                                 == r["judgment"]["orders"]["baseline_first"]["preference"])
                                           for r in both]),
            "n_judged": len(wins), "n_unjudged": len(records) - len(wins),
            "n_judgments": n_judgments, "parse_failures": failures,
            "parse_failure_rate": failures / n_judgments if n_judgments else 0.0,
            "judge_k": records[0]["judgment"]["k"], "baseline": records[0]["judgment"]["baseline"],
            "judge_prompts_hash": sha256_text("\n".join(hashes))[:16],  # every judge prompt sent (answers included)
        }

    def summarize(self, per_subset: dict[str, dict], records: dict[str, list[dict]]) -> dict:
        out = {}
        for key in ("win_rate", "n_unjudged", "parse_failures", "drift_nll", "drift_kl", "mean_new_tokens",
                    "mean_chars"):
            vals = [m[key] for m in per_subset.values() if isinstance(m.get(key), (int, float))]
            if vals and len(vals) == len(per_subset):
                out[key] = sum(vals) if key in ("n_unjudged", "parse_failures") else sum(vals) / len(vals)
        return out

    def metadata(self) -> dict:
        return {"protocol": "AlpacaEval 2.0 comparison format (instruction + outputs identified as m/M, the judge "
                            "names the better one), both orders, no length control; tasks/alpaca_eval.py",
                "judge_prompt_hash": sha256_text(JUDGE_SYSTEM + "\x1e" + JUDGE_USER)[:16],
                "baseline": self.options.baseline_name,
                "judge_settings": self.judge_settings}


def _mean(vals: list) -> float | None:
    return sum(vals) / len(vals) if vals else None


TASK_CLASS = AlpacaEvalTask
