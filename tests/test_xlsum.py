"""XL-Sum: multilingual ROUGE against rouge-score, the JSONL loader, document truncation, end to end."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from mt_harness.cli import main
from harness.data import DataSource
from harness.errors import HarnessError
from harness.metrics.rouge import MultilingualTokenizer, rouge
from tasks import load_task_config, TASKS_DIR
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


def textbook_rouge(pred: list[str], ref: list[str]) -> dict[str, float]:
    """ROUGE-1/2/L F-measures x100 from token lists, written out here (no rouge-score): n-gram overlap
    with clipped counts, and the longest common subsequence by dynamic programming."""

    def f(overlap: int, n_pred: int, n_ref: int) -> float:
        p, r = overlap / max(n_pred, 1), overlap / max(n_ref, 1)
        return 100.0 * 2 * p * r / (p + r) if p + r > 0 else 0.0

    out = {}
    for n in (1, 2):
        grams = [Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)) for toks in (pred, ref)]
        out[f"rouge{n}"] = f(sum((grams[0] & grams[1]).values()), sum(grams[0].values()), sum(grams[1].values()))
    lcs = [[0] * (len(ref) + 1) for _ in range(len(pred) + 1)]
    for i, a in enumerate(pred):
        for j, b in enumerate(ref):
            lcs[i + 1][j + 1] = lcs[i][j] + 1 if a == b else max(lcs[i][j + 1], lcs[i + 1][j])
    out["rougeL"] = f(lcs[-1][-1], len(pred), len(ref))
    return out


def test_thai_rouge_equals_hand_segmented_hand_computed_values():
    pred, ref = "ฉันชอบกินข้าว แมวกินปลา", "แมวกินปลา ฉันชอบแมว"
    # segmented by hand (I / like / eat-rice, cat / eat / fish; cat / eat / fish, I / like / cat)
    pred_words = ["ฉัน", "ชอบ", "กินข้าว", "แมว", "กิน", "ปลา"]
    ref_words = ["แมว", "กิน", "ปลา", "ฉัน", "ชอบ", "แมว"]
    assert MultilingualTokenizer("th").tokenize(pred) == pred_words
    assert MultilingualTokenizer("th").tokenize(ref) == ref_words
    # unigrams: 5 of 6 shared; bigrams: (ฉัน,ชอบ) (แมว,กิน) (กิน,ปลา) = 3 of 5; LCS: แมว กิน ปลา = 3 of 6
    expected = {"rouge1": 100 * 5 / 6, "rouge2": 100 * 3 / 5, "rougeL": 100 * 3 / 6}
    assert rouge(pred, ref, "th") == pytest.approx(expected, abs=1e-9)
    assert textbook_rouge(pred_words, ref_words) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("lang", LANGS)
def test_rouge_equals_rouge_score_and_textbook_rouge_on_the_same_tokens(lang):
    """rouge() against rouge-score's RougeScorer given our tokenizer directly, and against ROUGE computed
    in this file; for Thai the tokens come from PyThaiNLP called here, not through MultilingualTokenizer."""
    tok = MultilingualTokenizer(lang)
    ref_scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=tok)
    rows = fixture_rows(lang)
    pairs = [(r["summary"], r["text"]) for r in rows] + [(rows[0]["summary"], rows[1]["summary"]),
                                                         (rows[2]["title"], rows[2]["summary"]),
                                                         (rows[3]["summary"],
                                                          rows[3]["summary"] + " " + rows[1]["text"])]
    if lang == "th":
        from pythainlp.tokenize import word_tokenize

        def words(text):
            return [w for w in word_tokenize(text, engine="newmm", keep_whitespace=False)
                    if re.search(r"\w", w) and w.strip()]
    else:
        words = tok.tokenize
    for pred, target in pairs:
        ours = rouge(pred, target, lang)
        theirs = ref_scorer.score(target, pred)
        assert ours == pytest.approx({k: 100 * theirs[k].fmeasure for k in ours}, abs=1e-9)
        assert ours == pytest.approx(textbook_rouge(words(pred), words(target)), abs=1e-9)
    assert any(0 < rouge(p, t, lang)["rouge2"] < 100 for p, t in pairs)  # the pairs share some bigrams, not all


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
    for s in samples:  # per-sample scores are ROUGE (computed in this file) of the saved output
        tok = MultilingualTokenizer(s["subset"])
        expected = textbook_rouge(tok.tokenize(s["outputs"][0]), tok.tokenize(s["reference"]))
        assert {k: s["scores"][k] for k in expected} == pytest.approx(expected, abs=1e-9)
        assert xl["metrics"][s["subset"]]["rougeL"] == pytest.approx(expected["rougeL"], abs=1e-9)  # 1 doc per language
        assert s["reference"] and s["reference"] in (FIXTURE / f"{XLSUM_NAMES[s['subset']]}_test.jsonl").read_text()
    assert set(results["tasks"]["mgsm"]["metrics"]) == {"en", "zh", "ja", "th", "bn"}
