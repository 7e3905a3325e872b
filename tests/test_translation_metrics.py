"""Our BLEU/chrF++ equal the sacrebleu CLI on real FLORES files; cleaning and LID behave on real text."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.languages import bleu_tokenizer
from harness.metrics.translation import corpus_bleu, corpus_chrf, is_off_target, spbleu
from tasks._translation import clean_translation

DEVTEST = "flores/flores200_dataset/devtest"


def sacrebleu_cli(hyp_file, ref_file, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "sacrebleu", str(ref_file), "-i", str(hyp_file), "-b", "-w", "4",
                           *args], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip())


@pytest.mark.parametrize("tgt,code", [("en", "eng_Latn"), ("zh", "zho_Hans"), ("ja", "jpn_Jpan"), ("th", "tha_Thai"),
                                      ("ko", "kor_Hang")])
def test_bleu_and_chrf_equal_sacrebleu_cli(data_dir, tmp_path, tgt, code):
    refs = (data_dir / DEVTEST / f"{code}.devtest").read_text(encoding="utf-8").splitlines()[:50]
    # A realistic hypothesis set: the references of a shifted window (same language, partly overlapping words).
    hyps = refs[1:] + refs[:1]
    hyps = [h[: max(1, len(h) * 2 // 3)] for h in hyps]
    hyp_file, ref_file = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp_file.write_text("\n".join(hyps) + "\n", encoding="utf-8")
    ref_file.write_text("\n".join(refs) + "\n", encoding="utf-8")
    ours_bleu = corpus_bleu(hyps, refs, tgt)
    cli_bleu = sacrebleu_cli(hyp_file, ref_file, "-m", "bleu", "-tok", bleu_tokenizer(tgt))
    assert round(ours_bleu["score"], 4) == pytest.approx(cli_bleu, abs=1e-4)
    assert f"tok:{bleu_tokenizer(tgt)}" in ours_bleu["signature"]
    ours_chrf = corpus_chrf(hyps, refs)
    cli_chrf = sacrebleu_cli(hyp_file, ref_file, "-m", "chrf", "--chrf-word-order", "2")
    assert round(ours_chrf["score"], 4) == pytest.approx(cli_chrf, abs=1e-4)
    # Identical hypotheses are a perfect score (guards against tokenizer misconfiguration).
    assert corpus_bleu(refs, refs, tgt)["score"] == pytest.approx(100.0)


def test_per_language_tokenizers():
    assert bleu_tokenizer("zh") == "zh" and bleu_tokenizer("zho_Hans") == "zh"
    assert bleu_tokenizer("ja") == "ja-mecab" and bleu_tokenizer("de") == "13a"
    assert bleu_tokenizer("ko") == "ko-mecab" and bleu_tokenizer("kor_Hang") == "ko-mecab"


def test_spbleu_reports_unavailable_without_model(monkeypatch):
    monkeypatch.delenv("HARNESS_SPM_MODEL", raising=False)
    out = spbleu(["a"], ["a"])
    assert "unavailable" in out and "HARNESS_SPM_MODEL" in out["unavailable"]


@pytest.mark.parametrize("code,lang", [("deu_Latn", "de"), ("jpn_Jpan", "ja"), ("tha_Thai", "th"),
                                       ("rus_Cyrl", "ru"), ("ben_Beng", "bn")])
def test_off_target_detector_on_real_references(data_dir, code, lang):
    refs = (data_dir / DEVTEST / f"{code}.devtest").read_text(encoding="utf-8").splitlines()[:40]
    flags = [is_off_target(r, lang) for r in refs]
    assert sum(flags) <= 1  # the detector agrees with the true language on real text
    assert all(is_off_target(r, "en") for r in refs[:10])  # and flags it as wrong for an English target


def test_chinese_off_target_tolerates_variants(data_dir):
    refs = (data_dir / DEVTEST / "zho_Hans.devtest").read_text(encoding="utf-8").splitlines()[:100]
    assert sum(is_off_target(r, "zh") for r in refs) <= 5


@pytest.mark.parametrize("raw,clean,steps", [
    ("Here is the translation:\nThe cat sleeps.", "The cat sleeps.", ["drop_preamble"]),
    ("Sure! Here's the English translation:\n\n\"The cat sleeps.\"", "The cat sleeps.",
     ["drop_preamble", "strip_quotes"]),
    ("English: The cat sleeps.", "The cat sleeps.", ["drop_target_label"]),
    ("The cat sleeps.\n\nExplanation: 'Katze' means cat.", "The cat sleeps.", ["first_paragraph"]),
    ("The cat sleeps.", "The cat sleeps.", []),
    ("He said \"no\" twice.", "He said \"no\" twice.", []),
])
def test_cleaning_steps_are_logged(raw, clean, steps):
    out, applied = clean_translation(raw, "English")
    assert (out, applied) == (clean, steps)


def test_results_file_is_json_with_signatures(tiny_model, data_dir, tmp_path):
    from mt_harness.cli import main

    out = tmp_path / "o"
    assert main(["run", "--tasks", "flores", "--model", str(tiny_model), "--limit", "2", "--langs", "en-ja",
                 "--data-dir", str(data_dir), "--output", str(out)]) == 0
    m = json.loads((out / "results.json").read_text())["tasks"]["flores"]["metrics"]["en-ja"]
    assert "tok:ja-mecab" in m["signatures"]["bleu"]


def test_korean_run_is_scored_with_ko_mecab(tiny_model, data_dir, tmp_path):
    """en→ko used to fail after generation (sacrebleu[ko] missing); now scored, equal to the sacrebleu CLI."""
    from mt_harness.cli import main

    out = tmp_path / "o"
    assert main(["run", "--tasks", "flores", "--model", str(tiny_model), "--limit", "3", "--langs", "en-ko",
                 "--data-dir", str(data_dir), "--output", str(out)]) == 0
    m = json.loads((out / "results.json").read_text())["tasks"]["flores"]["metrics"]["en-ko"]
    assert "tok:ko-mecab-" in m["signatures"]["bleu"] and m["metric_args"]["bleu"] == {"tokenize": "ko-mecab"}
    recs = sorted((json.loads(x) for x in (out / "flores" / "samples.jsonl").read_text().splitlines()),
                  key=lambda r: int(r["id"].rsplit("/", 1)[1]))
    hyp_file, ref_file = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp_file.write_text("".join(r["outputs"][0].replace("\n", " ") + "\n" for r in recs), encoding="utf-8")
    ref_file.write_text("".join(r["reference"] + "\n" for r in recs), encoding="utf-8")
    cli = sacrebleu_cli(hyp_file, ref_file, "-m", "bleu", "-tok", "ko-mecab")
    assert round(m["bleu"], 4) == pytest.approx(cli, abs=1e-4)


def test_missing_korean_tokenizer_is_refused_before_generation(tiny_model, data_dir, tmp_path, monkeypatch, capsys):
    """Without sacrebleu[ko] an en→ko run stops with one line before any model is loaded or sample generated."""
    from sacrebleu.tokenizers import tokenizer_ko_mecab

    from mt_harness.cli import main
    from harness.metrics import translation

    monkeypatch.setattr(tokenizer_ko_mecab, "MeCab", None)  # what sacrebleu sees when mecab-ko is not installed
    translation._bleu_tokenizer_ok.cache_clear()
    out = tmp_path / "o"
    try:
        rc = main(["run", "--tasks", "flores", "--model", str(tiny_model), "--limit", "2", "--langs", "de-en,en-ko",
                   "--data-dir", str(data_dir), "--output", str(out)])
    finally:
        translation._bleu_tokenizer_ok.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "en-ko" in err[0] and "ko-mecab" in err[0] and "sacrebleu[ko]" in err[0]
    assert not out.exists()  # nothing generated, nothing written
