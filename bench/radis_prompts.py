"""Measure the rationale prompt variants on a real model: empty rate, token lengths, finish reasons.

    python -m bench.radis_prompts [--model smollm2-135m-instruct] [--per-pair 16]
        [--max-new-tokens 96] [--variants continue,explain,explain_words] [--threads 1] [--json FILE]

Uses the same code path as training (`rationales()`, the FLORES prompt, ALMA pairs with FLORES excluded,
greedy decoding), so the generated rationales land in the rationale cache and a later `harness run` with
the same model, dtype, variant and bound reuses them. Pick the variant for a model with this table; the
choice for SmolLM2-135M-Instruct is documented in methods/radis/README.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.data import DataSource
from harness.loading import BackendConfig, set_threads
from harness.method import TrainContext
from harness.models import DEFAULT_MODEL, resolve_model
from harness.training.data import TrainDataConfig, load_training_data
from harness.training.pipeline import prompt_messages
from methods.radis.rationales import PROMPTS, rationales
from tasks import training_prompts


def measure(model: str, per_pair: int, pairs: list[str], max_new_tokens: int, variants: list[str],
            backend: BackendConfig, data_dir: str | None = None, seed: int = 0) -> dict[str, dict]:
    """{variant: rationale stats (+ two example rationales)} on `per_pair` ALMA pairs per direction."""
    data = DataSource.resolve(data_dir)
    examples, _ = load_training_data(TrainDataConfig(pairs=pairs, max_per_pair=per_pair), data, seed=seed)
    ctx = TrainContext(model=resolve_model(model), data=data, out_dir=Path("."), seed=seed, backend=backend,
                       prompts=training_prompts([], data))
    messages, chat = prompt_messages(ctx)
    out = {}
    for v in variants:
        rats, stats = rationales(examples, messages, chat, ctx, max_new_tokens, backend.batch_size, v)
        out[v] = {**{k: stats[k] for k in ("n", "empty", "empty_rate", "mean_tokens", "median_tokens",
                                          "mean_chars", "finish")}, "examples": rats[:2]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--per-pair", type=int, default=16, help="ALMA pairs per direction (seeded sample)")
    ap.add_argument("--pairs", default="de-en,en-de")
    ap.add_argument("--max-new-tokens", type=int, default=96, help="rationale bound (the cpu-30 recipe's)")
    ap.add_argument("--variants", default=",".join(PROMPTS))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", default=None, help="also write the table (and two rationales per variant) here")
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in PROMPTS]
    if unknown:
        ap.error(f"--variants: unknown {unknown}; known: {', '.join(PROMPTS)}")
    set_threads(args.threads)
    backend = BackendConfig(dtype=args.dtype, device=args.device, batch_size=args.batch_size, threads=args.threads)
    res = measure(args.model, args.per_pair, args.pairs.split(","), args.max_new_tokens, variants, backend,
                  args.data_dir)
    print(f"\n{args.model}: {args.per_pair} pairs x {args.pairs}, greedy, max_new_tokens {args.max_new_tokens}")
    print(f"{'variant':14s} {'n':>4s} {'empty':>7s} {'mean tok':>9s} {'median':>7s} {'mean chars':>11s}  finish")
    for v, s in res.items():
        print(f"{v:14s} {s['n']:4d} {s['empty_rate']:7.1%} {s['mean_tokens']:9.1f} {s['median_tokens']:7.1f} "
              f"{s['mean_chars']:11.1f}  {s['finish']}")
    for v, s in res.items():
        print(f"\n--- {v}: first rationale\n{s['examples'][0][:500]!s}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "per_pair": args.per_pair, "pairs": args.pairs,
                                               "max_new_tokens": args.max_new_tokens, "variants": res},
                                              indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
