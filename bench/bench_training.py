"""Training speed and memory: the harness trainer vs Hugging Face `transformers.Trainer` (+ peft for LoRA).

Same data (ALMA de-en human-written pairs from the data directory through `harness.training.data`,
FLORES dev/devtest excluded, `steps x batch` of them = exactly one epoch), same prompt rendering
(`trainer.encode`: the FLORES evaluation prompt, loss on the reference tokens only), same model,
batch size, max length, precision, optimizer (torch AdamW), lr schedule (cosine, no warm-up),
gradient clipping and number of steps. Both sort by length inside windows (ours `group_by_length`,
HF `train_sampling_strategy="group_by_length"`), so each sees the same examples and real tokens,
only padded differently. Each contender runs in its own fresh process (so `ru_maxrss` is its own
peak RSS); tokens/s = real (non-pad) tokens / seconds of the training loop (first step to last,
model load and setup excluded; the whole `train()` call is reported too).

    python bench/bench_training.py --steps 6 --batch-size 8 --max-length 256 --threads 2
    python bench/bench_training.py --model <tiny dir> --steps 3 --batch-size 2   # smoke test
    python bench/bench_training.py --method lora --steps 6
    python bench/bench_training.py --steps 6 --radis   # + peak RSS of `harness train --method radis --budget small`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


# -- shared setup ------------------------------------------------------------------------------------
def load_features(args, tok):
    """The benchmark's training examples, encoded exactly as the harness methods encode them."""
    from harness.data import DataSource
    from tasks import load_task
    from harness.training import trainer
    from harness.training.data import TrainDataConfig, load_training_data

    data = DataSource.resolve(args.data_dir)
    cfg = TrainDataConfig(pairs=[args.pair], max_per_pair=args.steps * args.batch_size)
    examples, _ = load_training_data(cfg, data, seed=0)
    flores = load_task("flores", data)
    return [trainer.encode(tok, flores.messages(ex.doc(), []), ex.reference, flores.cfg.prompt.chat, args.max_length)
            for ex in examples]


def load_model(args):
    import torch

    from harness.loading import BackendConfig, load_for_training
    from harness.models import resolve_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tok = load_for_training(resolve_model(args.model).path, BackendConfig(device="cpu"))
    if args.method == "lora":
        from peft import LoraConfig, get_peft_model

        from methods.lora.config import LoRAConfig

        c = LoRAConfig()
        model = get_peft_model(model, LoraConfig(r=c.r, lora_alpha=c.alpha, lora_dropout=c.dropout,
                                                 target_modules=list(c.targets), task_type="CAUSAL_LM"))
    return model, tok


# -- contenders (each in its own process) -----------------------------------------------------------------
def run_harness(args, model, tok, features, work: Path) -> dict:
    from harness.training import trainer

    cfg = trainer.TrainConfig(lr=args.lr, max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
                              warmup_ratio=0.0, scheduler="cosine", precision=args.precision, save_every=0)
    t0 = time.perf_counter()
    trainer.train(model, tok, features, cfg, work, seed=0, device="cpu", desc="harness")
    wall = time.perf_counter() - t0
    log = [json.loads(x) for x in (work / "loss.jsonl").read_text().splitlines()]
    return {"steps": len(log), "tokens": sum(r["tokens"] for r in log), "loop_s": log[-1]["seconds"],
            "call_s": wall, "loss_first": log[0]["loss"], "loss_last": log[-1]["loss"]}


def run_hf(args, model, tok, features, work: Path) -> dict:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from harness.training.trainer import PROMPT

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows = [{"input_ids": f["input_ids"], "labels": [t if s != PROMPT else -100 for t, s in
                                                     zip(f["input_ids"], f["segments"])]} for f in features]
    counted = {"tokens": 0, "batches": 0}

    def collate(batch):
        width = max(len(r["input_ids"]) for r in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            n = len(r["input_ids"])
            ids[i, :n], labels[i, :n], attn[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
        counted["tokens"] += int(attn.sum())
        counted["batches"] += 1
        return {"input_ids": ids, "labels": labels, "attention_mask": attn}

    times: dict = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            times.setdefault("first", time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            times["last"] = time.perf_counter()

    if args.precision == "bf16":
        model.to(torch.bfloat16)
    targs = TrainingArguments(
        output_dir=str(work), per_device_train_batch_size=args.batch_size, max_steps=args.steps,
        learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        optim="adamw_torch", bf16=args.precision == "bf16-mixed", use_cpu=True, seed=0, data_seed=0,
        train_sampling_strategy="group_by_length", logging_steps=1, save_strategy="no", report_to="none",
        disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0)
    hf = Trainer(model=model, args=targs, train_dataset=rows, data_collator=collate, callbacks=[Clock()])
    t0 = time.perf_counter()
    hf.train()
    wall = time.perf_counter() - t0
    losses = [r["loss"] for r in hf.state.log_history if "loss" in r]
    return {"steps": hf.state.global_step, "tokens": counted["tokens"], "loop_s": times["last"] - times["first"],
            "call_s": wall, "loss_first": losses[0], "loss_last": losses[-1]}


def worker(args) -> None:
    model, tok = load_model(args)
    features = load_features(args, tok)
    rss_loaded = peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix=f"bench-{args.worker}-") as tmp:
        res = (run_harness if args.worker == "harness" else run_hf)(args, model, tok, features, Path(tmp))
    res.update(contender=args.worker, examples=len(features), peak_rss_mb=peak_rss_mb(), loaded_rss_mb=rss_loaded,
               tokens_per_s=res["tokens"] / res["loop_s"])
    Path(args.result).write_text(json.dumps(res))


def run_radis(args) -> dict:
    """Peak RSS of the RaDis small recipe as a user runs it (rationale generation + training), own cache.
    Runs in a worker process whose only child is the CLI, so RUSAGE_CHILDREN's peak is the CLI's."""
    with tempfile.TemporaryDirectory(prefix="bench-radis-") as tmp:
        env = {**os.environ, "HARNESS_CACHE": tmp, "OMP_NUM_THREADS": str(args.threads)}
        from harness.models import cache_dir

        if (cache_dir() / "models").is_dir():  # reuse converted base models; artifacts and rationales start empty
            (Path(tmp) / "models").symlink_to(cache_dir() / "models")
        if args.data_dir:
            env["HARNESS_DATA_DIR"] = str(args.data_dir)
        cmd = [sys.executable, "-m", "mt_harness.cli", "train", "--method", "radis", "--budget", "small",
               "--model", args.model, "--threads", str(args.threads), "--device", "cpu"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"radis run failed:\n{proc.stderr[-3000:]}")
    res = {"contender": "harness train --method radis --budget small", "wall_s": wall,
           "peak_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN), "command": " ".join(cmd[1:])}
    Path(args.result).write_text(json.dumps(res))


# -- driver ----------------------------------------------------------------------------------------
def spawn(args, who: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    cmd = [sys.executable, __file__, "--worker", who, "--result", str(out)] + args.passthrough
    print(f"[bench] {who}: {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    res = json.loads(out.read_text())
    out.unlink()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="registry name or local model dir")
    ap.add_argument("--method", choices=["sft", "lora"], default="sft", help="full fine-tuning or peft LoRA")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--pair", default="de-en")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--precision", choices=["fp32", "bf16-mixed", "bf16"], default="fp32")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--radis", action="store_true", help="also measure `harness train --method radis --budget small`")
    ap.add_argument("--radis-runs", type=int, default=1, help="repeat the RaDis measurement (it varies by ~0.1 GB)")
    ap.add_argument("--radis-only", action="store_true", help="only the RaDis peak-RSS measurement")
    ap.add_argument("--json", default=None, help="write all results here")
    ap.add_argument("--worker", choices=["harness", "hf", "radis"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.method == "lora" and args.lr == 2e-5:
        args.lr = 2e-4  # the lora method's default
    if args.worker:
        return run_radis(args) if args.worker == "radis" else worker(args)

    args.passthrough = [a for a in sys.argv[1:] if a not in ("--radis", "--radis-only")]
    for flag in ("--json", "--radis-runs"):
        if flag in args.passthrough:
            i = args.passthrough.index(flag)
            del args.passthrough[i:i + 2]
    out = {"args": {k: v for k, v in vars(args).items() if k not in ("worker", "result", "passthrough")}}
    if not args.radis_only:
        out.update(compare(args))
    if args.radis or args.radis_only:
        out["radis"] = []
        for _ in range(args.radis_runs):  # each in a fresh process with a fresh rationale + artifact cache
            r = spawn(args, "radis")
            print(f"radis small: peak RSS {r['peak_rss_mb']:.0f} MiB, wall {r['wall_s']:.0f} s ({r['command']})")
            out["radis"].append(r)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


def compare(args) -> dict:
    rows = [spawn(args, "harness"), spawn(args, "hf")]
    if rows[0]["tokens"] != rows[1]["tokens"]:
        print(f"[bench] WARNING: real tokens differ ({rows[0]['tokens']} vs {rows[1]['tokens']})")
    ratio = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    print(f"\nmodel {args.model}, method {args.method}, {args.steps} steps x batch {args.batch_size}, "
          f"max length {args.max_length}, {args.precision}, {args.threads} threads\n")
    print("| contender | steps | real tokens | loop s | train() s | tokens/s | peak RSS MB | RSS after load MB "
          "| loss first -> last |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    names = {"harness": "harness trainer", "hf": "transformers.Trainer" + (" + peft" if args.method == "lora" else "")}
    for r in rows:
        print(f"| {names[r['contender']]} | {r['steps']} | {r['tokens']} | {r['loop_s']:.1f} | {r['call_s']:.1f} | "
              f"{r['tokens_per_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['loaded_rss_mb']:.0f} | "
              f"{r['loss_first']:.3f} -> {r['loss_last']:.3f} |")
    print(f"\nratio harness / HF tokens/s: {ratio:.2f}x (target >= 1.2x)")
    return {"rows": rows, "ratio": ratio}


if __name__ == "__main__":
    main()
