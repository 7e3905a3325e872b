"""Long generations, side by side: the harness decode loop (this code, and with `--prepack off`, the previous
default) vs CTranslate2 vs llama.cpp, in tokens/s, with the share of outputs identical to the harness.

Same 32 IFEval prompts (the task's data, `general/ifeval/input_data.jsonl`) through the model's chat template, greedy,
up to `--max-new-tokens` new tokens (IFEval's own limit is 512), stop at the end-of-turn token only. The harness runs
`HFBackend.generate` at `--dtype`/`--batch-size` with static batches (the bf16 default); "harness --prepack off" is
the same backend with plain `F.linear` (the previous code: no pre-packed weights); `--matmul` adds
the harness with the explicit `--decode-attention matmul` option (not bit-identical in bf16). Harness contenders
run `--rounds` times, interleaved (old, new, old, new, ...), and the best wall time of each is reported, because the
machine may be shared. Optional contenders, skipped with a note when their package is missing (bench-only, never a
dependency of the harness):

    pip install ctranslate2          # converted from the same HF weights into a temporary folder (fp32 and int8)
    pip install llama-cpp-python     # builds from its sdist (~4 min on 2 cores); --gguf PATH (a BF16 GGUF)

    python bench/bench_longgen.py --n 32 --max-new-tokens 512 --dtype bfloat16 --batch-size 32 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def load_prompts(data_dir: Path, n: int) -> list[str]:
    lines = (data_dir / "general" / "ifeval" / "input_data.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x)["prompt"] for x in lines[:n]]


def harness_backend(path: str, dtype: str, bs: int, prepack: str = "auto", attention: str = "sdpa"):
    from harness.backends.hf import HFBackend
    from harness.loading import BackendConfig, load_model_and_tokenizer

    cfg = BackendConfig(dtype=dtype, device="cpu", batch_size=bs, threads=torch.get_num_threads(), scheduler="static",
                        decode_attention=attention, prepack=prepack)
    model, tok = load_model_and_tokenizer(path, cfg)
    return HFBackend(model, tok, cfg)


def run_harness(backend, prompts: list[str], max_new: int) -> tuple[list[list[int]], float]:
    from harness.backends.base import Request
    from harness.backends.hf import DecodeRow
    from harness.prompting import render
    from harness.task_config import GenerationConfig

    gen = GenerationConfig(max_new_tokens=max_new)
    reqs = [Request(id=str(i), messages=[{"role": "user", "content": p}], gen=gen, chat="on")
            for i, p in enumerate(prompts)]
    rows = [DecodeRow(i, backend.tok(render(backend.tok, r.messages, r.chat, r.assistant_prefix),
                                     add_special_tokens=False)["input_ids"], r, []) for i, r in enumerate(reqs)]
    t0 = time.perf_counter()
    backend.decode(sorted(rows, key=lambda row: -len(row.prompt)))
    return [row.tokens for row in rows], time.perf_counter() - t0


def chat_ids(tok, prompts: list[str]) -> list[list[int]]:
    from harness.prompting import render

    return [tok(render(tok, [{"role": "user", "content": p}], "on", ""), add_special_tokens=False)["input_ids"]
            for p in prompts]


def run_ct2(path: str, tok, prompts, max_new, bs, threads, compute_type, eos_ids, ct2_dir):
    import ctranslate2

    gen = ctranslate2.Generator(ct2_dir, device="cpu", compute_type=compute_type, intra_threads=threads)
    toks = [tok.convert_ids_to_tokens(ids) for ids in chat_ids(tok, prompts)]
    t0 = time.perf_counter()
    res = gen.generate_batch(toks, max_batch_size=bs, max_length=max_new, sampling_topk=1, beam_size=1,
                             include_prompt_in_result=False, end_token=[tok.convert_ids_to_tokens(i) for i in eos_ids])
    wall = time.perf_counter() - t0
    return [[i for i in r.sequences_ids[0] if i not in eos_ids] for r in res], wall


def run_llamacpp(gguf: str, tok, prompts, max_new, slots, threads, eos_ids):
    """llama.cpp's batched decoding (its server's slots): every prompt a sequence of one batch, greedy."""
    from bench.llamacpp_batch import generate

    return generate(gguf, chat_ids(tok, prompts), max_new, slots, threads, eos_ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the two harness contenders")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--skip-ct2", action="store_true")
    ap.add_argument("--skip-old", action="store_true", help="skip the harness with --prepack off (the previous code)")
    ap.add_argument("--matmul", action="store_true", help="also the harness with --decode-attention matmul")
    ap.add_argument("--gguf", default=None, help="a GGUF of the same weights for llama.cpp (skipped without it)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from harness.models import resolve_model

    torch.set_num_threads(args.threads)
    path = str(resolve_model(args.model).path)
    prompts = load_prompts(Path(args.data_dir), args.n)
    print(f"{len(prompts)} IFEval prompts, <= {args.max_new_tokens} new tokens, harness {args.dtype} batch "
          f"{args.batch_size}, {args.threads} threads, torch {torch.__version__}, load {os.getloadavg()[0]:.1f}",
          flush=True)
    new = harness_backend(path, args.dtype, args.batch_size)
    old = None if args.skip_old else harness_backend(path, args.dtype, args.batch_size, "off")
    contenders = ([] if old is None else [("harness --prepack off", old)]) + [("harness", new)]
    if args.matmul:
        contenders.append(("harness --decode-attention matmul",
                           harness_backend(path, args.dtype, args.batch_size, attention="matmul")))
    tok, eos = new.tok, new.eos_ids
    outs: dict[str, list[list[int]]] = {}
    walls: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(args.rounds):
        for name, backend in contenders:
            ids, wall = run_harness(backend, prompts, args.max_new_tokens)
            walls[name].append(wall)
            outs[name] = ids
            print(f"  {name:24s} {wall:7.1f} s  {sum(map(len, ids)) / wall:7.1f} tok/s", flush=True)
    del old, new, contenders
    rows = {k: {"wall_s": min(v), "walls": v} for k, v in walls.items()}
    if not args.skip_ct2:
        try:
            import ctranslate2
        except ImportError:
            print("  ctranslate2 not installed (pip install ctranslate2): skipped")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                ctranslate2.converters.TransformersConverter(path).convert(tmp, force=True)
                for ct in ("float32", "int8"):
                    name = f"ctranslate2 {ctranslate2.__version__} {ct}"
                    ids, wall = run_ct2(path, tok, prompts, args.max_new_tokens, args.batch_size, args.threads, ct,
                                        eos, tmp)
                    outs[name], rows[name] = ids, {"wall_s": wall}
                    print(f"  {name:24s} {wall:7.1f} s  {sum(map(len, ids)) / wall:7.1f} tok/s", flush=True)
    if args.gguf:
        ids, wall, note = run_llamacpp(args.gguf, tok, prompts, args.max_new_tokens, args.batch_size, args.threads, eos)
        name = f"llama.cpp ({note})"
        outs[name], rows[name] = ids, {"wall_s": wall}
        print(f"  {name:24s} {wall:7.1f} s  {sum(map(len, ids)) / wall:7.1f} tok/s", flush=True)

    ref = outs["harness"]
    for name, row in rows.items():
        ntok = sum(map(len, outs[name]))
        row.update(tokens=ntok, tok_per_s=ntok / row["wall_s"],
                   identical=sum(a == b for a, b in zip(outs[name], ref)), n=len(ref))
    print("\ncontender                      wall s   tokens   tok/s  tok/s vs harness  identical to harness")
    for name, row in rows.items():
        print(f"  {name:28s} {row['wall_s']:7.1f} {row['tokens']:8d} {row['tok_per_s']:7.1f} "
              f"{row['tok_per_s'] / rows['harness']['tok_per_s']:9.2f}x  {row['identical']}/{len(ref)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "outputs": outs}, indent=2))


if __name__ == "__main__":
    main()
