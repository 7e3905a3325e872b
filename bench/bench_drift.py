"""MT-Bench drift: one forward pass per conversation versus one per answer.

Scores the base model's saved MT-Bench answers (a base run's samples.jsonl) with an evaluated model and the base
model, twice: the way `harness run` does it (a second turn's sequence holds the first turn, so one pass scores both
answers) and one pass per answer (the previous code). Prints the wall time of each, the ratio, and the largest
difference in any reported number.

    python bench/bench_drift.py --eval <a trained artifact folder> --n 10
    python bench/bench_drift.py --samples results/science/smollm2-135m-instruct/base/mtbench/samples.jsonl.gz \\
        --eval "$HARNESS_CACHE"/artifacts/sft/<id> --n 10 --dtype bfloat16 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples",
                    default=str(REPO / "results/science/smollm2-135m-instruct/base/mtbench/samples.jsonl.gz"),
                    help="a base run's MT-Bench samples.jsonl[.gz] (its prompts and answers are scored)")
    ap.add_argument("--model", default="smollm2-135m-instruct", help="the base model")
    ap.add_argument("--eval", required=True, help="the evaluated model's folder (e.g. a full-SFT artifact)")
    ap.add_argument("--n", type=int, default=10, help="questions (two answers each)")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from harness.loading import BackendConfig, load_model_and_tokenizer
    from harness.metrics import drift as drift_mod
    from harness.models import resolve_model
    from harness.rundir.read import read_samples

    cfg = BackendConfig(dtype=args.dtype, threads=args.threads)
    base, tok = load_model_and_tokenizer(resolve_model(args.model).path, cfg)
    evaluated, eval_tok = load_model_and_tokenizer(args.eval, cfg)
    records = list(read_samples(Path(args.samples)).values())[: args.n]
    pairs = [(p, a) for r in records for p, a in zip(r["prompts"], r["raw"])]

    def timed(label):
        start, cpu = time.perf_counter(), time.process_time()
        out = drift_mod.drift(evaluated, base, tok, pairs, eval_tok=eval_tok)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"{label:<28} {wall:7.1f} s wall {cpu:7.1f} s CPU   drift_nll {out['drift_nll']:.6f}  "
              f"kl {out['kl_base_eval']:.6f}", flush=True)
        return out, wall, cpu

    chained, t_chain, c_chain = timed("one pass per conversation")
    real_chains = drift_mod._chains
    drift_mod._chains = lambda enc: [[i] for i in range(len(enc))]
    separate, t_sep, c_sep = timed("one pass per answer")
    drift_mod._chains = real_chains
    n_chains = len(real_chains([drift_mod._encode(tok, p, a) for p, a in pairs]))
    keys = ("nll_eval", "nll_base", "drift_nll", "kl_base_eval")
    worst = max(abs(chained[k] - separate[k]) for k in keys)
    per = max(abs(x - y) for c, s in zip(chained["per_pair"], separate["per_pair"]) for x, y in zip(c, s))
    print(f"{len(pairs)} answers in {n_chains} passes per model; {chained['n_tokens']} answer tokens; "
          f"{args.dtype}, {args.threads} thread(s)")
    print(f"ratio (per conversation / per answer): {t_chain / t_sep:.2f}x wall, {c_chain / c_sep:.2f}x CPU")
    print(f"largest difference: reported numbers {worst:.2e}, per-answer NLL sums {per:.2e}")


if __name__ == "__main__":
    main()
