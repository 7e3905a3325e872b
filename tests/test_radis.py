"""RaDis: rationale cache reuse, λ-weighted loss, translation extraction, one step + `harness run`."""

from __future__ import annotations

import json

import pytest
import torch

from harness.backends.hf import HFBackend
from mt_harness.cli import main
from harness.data import DataSource
from harness.loading import BackendConfig, load_for_training
from harness.method import TrainContext
from harness.models import resolve_model
from harness.training import trainer
from harness.training.data import Example
from methods.radis.rationales import (
    EMPTY_WARN,
    empty_warning,
    rationale_stats,
    rationales,
)
from tasks._translation import clean_translation


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


def _examples():
    return [Example("de", "en", "Guten Morgen.", "Good morning.", "t:1"),
            Example("en", "de", "Thank you.", "Danke.", "t:2")]


def _msgs(ex):
    return [{"role": "user", "content": f"Translate into {ex.tgt}: {ex.source}"}]


def test_rationale_cache_is_reused_not_regenerated(tiny_model, data_dir, monkeypatch):
    ctx = TrainContext(model=resolve_model(str(tiny_model)), data=DataSource(data_dir), out_dir=None,
                       backend=BackendConfig(device="cpu", batch_size=2))
    first, stats = rationales(_examples(), _msgs, "auto", ctx, max_new_tokens=8, batch_size=2)
    assert stats["generated"] == 2 and stats["reused"] == 0 and len(first) == 2

    def boom(*a, **k):
        raise AssertionError("rationale regenerated although cached")

    monkeypatch.setattr(HFBackend, "generate", boom)
    again, stats = rationales(_examples(), _msgs, "auto", ctx, max_new_tokens=8, batch_size=2)
    assert again == first and stats["generated"] == 0 and stats["reused"] == 2
    # a different bound is a different request: not served from the cache
    with pytest.raises(AssertionError, match="regenerated"):
        rationales(_examples(), _msgs, "auto", ctx, max_new_tokens=9, batch_size=2)


def test_explain_variant_asks_a_second_turn(tiny_model, data_dir):
    from methods.radis.rationales import EXPLAIN_PROMPT, join, rationale_request

    ex = _examples()[0]
    msgs, prefix = rationale_request(ex, _msgs, "explain")
    assert prefix == "" and msgs[-2] == {"role": "assistant", "content": ex.reference}
    assert msgs[-1]["content"] == EXPLAIN_PROMPT
    assert rationale_request(ex, _msgs, "continue") == (_msgs(ex), ex.reference)
    assert join("Hi.", " why", "explain") == "Hi.\n\nwhy" and join("Hi.", " why", "continue") == "Hi. why"
    ctx = TrainContext(model=resolve_model(str(tiny_model)), data=DataSource(data_dir), out_dir=None,
                       backend=BackendConfig(device="cpu", batch_size=2))
    rationales(_examples(), _msgs, "auto", ctx, max_new_tokens=4, batch_size=2)
    _, stats = rationales(_examples(), _msgs, "auto", ctx, max_new_tokens=4, batch_size=2, mode="explain")
    assert stats["generated"] == 2  # a different prompt: never served from the "continue" records


def test_lambda_weights_the_rationale_loss(tiny_model):
    model, tok = load_for_training(tiny_model, BackendConfig(device="cpu"))
    ref, rat = "Good morning.", "\nThis is a polite greeting."
    f = trainer.encode(tok, _msgs(_examples()[0]), ref + rat, "auto", 128, split=len(ref))
    seg = f["segments"]
    assert trainer.TRANSLATION in seg and trainer.RATIONALE in seg
    assert seg.index(trainer.RATIONALE) > max(i for i, s in enumerate(seg) if s == trainer.TRANSLATION)
    trans_ids = [t for t, s in zip(f["input_ids"], seg) if s == trainer.TRANSLATION]
    assert tok.decode(trans_ids).strip() == ref
    batch = trainer.collate([f], tok.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    l0, parts = trainer.loss_fn(logits, batch, lam=0.0)
    l2, _ = trainer.loss_fn(logits, batch, lam=2.0)
    assert parts["rationale"] > 0 and float(l0) == pytest.approx(parts["translation"])
    assert float(l2) == pytest.approx(parts["translation"] + 2.0 * parts["rationale"], rel=1e-5)


@pytest.mark.parametrize("raw,expected", [
    ("Guten Morgen.\nThis translation keeps the polite register.", "Guten Morgen."),
    ("Guten Morgen. Note: the register is formal.", "Guten Morgen."),
    ("Guten Morgen.\n\nExplanation: formal.", "Guten Morgen."),
    ("Guten Morgen.", "Guten Morgen."),
])
def test_first_line_extracts_translation_before_rationale(raw, expected):
    out, steps = clean_translation(raw, "German", "first_line")
    assert out == expected and (steps or raw == expected)


def test_radis_trains_one_step_and_evaluates(tiny_model, data_dir, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("data:\n  pairs: [de-en]\n  max_per_pair: 4\ntrain:\n  max_steps: 1\n  batch_size: 2\n"
                      "  max_length: 128\nrationale_max_new_tokens: 8\nlam: 0.5\n")
    out = tmp_path / "out"
    rc = main(["run", "--method", "radis", "--tasks", "flores", "--langs", "de-en", "--limit", "2", "--model",
               str(tiny_model), "--output", str(out), "--data-dir", str(data_dir), "--method-config", str(recipe),
               "--threads", "1"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["method"]["name"] == "radis" and res["method"]["config"]["lam"] == 0.5
    assert res["tasks"]["flores"]["config"]["options"]["keep"] == "first_line"
    (adir,) = list((tmp_path / "cache" / "artifacts" / "radis").iterdir())
    manifest = json.loads((adir / "artifact.json").read_text())
    assert manifest["kind"] == "full" and manifest["rationales"]["generated"] == 4
    # the rationale statistics travel with the artifact into results.json
    assert res["method"]["artifact"]["report"]["rationales"] == manifest["rationales"]
    assert manifest["rationales"]["n"] == 4 and sum(manifest["rationales"]["finish"].values()) == 4
    assert "extraction_unclean" in res["tasks"]["flores"]["metrics"]["de-en"]
    losses = [json.loads(x) for x in (adir / "loss.jsonl").read_text().splitlines()]
    assert len(losses) == 1 and losses[0]["loss"] >= losses[0]["translation"]
    rats = [json.loads(x) for x in next((tmp_path / "cache" / "rationales").glob("*.jsonl")).read_text().splitlines()]
    assert len(rats) == 4 and all(r["max_new_tokens"] == 8 for r in rats)


def test_rationale_stats_match_a_direct_computation():
    import statistics

    recs = [{"rationale": "", "n_new_tokens": 1, "finish": "eos"},
            {"rationale": "  \n", "n_new_tokens": 2, "finish": "eos"},
            {"rationale": "The word Morgen means morning.", "n_new_tokens": 7, "finish": "eos"},
            {"rationale": "The sentence is a greeting and", "n_new_tokens": 8, "finish": "length"}]
    s = rationale_stats(recs)
    toks = [r["n_new_tokens"] for r in recs]
    assert s["n"] == 4 and s["empty"] == 2 and s["empty_rate"] == 0.5
    assert s["mean_tokens"] == statistics.mean(toks) and s["median_tokens"] == statistics.median(toks)
    assert s["finish"] == {"eos": 3, "length": 1}
    odd = rationale_stats(recs[:3])
    assert odd["median_tokens"] == statistics.median(toks[:3])
    warn = empty_warning(s, "continue")
    assert warn and "2/4" in warn and "rationale_prompt: explain" in warn and len(warn.splitlines()) == 1
    assert empty_warning(rationale_stats(recs[2:]), "continue") is None
    at_limit = rationale_stats(recs[:1] + recs[2:] * 2)  # 1 of 5 empty = exactly EMPTY_WARN: no warning
    assert at_limit["empty_rate"] == EMPTY_WARN and empty_warning(at_limit, "continue") is None


def test_run_with_empty_rationales_says_so_with_the_fix(tiny_model, data_dir, tmp_path, capsys, monkeypatch):
    from harness.backends.base import Generation

    def empty(self, requests, progress=None):  # a model that ends its turn right after the forced reference
        return [Generation("", "p", 1, 1, "eos") for _ in requests]

    monkeypatch.setattr(HFBackend, "generate", empty)
    from mt_harness.cli import main as cli

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("data:\n  pairs: [de-en]\n  max_per_pair: 2\ntrain:\n  max_steps: 1\n  batch_size: 2\n"
                      "  max_length: 96\nrationale_max_new_tokens: 4\n")
    assert cli(["train", "--method", "radis", "--model", str(tiny_model), "--data-dir", str(data_dir),
                "--method-config", str(recipe), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if "WARNING" in x]
    assert len(lines) == 1 and "2/2 rationales are empty" in lines[0] and "rationale_prompt: explain" in lines[0]
    assert "100% empty" in out
    # a rerun reuses the artifact and still prints the statistics and the warning
    assert cli(["train", "--method", "radis", "--model", str(tiny_model), "--data-dir", str(data_dir),
                "--method-config", str(recipe), "--threads", "1"]) == 0
    again = capsys.readouterr().out
    assert "reusing artifact" in again and "100% empty" in again and "2/2 rationales are empty" in again


# Raw outputs of the committed RaDis run (results/smollm2-135m-instruct/radis, cpu-30 recipe, `explain`
# rationales) and of a `--budget small` run: the translation, a blank line, then the learned rationale.
OBSERVED = [
    ('We have just eaten a full meal, which is a full meal, and we are still waiting for the next one.\n\nThe '
     'original German sentence translates to "Wir haben jetzt 4 Monate alte Mäuse, die Diabetes hatten und jetzt '
     'keinen mehr haben" in English. The translation is "We have just eaten a full meal, which is',
     "English", "We have just eaten a full meal, which is a full meal, and we are still waiting for the next one."),
    ('The CEO of Jamie Siminoff said that he was not happy about the decision to leave his own company, which was '
     'made by his own team.\n\nThe translation is:\n\nThe CEO of Jamie Siminoff said that he was not happy about '
     'the decision', "English", "The CEO of Jamie Siminoff said that he was not happy about the decision to leave "
     "his own company, which was made by his own team."),
    ('In 2017, Siminoff was seen on television channel QVC.\n\nThe translation of the given English sentence is: '
     '"In late 2017, Siminoff appeared on shopping television channel QVC."', "German",
     "In 2017, Siminoff was seen on television channel QVC."),
    ('He wurde ein WiFi-Bahn, er wurde ein Wieb, er wurde ein Wieb.\n\nDie Englisch-English-English-English-',
     "German", "He wurde ein WiFi-Bahn, er wurde ein Wieb, er wurde ein Wieb."),
    ('Danius said: "I\'m here to help you."\n\nThe translation is: "Danius sagte: "I\'m here to help you."\n\nThe '
     'original German sentence is: "Danius sagte: "I\'m here to help you.', "English",
     'Danius said: "I\'m here to help you."'),
    ('German: "The CEO of Jamie Siminoff has been accused of having a malevolent influence, not for himself, but '
     'for his own family\'s legacy."\n\nExplanation: The sentence is a bit unclear and requires a bit of '
     'explanation.', "English", 'German: "The CEO of Jamie Siminoff has been accused of having a malevolent '
     'influence, not for himself, but for his own family\'s legacy."'),
    # the same rationale openings on the translation's own line (not seen in the committed run, which always
    # put a blank line first): the explanation is cut at the sentence that starts it
    ('He said, she was a WLAN-Gear. The original German sentence translates to: "Er sagte, dass er eine '
     'WLAN-Türklingel gebaut habe."', "English", "He said, she was a WLAN-Gear."),
    ('Two Lies, a Film, and a Star. The translation above is a simplified version of the original German sentence.',
     "English", "Two Lies, a Film, and a Star."),
    # a translation of several sentences without explanation words is kept whole, "Note" without a colon too
    ('Er kam an.  Dann ging er wieder. "Gut", sagte sie.', "German",
     'Er kam an.  Dann ging er wieder. "Gut", sagte sie.'),
    ("He wrote a note to the committee. It was read aloud.", "English",
     "He wrote a note to the committee. It was read aloud."),
]


@pytest.mark.parametrize("raw,tgt,expected", OBSERVED)
def test_first_line_extracts_observed_radis_outputs(raw, tgt, expected):
    from tasks._translation import has_rationale_words

    out, _ = clean_translation(raw, tgt, "first_line")
    assert out == expected and not has_rationale_words(out)


def test_rationale_words_are_absent_from_flores_references_and_present_in_rationales(data_dir):
    from tasks._translation import has_rationale_words

    devtest = data_dir / "flores" / "flores200_dataset" / "devtest"
    for code in ("eng_Latn", "deu_Latn"):
        lines = (devtest / f"{code}.devtest").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 1012 and not [x for x in lines if has_rationale_words(x)]
    for raw, _, _ in OBSERVED[:3] + OBSERVED[4:8]:  # the explanation part of each observed output
        assert has_rationale_words(raw)


def test_generation_context_trains_the_rationale_after_the_second_turn(tiny_model):
    """rationale_context generation (explain): one sequence = the two-turn conversation the rationale was generated
    in; the reference is the first reply (translation), the question is masked, the rationale is the second reply;
    continuation (the default before the ablation) keeps reference ⊕ rationale as one reply."""
    from harness.config import to_dict
    from methods.radis.config import RaDisConfig
    from methods.radis.context import features
    from methods.radis.rationales import EXPLAIN_PROMPT

    _, tok = load_for_training(tiny_model, BackendConfig(device="cpu"))
    ex, rat = _examples()[0], "It is a polite greeting."
    gen = RaDisConfig(rationale_prompt="explain", rationale_context="generation")
    (f,) = features(tok, [ex], _msgs, [rat], "auto", gen)
    seg, ids = f["segments"], f["input_ids"]
    text = {s: tok.decode([t for t, x in zip(ids, seg) if x == s]) for s in (trainer.TRANSLATION, trainer.RATIONALE)}
    assert text[trainer.TRANSLATION].startswith(ex.reference) and rat in text[trainer.RATIONALE]
    assert EXPLAIN_PROMPT in tok.decode(ids) and EXPLAIN_PROMPT not in text[trainer.RATIONALE]
    assert seg.index(trainer.RATIONALE) > max(i for i, s in enumerate(seg) if s == trainer.TRANSLATION)
    assert RaDisConfig().rationale_context == "generation"  # the default since the FLORES-dev ablation (README.md)
    cont = RaDisConfig(rationale_prompt="explain", rationale_context="continuation")
    (c,) = features(tok, [ex], _msgs, [rat], "auto", cont)
    assert EXPLAIN_PROMPT not in tok.decode(c["input_ids"]) and c["input_ids"] != ids
    # continuation, the behaviour before the option existed, keeps those runs' config hashes; generation is recorded
    assert "rationale_context" not in to_dict(cont) and to_dict(gen)["rationale_context"] == "generation"
    assert to_dict(RaDisConfig(rationale_prompt="explain"))["rationale_context"] == "generation"
