"""Re-scoring a finished run costs seconds and zero model calls.

Makes (or reuses) a finished run, then times `harness score OUT` in a fresh process three ways of
proof: the model cache is pointed at an empty folder (no model could be resolved), every
`from_pretrained` and every `torch.nn.Module.__call__` is counted, and the process reports whether
any `transformers` model class was even imported. The metrics must equal those of the run.

    python bench/bench_rescore.py --n 64            # makes a run with the default model first
    python bench/bench_rescore.py --out results/runs/<run>   # an existing finished run
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

REPO = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, sys, torch, transformers
calls = {"module_calls": 0, "from_pretrained": 0}
orig_call = torch.nn.Module.__call__
def counted(self, *a, **k):
    calls["module_calls"] += 1
    return orig_call(self, *a, **k)
torch.nn.Module.__call__ = counted
for name in ("AutoModelForCausalLM", "AutoModel", "AutoModelForSeq2SeqLM"):
    cls = getattr(transformers, name)
    orig = cls.from_pretrained.__func__
    def fp(c, *a, _o=orig, **k):
        calls["from_pretrained"] += 1
        return _o(c, *a, **k)
    cls.from_pretrained = classmethod(fp)
from mt_harness.cli import main
rc = main(["score", *sys.argv[1:]])
calls["rc"] = rc
calls["model_modules_imported"] = sorted(m for m in sys.modules if m.startswith("transformers.models.")
                                         and m.count(".") >= 3 and "modeling_" in m and ".auto." not in m)
print("PROBE " + json.dumps(calls))
"""


def make_run(out: Path, n: int, model: str, data_dir: str, threads: int) -> float:
    cmd = [sys.executable, "-m", "mt_harness.cli", "run", "--tasks", "flores", "--langs", "de-en", "--limit", str(n),
           "--model", model, "--output", str(out), "--data-dir", data_dir, "--threads", str(threads)]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="an existing finished run (default: make one)")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data")))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "run"
        if not args.out:
            secs = make_run(out, args.n, args.model, args.data_dir, args.threads)
            print(f"harness run ({args.n} lines de-en, {args.model}): {secs:.1f} s")
        before = json.loads((out / "results.json").read_text())
        empty_cache = Path(tmp) / "empty-cache"
        empty_cache.mkdir()
        env = {**os.environ, "HARNESS_CACHE": str(empty_cache), "HF_HUB_OFFLINE": "1", "HF_HOME": str(empty_cache)}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", PROBE, str(out), "--data-dir", args.data_dir], cwd=REPO,
                              env=env, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        if proc.returncode != 0 or "PROBE " not in proc.stdout:
            raise SystemExit(f"harness score failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
        probe = json.loads(proc.stdout.split("PROBE ", 1)[1])
        after = json.loads((out / "results.json").read_text())
        same = all(before["tasks"][t]["metrics"] == after["tasks"][t]["metrics"] for t in before["tasks"])
        n = sum(t["n_samples"] for t in after["tasks"].values())
        print(f"harness score: {secs:.2f} s wall for {n} samples (fresh process, imports included)")
        print(f"  from_pretrained calls: {probe['from_pretrained']}; nn.Module calls: {probe['module_calls']}; "
              f"modeling modules imported: {probe['model_modules_imported'] or 'none'}; model cache: empty")
        print(f"  metrics identical to the run's: {same}")
        if probe["from_pretrained"] or probe["module_calls"] or not same:
            raise SystemExit("FAILED: re-scoring touched a model or changed the metrics")


if __name__ == "__main__":
    main()
