"""XL-Sum: multilingual ROUGE against rouge-score, the JSONL loader, document truncation, end to end."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from harness.cli import main
from harness.data import DataSource
from harness.errors import HarnessError
from harness.metrics.rouge import MultilingualTokenizer, rouge
from harness.task import TASKS_DIR, load_task_config
from harness.validate import validate_task
from tasks.xlsum import XLSUM_NAMES, XLSumTask, truncate

FIXTURE = Path(__file__).parent / "fixtures" / "xlsum"
LANGS = ["bn", "en", "es", "fr", "ja", "ru", "sw", "th", "zh"]


def fixture_rows(lang: str) -> list[dict]:
    path = FIXTURE / f"{XLSUM_NAMES[lang]}_test.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def make_task(**options) -> XLSumTask:
    cfg, path = load_task_config("xlsum")
    cfg = dataclasses.replace(cfg, options={**cfg.options, "local_dir": str(FIXTURE), **options})
    return XLSumTask(cfg, DataSource(None, allow_hub=False), path)


# -- multilingual ROUGE ------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["zh", "ja", "th", "bn", "ru"])
def test_identical_non_latin_text_scores_one_and_different_text_less(lang):
    rows = fixture_rows(lang)
    a, b = rows[0]["summary"], rows[1]["summary"]
    assert rouge(a, a, lang) == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    assert rouge(b, a, lang)["rougeL"] < 100.0
    # a summary against its own article shares words, so it scores above zero but below one
    partial = rouge(a, rows[0]["text"], lang)["rougeL"]
    assert 0.0 < partial < 100.0


def test_rouge_score_default_tokenizer_fails_on_non_latin_text():
    """Why the language-aware tokenizer exists: rouge-score's default drops every non-[a-z0-9] character."""
    default = rouge_scorer.RougeScorer(["rougeL"])
    zh = fixture_rows("zh")
    assert default.score(zh[0]["summary"], zh[0]["summary"])["rougeL"].fmeasure == 0.0
    assert rouge(zh[0]["summary"], zh[0]["summary"], "zh")["rougeL"] == 100.0


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_english_rouge_equals_rouge_score_default(use_stemmer):
    ref = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=use_stemmer)
    rows = fixture_rows("en")
    pairs = [(r["summary"], r["text"]) for r in rows] + [(rows[0]["summary"], rows[1]["summary"]),
                                                         (rows[2]["title"], rows[2]["summary"])]
    for pred, target in pairs:
        expected = ref.score(target, pred)
        ours = rouge(pred, target, "en", use_stemmer)
        for k in ("rouge1", "rouge2", "rougeL"):
            assert ours[k] == pytest.approx(100 * expected[k].fmeasure, abs=1e-9)


def test_tokenizers_segment_words():
    assert MultilingualTokenizer("zh").tokenize("今天北京下雨了。") == ["今天", "北京", "下雨", "了"]
    assert "東京" in MultilingualTokenizer("ja").tokenize("今日は東京で雨が降りました。")
    assert MultilingualTokenizer("th").tokenize("วันนี้ฝนตก ที่กรุงเทพ")[:2] == ["วันนี้", "ฝนตก"]
    # Bengali vowel signs (combining marks) stay inside their words; punctuation is dropped
    assert MultilingualTokenizer("bn").tokenize("আমার সোনার বাংলা।") == ["আমার", "সোনার", "বাংলা"]
    assert MultilingualTokenizer("fr").tokenize("La Réponse, étape") == ["la", "réponse", "étape"]


# -- loader, truncation, prompts ---------------------------------------------------------------------

def test_loader_reads_fixture_from_option_env_and_data_dir(tmp_path, monkeypatch):
    task = make_task()
    docs = task.docs("zh")
    assert len(docs) == 4 and docs[0]["summary"] == fixture_rows("zh")[0]["summary"]
    assert docs[0]["xlsum_id"] == "fixture_chinese_simplified_1" and not docs[0]["doc_truncated"]

    cfg, path = load_task_config("xlsum")
    monkeypatch.setenv("HARNESS_XLSUM_DIR", str(FIXTURE))
    assert len(XLSumTask(cfg, DataSource(None, allow_hub=False), path).docs("th")) == 4
    monkeypatch.delenv("HARNESS_XLSUM_DIR")

    data = tmp_path / "data"
    (data / "xlsum").mkdir(parents=True)
    (data / "xlsum" / "bengali_test.jsonl").write_text((FIXTURE / "bengali_test.jsonl").read_text("utf-8"), "utf-8")
    task = XLSumTask(cfg, DataSource(data, allow_hub=False), path)
    assert len(task.docs("bn")) == 4 and task.metadata()["source_from"] == "data dir"


def test_loader_errors_name_the_file(tmp_path):
    (tmp_path / "english_test.jsonl").write_text('{"id": "1", "summary": "s"}\n', encoding="utf-8")
    (tmp_path / "thai_test.jsonl").write_text('{"id": "1", \n', encoding="utf-8")
    task = make_task(local_dir=str(tmp_path))
    with pytest.raises(HarnessError, match=r"english_test.jsonl:1: field 'text'"):
        task.docs("en")
    with pytest.raises(HarnessError, match=r"thai_test.jsonl:1: invalid JSON"):
        task.docs("th")
    with pytest.raises(HarnessError, match=r"japanese_test.jsonl not found"):
        task.docs("ja")
    with pytest.raises(HarnessError, match="not a directory"):
        make_task(local_dir=str(tmp_path / "nope")).docs("en")
    with pytest.raises(HarnessError, match="unknown language 'xx'"):
        task.select(["xx"])


def test_long_documents_are_truncated_before_prompting():
    task = make_task(max_doc_chars=200)
    full = fixture_rows("en")[0]["text"]
    doc = task.docs("en")[0]
    assert len(full) > 200 and doc["doc_truncated"] and doc["doc_chars"] == len(full)
    assert len(doc["text"]) <= 200 and doc["text"].endswith(".") and full.startswith(doc["text"])
    prompt = "\n".join(m["content"] for m in task.messages(doc, []))
    assert doc["text"] in prompt and full not in prompt
    assert truncate("x" * 500, 300) == "x" * 300  # no boundary: hard cut
    assert truncate("短文。", 300) == "短文。"
    with pytest.raises(HarnessError, match="max_doc_chars"):
        make_task(max_doc_chars=10)


def test_validate_finds_the_document_in_every_prompt():
    results = list(validate_task(make_task()))
    assert len(results) == len(LANGS) and all(ok for _, ok in results), results


def test_clean_removes_chat_wrapping():
    task = make_task()
    doc = task.docs("en")[0]
    out, steps = task.clean(doc, "Here is a one-sentence summary:\n\n**Summary:** The library reopened.\n\nNote: x")
    assert out == "The library reopened." and steps == ["drop_preamble", "drop_label", "first_paragraph"]


# -- end to end --------------------------------------------------------------------------------------

def short_copy(name: str, tmp_path: Path, max_new_tokens: int = 16) -> str:
    text = (TASKS_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    text = re.sub(r"max_new_tokens: \d+", f"max_new_tokens: {max_new_tokens}", text)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_run_mgsm_and_xlsum_end_to_end(tiny_model, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_XLSUM_DIR", str(FIXTURE))
    out = tmp_path / "out"
    tasks = f"{short_copy('mgsm', tmp_path)},{short_copy('xlsum', tmp_path)}"
    rc = main(["run", "--method", "base", "--tasks", tasks, "--model", str(tiny_model), "--limit", "1",
               "--langs", "en,zh,ja,th,bn", "--output", str(out), "--data-dir", str(data_dir), "--batch-size", "8"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    xl = results["tasks"]["xlsum"]
    assert set(xl["metrics"]) == {"en", "zh", "ja", "th", "bn"}
    assert xl["metrics"]["ja"]["rouge_settings"]["tokenizer"].startswith("MeCab")
    assert {"rouge1", "rouge2", "rougeL", "doc_truncated", "truncated", "empty"} <= set(xl["metrics"]["th"])
    assert "rougeL" in xl["summary"] and xl["metadata"]["source_from"] == "$HARNESS_XLSUM_DIR"
    samples = [json.loads(x) for x in (out / "xlsum" / "samples.jsonl").read_text().splitlines()]
    for s in samples:  # per-sample scores are the metric recomputed on the saved output
        assert s["scores"] == rouge(s["outputs"][0], s["reference"], s["subset"])
        assert s["reference"] and s["reference"] in (FIXTURE / f"{XLSUM_NAMES[s['subset']]}_test.jsonl").read_text()
    assert set(results["tasks"]["mgsm"]["metrics"]) == {"en", "zh", "ja", "th", "bn"}
