"""Multiple-choice log-likelihood scoring: our transformers backend vs lm-eval 0.4's HFLM, same model, dtype,
batch size and (context, continuation) requests.

Both sides get the same loaded model and the requests our task hooks build (tests/test_multiple_choice.py
shows they equal the requests lm-eval's own task objects build, item by item). Timed: ours =
`HFBackend.loglikelihood` (shared prefix run once per question), lm-eval = `HFLM.loglikelihood` on the
same pairs as `Instance`s. Accuracies are computed from each side's log-likelihoods with the same metric.

  python bench/bench_loglik.py --model smollm2-135m-instruct --tasks arc_easy,hellaswag --n 50 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--tasks", default="arc_easy,hellaswag")
    ap.add_argument("--n", type=int, default=50, help="items per task")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="alternating runs per side; the median is reported")
    args = ap.parse_args()

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from harness.backends.hf import HFBackend
    from harness.loading import BackendConfig, load_model_and_tokenizer, set_threads
    from harness.data import DataSource
    from harness.models import resolve_model
    from tasks import load_task

    set_threads(args.threads)
    cfg = BackendConfig(dtype=args.dtype, batch_size=args.batch_size, threads=args.threads)
    model, tok = load_model_and_tokenizer(resolve_model(args.model).path, cfg)
    ours = HFBackend(model, tok, cfg)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=args.batch_size)
    data = DataSource.resolve(None, allow_hub=False)
    print(f"model {args.model} dtype {args.dtype} batch {args.batch_size} threads {torch.get_num_threads()} "
          f"items/task {args.n}")
    print(f"{'task':16s} {'ours s':>8s} {'lm-eval s':>10s} {'ratio':>6s}  {'cpu ours':>7s} {'cpu ref':>7s} "
          f"{'ratio':>6s}  {'acc ours/lm-eval':>18s} "
          f"{'acc_norm ours/lm-eval':>22s} {'max |dLL|':>9s}")
    total_ours = total_ref = cpu_ours = cpu_ref = 0.0
    for name in args.tasks.split(","):
        task = load_task(name, data)
        docs = task.docs("en")[: args.n]
        groups = [task.requests(d) for d in docs]
        flat = [pair for g in groups for pair in g]
        t_ours, t_ref, c_ours, c_ref = [], [], [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            res = ours.loglikelihood(groups)
            t_ours.append(time.perf_counter() - t0)
            c_ours.append(time.process_time() - c0)
            insts = [Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i)
                     for i, pair in enumerate(flat)]
            t0, c0 = time.perf_counter(), time.process_time()
            ref = lm.loglikelihood(insts, disable_tqdm=True)
            t_ref.append(time.perf_counter() - t0)
            c_ref.append(time.process_time() - c0)
        ref_groups, i = [], 0
        for g in groups:
            ref_groups.append(ref[i:i + len(g)])
            i += len(g)
        m_ours = [task.score(d, [[r.logprob, r.is_greedy] for r in rs]) for d, rs in zip(docs, res)]
        m_ref = [task.score(d, [list(x) for x in rs]) for d, rs in zip(docs, ref_groups)]
        dll = max(abs(a.logprob - b[0]) for rs, refs in zip(res, ref_groups) for a, b in zip(rs, refs))

        def mean(ms, k):
            return 100 * sum(m[k] for m in ms) / len(ms) if k in ms[0] else float("nan")

        so, sr = statistics.median(t_ours), statistics.median(t_ref)
        co, cr = statistics.median(c_ours), statistics.median(c_ref)
        total_ours, total_ref = total_ours + so, total_ref + sr
        cpu_ours, cpu_ref = cpu_ours + co, cpu_ref + cr
        print(f"{name:16s} {so:8.1f} {sr:10.1f} {so / sr:6.2f}  {co:7.1f} {cr:7.1f} {co / cr:6.2f}  "
              f"{mean(m_ours, 'acc'):8.1f}/{mean(m_ref, 'acc'):<8.1f} "
              f"{mean(m_ours, 'acc_norm'):11.1f}/{mean(m_ref, 'acc_norm'):<10.1f} {dll:9.2e}")
    print(f"{'total':16s} {total_ours:8.1f} {total_ref:10.1f} {total_ours / total_ref:6.2f}  "
          f"{cpu_ours:7.1f} {cpu_ref:7.1f} {cpu_ours / cpu_ref:6.2f}")


if __name__ == "__main__":
    main()
