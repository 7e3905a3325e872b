"""How well each judge-free refusal classifier agrees with human labels, and how often it fires on ordinary text.

Ground truth: XSTest v2 completions of four models (450 prompts each, two human labels and a final label).
Refusal = full or partial refusal (XSTest convention; `--partial compliance` to count partial refusals as
compliance). Per classifier and model: accuracy, false-refusal rate (compliant answers flagged / compliant
answers), missed-refusal rate (refusals not flagged / refusals), over-refusal on the 250 safe prompts
(classifier) next to the human over-refusal. `design` marks the models whose errors were read while
writing the `rules` classifier (GPT-4, Llama-2); the Mistral models are held out. Then: false refusals on
the 1012 FLORES devtest sentences of every language a classifier has phrases for (each sentence read as a
whole response; any hit is a false alarm).

    python bench/bench_refusal.py --data-dir ../shared/data [--markdown] [--show-errors rules:gpt4]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.metrics.refusal import CLASSIFIERS, get_classifier  # noqa: E402
from harness.metrics.refusal_eval import (DESIGN_MODELS, FLORES_CODES, XSTEST_MODELS, agreement,  # noqa: E402
                                          annotator_agreement, flores_false_refusals, is_refusal_label, load_xstest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", "../shared/data"))
    ap.add_argument("--classifiers", default=",".join(CLASSIFIERS))
    ap.add_argument("--partial", choices=["refusal", "compliance"], default="refusal")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables (for bench/RESULTS.md)")
    ap.add_argument("--show-errors", default="", help="classifier:model, print its disagreements with humans")
    args = ap.parse_args()
    data = Path(args.data_dir)
    items = {m: load_xstest(data, m) for m in XSTEST_MODELS}
    names = args.classifiers.split(",")
    sep = " | " if args.markdown else "  "

    def row(cells: list[str]) -> str:
        return ("| " + sep.join(cells) + " |") if args.markdown else sep.join(cells)

    print(f"XSTest v2 completions, refusal = full{'+partial' if args.partial == 'refusal' else ''} refusal\n")
    head = ["classifier", "model", "split", "acc", "false-refusal", "missed-refusal", "over-refusal (human)"]
    print(row(head))
    if args.markdown:
        print("|" + "|".join(["---"] * 3 + ["---:"] * 4) + "|")
    for name in names:
        clf = get_classifier(name)
        pooled = {"design": [], "held-out": []}
        for m in XSTEST_MODELS:
            split = "design" if m in DESIGN_MODELS else "held-out"
            a = agreement(items[m], clf.is_refusal, args.partial)
            pooled[split] += items[m]
            print(row([clf.name, m, split, f"{a.accuracy:.3f}",
                       f"{a.false_refusal:.3f} ({round(a.false_refusal * a.n_compliant)}/{a.n_compliant})",
                       f"{a.missed_refusal:.3f} ({round(a.missed_refusal * a.n_refusal)}/{a.n_refusal})",
                       f"{a.over_refusal:.3f} ({a.over_refusal_human:.3f})"]))
        for split, its in pooled.items():
            a = agreement(its, clf.is_refusal, args.partial)
            acc = f"**{a.accuracy:.3f}**" if args.markdown else f"{a.accuracy:.3f}"
            print(row([clf.name, "all " + split, split, acc,
                       f"{a.false_refusal:.3f}", f"{a.missed_refusal:.3f}", "–"]))
    ceiling = [f"{m} {annotator_agreement(items[m], args.partial):.3f}" for m in XSTEST_MODELS]
    print(f"\nannotator 1 vs annotator 2 (refusal vs compliance): {', '.join(ceiling)}")

    print("\nFalse refusals on FLORES devtest sentences (1012 per language; languages the classifier has phrases "
          "for)\n")
    langs = list(FLORES_CODES)
    print(row(["classifier"] + langs))
    if args.markdown:
        print("|---|" + "|".join(["---:"] * len(langs)) + "|")
    for name in names:
        clf = get_classifier(name)
        cells = [str(len(flores_false_refusals(data, clf, lang))) if lang in clf.languages else "–" for lang in langs]
        print(row([clf.name] + cells))

    if args.show_errors:
        name, model = args.show_errors.split(":")
        clf = get_classifier(name)
        print(f"\nDisagreements of {clf.name} on {model}:")
        for it in items[model]:
            gold, pred = is_refusal_label(it.label, args.partial), clf.match(it.completion)
            if gold != (pred is not None):
                kind = "false refusal" if pred else f"missed {it.label}"
                print(f"- {kind} [{'safe' if it.safe else 'unsafe'}] {pred or ''} | {it.completion.strip()[:160]!r}")


if __name__ == "__main__":
    from harness.errors import HarnessError

    try:
        main()
    except HarnessError as e:
        sys.exit(f"Error: {e}")
