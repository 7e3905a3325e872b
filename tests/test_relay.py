"""Relay Decoding on tiny models of different architectures, hidden sizes and tokenizers.

Source side: a Gemma 3 model (hidden 48) with its own 300-token BPE (no chat template);
target side: a Llama model (hidden 32) with the 600-token ChatML tokenizer of conftest.py.
Nothing is shared between the two but vectors.
"""

from __future__ import annotations

import json

import pytest
import torch

from mt_harness.cli import main
from harness.config import from_dict
from methods.relay.config import RelayConfig
from methods.relay.relay import encode
from methods.relay.train import build_relay, fit, load_lm
from tests.conftest import _training_lines, build_tokenizer


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


def _other_tokenizer():
    """A second, unrelated tokenizer: different vocabulary, size and special tokens, BOS added."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(_training_lines()[::3], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<bos>", "<eos>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # BOS comes from the post-processor while add_bos_token stays False, as in transformers 5's Gemma tokenizer
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(gemma path, llama path): different hidden sizes (48 / 32), vocabularies (300 / 600), architectures."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    out = {}
    tok_g = _other_tokenizer()
    torch.manual_seed(1)
    g = Gemma3ForCausalLM(Gemma3TextConfig(vocab_size=len(tok_g), hidden_size=48, intermediate_size=64,
                                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                           head_dim=12, sliding_window=16, max_position_embeddings=512,
                                           pad_token_id=tok_g.pad_token_id, bos_token_id=tok_g.bos_token_id,
                                           eos_token_id=tok_g.eos_token_id))
    tok_l = build_tokenizer(chat=True)
    torch.manual_seed(2)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok_l), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=512, pad_token_id=0, tie_word_embeddings=True))
    lm.generation_config.eos_token_id = tok_l.eos_token_id
    for name, model, tok in (("gemma", g, tok_g), ("llama", lm, tok_l)):
        path = tmp_path_factory.mktemp(f"relay-{name}")
        model.save_pretrained(path)
        tok.save_pretrained(path)
        out[name] = path
    return out["gemma"], out["llama"]


def _cfg(**over) -> RelayConfig:
    base = {"data": {"pairs": ["de-en"], "max_per_pair": 4},
            "relays": [{"pairs": ["de-en"], "source": "unused", "target": "{model}"}],
            "train": {"max_steps": 1, "batch_size": 2, "max_length": 64, "lr": 1e-2, "save_every": 0,
                      "precision": "fp32"}}
    return from_dict(RelayConfig, {**base, **over}, "test")


DOCS = [{"source": s, "src_name": "German", "tgt_name": "English", "src": "de", "tgt": "en"}
        for s in ("Hallo Welt.", "Ein viel längerer Satz mit vielen Wörtern, damit die Polsterung wirkt.", "Ja")]


def _relay(src_path, tgt_path, cfg, lora=False):
    source, source_tok = load_lm(src_path)
    target, target_tok = load_lm(tgt_path)
    if lora:
        from methods.relay.train import add_target_lora
        target = add_target_lora(target, cfg.target_lora)
    return build_relay(cfg, source, source_tok, target), source_tok, target_tok


@pytest.mark.parametrize("variant", ["linear", "xattn", "lora"])
def test_one_step_trains_only_the_map_and_adapter(pair, tmp_path, variant):
    over = {"map": "xattn", "xattn_queries": 3, "xattn_heads": 2} if variant == "xattn" else {}
    if variant == "lora":
        over["target_lora"] = {"r": 2, "alpha": 4, "dropout": 0.0}
    cfg = _cfg(**over)
    relay, stok, ttok = _relay(*pair, cfg, lora=variant == "lora")
    assert stok.vocab_size != ttok.vocab_size and relay.source.config.hidden_size != relay.target.config.hidden_size
    before = {k: v.clone() for k, v in relay.state_dict().items()}
    feats = [encode(stok, ttok, cfg, d, "Hello world and more.", 64) for d in DOCS]
    fit(relay, feats, ttok.pad_token_id, cfg.train, tmp_path, seed=0, device="cpu", desc="t")
    after = relay.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    frozen = [k for k in before if k.startswith(("source.", "target.")) and "lora_" not in k]
    assert frozen and not changed & set(frozen), "an LLM weight changed"
    assert any(k.startswith("map.") for k in changed)
    lora_keys = {k for k in before if "lora_B" in k}
    assert (lora_keys <= changed and lora_keys) if variant == "lora" else not lora_keys
    assert (tmp_path / "loss.jsonl").exists() and (tmp_path / "loss.png").exists()


def _generator(relay, stok, ttok, cfg, batch_size):
    from harness.loading import BackendConfig
    from methods.relay.backend import RelayGenerator

    return RelayGenerator(relay.eval(), stok, ttok, BackendConfig(dtype="float32", device="cpu",
                                                                  batch_size=batch_size), cfg, ["de-en"])


def _requests(docs, n=12):
    from harness.backends.base import Request
    from harness.task_config import GenerationConfig

    return [Request(id=str(i), messages=[], gen=GenerationConfig(max_new_tokens=n, stop_plain=[]), doc=d)
            for i, d in enumerate(docs)]


@pytest.mark.parametrize("direction", ["gemma->llama", "llama->gemma"])
def test_left_padded_batch_equals_one_at_a_time(pair, direction):
    """Masks and positions: every row of a left-padded batch matches its own unpadded run (both models padded)."""
    src, tgt = pair if direction == "gemma->llama" else pair[::-1]
    cfg = _cfg()
    relay, stok, ttok = _relay(src, tgt, cfg)
    torch.nn.init.normal_(relay.map.proj.weight, std=0.5)  # a map whose outputs matter
    encs = [encode(stok, ttok, cfg, d, "Hello there.") for d in DOCS]
    assert len({len(e.source_ids) for e in encs}) == 3  # padding really happens on the source side
    gemma_side = [e.source_ids for e in encs] if direction == "gemma->llama" else [e.prefix_ids for e in encs]
    assert all(ids[:1] == [1] for ids in gemma_side)  # the Gemma-side tokenizer's BOS comes first
    with torch.no_grad():
        emb, attn, pos, _ = relay.target_inputs(encs, ttok.pad_token_id)
        batched = relay.target(inputs_embeds=emb, attention_mask=attn, position_ids=pos).logits
        for r, e in enumerate(encs):
            emb1, attn1, pos1, _ = relay.target_inputs([e], ttok.pad_token_id)
            assert attn1.all() and pos1[0].tolist() == list(range(attn1.shape[1]))  # unpadded single run
            single = relay.target(inputs_embeds=emb1, attention_mask=attn1, position_ids=pos1).logits[0]
            n = single.shape[0]
            assert int(attn[r].sum()) == n and pos[r, -n:].tolist() == list(range(n))
            torch.testing.assert_close(batched[r, -n:], single, atol=1e-4, rtol=1e-4)
        # the loss of a batch is the token-weighted mean of the per-example losses
        total, count = relay.loss(encs, ttok.pad_token_id)
        parts = [relay.loss([e], ttok.pad_token_id) for e in encs]
        torch.testing.assert_close(total, sum(part_loss * n for part_loss, n in parts) / count, atol=1e-5, rtol=1e-5)
    batch = _generator(relay, stok, ttok, cfg, 3).generate(_requests(DOCS))
    alone = [_generator(relay, stok, ttok, cfg, 1).generate(_requests([d]))[0] for d in DOCS]
    assert [g.text for g in batch] == [g.text for g in alone]
    assert all(g.n_new_tokens > 0 for g in batch)


def test_saved_map_reloads_to_identical_generations(pair, tmp_path):
    from safetensors.torch import load_file, save_file

    cfg = _cfg()
    relay, stok, ttok = _relay(*pair, cfg)
    feats = [encode(stok, ttok, cfg, d, "Hello world.", 64) for d in DOCS]
    fit(relay, feats, ttok.pad_token_id, cfg.train, tmp_path, seed=0, device="cpu", desc="t")
    trained = _generator(relay, stok, ttok, cfg, 2).generate(_requests(DOCS))
    save_file({k: v.contiguous() for k, v in relay.map.state_dict().items()}, str(tmp_path / "map.safetensors"))
    fresh, stok2, ttok2 = _relay(*pair, cfg)
    assert not torch.equal(fresh.map.proj.weight, relay.map.proj.weight)
    fresh.map.load_state_dict(load_file(str(tmp_path / "map.safetensors")))
    again = _generator(fresh, stok2, ttok2, cfg, 2).generate(_requests(DOCS))
    assert [g.text for g in again] == [g.text for g in trained]


def _recipe(tmp_path, gemma, extra="") -> str:
    p = tmp_path / "relay.yaml"
    p.write_text(f"relays:\n  - pairs: [de-en]\n    source: {gemma}\n    target: '{{model}}'\n"
                 "data:\n  pairs: [de-en]\n  max_per_pair: 4\n"
                 "train:\n  max_steps: 1\n  batch_size: 2\n  max_length: 64\n  save_every: 0\n" + extra)
    return str(p)


def _run(llama, data_dir, out, recipe, tasks="flores", langs="de-en", method="relay"):
    argv = ["run", "--method", method, "--tasks", tasks, "--langs", langs, "--limit", "2", "--model", str(llama),
            "--output", str(out), "--data-dir", str(data_dir), "--threads", "1", "--batch-size", "2",
            "--dtype", "float32"]
    return main(argv + (["--method-config", recipe] if method == "relay" else []))


def test_harness_run_end_to_end_with_reuse_and_safety_unchanged(pair, data_dir, tmp_path, capsys):
    gemma, llama = pair
    recipe = _recipe(tmp_path, gemma)
    assert _run(llama, data_dir, tmp_path / "a", recipe, "flores,safety", "de-en,advbench") == 0
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    art = res["method"]["artifact"]
    assert art["kind"] == "composite" and (tmp_path / "cache" / "artifacts" / "relay").is_dir()
    assert res["tasks"]["flores"]["backend"]["backend"] == "relay"
    assert res["tasks"]["safety"]["backend"]["general"]["unchanged_by_construction"] is True
    flores = [json.loads(x) for x in (tmp_path / "a" / "flores" / "samples.jsonl").read_text().splitlines()]
    assert len(flores) == 2 and all("soft tokens" in r["prompts"][0] for r in flores)
    # a second run reuses the artifact and regenerates the same outputs
    assert _run(llama, data_dir, tmp_path / "b", recipe) == 0
    assert "reusing artifact" in capsys.readouterr().out
    again = [json.loads(x) for x in (tmp_path / "b" / "flores" / "samples.jsonl").read_text().splitlines()]
    assert [r["raw"] for r in again] == [r["raw"] for r in flores]
    # safety was answered by the target LLM alone = the base model: identical to --method base
    assert _run(llama, data_dir, tmp_path / "base", recipe, "safety", "advbench", method="base") == 0
    mine = (tmp_path / "a" / "safety" / "samples.jsonl").read_text().splitlines()
    base = (tmp_path / "base" / "safety" / "samples.jsonl").read_text().splitlines()
    assert [json.loads(x)["raw"] for x in mine] == [json.loads(x)["raw"] for x in base]


@pytest.mark.parametrize("tasks,langs,extra,needle", [
    ("flores", "de-en", ["--backend", "vllm"], "--backend vllm"),
    ("mtbench", "", [], "--tasks mtbench: not applicable to relay"),
    ("flores", "fr-en", [], "direction fr-en is served by no relay"),
    ("flores,lmeval:x", "de-en", [], None),
])
def test_unservable_runs_stop_before_any_work(pair, data_dir, tmp_path, capsys, tasks, langs, extra, needle,
                                              monkeypatch):
    gemma, llama = pair
    if "vllm" in extra:  # the check must come from the method, not from vLLM being absent
        monkeypatch.setattr("harness.backends.vllm.require_vllm", lambda: None)
    if tasks.endswith("lmeval:x"):
        from harness import lmeval
        from harness.lmeval import LmevalTask
        monkeypatch.setattr(lmeval, "load",
                            lambda names, inc: [LmevalTask("lmeval:x", "x", None, {}, None)] if names else [])
        tasks, needle = "flores,lmeval:x", "--tasks lmeval:x: not applicable to relay"
    argv = ["run", "--method", "relay", "--tasks", tasks, "--limit", "2", "--model", str(llama), "--output",
            str(tmp_path / "out"), "--data-dir", str(data_dir), "--method-config", _recipe(tmp_path, gemma), *extra]
    rc = main(argv + (["--langs", langs] if langs else []))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "cache" / "artifacts").exists() and not (tmp_path / "out").exists()


def test_general_tasks_need_a_composition_that_targets_the_model(pair, data_dir, tmp_path, capsys):
    gemma, llama = pair
    recipe = tmp_path / "r.yaml"  # llama -> gemma only: no single model is --model (llama) on the target side
    recipe.write_text(f"relays:\n  - pairs: [en-de]\n    source: '{{model}}'\n    target: {gemma}\n"
                      "data:\n  pairs: [en-de]\n  max_per_pair: 4\ntrain:\n  max_steps: 1\n  batch_size: 2\n")
    rc = main(["run", "--method", "relay", "--tasks", "flores,safety", "--langs", "en-de,advbench", "--limit", "2",
               "--model", str(llama), "--output", str(tmp_path / "out"), "--data-dir", str(data_dir),
               "--method-config", str(recipe)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--tasks safety: not applicable to relay" in err[0], err
    assert not (tmp_path / "cache" / "artifacts").exists()


def test_adds_bos_follows_the_tokenizer_not_only_its_flag():
    from harness.prompting import adds_bos

    tok = _other_tokenizer()
    assert getattr(tok, "add_bos_token", False) is False and adds_bos(tok)
    assert not adds_bos(build_tokenizer(chat=True))  # no BOS in its processing: none added


def test_shuffled_sources_pair_each_line_with_another_of_its_direction():
    from harness.errors import HarnessError
    from methods.relay.backend import shuffled_sources

    docs = [{"source": f"s{i}", "src": "de", "tgt": "en"} for i in range(3)] + [
        {"source": "t0", "src": "en", "tgt": "de"}, {"source": "t1", "src": "en", "tgt": "de"}]
    got = shuffled_sources(docs)
    assert [d["source"] for d in got] == ["s1", "s2", "s0", "t1", "t0"]
    assert all(g["src"] == d["src"] and g["tgt"] == d["tgt"] for g, d in zip(got, docs))
    with pytest.raises(HarnessError, match="only one de-en line"):
        shuffled_sources(docs[:1])


def _first_logits(gen, docs) -> list[torch.Tensor]:
    """The target LLM's next-token logits after the prefill of each line (what greedy decoding starts from)."""
    seen, real = {}, gen.prefill

    def spy(rows):
        cache, attn, last = real(rows)
        seen.update({row.index: x.clone() for row, x in zip(rows, last)})
        return cache, attn, last

    gen.prefill = spy
    out = gen.generate(_requests(docs, n=1))
    return [seen[i] for i in range(len(docs))], out


def test_control_decodes_another_lines_states_and_is_inert_for_a_map_that_ignores_its_input(pair):
    """The control on tiny models: with a map that reads its input, line i of the control starts from exactly the
    relay's state for line i+1 (same target prompt, that line's source states); with a map whose output ignores the
    source (cross-attention map with a zero output projection: constant soft tokens) the control changes nothing."""
    over = {"map": "xattn", "xattn_queries": 3, "xattn_heads": 2}
    cfg, ctl_cfg = _cfg(**over), _cfg(**over, control="shuffled_source")
    relay, stok, ttok = _relay(*pair, cfg)
    torch.manual_seed(0)
    for p in relay.map.parameters():
        torch.nn.init.normal_(p, std=0.5)
    reads, _ = _first_logits(_generator(relay, stok, ttok, cfg, 3), DOCS)
    ctl, gens = _first_logits(_generator(relay, stok, ttok, ctl_cfg, 3), DOCS)
    for i in range(3):
        torch.testing.assert_close(ctl[i], reads[(i + 1) % 3], atol=1e-4, rtol=1e-4)
        assert not torch.allclose(ctl[i], reads[i], atol=1e-3)
    assert (gens[0].prompt.startswith("[control: another line's source] [source LLM]")
            and DOCS[1]["source"] in gens[0].prompt)
    with torch.no_grad():
        relay.map.out.proj.weight.zero_()
    ignores, _ = _first_logits(_generator(relay, stok, ttok, cfg, 3), DOCS)
    ctl, _ = _first_logits(_generator(relay, stok, ttok, ctl_cfg, 3), DOCS)
    for a, b in zip(ignores, ctl):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_control_run_reuses_the_artifact_and_records_the_control(pair, data_dir, tmp_path, capsys):
    gemma, llama = pair
    assert _run(llama, data_dir, tmp_path / "a", _recipe(tmp_path, gemma)) == 0
    ctl_recipe = tmp_path / "ctl.yaml"
    ctl_recipe.write_text((tmp_path / "relay.yaml").read_text() + "control: shuffled_source\n")
    assert _run(llama, data_dir, tmp_path / "c", str(ctl_recipe)) == 0
    assert "reusing artifact" in capsys.readouterr().out
    a, c = (json.loads((tmp_path / d / "results.json").read_text())["method"] for d in ("a", "c"))
    assert (a["artifact"]["hash"] == c["artifact"]["hash"]
            and a["artifact"]["config_hash"] == c["artifact"]["config_hash"])
    assert "control" not in a["config"] and c["config"]["control"] == "shuffled_source" and a["variant"] != c["variant"]
    flores = [json.loads(x) for x in (tmp_path / "c" / "flores" / "samples.jsonl").read_text().splitlines()]
    assert all(r["prompts"][0].startswith("[control") for r in flores)


def test_native_tags_put_the_language_tags_on_the_target_side(pair):
    """tags: native (the default) — the source LLM reads the sentence alone; the target LLM reads its own tokens
    "####[German]:" before the soft tokens and "####[English]:" after them; mapped (the legacy value) reads the tags
    through the source LLM and, with control at its default too, neither option enters its recorded config (the
    artifact keys trained with it stay the same, and they read as stale)."""
    from harness.config import to_dict

    _, stok, ttok = _relay(*pair, _cfg())
    doc = DOCS[0]
    native = encode(stok, ttok, _cfg(), doc)
    mapped = encode(stok, ttok, _cfg(tags="mapped"), doc)
    assert stok.decode(native.source_ids, skip_special_tokens=True).strip() == doc["source"]
    assert "####[German]" in stok.decode(mapped.source_ids) and "####[German]" not in stok.decode(native.source_ids)
    assert ttok.decode(native.prefix_ids, skip_special_tokens=True).strip() == "####[German]:"
    assert native.prompt_ids == mapped.prompt_ids and ttok.decode(native.prompt_ids).strip() == "####[English]:"
    d = to_dict(_cfg(tags="mapped"))
    assert "tags" not in d and "control" not in d and to_dict(_cfg())["tags"] == "native"
