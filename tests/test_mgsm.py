"""MGSM / GSM8K: answer extraction on realistic outputs, the real exemplars and data, prompts, end to end."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from mt_harness.cli import main
from harness.data import DataSource
from harness.errors import HarnessError
from harness.metrics.answers import extract, normalize_number, same_number
from tasks import load_task, load_task_config, TASKS_DIR

# (lang, model output, gold, expected strict, expected flexible)
OUTPUTS = [
    ("en", "Janet's ducks lay 16 eggs. She uses 3 + 4 = 7, so 16 - 7 = 9 remain.\n9 * $2 = $18.\nThe answer is 18.",
     "18", "18", "18"),
    ("en", "**Step 1:** 3 * 360 = 1080\n\n**The answer is: $1,080**", "1080", "1080", "1080"),
    ("en", "She pays 15 + 5 = 20 dollars. The answer is 20.", "18", "20", "20"),  # wrong answer
    ("en", "I'm sorry, I cannot solve this problem.", "18", None, None),  # no answer at all
    ("en", "The answer is 18. Check: 18 / 2 = 9", "18", "18", "9"),  # flexible picks the wrong number
    ("en", "Therefore the total is $\\boxed{42}$.", "42", "42", "42"),
    ("en", "#### 1,000", "1000", "1000", "1000"),
    ("de", "Er kaufte das Haus für 80.000 US-Dollar und investierte 50.000 US-Dollar. "
           "Der Gewinn beträgt 70.000 US-Dollar. Die Antwort lautet 70.000.", "70000", "70000", "70000"),
    ("de", "Sie hat 9 Eier übrig, 9 * 2 = 18. The answer is 18.", "18", "18", "18"),  # English phrase
    ("fr", "Le bénéfice est de 70 000 $. La réponse est 70 000.", "70000", "70000", "70000"),
    ("es", "Tarda 5 / 2 = 2,5 horas. La respuesta es 2,5.", "2.5", "2.5", "2.5"),
    ("ru", "Всего 16 - 3 - 4 = 9 яиц, 9 * 2 = 18 долларов. Ответ — 18.", "18", "18", "18"),
    ("ru", "Решение: 5 + 6 = 11\n**Ответ:** 11", "11", "11", "11"),
    ("zh", "每天剩下 16 - 3 - 4 = 9 个鸡蛋。9 × 2 = 18 美元。答案是 18。", "18", "18", "18"),
    ("zh", "所以她每天赚18美元。", "18", None, "18"),  # no marker: only flexible finds it
    ("ja", "残りは16-3-4=9個です。9×2=18ドルです。答えは18ドルです。", "18", "18", "18"),
    ("ja", "答え：１８", "18", "18", "18"),  # full-width digits
    ("th", "เหลือไข่ 16 - 3 - 4 = 9 ฟอง ขายได้ 9 x 2 = 18 ดอลลาร์ คำตอบคือ 18", "18", "18", "18"),
    ("th", "คำตอบคือ ๑๘ ดอลลาร์", "18", "18", "18"),  # Thai digits
    ("bn", "তার কাছে 16 - 3 - 4 = 9টি ডিম থাকে। উত্তর হল ১৮।", "18", "18", "18"),  # Bengali digits
    ("bn", "আমি নিশ্চিত নই।", "18", None, None),
    ("sw", "Anabaki na mayai 9, 9 x 2 = 18. Jibu ni 18.", "18", "18", "18"),
    ("te", "9 × 2 = 18 డాలర్లు. సమాధానం 18.", "18", "18", "18"),
    ("te", "సమాధానం 17.", "18", "17", "17"),  # wrong
]


@pytest.mark.parametrize("lang,text,gold,strict,flexible", OUTPUTS)
def test_extraction_on_realistic_outputs(lang, text, gold, strict, flexible):
    got = extract(text, lang)
    assert got == {"strict": strict, "flexible": flexible}
    assert same_number(got["strict"], gold) == (strict is not None and strict == normalize_number(gold))


@pytest.mark.parametrize("token,value", [
    ("1,234", "1234"), ("1.234.567", "1234567"), ("1 234", "1234"), ("1\u202f234", "1234"), ("3,5", "3.5"),
    ("0.125", "0.125"), ("18.00", "18"), ("−5", "-5"), ("১২৩", "123"), ("๑๒", "12"), ("１２", "12"), ("abc", None),
])
def test_normalize_number(token, value):
    assert normalize_number(token) == value


@pytest.mark.parametrize("lang,token,value", [
    # one separator + exactly 3 digits is ambiguous: the language's decimal separator decides
    ("en", "2.125", "2.125"), ("en", "1,125", "1125"), ("zh", "2.125", "2.125"), ("ja", "1,125", "1125"),
    ("sw", "2.125", "2.125"), ("th", "1,125", "1125"), ("bn", "2.125", "2.125"),
    ("de", "1.125", "1125"), ("de", "2,125", "2.125"), ("fr", "2,125", "2.125"), ("es", "1.125", "1125"),
    ("ru", "2,125", "2.125"),
    # unambiguous forms read the same in every language
    ("de", "3,5", "3.5"), ("en", "3,5", "3.5"), ("de", "0.125", "0.125"), ("en", "0,125", "0.125"),
    ("en", "1234.567", "1234.567"), ("de", "1234,567", "1234.567"), ("de", "1.234.567", "1234567"),
    ("en", "1,234,567", "1234567"), ("en", "1,234.5", "1234.5"), ("de", "1.234,5", "1234.5"),
    ("fr", "1 125", "1125"), ("fr", "1\u202f125,5", "1125.5"), ("en", "1,23,4", None),
])
def test_separators_follow_the_language(lang, token, value):
    assert normalize_number(token, lang) == value


@pytest.mark.parametrize("lang,text,gold,correct", [
    ("en", "So she pays 17 / 8 = 2.125 dollars each. The answer is 2.125.", "2,125", False),  # 2.125 ≠ 2125
    ("en", "The answer is 1.125", "1125", False),
    ("en", "The answer is 1,125.", "1125", True),
    ("en", "The answer is 2,125", "2,125", True),  # MGSM writes golds like this, in every language file
    ("de", "Die Antwort lautet 1.125.", "1125", True),  # German thousands group
    ("de", "Die Antwort lautet 2,125.", "2,125", False),  # German decimal comma: 2.125
    ("fr", "La réponse est 2 125.", "2,125", True),
    ("fr", "La réponse est 2,125.", "2,125", False),
    ("es", "La respuesta es 276.000.", "276,000", True),
    ("ru", "Ответ: 114 200", "114,200", True),
    ("zh", "答案是 2.125。", "2,125", False),
    ("ja", "答えは2,125です。", "2,125", True),
])
def test_decimals_are_not_read_as_thousands(lang, text, gold, correct):
    got = extract(text, lang)
    assert same_number(got["strict"], gold) is correct and same_number(got["flexible"], gold) is correct


def test_mgsm_golds_are_english_formatted_integers(data_dir):
    """Every gold of every MGSM language file: an integer, grouped with commas as in English (so read as "en")."""
    for f in sorted((data_dir / "mgsm").glob("mgsm_*.tsv")):
        golds = [line.rsplit("\t", 1)[1] for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert len(golds) == 250, f
        assert all(re.fullmatch(r"-?\d{1,3}(,\d{3})*|-?\d+", g) for g in golds), f
        assert all(normalize_number(g) == g.replace(",", "") for g in golds), f
        assert "2,125" in golds  # the form the decimal bug confused


def test_same_number_is_numeric():
    assert same_number("18", "18.0") and same_number("1080", "1,080") and not same_number(None, "18")
    assert not same_number("17", "18")


def test_strict_extraction_reads_every_real_exemplar(data_dir):
    """The human-translated MGSM exemplars end with each language's answer phrase: all 88 must parse."""
    table = json.loads((data_dir / "mgsm" / "mgsm_exemplars.json").read_text(encoding="utf-8"))
    golds = table["EXEMPLAR_NUMBER_ANSWERS"]
    for lang, exemplars in table["MGSM_EXEMPLARS"].items():
        for i in range(1, 9):
            got = extract(exemplars[str(i)]["a"], lang)
            assert got["strict"] == str(golds[i - 1]), (lang, i, exemplars[str(i)]["a"][-60:])


def _task(name: str, data_dir, **options):
    cfg, path = load_task_config(name)
    cfg = dataclasses.replace(cfg, options={**cfg.options, **options})
    from tasks.gsm8k import GSM8KTask
    from tasks.mgsm import MGSMTask

    cls = MGSMTask if name == "mgsm" else GSM8KTask
    return cls(cfg, DataSource(data_dir, allow_hub=False), path)


def test_mgsm_docs_and_zero_shot_prompt(data_dir):
    task = load_task("mgsm", DataSource(data_dir, allow_hub=False))
    assert task.options.shots == 0
    for lang in task.all_subsets():
        docs = task.docs(lang)
        assert len(docs) == 250
        assert all(normalize_number(d["answer"]) is not None for d in docs)
    doc = task.docs("de")[0]
    (msg,) = task.messages(doc, [])
    assert msg["role"] == "user" and "Die Antwort lautet" in msg["content"]
    assert msg["content"].endswith("Frage: " + doc["question"])
    assert "Frage:" in task.generation(doc, 0).stop_plain
    assert task.generation(doc, 0).max_new_tokens >= 512


def test_mgsm_few_shot_uses_exemplars_as_turns(data_dir):
    task = _task("mgsm", data_dir, shots=8)
    doc = task.docs("zh")[3]
    msgs = task.messages(doc, [])
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 8 + ["user"]
    assert msgs[0]["content"].startswith("问题：") and msgs[1]["content"].endswith("答案是 11。")
    assert msgs[-1]["content"] == "问题： " + doc["question"]  # no instruction: the exemplars show the format
    assert len(_task("mgsm", data_dir, shots=3).messages(doc, [])) == 7


def test_bad_options_are_one_line_errors(data_dir):
    with pytest.raises(HarnessError, match="shots"):
        _task("mgsm", data_dir, shots=9)
    with pytest.raises(HarnessError, match="unknown key 'shot'"):
        _task("mgsm", data_dir, shot=2)


def test_gsm8k_gold_and_scoring(data_dir):
    task = _task("gsm8k", data_dir)
    docs = task.docs("en")
    assert len(docs) == 1319 and docs[0]["answer"] == "18"
    assert all(normalize_number(d["answer"]) is not None for d in docs)
    rec_ok = {"outputs": ["9 * 2 = 18. The answer is 18."], "finish": ["eos"]}
    rec_bad = {"outputs": ["It makes 20 dollars"], "finish": ["length"]}
    recs = [{**r, **task.score(docs[0], r["outputs"])} for r in (rec_ok, rec_bad)]
    m = task.aggregate("en", recs)
    assert m["exact_match_strict"] == 0.5 and m["exact_match_flexible"] == 0.5
    assert m["no_answer_strict"] == 0.5 and m["truncated"] == 0.5 and m["n"] == 2


def short_copy(name: str, tmp_path, max_new_tokens: int = 24) -> str:
    """A copy of tasks/<name>.yaml with a small max_new_tokens (random tiny models never stop)."""
    text = (TASKS_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    text = re.sub(r"max_new_tokens: \d+", f"max_new_tokens: {max_new_tokens}", text)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_mgsm_end_to_end_on_tiny_model(tiny_model, data_dir, tmp_path):
    out = tmp_path / "out"
    tasks = f"{short_copy('mgsm', tmp_path)},{short_copy('gsm8k', tmp_path)}"
    rc = main(["run", "--method", "base", "--tasks", tasks, "--model", str(tiny_model), "--limit", "1",
               "--langs", "en,zh", "--output", str(out), "--data-dir", str(data_dir), "--batch-size", "4"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    mgsm = results["tasks"]["mgsm"]
    assert set(mgsm["metrics"]) == {"en", "zh"}
    assert {"exact_match_strict", "exact_match_flexible", "no_answer_strict", "truncated"} <= set(mgsm["metrics"]["zh"])
    assert "exact_match_strict" in mgsm["summary"]
    assert mgsm["metadata"]["extraction"]["answer_phrases"]["zh"][0] == "答案是"
    assert mgsm["config"]["generation"]["max_new_tokens"] == 24
    sample = json.loads((out / "mgsm" / "samples.jsonl").read_text().splitlines()[0])
    assert {"extracted", "correct", "answer", "finish"} <= set(sample)
    samples = [json.loads(x) for x in (out / "mgsm" / "samples.jsonl").read_text().splitlines()]
    zh = [x for x in samples if x["subset"] == "zh"]
    assert mgsm["metrics"]["zh"]["truncated"] == sum(x["finish"][0] == "length" for x in zh) / len(zh)
    assert all(x["n_new_tokens"][0] <= 24 for x in samples)
    assert set(results["tasks"]["gsm8k"]["metrics"]) == {"en"}
