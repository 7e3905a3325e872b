"""Shared code of the math word-problem tasks (MGSM, GSM8K): prompts, exemplars, scoring.

Prompting (options.shots):
* 0 (default, for chat models): one user turn = a short instruction in the problem's language that
  asks for step-by-step reasoning ending with the language's answer phrase ("The answer is N"),
  then "<Question prefix> <question>". The instructions are project-written translations.
* 1..8: native chain-of-thought with the human-translated MGSM exemplars, each as a prior
  user ("Question: …") / assistant ("Step-by-Step Answer: … The answer is 11.") turn. Without a
  chat template the turns are joined by blank lines (a classic few-shot prompt); base models
  should use 8 shots.

Scoring: strict and flexible extraction (harness/metrics/answers.py), exact match against the gold
number, the rate of outputs with no strict marker, and the rate of outputs cut by max_new_tokens.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Literal

from harness.data import load_hub_dataset
from harness.errors import HarnessError
from harness.metrics import answers
from harness.task import render_template, Task
from harness.task_config import GenerationConfig

# Question / answer prefixes of the MGSM native-CoT exemplars (mgsm_exemplars.json).
Q_PREFIX = {"bn": "প্রশ্ন:", "de": "Frage:", "en": "Question:", "es": "Pregunta:", "fr": "Question :",
            "ja": "問題：", "ru": "Задача:", "sw": "Swali:", "te": "ప్రశ్న:", "th": "โจทย์:", "zh": "问题："}

# Zero-shot instructions: reason step by step, end with the exemplars' answer phrase.
INSTRUCTIONS = {
    "en": 'Solve the following problem step by step. End your answer with "The answer is" followed by the final '
          'number.',
    "de": "Löse die folgende Aufgabe Schritt für Schritt. Beende deine Antwort mit „Die Antwort lautet“ "
          "und der endgültigen Zahl.",
    "es": "Resuelve el siguiente problema paso a paso. Termina tu respuesta con «La respuesta es» seguido "
          "del número final.",
    "fr": "Résous le problème suivant étape par étape. Termine ta réponse par « La réponse est » suivi du "
          "nombre final.",
    "ru": "Реши следующую задачу шаг за шагом. Закончи ответ словами «Ответ —» и итоговым числом.",
    "sw": 'Tatua swali lifuatalo hatua kwa hatua. Malizia jibu lako kwa "Jibu ni" likifuatiwa na namba ya mwisho.',
    "te": 'కింది సమస్యను దశలవారీగా పరిష్కరించండి. మీ సమాధానాన్ని "సమాధానం" తర్వాత చివరి సంఖ్యతో ముగించండి.',
    "th": 'จงแก้โจทย์ต่อไปนี้ทีละขั้นตอน แล้วจบคำตอบด้วย "คำตอบคือ" ตามด้วยตัวเลขสุดท้าย',
    "bn": 'নিচের সমস্যাটি ধাপে ধাপে সমাধান করো। তোমার উত্তর "উত্তর হল" এবং তারপর চূড়ান্ত সংখ্যাটি দিয়ে শেষ করো।',
    "ja": "次の問題を段階的に解いてください。最後は「答えは」に続けて最終的な数字で締めくくってください。",
    "zh": "请逐步解答下面的问题。最后以“答案是”加上最终的数字结尾。",
}


@dataclass
class MathOptions:
    shots: int = 0  # 0 = zero-shot with an instruction; 1..8 = native CoT exemplars as prior turns
    instruction: Literal["native", "english", "none"] = "native"  # zero-shot instruction language
    exemplars_file: str = "mgsm/mgsm_exemplars.json"  # under the data directory
    exemplars_hub: str = "juletxara/mgsm"  # hub fallback: the `train` split holds the same 8 exemplars

    def validate(self, where: str) -> None:
        if not 0 <= self.shots <= 8:
            raise HarnessError(f"{where}.shots: {self.shots} must be between 0 and 8 (MGSM has 8 exemplars)")


class MathTask(Task):
    """Base for MGSM/GSM8K; subclasses implement `_load(lang) -> [(question, gold)]`."""

    Options = MathOptions
    content_fields = ("question",)
    answer_rounds = True  # add_answer_round: XBridge's decoder answer, scored like the model's own

    def add_answer_round(self, label: str) -> None:
        """One more round per document (e.g. XBridge's NMT-decoder answer, `Request.round` 1) whose answer is
        scored like round 0's: per sample `label: {extracted, correct}`, per subset `label_exact_match_*`."""
        self.answer_labels = [*getattr(self, "answer_labels", []), label]
        self.n_rounds = 1 + len(self.answer_labels)

    def _load(self, lang: str) -> list[tuple[str, str]]:
        raise NotImplementedError

    def load_docs(self, subset: str) -> list[dict]:
        if subset not in Q_PREFIX:
            raise HarnessError(f"task {self.name}: no MGSM prompt strings for language {subset!r}")
        instruction = ""
        if self.options.shots == 0 and self.options.instruction != "none":
            key = subset if self.options.instruction == "native" else "en"
            instruction = INSTRUCTIONS[key] + "\n\n"
        return [{"id": f"{subset}/{i}", "subset": subset, "lang": subset, "question": q, "answer": a,
                 "q_prefix": Q_PREFIX[subset], "instruction": instruction}
                for i, (q, a) in enumerate(self._load(subset))]

    def messages(self, doc: dict, history: list[str]) -> list[dict]:
        msgs = [{"role": "system", "content": self.cfg.prompt.system}] if self.cfg.prompt.system else []
        for q, a in self._exemplars(doc["lang"])[: self.options.shots]:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return msgs + [{"role": "user", "content": render_template(self.cfg.prompt.template, doc, self.name)}]

    def generation(self, doc: dict, round_idx: int) -> GenerationConfig:
        gen = self.cfg.generation  # without a chat template, stop where the model starts a new question
        return dataclasses.replace(gen, stop_plain=list(gen.stop_plain) + [doc["q_prefix"]])

    def _exemplars(self, lang: str) -> list[tuple[str, str]]:
        return self.memo(("_exemplars", lang), lambda: self._read_exemplars(lang))

    def _read_exemplars(self, lang: str) -> list[tuple[str, str]]:
        if self.options.shots == 0:
            return []
        path = self.data.local(self.options.exemplars_file)
        if path is not None:
            try:
                table = json.loads(path.read_text(encoding="utf-8"))["MGSM_EXEMPLARS"][lang]
                return [(table[str(i)]["q"], table[str(i)]["a"]) for i in range(1, 9)]
            except (KeyError, ValueError) as e:
                raise HarnessError(f"{path}: no MGSM_EXEMPLARS[{lang!r}][1..8] with q/a ({e}); "
                                   f"use the url-nlp exemplars file") from None
        rows = load_hub_dataset(self.options.exemplars_hub, f"task {self.name} exemplars ({lang})",
                                name=lang, split="train")
        return [(r["question"], r["answer"]) for r in rows][:8]

    def score(self, doc: dict, outputs: list[str]) -> dict:
        got = answers.extract(outputs[0], doc["lang"])
        rec = {"answer": doc["answer"], "extracted": got,
               "correct": {k: answers.same_number(v, doc["answer"]) for k, v in got.items()}}
        for label, out in zip(getattr(self, "answer_labels", []), outputs[1:]):
            more = answers.extract(out, doc["lang"])
            rec[label] = {"extracted": more, "correct": {k: answers.same_number(v, doc["answer"])
                                                          for k, v in more.items()}}
        return rec

    def aggregate(self, subset: str, records: list[dict]) -> dict:
        n = len(records)
        out = {
            "exact_match_strict": sum(r["correct"]["strict"] for r in records) / n,
            "exact_match_flexible": sum(r["correct"]["flexible"] for r in records) / n,
            "no_answer_strict": sum(r["extracted"]["strict"] is None for r in records) / n,
            "no_answer_flexible": sum(r["extracted"]["flexible"] is None for r in records) / n,
            "truncated": sum(r["finish"][0] == "length" for r in records) / n,
            "n": n,
        }
        for label in getattr(self, "answer_labels", []):
            more = [r[label] for r in records if label in r]
            if more and len(more) == n:
                out[f"{label}_exact_match_strict"] = sum(d["correct"]["strict"] for d in more) / n
                out[f"{label}_exact_match_flexible"] = sum(d["correct"]["flexible"] for d in more) / n
        return out

    def metadata(self) -> dict:
        o = self.options
        return {
            "prompting": f"{o.shots}-shot native CoT (exemplars as prior chat turns)" if o.shots
            else f"0-shot, instruction: {o.instruction}",
            "extraction": answers.settings(),
            "max_new_tokens": self.cfg.generation.max_new_tokens,
            "truncated": "share of outputs that hit max_new_tokens (finish == 'length')",
        }
