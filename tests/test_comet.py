"""COMET: reported as skipped (with the reason) when unusable; with the [comet] extra, a tiny COMET model built
here (random XLM-R encoder + regression head, COMET's checkpoint layout, no hub) scores FLORES in one batched call.

The extra pins transformers<5 / numpy<2, so the tests that need `comet` run in their own virtual environment
(see the README); in the main environment they are skipped.
"""

from __future__ import annotations

import json
import shutil

import pytest

import harness.metrics.comet as comet_mod
from mt_harness.cli import main
from harness.metrics.comet import Comet

FLORES = "flores/flores200_dataset/devtest"


@pytest.fixture(scope="module")
def flores_run(tiny_model, data_dir, tmp_path_factory):
    """A finished tiny FLORES run without COMET (two pairs, two documents each)."""
    out = tmp_path_factory.mktemp("comet-run") / "out"
    assert main(["run", "--tasks", "flores", "--langs", "de-en,en-de", "--limit", "2", "--model",
                 str(tiny_model), "--output", str(out), "--data-dir", str(data_dir),
                 "--batch-size", "4"]) == 0
    return out


def _results(out) -> dict:
    return json.loads((out / "results.json").read_text())["tasks"]["flores"]


def test_without_comet_model_the_metric_is_reported_skipped(flores_run):
    flores = _results(flores_run)
    assert flores["metadata"]["comet"] == {"skipped": "no --comet-model given"}
    assert all("comet" not in m for m in flores["metrics"].values()) and "comet" not in flores["summary"]


def test_without_the_package_the_metric_is_reported_skipped(flores_run, data_dir, tmp_path, monkeypatch, capsys):
    fake = tmp_path / "some-comet"
    (fake / "checkpoints").mkdir(parents=True)
    (fake / "checkpoints" / "model.ckpt").write_bytes(b"")
    real_find_spec = comet_mod.importlib.util.find_spec
    monkeypatch.setattr(comet_mod.importlib.util, "find_spec",
                        lambda n, *a: None if n == "comet" else real_find_spec(n, *a))
    out = tmp_path / "run"
    shutil.copytree(flores_run, out)
    assert main(["score", str(out), "--data-dir", str(data_dir), "--comet-model", str(fake)]) == 0
    skipped = _results(out)["metadata"]["comet"]["skipped"]
    assert "unbabel-comet is not installed" in skipped and "[comet]" in skipped
    assert "COMET skipped" in capsys.readouterr().err  # said on the console too, not only in the file


def test_comet_model_path_without_checkpoint_is_one_line_error(flores_run, data_dir, tmp_path, capsys):
    assert main(["score", str(flores_run), "--data-dir", str(data_dir), "--comet-model", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --comet-model") and "checkpoints/model.ckpt" in err and len(err.splitlines()) == 1


# ---- with unbabel-comet installed (the .venv-comet environment) ----------------------------------------------

def build_tiny_comet(root, data_dir):
    """A COMET RegressionMetric on a tiny random XLM-R encoder, saved as checkpoints/model.ckpt + hparams.yaml."""
    import pytorch_lightning as pl
    import torch
    import yaml
    from comet.models import RegressionMetric
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    lines = []
    for code in ("eng_Latn", "deu_Latn"):
        lines += (data_dir / FLORES / f"{code}.devtest").read_text(encoding="utf-8").splitlines()[:200]
    tk = Tokenizer(models.Unigram())  # XLM-R's tokenizer kind (SentencePiece unigram), trained here
    tk.normalizer = normalizers.NFKC()
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    tk.train_from_iterator(lines, trainers.UnigramTrainer(vocab_size=500, unk_token="<unk>",
                                                          special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
    tk.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                      special_tokens=[("<s>", 0), ("</s>", 2)])
    tok = XLMRobertaTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                  cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    enc = root / "encoder"
    tok.save_pretrained(enc)
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=258, pad_token_id=1, bos_token_id=0,
                           eos_token_id=2)
    XLMRobertaModel(cfg, add_pooling_layer=False).save_pretrained(enc)
    model = RegressionMetric(pretrained_model=str(enc.resolve()), hidden_sizes=[32], load_pretrained_weights=True,
                             local_files_only=True)
    (root / "checkpoints").mkdir()
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": pl.__version__}, root / "checkpoints" / "model.ckpt")
    (root / "hparams.yaml").write_text(yaml.safe_dump(dict(model.hparams)))
    return root


@pytest.fixture(scope="module")
def tiny_comet(tmp_path_factory, data_dir):
    pytest.importorskip("comet", reason="unbabel-comet not installed (the [comet] extra lives in .venv-comet)")
    return build_tiny_comet(tmp_path_factory.mktemp("tiny-comet"), data_dir)


def _library_scores(ckpt_dir, triples):
    from comet import load_from_checkpoint

    model = load_from_checkpoint(str(ckpt_dir / "checkpoints" / "model.ckpt"), reload_hparams=True,
                                 local_files_only=True)
    data = [{"src": s, "mt": h, "ref": r} for s, h, r in triples]
    return model.predict(data, batch_size=8, gpus=0, progress_bar=False, num_workers=0).scores


def test_tiny_comet_scores_flores_like_the_library(tiny_comet, data_dir):
    src = (data_dir / FLORES / "deu_Latn.devtest").read_text(encoding="utf-8").splitlines()[:4]
    ref = (data_dir / FLORES / "eng_Latn.devtest").read_text(encoding="utf-8").splitlines()[:4]
    hyps = [ref[0], ref[1][:30], src[2], ""]
    comet = Comet.configure(str(tiny_comet))
    ours = comet.predict(src, hyps, ref)
    assert ours == pytest.approx(_library_scores(tiny_comet, list(zip(src, hyps, ref))), abs=1e-6)
    meta = comet.metadata()
    assert meta["model_path"] == str(tiny_comet.resolve()) and meta["version"] and len(meta["checkpoint_sha256"]) == 64
    assert meta["model_class"] == "regression_metric" and meta["encoder"].endswith("encoder")


def test_run_and_score_report_comet_with_one_batched_call(tiny_comet, tiny_model, flores_run, data_dir, tmp_path,
                                                          monkeypatch):
    calls = []
    real_load = comet_mod._load

    class Counting:
        def __init__(self, model):
            self.model = model

        def predict(self, data, **kw):
            calls.append(len(data))
            return self.model.predict(data, **kw)

    monkeypatch.setattr(comet_mod, "_load", lambda ckpt: Counting(real_load(ckpt)))
    out = tmp_path / "run"
    shutil.copytree(flores_run, out)  # same model and docs: `run` reuses the finished samples and only aggregates
    assert main(["run", "--tasks", "flores", "--langs", "de-en,en-de", "--limit", "2", "--output", str(out),
                 "--model", str(tiny_model), "--data-dir", str(data_dir), "--comet-model", str(tiny_comet)]) == 0
    assert calls == [4]  # one predict for both pairs (2 documents each), not one per pair or per sample
    after_run = _results(out)["metrics"]
    assert main(["score", str(out), "--data-dir", str(data_dir), "--comet-model", str(tiny_comet)]) == 0
    assert calls == [4, 4] and _results(out)["metrics"] == after_run
    flores = _results(out)
    samples = [json.loads(x) for x in (out / "flores" / "samples.jsonl").read_text().splitlines()]
    code = {"de": "deu_Latn", "en": "eng_Latn"}
    docs = {f"{pair}/{i}": line for pair in ("de-en", "en-de") for i, line in
            enumerate((data_dir / FLORES / f"{code[pair[:2]]}.devtest").read_text(encoding="utf-8").splitlines()[:2])}
    lib = _library_scores(tiny_comet, [(docs[r["id"]], r["outputs"][0], r["reference"]) for r in samples])
    for pair in ("de-en", "en-de"):
        mine = [x for x, r in zip(lib, samples) if r["subset"] == pair]
        assert flores["metrics"][pair]["comet"] == pytest.approx(sum(mine) / len(mine), abs=1e-6)
    assert flores["summary"]["comet"] == pytest.approx(sum(lib) / len(lib), abs=1e-6)
    assert flores["metadata"]["comet"]["model_path"] == str(tiny_comet.resolve())
