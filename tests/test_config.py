"""The strict task-config loader: duplicate keys, unknown keys, wrong types and bad hooks are one-line errors."""

from __future__ import annotations

import pytest

from harness.config import load_yaml, parse_sets
from harness.data import DataSource
from harness.errors import HarnessError
from tasks import load_task, load_task_config, task_names

GOOD = """\
task: mini
hook: flores
description: test
languages: [de, en]
dataset: {local: flores/flores200_dataset/devtest, split: devtest}
prompt: {template: "{src_name}: {source}\\n{tgt_name}:"}
generation: {max_new_tokens: 16}
"""


def write(tmp_path, text):
    p = tmp_path / "mini.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_every_shipped_task_config_loads():
    assert "flores" in task_names()
    for name in task_names():
        cfg, _ = load_task_config(name)
        assert cfg.task == name and cfg.languages


def test_good_custom_config_loads(tmp_path, data_dir):
    task = load_task(str(write(tmp_path, GOOD)), DataSource(data_dir))
    assert task.all_subsets() == ["de-en", "en-de"]
    assert task.docs("de-en")[0]["source"]


@pytest.mark.parametrize("mutation,needle", [
    (lambda s: s + "languages: [fr]\n", "duplicate key 'languages'"),
    (lambda s: s + "lenguages: [fr]\n", "unknown key 'lenguages'"),
    (lambda s: s.replace("max_new_tokens: 16", "max_new_tokens: many"), "generation.max_new_tokens: expected int"),
    (lambda s: s.replace("max_new_tokens: 16", "max_new_tokens: 0"), "must be >= 1"),
    (lambda s: s.replace("languages: [de, en]", "languages: [de, de]"), "'de' is listed twice"),
    (lambda s: s.replace("hook: flores", "hook: ../evil"), "must be a module name under tasks/"),
    (lambda s: s.replace("hook: flores", "hook: nosuch"), "no module tasks/nosuch.py"),
    (lambda s: s.replace("description: test\n", ""), "description: required key is missing"),
    (lambda s: s + "options: {pivot: en, directionz: []}\n", "unknown key 'directionz'"),
    (lambda s: s.replace("{template:", "{chat: sometimes, template:"), "'sometimes' is not one of"),
    (lambda s: "- a\n- b\n", "expected a mapping at the top level"),
    (lambda s: s + "x: !!python/object/apply:os.system ['echo hi']\n", "invalid YAML"),
])
def test_bad_configs_name_the_field(tmp_path, data_dir, mutation, needle):
    with pytest.raises(HarnessError) as e:
        load_task(str(write(tmp_path, mutation(GOOD))), DataSource(data_dir))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_non_utf8_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"task: \xff\xfe\n")
    with pytest.raises(HarnessError, match="not valid UTF-8"):
        load_yaml(p)


def test_extraction_options_do_not_change_the_comparable_config(data_dir):
    """RaDis reads its outputs with `keep: first_line`; its FLORES scores stay comparable with base's."""
    from harness.io import stable_hash
    from harness.task import comparable_config, config_dict

    task = load_task("flores", DataSource(data_dir))
    before, full = stable_hash(comparable_config(task)), stable_hash(config_dict(task))
    task.options.keep = "first_line"
    assert stable_hash(comparable_config(task)) == before and stable_hash(config_dict(task)) != full
    task.cfg.prompt.template += " "
    assert stable_hash(comparable_config(task)) != before


def test_yaml_scalars_are_yaml_1_2_in_files_and_sets(tmp_path):
    """Only true/false are booleans (YAML 1.1 reads no/on/yes as booleans: `--set tags=no` became False), and 1e-4 is
    a float (YAML 1.1 reads it as a string, so `--set train.lr=1e-4` failed the float check)."""
    sets = parse_sets(["tags=no", "a=true", "b=False", "c=on", "lr=1e-4", "d=5.0e-5", "n=8", "l=[de, no]"])
    assert sets == {"tags": "no", "a": True, "b": False, "c": "on", "lr": 1e-4, "d": 5e-5, "n": 8, "l": ["de", "no"]}
    assert type(sets["n"]) is int
    p = tmp_path / "c.yaml"
    p.write_text("lang: no\nflag: yes\nlr: 1e-4\nok: true\n")
    assert load_yaml(p) == {"lang": "no", "flag": "yes", "lr": 1e-4, "ok": True}
