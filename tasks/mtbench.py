"""MT-Bench (80 two-turn questions) with FastChat's single-answer grading, plus a judge-free drift metric.

Generation follows FastChat `gen_model_answer.py`: the model's chat template, two user turns (the
second sees the model's own first answer), per-category temperature (writing/roleplay 0.7,
stem/humanities 0.1, others 0 = greedy), max_new_tokens 1024. Sampled categories use the
request seed, so reruns are identical.

Judging follows FastChat `gen_judgment.py` (mode single): turn 1 with `single-v1` (or
`single-math-v1` plus the GPT-4 reference answer for math/reasoning/coding), turn 2 with the
`-multi-turn` variants; the rating is parsed with FastChat's `[[x]]` regex and `[x]` fallback.
A judgment without a rating is a parse failure: counted and reported, never 0. With k>1 the
median of the parsed ratings is the turn's score. The MT-Bench score is the mean over judged
(question, turn) pairs, as FastChat's `show_result.py`.

Judgments happen after generation (`harness run --judge ...`) or later on the saved answers
(`harness judge OUT --judge ...`); each sample record gets a `judgment` field, the judge's raw
texts are cached in `<out>/mtbench/judgments.jsonl`. Without a judge the answers are saved and
results say "not judged". Drift (judge-free, see harness/metrics/drift.py) is read from
`<out>/mtbench/drift.json` written by `harness run`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cached_property

from harness.columns import Column
from harness.errors import HarnessError
from harness.io import read_jsonl, sha256_text
from harness.judges.base import judge_of
from harness.task import render_template, Task
from harness.task_config import GenerationConfig

FASTCHAT_TEMPERATURES = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
                         "reasoning": 0.0, "stem": 0.1, "humanities": 0.1, "arena-hard-200": 0.0}


@dataclass
class MTBenchOptions:
    questions: str = "mt_bench/question.jsonl"
    judge_prompts: str = "mt_bench/judge_prompts.jsonl"
    reference_answers: str = "mt_bench/reference_answer/gpt-4.jsonl"
    temperatures: dict[str, float] = field(default_factory=lambda: dict(FASTCHAT_TEMPERATURES))
    need_ref_categories: list[str] = field(default_factory=lambda: ["math", "reasoning", "coding"])
    min_max_new_tokens: int = 1024  # FastChat's setting; a YAML with fewer tokens is refused


class MTBenchTask(Task):
    Options = MTBenchOptions
    content_fields = ("turn_1",)
    n_rounds = 2
    uses_judge = True
    drift_capable = True
    leaderboard = (
        Column("MT-Bench", "score", "judgment.turns[*].score", role="general", scale=9, family="instruction following",
               when="judged"),
        # judge-free drift (nats/token): shown with intervals, not in the composite (it measures change, not loss).
        # KL to the base (>= 0, lower = less change) is the drift column; the signed NLL drift beside it has no
        # better/worse direction (negative = sharper on the base's own greedy answers, not less forgetting)
        Column("MT-Bench KL to base", "drift_kl", "kl", direction="lower", kind="drift", when="drift computed"),
        Column("MT-Bench signed drift", "drift_nll", "nll", direction="none", kind="drift", when="drift computed"),
    )

    def __init__(self, cfg, data, path=None):
        super().__init__(cfg, data, path)
        if cfg.generation.max_new_tokens < self.options.min_max_new_tokens:
            raise HarnessError(f"{path or cfg.task}: generation.max_new_tokens {cfg.generation.max_new_tokens} is "
                               f"below options.min_max_new_tokens {self.options.min_max_new_tokens} "
                               f"(FastChat uses 1024)")

    # -- data ---------------------------------------------------------------------------------
    def _jsonl(self, rel: str) -> list[dict]:
        return read_jsonl(self.data.require_local(f"task {self.name}", rel))

    @cached_property
    def questions(self) -> list[dict]:
        return self._jsonl(self.options.questions)

    @cached_property
    def judge_prompts(self) -> dict[str, dict]:
        prompts = {p["name"]: p for p in self._jsonl(self.options.judge_prompts)}
        for name in ("single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"):
            if name not in prompts:
                raise HarnessError(f"{self.options.judge_prompts}: judge prompt {name!r} missing")
        return prompts

    @cached_property
    def references(self) -> dict[int, list[str]]:
        return {r["question_id"]: r["choices"][0]["turns"] for r in self._jsonl(self.options.reference_answers)}

    def load_docs(self, subset: str) -> list[dict]:
        out = []
        for q in self.questions:
            cat = q["category"]
            if cat not in self.options.temperatures:
                raise HarnessError(f"task {self.name}: category {cat!r} has no entry in options.temperatures")
            out.append({"id": f"{subset}/{q['question_id']}", "subset": subset, "question_id": q["question_id"],
                        "category": cat, "turns": q["turns"], "turn_1": q["turns"][0], "turn_2": q["turns"][1]})
        return out

    # -- generation ---------------------------------------------------------------------------
    def messages(self, doc: dict, history: list[str]) -> list[dict]:
        msgs = [{"role": "system", "content": self.cfg.prompt.system}] if self.cfg.prompt.system else []
        for i, answer in enumerate(history):
            msgs.append({"role": "user", "content": self._user(doc, i)})
            msgs.append({"role": "assistant", "content": answer})
        msgs.append({"role": "user", "content": self._user(doc, len(history))})
        return msgs

    def _user(self, doc: dict, turn: int) -> str:
        return render_template(self.cfg.prompt.template, {**doc, "turn": doc["turns"][turn]}, self.name)

    def generation(self, doc: dict, round_idx: int) -> GenerationConfig:
        return dataclasses.replace(self.cfg.generation, temperature=self.options.temperatures[doc["category"]])

    def score(self, doc: dict, outputs: list[str]) -> dict:
        return {"question_id": doc["question_id"], "category": doc["category"],
                "temperature": self.options.temperatures[doc["category"]]}

    # -- judging ------------------------------------------------------------------------------
    def judge_messages(self, rec: dict, turn: int) -> tuple[str, list[dict]]:
        """(prompt name, judge conversation) for turn 1 or 2 of a sample, as FastChat's single mode."""
        q = next((q for q in self.questions if q["question_id"] == rec["question_id"]), None)
        if q is None:
            raise HarnessError(f"task {self.name}: sample {rec['id']} has no question in {self.options.questions}")
        math = q["category"] in self.options.need_ref_categories
        name = ("single-math-v1" if math else "single-v1") + ("-multi-turn" if turn == 2 else "")
        prompt = self.judge_prompts[name]
        answers = rec["outputs"]
        kwargs = {}
        if math:
            ref = self.references.get(q["question_id"])
            if ref is None:
                raise HarnessError(f"{self.options.reference_answers}: no reference answer for question "
                                   f"{q['question_id']} ({q['category']} needs one)")
            kwargs = {"ref_answer_1": ref[0], "ref_answer_2": ref[1]}
        if turn == 1:
            user = prompt["prompt_template"].format(question=q["turns"][0], answer=answers[0], **kwargs)
        else:
            user = prompt["prompt_template"].format(question_1=q["turns"][0], question_2=q["turns"][1],
                                                    answer_1=answers[0], answer_2=answers[1], **kwargs)
        return name, [{"role": "system", "content": prompt["system_prompt"]}, {"role": "user", "content": user}]

    def judge_records(self, records: list[dict], judge, spec, cache) -> None:
        """Judge both turns of every record (k times each, cached) and set rec['judgment'] in place."""
        from harness.judges import JudgeItem, judge_id, median_verdict, parse_rating, prompt_hash, run_judgments

        items, meta = [], {}
        for rec in records:
            for turn in (1, 2):
                name, msgs = self.judge_messages(rec, turn)
                key = f"{rec['id']}#turn{turn}"
                items.append(JudgeItem(key, msgs))
                meta[key] = (name, prompt_hash(msgs))
        verdicts = run_judgments(judge, spec.settings(), items, cache, parse_rating, desc=f"{self.name} judge")
        jid = judge_id(judge)
        for rec in records:
            turns = []
            for turn in (1, 2):
                key = f"{rec['id']}#turn{turn}"
                js = verdicts[key]
                turns.append({"template": meta[key][0], "prompt_hash": meta[key][1],
                              "ratings": [j["verdict"] for j in js], "score": median_verdict(js),
                              "parse_failures": sum(j["verdict"] is None for j in js),
                              "cache_keys": [j["key"] for j in js]})
            rec["judgment"] = {"judge": jid, "k": spec.k, "turns": turns}

    def aggregate(self, subset: str, records: list[dict]) -> dict:
        out: dict = {"n": len(records), "mean_new_tokens": _mean([n for r in records for n in r["n_new_tokens"]])}
        judge, judged = judge_of(records)
        if judged:
            out.update(self._judge_metrics(judged))
        out["judge"] = judge
        out.update(self._drift_metrics(records))
        return out

    def _judge_metrics(self, records: list[dict]) -> dict:
        pairs = [(r["category"], t_idx + 1, t) for r in records for t_idx, t in enumerate(r["judgment"]["turns"])]
        scored = [(c, n, t["score"]) for c, n, t in pairs if t["score"] is not None]
        failures = sum(t["parse_failures"] for _, _, t in pairs)
        n_judgments = sum(len(t["ratings"]) for _, _, t in pairs)
        cats = sorted({c for c, _, _ in pairs})
        return {
            "score": _mean([s for _, _, s in scored]),
            "score_turn1": _mean([s for _, n, s in scored if n == 1]),
            "score_turn2": _mean([s for _, n, s in scored if n == 2]),
            "score_by_category": {c: _mean([s for cc, _, s in scored if cc == c]) for c in cats},
            "n_turns_judged": len(scored),
            "n_turns_unjudged": len(pairs) - len(scored),  # every judgment of that turn failed to parse
            "n_judgments": n_judgments,
            "parse_failures": failures,
            "parse_failure_rate": failures / n_judgments if n_judgments else 0.0,
            "judge_k": records[0]["judgment"]["k"],
            "judge_prompts_hash": _prompt_set_hash(pairs),  # hash of every judge prompt sent (answers included)
        }

    def _drift_metrics(self, records: list[dict]) -> dict:
        from harness.judges.phase import drift_metrics

        return drift_metrics(self.context.out_dir, self.name, records)

    def summarize(self, per_subset: dict[str, dict], records: dict[str, list[dict]]) -> dict:
        out = {}
        for key in ("score", "score_turn1", "score_turn2", "parse_failures", "n_turns_unjudged", "drift_nll",
                    "drift_kl"):
            vals = [m[key] for m in per_subset.values() if isinstance(m.get(key), (int, float))]
            if vals and len(vals) == len(per_subset):
                out[key] = sum(vals) / len(vals) if "score" in key or "drift" in key else sum(vals)
        return out

    def metadata(self) -> dict:
        prompts = self.judge_prompts
        return {
            "protocol": "FastChat llm_judge single-answer grading (gen_model_answer + gen_judgment mode=single)",
            "judge_prompts": {n: sha256_text(json.dumps(prompts[n], sort_keys=True))[:16]
                              for n in ("single-v1", "single-math-v1", "single-v1-multi-turn",
                                        "single-math-v1-multi-turn")},
            "reference_answers": self.options.reference_answers,
            "rating_regex": r"\[\[(\d+\.?\d*)\]\] then \[(\d+\.?\d*)\]; no match = parse failure (not 0)",
            "temperatures": self.options.temperatures,
            "judge_settings": self.judge_settings,
        }


def _prompt_set_hash(pairs) -> str:
    return sha256_text("\n".join(sorted(t["prompt_hash"] for _, _, t in pairs)))[:16]


def _mean(vals: list) -> float | None:
    return sum(vals) / len(vals) if vals else None


TASK_CLASS = MTBenchTask
