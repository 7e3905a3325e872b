"""Tasks declare what methods need (issue #25): the `translation` ability (typed `TranslationDoc`), which
`Request.langs`, composite methods' direction checks and the supervised training prompt follow, whatever the
task's name; YAML-only test sets included."""

from __future__ import annotations

import pytest

from harness.abilities import TranslationDoc, refuse_directions, request_langs, translation_doc
from mt_harness.cli import main
from harness.data import DataSource
from harness.errors import HarnessError
from harness.method import TrainContext
from harness.models import resolve_model
from tasks import load_task, training_prompts
from harness.training.data import Example
from harness.training.pipeline import prompt_messages, training_prompt

CUSTOM = """\
task: my_set
hook: translation
description: a YAML-only test set with its own prompt
languages: [de-en]
prompt:
  template: "{src_name} -> {tgt_name}: {source}"
  chat: "off"
generation:
  max_new_tokens: 8
options:
  source: "/nonexistent/my.{src}"
  references: ["/nonexistent/my.{tgt}"]
"""


def test_translation_tasks_declare_the_ability_by_class_not_name(data_dir):
    data = DataSource(data_dir)
    for name in ("flores", "wmt16", "multi30k"):
        task = load_task(name, data)
        doc = task.docs(task.selected[0])[0]
        td = translation_doc(task, doc)
        assert task.translation and isinstance(td, TranslationDoc) and td.direction == task.selected[0]
        assert request_langs(task, doc) == (td.src, td.tgt)
    mgsm = load_task("mgsm", data)
    assert not mgsm.translation and mgsm.answer_rounds
    assert translation_doc(mgsm, {"lang": "de"}) is None and request_langs(mgsm, {"lang": "de"}) is None
    with pytest.raises(HarnessError, match="lacks 'source'"):
        translation_doc(load_task("flores", data), {"src": "de", "tgt": "en"})


def test_refuse_directions_covers_every_translation_task(data_dir):
    data = DataSource(data_dir)
    wmt, safety = load_task("wmt16", data), load_task("safety", data)
    wmt.select(["de-en", "cs-en"])
    refuse_directions([safety], lambda d: False, "route", "")  # not a translation task: nothing to check
    with pytest.raises(HarnessError, match="--tasks wmt16: direction cs-en is served by no route"):
        refuse_directions([safety, wmt], lambda d: d == "de-en", "route", "")


def test_relay_refuses_an_unserved_yaml_test_set_direction_before_any_work(tiny_model_factory, data_dir, tmp_path,
                                                                           capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    source, model = tiny_model_factory("qwen2"), tiny_model_factory("llama")
    recipe = tmp_path / "relay.yaml"
    recipe.write_text(f"relays:\n  - pairs: [de-en]\n    source: {source}\n    target: '{{model}}'\n"
                      "data:\n  pairs: [de-en]\n  max_per_pair: 4\ntrain:\n  max_steps: 1\n  batch_size: 2\n")
    capsys.readouterr()  # (building the tiny models above draws progress bars)
    rc = main(["run", "--method", "relay", "--tasks", "wmt16", "--langs", "cs-en", "--limit", "2", "--model",
               str(model), "--output", str(tmp_path / "out"), "--data-dir", str(data_dir),
               "--method-config", str(recipe)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "--tasks wmt16: direction cs-en is served by no relay composition (served: de-en)" in err[0]
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_supervised_methods_train_on_the_evaluated_translation_prompt(data_dir, tmp_path, tiny_model):
    data = DataSource(data_dir)
    (tmp_path / "my_set.yaml").write_text(CUSTOM)
    custom = load_task(str(tmp_path / "my_set.yaml"), data)

    def ctx(tasks):
        return TrainContext(model=resolve_model(str(tiny_model)), data=data, out_dir=tmp_path, eval_tasks=tasks,
                            prompts=training_prompts(tasks, data))

    # the FLORES prompt (evaluating FLORES, a YAML test set with the same prompt, or no translation task): no
    # change to the artifact key, so artifacts trained before keep their config hashes
    for tasks in ([], [load_task("flores", data)], [load_task("wmt16", data)], [load_task("safety", data)]):
        assert training_prompt(ctx(tasks)) is None
    # a test set with its own prompt: trained on it, and the prompt is part of the key and the report
    assert training_prompt(ctx([custom])) == {"task": "my_set", "template": "{src_name} -> {tgt_name}: {source}",
                                              "system": None, "chat": "off"}
    messages, chat = prompt_messages(ctx([load_task("safety", data), custom]))
    ex = Example("de", "en", "Hallo Welt.", "Hello world.", "test")
    assert chat == "off" and messages(ex) == [{"role": "user", "content": "German -> English: Hallo Welt."}]


def test_xbridge_refuses_a_direction_its_nmt_model_cannot_write_before_any_work(tiny_model, data_dir, tmp_path,
                                                                                capsys, monkeypatch):
    from xbridge_tiny import build_tiny_nmt

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    nmt = build_tiny_nmt(tmp_path / "nmt")  # language tokens: eng deu ces rus zho fra (no tur_Latn)
    cfg = tmp_path / "xbridge.yaml"
    cfg.write_text(f"nmt_model: {nmt}\n")
    capsys.readouterr()
    rc = main(["run", "--method", "xbridge", "--tasks", "wmt16", "--langs", "cs-en,tr-en", "--limit", "2",
               "--model", str(tiny_model), "--output", str(tmp_path / "out"), "--data-dir", str(data_dir),
               "--method-config", str(cfg)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "--tasks wmt16: direction tr-en is served by no xbridge NMT model" in err[0] and "nllb" in err[0]
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()
