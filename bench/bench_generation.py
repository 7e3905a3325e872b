"""Generation speed, side by side: the harness backend vs lm-evaluation-harness `hf` vs a plain `generate` loop.

Same FLORES devtest de→en lines, same plain-text prompt ("German: …\\nEnglish:", no chat template),
greedy, ≤128 new tokens, stop at the first newline, same torch thread count. The model is loaded once
per contender (load time reported separately); wall time covers generation only. Then the harness is
run once more as a user runs it (`python -m mt_harness.cli run` in a subprocess, its own default dtype
and batch size, start-up included) on the same lines with the same prompt.

    python bench/bench_generation.py --n 64 --batch-size 8 --dtype float32 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STOP = "\n"
TASK_YAML = """\
task: bench_flores
hook: flores
description: FLORES devtest de-en with the plain prompt of bench/bench_generation.py
languages: [de, en]
dataset:
  local: flores/flores200_dataset/devtest
  split: devtest
prompt:
  template: "{src_name}: {source}\\n{tgt_name}:"
  chat: "off"
generation:
  max_new_tokens: MAXTOK
  temperature: 0.0
  stop: []
  stop_plain: ["\\n"]
options:
  pivot: en
  directions: [x-pivot]
"""


def cut(text: str) -> str:
    i = text.find(STOP)
    return text if i < 0 else text[:i]


def load_prompts(data_dir: Path, n: int) -> list[str]:
    path = data_dir / "flores" / "flores200_dataset" / "devtest" / "deu_Latn.devtest"
    lines = path.read_text(encoding="utf-8").splitlines()[:n]
    return [f"German: {s}\nEnglish:" for s in lines]


def run_harness(path: str, prompts: list[str], dtype: str, bs: int, max_new: int,
                scheduler: str = "continuous", prepack: str = "auto") -> tuple[list[str], float, float]:
    from harness.backends.base import Request
    from harness.backends.hf import HFBackend
    from harness.loading import BackendConfig, load_model_and_tokenizer
    from harness.task_config import GenerationConfig

    t0 = time.perf_counter()
    cfg = BackendConfig(dtype=dtype, device="cpu", batch_size=bs, threads=torch.get_num_threads(), scheduler=scheduler,
                        prepack=prepack)
    model, tok = load_model_and_tokenizer(path, cfg)
    backend = HFBackend(model, tok, cfg)
    load = time.perf_counter() - t0
    gen = GenerationConfig(max_new_tokens=max_new, stop_plain=[STOP])
    reqs = [Request(id=str(i), messages=[{"role": "user", "content": p}], gen=gen, chat="off")
            for i, p in enumerate(prompts)]
    t0 = time.perf_counter()
    outs = backend.generate(reqs)
    wall = time.perf_counter() - t0
    assert [o.prompt for o in outs] == prompts, "harness rendered a different prompt"
    return [o.text for o in outs], wall, load


def run_harness_static(path: str, prompts: list[str], dtype: str, bs: int, max_new: int):
    """The harness backend with continuous batching off: static batches that only shrink as rows finish."""
    return run_harness(path, prompts, dtype, bs, max_new, scheduler="static")


def run_lmeval(path: str, prompts: list[str], dtype: str, bs: int, max_new: int) -> tuple[list[str], float, float]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    t0 = time.perf_counter()
    lm = HFLM(pretrained=path, dtype=dtype, batch_size=bs, device="cpu")
    load = time.perf_counter() - t0
    kwargs = {"until": [STOP], "max_gen_toks": max_new, "do_sample": False}
    reqs = [Instance(request_type="generate_until", doc={}, arguments=(p, dict(kwargs)), idx=i)
            for i, p in enumerate(prompts)]
    t0 = time.perf_counter()
    outs = lm.generate_until(reqs, disable_tqdm=True)
    wall = time.perf_counter() - t0
    return [cut(o) for o in outs], wall, load


def run_plain(path: str, prompts: list[str], dtype: str, bs: int, max_new: int) -> tuple[list[str], float, float]:
    """The obvious hand-written loop: length-sorted batches, left padding, `model.generate` with a stop string."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    tok.pad_token = tok.pad_token or tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
    load = time.perf_counter() - t0
    order = sorted(range(len(prompts)), key=lambda i: -len(tok(prompts[i], add_special_tokens=False)["input_ids"]))
    outs: list[str] = [""] * len(prompts)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(order), bs):
            idx = order[s : s + bs]
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            gen = model.generate(**enc, max_new_tokens=max_new, do_sample=False, stop_strings=[STOP],
                                 tokenizer=tok, pad_token_id=tok.pad_token_id)
            for i, row in zip(idx, gen[:, enc["input_ids"].shape[1]:]):
                outs[i] = cut(tok.decode(row, skip_special_tokens=True))
    return outs, time.perf_counter() - t0, load


def run_ct2(path: str, prompts: list[str], compute_type: str, bs: int, max_new: int) -> tuple[list[str], float, float]:
    """CTranslate2 (bench-only: `pip install ctranslate2`), converted from the same HF weights, greedy, batch `bs`
    sorted by length; it ends a row at EOS or at any token whose text holds the stop string (its stand-in for stop
    strings), and the text is cut at the stop like every other contender's."""
    import ctranslate2
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(path)
    ct2_dir = Path(tempfile.mkdtemp(prefix="bench-ct2-"))
    ctranslate2.converters.TransformersConverter(path).convert(str(ct2_dir), force=True)
    gen = ctranslate2.Generator(str(ct2_dir), device="cpu", compute_type=compute_type,
                                intra_threads=torch.get_num_threads())
    ends = [t for t, i in tok.get_vocab().items() if STOP in tok.decode([i])] + [tok.eos_token]
    toks = [tok.convert_ids_to_tokens(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = gen.generate_batch(toks, max_batch_size=bs, batch_type="examples", max_length=max_new, sampling_topk=1,
                             include_prompt_in_result=False, end_token=ends)
    wall = time.perf_counter() - t0
    return [cut(tok.decode(r.sequences_ids[0], skip_special_tokens=True)) for r in res], wall, load


def run_cli(model: str, data_dir: Path, n: int, max_new: int, threads: int,
            extra: list[str]) -> tuple[list[str], float, dict]:
    """`harness run` as a user types it (fresh process, start-up and model load included)."""
    with tempfile.TemporaryDirectory() as tmp:
        yaml_path = Path(tmp) / "bench_flores.yaml"
        yaml_path.write_text(TASK_YAML.replace("MAXTOK", str(max_new)))
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "mt_harness.cli", "run", "--tasks", str(yaml_path), "--langs", "de-en",
               "--limit", str(n), "--model", model, "--data-dir", str(data_dir), "--output", str(out),
               "--threads", str(threads), *extra]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"harness run failed:\n{proc.stderr[-2000:]}")
        recs = [json.loads(x) for x in (out / "bench_flores" / "samples.jsonl").read_text().splitlines()]
        recs.sort(key=lambda r: int(r["id"].rsplit("/", 1)[1]))
        backend = json.loads((out / "results.json").read_text())["tasks"]["bench_flores"]["backend"]
        return [r["raw"][0] for r in recs], wall, backend


def count_tokens(tok, texts: list[str]) -> int:
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="first N devtest lines (default 64)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--skip-lmeval", action="store_true")
    ap.add_argument("--skip-static", action="store_true", help="skip the harness with continuous batching off")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--prepack-off", action="store_true",
                    help="also the harness with --prepack off (plain F.linear: the code before pre-packed weights)")
    ap.add_argument("--prepack-all", action="store_true",
                    help="also the harness with --prepack all (float32 weights packed for oneDNN: not bit-identical)")
    ap.add_argument("--ct2", action="store_true", help="also CTranslate2 fp32 and int8 (pip install ctranslate2)")
    ap.add_argument("--skip-cli", action="store_true", help="skip the `harness run` with its own defaults")
    ap.add_argument("--plain-defaults", action="store_true",
                    help="also run the plain loop at the harness's default dtype/batch to compare outputs")
    ap.add_argument("--json", default=None, help="write the measurements to this file")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from harness.loading import BackendConfig, pick_dtype
    from harness.models import resolve_model

    torch.set_num_threads(args.threads)
    path = str(resolve_model(args.model).path)
    tok = AutoTokenizer.from_pretrained(path)
    data_dir = Path(args.data_dir)
    prompts = load_prompts(data_dir, args.n)
    print(f"model {args.model} ({path}); {len(prompts)} prompts; dtype {args.dtype}; batch {args.batch_size}; "
          f"threads {args.threads}; torch {torch.__version__}", flush=True)

    rows: dict[str, dict] = {}
    contenders = [("harness", run_harness)]
    if args.prepack_off:
        contenders.insert(0, ("harness --prepack off",
                              lambda p, pr, d, bs, m: run_harness(p, pr, d, bs, m, prepack="off")))
    if args.prepack_all:
        contenders.append(("harness --prepack all",
                           lambda p, pr, d, bs, m: run_harness(p, pr, d, bs, m, prepack="all")))
    if not args.skip_static:
        contenders.append(("harness static batches", run_harness_static))
    if not args.skip_lmeval:
        contenders.append(("lm-eval hf", run_lmeval))
    if not args.skip_plain:
        contenders.append(("plain generate loop", run_plain))
    if args.ct2:
        contenders += [("ctranslate2 fp32", lambda p, pr, d, bs, m: run_ct2(p, pr, "float32", bs, m)),
                       ("ctranslate2 int8", lambda p, pr, d, bs, m: run_ct2(p, pr, "int8", bs, m))]
    outputs: dict[str, list[str]] = {}
    for name, fn in contenders:
        texts, wall, load = fn(path, prompts, args.dtype, args.batch_size, args.max_new_tokens)
        ntok = count_tokens(tok, texts)
        outputs[name] = texts
        rows[name] = {"dtype": "int8" if name.endswith("int8") else args.dtype, "batch": args.batch_size,
                      "wall_s": wall, "load_s": load, "tokens": ntok, "tok_per_s": ntok / wall}
        print(f"  {name:22s} wall {wall:7.1f} s  load {load:5.1f} s  {ntok} tokens  {ntok / wall:6.1f} tok/s",
              flush=True)

    if not args.skip_cli:
        default_cfg = BackendConfig()
        default_dtype = str(pick_dtype(default_cfg.dtype, torch.device("cpu"))).replace("torch.", "")
        texts, wall, backend = run_cli(args.model, data_dir, args.n, args.max_new_tokens, args.threads, [])
        ntok = count_tokens(tok, texts)
        name = "harness run (defaults)"
        outputs[name] = texts
        rows[name] = {"dtype": backend["dtype"], "batch": backend["batch_size"], "wall_s": wall, "load_s": None,
                      "tokens": ntok, "tok_per_s": ntok / wall}
        print(f"  {name:22s} wall {wall:7.1f} s  (fresh process, start-up included; dtype {backend['dtype']}, "
              f"batch {backend['batch_size']})  {ntok / wall:6.1f} tok/s", flush=True)
        if args.plain_defaults:
            texts, pwall, load = run_plain(path, prompts, default_dtype, default_cfg.batch_size, args.max_new_tokens)
            name = "plain loop (defaults)"
            outputs[name] = texts
            ntok = count_tokens(tok, texts)
            rows[name] = {"dtype": default_dtype, "batch": default_cfg.batch_size, "wall_s": pwall, "load_s": load,
                          "tokens": ntok, "tok_per_s": ntok / pwall}
            print(f"  {name:22s} wall {pwall:7.1f} s  load {load:5.1f} s", flush=True)

    print("\nratios (wall time, lower is faster):")
    ratios = {}
    base = rows["harness"]["wall_s"]
    for name in rows:
        if name != "harness" and rows[name]["dtype"] == args.dtype and rows[name]["batch"] == args.batch_size:
            ratios[f"harness / {name}"] = base / rows[name]["wall_s"]
    if "harness run (defaults)" in rows and "lm-eval hf" in rows:
        ratios["harness run (defaults) / lm-eval hf"] = (rows["harness run (defaults)"]["wall_s"]
                                                         / rows["lm-eval hf"]["wall_s"])
    for k, v in ratios.items():
        print(f"  {k:45s} {v:.2f}x")

    print("\nagreement (identical outputs, after cutting at the first newline):")
    agree = {}
    pairs = [("harness", "ctranslate2 fp32"), ("harness", "ctranslate2 int8"), ("harness", "lm-eval hf"),
             ("harness", "harness static batches"), ("harness", "plain generate loop"),
             ("lm-eval hf", "plain generate loop"),
             ("harness run (defaults)", "plain loop (defaults)"), ("harness run (defaults)", "harness"),
             ("harness", "harness --prepack off"), ("harness", "harness --prepack all"),
             ("harness --prepack all", "ctranslate2 fp32")]
    for a, b in pairs:
        if a in outputs and b in outputs:
            same = sum(x == y for x, y in zip(outputs[a], outputs[b]))
            agree[f"{a} vs {b}"] = f"{same}/{len(prompts)}"
            print(f"  {a} vs {b}: {same}/{len(prompts)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "ratios": ratios,
                                               "agreement": agree, "outputs": outputs}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
