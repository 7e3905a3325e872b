"""IFEval: our scores equal lm-eval's `ifeval` (utils.process_results + its aggregation, called directly) on
fixed outputs that pass and fail many instruction types, and an end-to-end run on a tiny model."""

from __future__ import annotations

import json

import pytest

from mt_harness.cli import main
from harness.data import DataSource
from tasks import load_task
from tasks.ifeval import seed_for

# hand-written outputs: (IFEval key, output). Several are built to pass, others to fail only in loose/strict.
HAND = [
    (1001, "Hark thou traveler\nFirst to Tokyo we go\nThen Kyoto fair"),  # no_comma: passes
    (1001, "Hark, thou traveler"),  # no_comma: fails
    (1019, "what do the two young boys with toy guns and horns do?"),  # lowercase: passes
    (1019, "What do the boys do?"),  # lowercase: fails
    (1075, '```json\n{"ad": "Comfy diapers", "tagline": "Dry and happy"}\n```'),  # json: passes
    (1075, "Here is the ad:\n{\"ad\": \"x\"}"),  # json: loose only (first line removed)
    (1128, "The sentiment is negative. Is there anything else I can help with?"),  # end phrase: passes
    (1128, "The sentiment is negative. Is there anything else I can help with?\n**"),  # loose only
    (1322, "<<Kotlin vs Java>>\nKotlin is concise; Java is ubiquitous."),  # title: passes
    (1147, "The work addressed a defect in the field."),  # forbidden word 'field': fails
    (1147, "The work addressed a defect raised by a colleague."),  # passes
    (102, "* ball gown\n* sweats\n* the event"),  # exactly 3 bullets: passes
    (102, "* one\n* two"),  # fails
    (1566, "REGRETS IN THE RAIN\nI SHOULD HAVE CALLED YOU BACK."),  # all capitals: passes
    (122, '"The internet changed everything for teenagers."'),  # quotation: passes
    (122, '*"The internet changed everything."*'),  # loose only (asterisks removed)
    (1108, "ಹ್ಯಾಂಬರ್ಗರ್‌ಗಳು ಸ್ಯಾಂಡ್‌ವಿಚ್‌ಗಳು ಅಲ್ಲ ಎಂದು ಅನೇಕರು ಹೇಳುತ್ತಾರೆ."),  # Kannada: passes
    (1108, "Hamburgers are sandwiches, technically."),  # fails
    (1082, "He woke up inside a game.\n***\nHe found the exit and left."),  # 2 paragraphs with *** divider
    (1000, "Raymond III was a count. " * 80),  # many words but commas absent, no highlights: mixed
]
# generic outputs tried on every prompt: empty, blank, the prompt itself, lower/upper case, markdown, json, long
GENERIC = ["", "   \n", None, "lower", "upper",
           "# Title\n*highlighted section*\n\n* a\n* b\n\nP.S. thanks", '{"answer": "yes"}',
           "Section 1\nword, word. " * 60 + "\n\nAny other questions?"]


def _generic(out, doc):
    if out is None:
        return doc["prompt"]
    if out == "lower":
        return doc["prompt"].lower()
    if out == "upper":
        return doc["prompt"].upper()
    return out


@pytest.fixture(scope="module")
def task(data_dir):
    t = load_task("ifeval", DataSource.resolve(str(data_dir)))
    t.preflight()
    return t


def _lmeval_reference(doc: dict, response: str) -> dict:
    """lm-eval's own per-sample scoring. Two prompts draw random checker arguments from the global `random`
    state (tasks/ifeval.py RANDOM_NOTE): give lm-eval the same state our hook uses."""
    import random

    from lm_eval.tasks.ifeval import utils

    random.seed(seed_for(doc["key"]))
    return utils.process_results({"key": doc["key"], "instruction_id_list": doc["instruction_id_list"],
                                  "prompt": doc["prompt"], "kwargs": doc["kwargs"]}, [response])


def test_docs(task):
    docs = task.docs("en")
    assert len(docs) == 541 and len({d["id"] for d in docs}) == 541
    msgs = task.messages(docs[0], [])
    assert msgs == [{"role": "user", "content": docs[0]["prompt"]}]
    assert task.generation(docs[0], 0).temperature == 0.0


def test_scores_equal_lmeval_on_fixed_outputs(task):
    from lm_eval.tasks.ifeval import utils

    by_key = {d["key"]: d for d in task.docs("en")}
    cases = [(by_key[k], out) for k, out in HAND]
    cases += [(d, _generic(g, d)) for d in task.docs("en") for g in GENERIC]
    records, refs = [], []
    for doc, out in cases:
        ours = task.score(doc, [task.clean(doc, out)[0]])
        ref = _lmeval_reference(doc, out)
        assert ours["ifeval"]["prompt_level_strict"] == ref["prompt_level_strict_acc"], (doc["key"], out)
        assert ours["ifeval"]["prompt_level_loose"] == ref["prompt_level_loose_acc"], (doc["key"], out)
        assert ours["ifeval"]["inst_level_strict"] == ref["inst_level_strict_acc"], (doc["key"], out)
        assert ours["ifeval"]["inst_level_loose"] == ref["inst_level_loose_acc"], (doc["key"], out)
        records.append({**ours, "n_new_tokens": [1]})
        refs.append(ref)
    # the fixed outputs really exercise both outcomes, and strict differs from loose somewhere
    hand = [r["ifeval"] for r in records[:len(HAND)]]
    assert sum(h["prompt_level_strict"] for h in hand) >= 8 and sum(not h["prompt_level_loose"] for h in hand) >= 4
    assert sum(h["prompt_level_loose"] and not h["prompt_level_strict"] for h in hand) >= 3
    kinds = {i for r in records for i, ok in zip(r["instruction_id_list"], r["ifeval"]["inst_level_strict"]) if ok}
    assert len(kinds) >= 15  # many instruction types pass at least once
    agg = task.aggregate("en", records)
    mean = sum(r["prompt_level_strict_acc"] for r in refs) / len(refs)
    assert agg["prompt_level_strict_acc"] == pytest.approx(mean, abs=1e-12)
    assert agg["prompt_level_loose_acc"] == pytest.approx(
        sum(r["prompt_level_loose_acc"] for r in refs) / len(refs), abs=1e-12)
    assert agg["inst_level_strict_acc"] == pytest.approx(
        utils.agg_inst_level_acc([r["inst_level_strict_acc"] for r in refs]), abs=1e-12)
    assert agg["inst_level_loose_acc"] == pytest.approx(
        utils.agg_inst_level_acc([r["inst_level_loose_acc"] for r in refs]), abs=1e-12)
    assert 0 < agg["prompt_level_strict_acc"] < agg["prompt_level_loose_acc"] < 1


def test_end_to_end_tiny_model(tiny_model, data_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--method", "base", "--tasks", "ifeval", "--limit", "3", "--model", str(tiny_model),
                 "--data-dir", str(data_dir), "--threads", "1", "--output", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())["tasks"]["ifeval"]
    recs = [json.loads(x) for x in (out / "ifeval" / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 3 and res["n_samples"] == 3 and "rate" in res["truncated"]
    by_key = {d["key"]: d for d in load_task("ifeval", DataSource.resolve(str(data_dir))).docs("en")}
    refs = [_lmeval_reference(by_key[int(r["id"].split("/")[1])], r["raw"][0]) for r in recs]
    m = res["metrics"]["en"]
    assert m["prompt_level_strict_acc"] == pytest.approx(sum(r["prompt_level_strict_acc"] for r in refs) / 3)
    from lm_eval.tasks.ifeval import utils

    assert m["inst_level_loose_acc"] == pytest.approx(utils.agg_inst_level_acc([r["inst_level_loose_acc"]
                                                                                for r in refs]))
    assert res["summary"]["prompt_level_strict_acc"] == m["prompt_level_strict_acc"]
    assert "lm-eval" in res["metadata"]["reference"]


def test_bad_input_file_is_one_clear_error(tmp_path, data_dir, monkeypatch):
    from harness.errors import HarnessError
    from tasks.ifeval import use_nltk_data

    monkeypatch.delenv("NLTK_DATA", raising=False)
    use_nltk_data(data_dir / "general" / "ifeval" / "nltk_data")  # this data dir has no nltk_data of its own

    root = tmp_path / "data" / "general" / "ifeval"
    root.mkdir(parents=True)
    (root / "input_data.jsonl").write_text('{"key": 1, "prompt": "Hi", '
                                           '"instruction_id_list": ["punctuation:no_comma"]}\n')
    t = load_task("ifeval", DataSource.resolve(str(tmp_path / "data"), allow_hub=False))
    with pytest.raises(HarnessError, match="row 1 lacks field 'kwargs'"):
        t.docs("en")
    (root / "input_data.jsonl").write_text('{"key": 1, "prompt": "Hi", "instruction_id_list": ["no:such"], '
                                           '"kwargs": [{}]}\n')
    t = load_task("ifeval", DataSource.resolve(str(tmp_path / "data"), allow_hub=False))
    with pytest.raises(HarnessError, match="'no:such' is not in lm-eval's registry"):
        t.preflight()
