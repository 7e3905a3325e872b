"""Plain-text tables printed at the end of a run."""

from __future__ import annotations


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}"
    return str(v)


def print_run_table(results: dict, task_names: list[str]) -> None:
    model = results.get("model", {}).get("name")
    method = results.get("method", {}).get("name")
    print(f"\nmethod={method} model={model} limit={results.get('limit')} seed={results.get('seed')}")
    for name in task_names:
        entry = results["tasks"].get(name)
        if not entry:
            continue
        per = entry["metrics"]
        keys = [k for k, v in next(iter(per.values()), {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)]
        print(f"\n== {name} ({entry['n_samples']} samples, truncated {entry['truncated']['rate']:.1%}) ==")
        width = max([len(s) for s in per] + [7])
        print(" ".join([f"{'subset':{width}s}"] + [f"{k:>12s}" for k in keys]))
        for subset, m in per.items():
            print(" ".join([f"{subset:{width}s}"] + [f"{_fmt(m.get(k)):>12s}" for k in keys]))
        if entry.get("summary"):
            print("summary: " + ", ".join(f"{k}={_fmt(v)}" for k, v in entry["summary"].items()))
        sigs = next(iter(per.values()), {}).get("signatures")
        if sigs:
            for k, s in sigs.items():
                print(f"{k} signature: {s}")
