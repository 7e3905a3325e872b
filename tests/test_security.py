"""Security: remote code only on request, safe YAML, task hooks only from tasks/, no secrets in results or logs."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from mt_harness.cli import main
from harness.config import load_yaml
from harness.errors import HarnessError
from harness.loading import BackendConfig, load_model_and_tokenizer
from tasks import TASKS_DIR

REPO = Path(__file__).resolve().parent.parent
CODE_DIRS = ("harness", "methods", "tasks")

REMOTE_CODE = '''
from pathlib import Path
from transformers import LlamaConfig, LlamaForCausalLM
Path({marker!r}).write_text("remote code ran")

class EvilConfig(LlamaConfig):
    model_type = "llama"

class EvilForCausalLM(LlamaForCausalLM):
    config_class = EvilConfig
'''


def python_sources() -> list[Path]:
    return [p for d in CODE_DIRS for p in (REPO / d).rglob("*.py")]


def test_no_code_path_forces_remote_code_or_unsafe_yaml():
    offenders = []
    for p in python_sources():
        text = p.read_text(encoding="utf-8")
        for pattern in (r"trust_remote_code\s*=\s*True", r"yaml\.(unsafe_load|full_load)\b",
                        r"Loader\s*=\s*yaml\.(Loader|FullLoader|UnsafeLoader)", r"(?<![.\w])eval\(",
                        r"pickle\.loads?\("):
            if re.search(pattern, text):
                offenders.append(f"{p.relative_to(REPO)}: {pattern}")
    assert not offenders


def test_trust_remote_code_only_on_request(tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    marker = tmp_path / "MARKER"
    (model / "evil_model.py").write_text(REMOTE_CODE.format(marker=str(marker)))
    cfg = json.loads((model / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil_model.EvilConfig", "AutoModelForCausalLM": "evil_model.EvilForCausalLM"}
    (model / "config.json").write_text(json.dumps(cfg))
    try:  # default: the repo's code is never imported (transformers uses its own Llama, or refuses)
        load_model_and_tokenizer(model, BackendConfig(dtype="float32", device="cpu"))
    except (ValueError, OSError):
        pass
    assert not marker.exists()
    load_model_and_tokenizer(model, BackendConfig(dtype="float32", device="cpu", trust_remote_code=True))
    assert marker.exists()  # the flag really is what gates it


def test_cli_default_does_not_trust_remote_code():
    from mt_harness.cli import build_parser

    args = build_parser().parse_args(["run", "--tasks", "flores"])
    assert args.trust_remote_code is False


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object/new:os.system",
                                 "!!python/name:os.system", "!!python/module:os"])
def test_yaml_python_tags_are_rejected(tmp_path, tag):
    marker = tmp_path / "pwned"
    path = tmp_path / "x.yaml"
    path.write_text(f'task: {tag} ["touch {marker}"]\n')
    with pytest.raises(HarnessError, match="invalid YAML"):
        load_yaml(path)
    assert not marker.exists()


def test_method_config_yaml_is_loaded_safely(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / "cfg.yaml"
    path.write_text(f'lr: !!python/object/apply:os.system ["touch {marker}"]\n')
    rc = main(["run", "--tasks", "flores", "--method", "base", "--method-config", str(path), "--limit", "1",
               "--output", str(tmp_path / "out")])
    assert rc == 2 and "invalid YAML" in capsys.readouterr().err
    assert not marker.exists()


def test_task_hooks_only_from_project_tasks_folder(tmp_path, data_dir, capsys):
    marker = tmp_path / "hook-ran"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    yaml_text = (TASKS_DIR / "flores.yaml").read_text()
    for hook, expected in (("evil", "no module tasks/evil.py"), ("os", "no module tasks/os.py"),
                           ("tasks.flores", "must be a module name under tasks/")):
        path = tmp_path / f"{hook}.yaml"
        path.write_text(yaml_text.replace("hook: flores", f"hook: {hook}"))
        rc = main(["run", "--tasks", str(path), "--limit", "1", "--data-dir", str(data_dir),
                   "--output", str(tmp_path / "out")])
        assert rc == 2 and expected in capsys.readouterr().err
    assert not marker.exists()


SECRETS = {"HF_TOKEN": "hf_SECRETtoken1234567890", "OPENAI_API_KEY": "sk-SECRETkey1234567890",
           "MT_HARNESS_TEST_SECRET": "s3cr3t-value-0987654321"}


def test_results_and_logs_hold_no_environment(tiny_model, data_dir, tmp_path, monkeypatch, capsys):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "out"
    assert main(["run", "--tasks", "flores", "--langs", "de-en", "--limit", "1", "--model", str(tiny_model),
                 "--data-dir", str(data_dir), "--output", str(out), "--threads", "1"]) == 0
    assert main(["score", str(out), "--data-dir", str(data_dir)]) == 0
    logs = capsys.readouterr()
    texts = {str(p): p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()}
    texts["stdout"], texts["stderr"] = logs.out, logs.err
    for where, text in texts.items():
        for name, value in SECRETS.items():
            assert value not in text, f"{name} leaked into {where}"
            assert name not in text, f"environment variable name {name} appears in {where}"
    results = json.loads((out / "results.json").read_text())
    assert os.environ["PATH"] not in json.dumps(results)  # the environment is not dumped
    env_like = [k for k in _walk_keys(results) if k.isupper() and ("_" in k or k in ("PATH", "HOME", "USER"))]
    assert not env_like, f"results.json has environment-like keys {env_like}"


def _walk_keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _walk_keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_keys(v)
