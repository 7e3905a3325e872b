"""The reports of `harness compare` (leaderboard/compare.py): a table for the terminal, JSON, JUnit XML (one test
case per gated metric and per --exact pin, the format CI systems display) and a markdown summary (appended to
$GITHUB_STEP_SUMMARY when set), each with the "where did it get worse" samples. All carry the same verdicts:
they are rendered from one `Comparison`.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.io import atomic_write_text
from leaderboard.compare import Comparison, MetricResult
from leaderboard.render import delta_text

SCHEMA = "mt-harness/compare/v1"


def _digits(m: MetricResult) -> int:
    return 3 if m.column is not None and m.column.scale <= 1 else 2


def value_text(m: MetricResult, x: float | None) -> str:
    return "" if x is None else f"{x:.{_digits(m)}f}"


def delta_str(m: MetricResult) -> str:
    """Δ [lo, hi] exactly as the leaderboard writes it († = the interval contains 0; a bare Δ: no interval, e.g. a
    run-level value, and then the verdict reads the point estimate alone)."""
    if m.cell is None or m.delta is None:
        return m.note or "—"
    return delta_text(m.cell, m.column)


def tol_text(m: MetricResult) -> str:
    return f"{m.tolerance:g}"


def headline(r: Comparison) -> str:
    if r.exit_code == 0:
        return "OK: no gated metric regressed" + (", exact pins hold" if r.exact else "")
    parts = [f"{m.name} {delta_str(m)} worse than tolerance {tol_text(m)}" for m in r.regressed]
    parts += [f"--exact {x.what}: {x.differing} of {x.total} differ" for x in r.failed_exact]
    return "REGRESSED: " + "; ".join(parts)


def settings_line(r: Comparison) -> str:
    c = r.config
    return (f"tasks {', '.join(r.tasks)}; paired bootstrap {c.resamples} resamples, seed {c.seed}, "
            f"{100 * (1 - c.alpha):g}% intervals; gate {', '.join(m.name for m in r.metrics if m.gated)}")


def _rows(r: Comparison) -> list[list[str]]:
    return [[m.name + (f" ({m.task})" if m.task and m.task not in m.name.lower() else ""),
             "gate" if m.gated else "", value_text(m, m.baseline), value_text(m, m.candidate), delta_str(m),
             tol_text(m), m.verdict] for m in r.metrics]


HEAD = ["metric", "gate", "baseline", "candidate", "Δ [interval]", "tol", "verdict"]


def text(r: Comparison) -> str:
    rows = [HEAD] + _rows(r)
    widths = [max(len(x[i]) for x in rows) for i in range(len(HEAD))]
    out = [f"harness compare: baseline {r.baseline} vs candidate {r.candidate}", settings_line(r), ""]
    out += ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in rows]
    for x in r.exact:
        out += ["", f"--exact {x.what}: {x.differing} of {x.total} differ" + ("" if x.passed else " (FAILED)")]
        for d in x.examples:
            out += [f"  {d.task} {d.id} ({d.field}):"] + [f"    {line}" for line in d.diff]
    for w in r.worst:
        out += ["", f"where did it get worse: {w.metric} ({w.task}; per sample: {w.per_sample})"]
        for s in w.samples:
            out += [f"  {s.id}: {s.baseline:.4g} -> {s.candidate:.4g}"] + \
                ([f"    reference: {s.reference}"] if s.reference else []) + \
                [f"    baseline:  {s.baseline_output}", f"    candidate: {s.candidate_output}"]
    out += [""] + [f"note: {n}" for n in r.notes] + [headline(r)]
    return "\n".join(out)


def to_dict(r: Comparison) -> dict:
    c = r.config
    return {
        "schema": SCHEMA, "baseline": str(r.baseline), "candidate": str(r.candidate),
        "result": "regressed" if r.exit_code else "ok", "exit_code": r.exit_code, "tasks": r.tasks,
        "settings": {"resamples": c.resamples, "seed": c.seed, "alpha": c.alpha, "gate": c.gate or "composites",
                     "tolerance": c.tolerance, "exact": c.exact},
        "metrics": [{"name": m.name, "task": m.task, "kind": m.kind, "key": m.key,
                     "direction": m.column.direction if m.column is not None else "higher", "gated": m.gated,
                     "baseline": m.baseline, "candidate": m.candidate, "delta": m.delta, "lo": m.lo, "hi": m.hi,
                     "tolerance": m.tolerance, "verdict": m.verdict, "note": m.note} for m in r.metrics],
        "exact": [{"what": x.what, "total": x.total, "differing": x.differing, "passed": x.passed,
                   "examples": [vars(d) for d in x.examples]} for x in r.exact],
        "worst": [{"metric": w.metric, "task": w.task, "per_sample": w.per_sample,
                   "samples": [vars(s) for s in w.samples]} for w in r.worst],
        "notes": r.notes,
    }


def junit(r: Comparison) -> str:
    gated = [m for m in r.metrics if m.gated]
    suite = ET.Element("testsuite", name="harness compare", tests=str(len(gated) + len(r.exact)),
                       failures=str(len(r.regressed) + len(r.failed_exact)), errors="0", skipped="0")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="baseline", value=str(r.baseline))
    ET.SubElement(props, "property", name="candidate", value=str(r.candidate))
    for m in gated:
        case = ET.SubElement(suite, "testcase", classname=f"compare.{m.task or 'composite'}", name=m.name)
        side = ("no better or worse side" if m.column is not None and not m.column.has_direction
                else f"{'higher' if m.higher_is_better else 'lower'} is better")
        detail = (f"{m.verdict}: Δ {delta_str(m)} (baseline {value_text(m, m.baseline)}, candidate "
                  f"{value_text(m, m.candidate)}, tolerance {tol_text(m)}, {side})")
        if m.verdict == "regressed":
            ET.SubElement(case, "failure", message=detail, type="regressed").text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    for x in r.exact:
        case = ET.SubElement(suite, "testcase", classname="compare.exact", name=f"exact {x.what}")
        msg = f"{x.differing} of {x.total} differ"
        if not x.passed:
            body = "\n".join(f"{d.task} {d.id} ({d.field}):\n" + "\n".join(d.diff) for d in x.examples)
            ET.SubElement(case, "failure", message=msg, type="exact").text = body
    root = ET.Element("testsuites", name="harness compare", tests=suite.get("tests"), failures=suite.get("failures"))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def markdown(r: Comparison) -> str:
    icon = "✅" if r.exit_code == 0 else "❌"
    out = [f"## {icon} harness compare", "", f"**{_md(headline(r))}**", "",
           (f"Baseline `{r.baseline}`, candidate `{r.candidate}`; {_md(settings_line(r))}. "
            "Δ = candidate − baseline; † = interval contains 0."), "",
           "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    out += ["| " + " | ".join(_md(x) for x in row) + " |" for row in _rows(r)]
    for x in r.exact:
        out += ["", f"**--exact {x.what}**: {x.differing} of {x.total} differ" + ("" if x.passed else " (failed)")]
        for d in x.examples:
            out += ["", f"`{d.task} {d.id}` ({d.field}):", "", "```diff", *d.diff, "```"]
    for w in r.worst:
        out += ["", f"### Where did it get worse: {_md(w.metric)} ({w.task}; per sample: {w.per_sample})", "",
                "| sample | baseline | candidate | reference | baseline output | candidate output |",
                "|---|---|---|---|---|---|"]
        out += [f"| {s.id} | {s.baseline:.4g} | {s.candidate:.4g} | {_md(s.reference)} | {_md(s.baseline_output)} | "
                f"{_md(s.candidate_output)} |" for s in w.samples]
    if r.notes:
        out += ["", "Notes:", ""] + [f"- {_md(n)}" for n in r.notes]
    return "\n".join(out) + "\n"


def write_reports(r: Comparison, json_path: str | None = None, junit_path: str | None = None,
                  summary_path: str | None = None) -> list[Path]:
    """Write the JSON (json_path "-" = stdout, not written here), JUnit and markdown summary (appended, as GitHub's
    step summary expects) files that were asked for; returns the paths written."""
    written = []
    if json_path and json_path != "-":
        atomic_write_text(Path(json_path), json.dumps(to_dict(r), indent=1, ensure_ascii=False) + "\n")
        written.append(Path(json_path))
    if junit_path:
        atomic_write_text(Path(junit_path), junit(r))
        written.append(Path(junit_path))
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as f:
            f.write(markdown(r))
        written.append(Path(summary_path))
    return written
