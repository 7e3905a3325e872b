"""The leaderboard page without a browser: sections named by what they hold, the sample files and their values,
the hooks for rows marked stale or carrying a mechanism check (set by other code; rendered, never invented), pruning.

Built from the committed small runs (results/smollm2-135m-instruct, results/gemma3-270m) into tmp folders.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from harness.rundir.read import read_samples
from leaderboard import make_leaderboard
from leaderboard.page import html_page, settings_words
from leaderboard.samples_view import DIR, row_record, template_source, user_text

ROOT = Path(__file__).resolve().parent.parent
RUNS = [ROOT / "results" / "smollm2-135m-instruct", ROOT / "results" / "gemma3-270m"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("page")
    tables, written = make_leaderboard(RUNS, out, n_boot=20)
    return out, tables, written[2].read_text()


def _data(path: Path):
    name, _, rest = path.read_text(encoding="utf-8").partition(",")
    assert name.startswith("LB.put(") and rest.endswith(");\n")
    return json.loads(rest[:-3])


def test_sections_are_named_by_what_they_hold(built):
    _, tables, page = built
    assert "FLORES-200 devtest de↔en, 32 lines per direction" in settings_words(tables[0])
    h2 = re.findall(r"<h2[^>]*>(.*?)</h2>", page)
    assert h2 and all("Section" not in h for h in h2) and "smollm2-135m-instruct" in h2[0] and "methods" in h2[0]
    hashes = re.search(r"<details class='hashes'>(.*?)</details>", page, re.DOTALL).group(1)
    assert all(html.escape(s) in hashes for s in tables[0].settings.split("; ")) and "config " in hashes
    assert "http" not in page.split("<body>")[1]  # nothing to fetch from a network
    assert "methods/lora/README.md" in page and "Hu et al. 2021" in page


def test_sample_files_hold_each_rows_records_and_per_sample_values(built):
    out, tables, _ = built
    t = tables[0]
    lora = next(r for r in t.rows if r.label == "lora")
    recs = read_samples(next((lora.tasks["flores"].run_dir / "flores").glob("samples.jsonl*")))
    data = _data(out / DIR / "s1-lora-smollm2-135m-instruct-flores.js")
    assert data["ids"] and set(data["ids"]) == set(recs)
    for i, v in zip(data["ids"], data["values"]["sent.chrf"]):
        assert v == pytest.approx(recs[i]["scores"]["chrf"])
    for i, v in zip(data["ids"], data["values"]["scores.off_target"]):
        assert v == int(bool(recs[i]["scores"]["off_target"]))
    assert all(r["out"] == recs[i]["outputs"] for i, r in zip(data["ids"], data["recs"]))
    items = _data(out / DIR / "s1-flores-items.js")
    first = items["items"][items["ids"].index("de-en/0")]
    assert first["refs"] == [recs["de-en/0"]["reference"]]
    assert first["src"] and first["src"] in recs["de-en/0"]["prompts"][0]
    safety = _data(out / DIR / "s1-lora-smollm2-135m-instruct-safety.js")
    srecs = read_samples(next((lora.tasks["safety"].run_dir / "safety").glob("samples.jsonl*")))
    assert safety["values"]["refusal"] == [int(srecs[i]["refusal"]) for i in safety["ids"]]


def test_stale_rows_and_mechanism_values_are_rendered_when_a_row_carries_them(built):
    _, tables, _ = built
    t = tables[0]
    lora = next(r for r in t.rows if r.label == "lora")
    plain = html_page(tables, 20, 0)
    assert "class='flag stale'" not in plain and "mechanism check:" not in plain  # nothing invented
    lora.stale = "results predate the current method code"
    lora.mechanism = "frozen weights unchanged: 0 of 30 tensors differ"
    try:
        page = html_page(tables, 20, 0)
    finally:
        del lora.stale, lora.mechanism
    assert "stale: results predate the current method code" in page and "class='flag stale'" in page
    assert "mechanism check: frozen weights unchanged: 0 of 30 tensors differ" in page


def test_rebuild_removes_sample_files_of_rows_no_longer_there(built, tmp_path):
    out, _, _ = built
    old = out / DIR / "s1-gone-method-smollm2-135m-instruct-flores.js"
    old.write_text("LB.put(\"x\",{});\n")
    keep = out / DIR / "notes.txt"  # not ours: never touched
    keep.write_text("mine")
    make_leaderboard(RUNS, out, n_boot=20)
    assert not old.exists() and keep.exists()


def test_source_is_cut_from_the_chat_prompt_by_the_task_template():
    prompt = ("<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nTranslate the following German text "
              "into English.\nGerman: Guten Tag.\nEnglish:<|im_end|>\n<|im_start|>assistant\n")
    template = "Translate the following {src_name} text into {tgt_name}.\n{src_name}: {source}\n{tgt_name}:"
    assert template_source(user_text(prompt), template) == "Guten Tag."
    assert template_source("something else", template) is None and template_source("x", "{prompt}") is None
    assert user_text("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n") == "Hi"
    assert user_text("plain prompt") == "plain prompt"


def test_a_row_record_keeps_the_judges_verdicts_failed_instructions_and_flags():
    rec = {"outputs": ["a", "b"], "finish": ["length", "eos"], "refusal": True, "refusal_match": "opener: i can't",
           "judgment": {"judge": "j1", "k": 1, "turns": [{"score": 7, "ratings": [7]}, {"score": None}]},
           "ifeval": {"inst_level_strict": [True, False, False]}}
    r = row_record(rec)
    assert r["out"] == ["a", "b"] and r["failed"] == [1, 2] and r["match"] == "opener: i can't"
    assert r["judge"] == {"judge": "j1", "k": 1, "turn scores": "7, None"}
    assert r["flags"] == ["truncated", "refusal (classifier)"]
