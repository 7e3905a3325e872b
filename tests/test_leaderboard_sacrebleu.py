"""The leaderboard's BLEU/chrF++ bootstrap against sacrebleu's own paired bootstrap, on every target language.

Two "methods" are run through the real runner (samples.jsonl + results.json) on real FLORES devtest lines of
en→X for every default FLORES language X (tasks/flores.yaml) plus ko, and de→en for the target en; a
test-double backend answers with perturbed references (prefixes, another sentence, the source). The
reference numbers come from sacrebleu alone, given the hypotheses and references in document order:
`sacrebleu.significance.PairedTest` (what `sacrebleu --paired-bs` runs) and `_bootstrap_resample` (its
per-resample scores), seeded by $SACREBLEU_SEED like the CLI. Nothing of leaderboard/ is used to compute them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from echo_backend import EchoBackend
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import (
    PairedTest,
    _bootstrap_resample,
    _compute_p_value,
    estimate_ci,
)

from harness.data import DataSource
from harness.rundir.context import EvalContext
from harness.runner import evaluate
from tasks import load_task
from leaderboard import collect
from leaderboard.build import build
from leaderboard.cells import Evaluator

SEED, N_BOOT, LINES = 12345, 1000, 60
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LANGS = yaml.safe_load((ROOT / "tasks" / "flores.yaml").read_text())["languages"]
TARGETS = sorted(set(DEFAULT_LANGS) | {"ko"})
SUBSETS = [f"en-{t}" for t in TARGETS if t != "en"] + ["de-en"]
# the tokenizer sacrebleu's documentation recommends per target language (13a otherwise)
TOKENIZE = {"ja": "ja-mecab", "ko": "ko-mecab", "zh": "zh", "th": "char"}
MODEL = {"name": "tiny-test", "weights_sha256": "b" * 64}


def base_hyp(doc, i):  # a prefix of the reference, the source now and then (off-target)
    ref = doc["reference"]
    return doc["source"] if i % 7 == 0 else ref[: max(1, len(ref) * (4 + i % 5) // 10)]


def method_hyp(doc, i):  # mostly the reference, sometimes a prefix, sometimes the next line's reference
    ref = doc["reference"]
    return ref if i % 3 else (ref[: len(ref) // 2] if i % 2 else doc["next"])


def run(data_dir: Path, out: Path, method: str, transform) -> None:
    task = load_task("flores", DataSource.resolve(str(data_dir)))
    task.select(SUBSETS)
    docs = {}
    for s in task.selected:
        sd = task.docs(s)[:LINES + 1]
        for d, nxt in zip(sd, sd[1:]):
            docs[d["id"]] = {**d, "next": nxt["reference"]}
    ctx = EvalContext(out_dir=out, method={"name": method, "config": {"m": method},
                                           "artifact": {"kind": "none",
                                                        "config_hash": "" if method == "base" else "m1"}},
                      model=MODEL, limit=LINES)
    evaluate(task, EchoBackend(docs, transform), ctx)


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("all_targets")
    run(data_dir, root / "base", "base", base_hyp)
    run(data_dir, root / "method", "method", method_hyp)
    return root


def read_samples(run_dir: Path, subset: str) -> tuple[list[str], list[str]]:
    """Hypotheses and references of one subset in document order (line i of the FLORES files)."""
    recs = [json.loads(x) for x in (run_dir / "flores" / "samples.jsonl").read_text().splitlines() if x.strip()]
    recs = sorted((r for r in recs if r["subset"] == subset), key=lambda r: int(r["id"].rsplit("/", 1)[1]))
    assert [int(r["id"].rsplit("/", 1)[1]) for r in recs] == list(range(LINES))
    return [r["outputs"][0] for r in recs], [r["reference"] for r in recs]


def sacrebleu_metrics(tgt: str) -> dict:
    return {"bleu": BLEU(tokenize=TOKENIZE.get(tgt, "13a")), "chrf": CHRF(word_order=2)}


def test_leaderboard_reproduces_sacrebleu_paired_bootstrap_on_every_target(runs, monkeypatch):
    monkeypatch.setenv("SACREBLEU_SEED", str(SEED))
    sections = collect.group(collect.load_runs(collect.find_results([runs]), []))
    assert len(sections) == 1
    tables = build(sections, n_boot=N_BOOT, seed=SEED)  # raised KeyError 'ja-mecab-0.996-IPA' before the fix
    rows = {r.label: r for r in tables[0].rows}
    base_row, method_row = (next(r for r in sections[0].rows if r.method == m) for m in ("base", "method"))
    ev = Evaluator(N_BOOT, SEED)
    flores = load_task("flores", DataSource(None)).leaderboard_columns()
    cols = {c.sample: c for c in flores if c.kind == "corpus" and c.subsets == "*"}
    base_results = json.loads((runs / "base" / "results.json").read_text())["tasks"]["flores"]["metrics"]
    for subset in SUBSETS:
        tgt = subset.split("-")[1]
        base_h, refs = read_samples(runs / "base", subset)
        sys_h, refs2 = read_samples(runs / "method", subset)
        assert refs == refs2
        for name, metric in sacrebleu_metrics(tgt).items():
            # sacrebleu alone: the paired test, and its per-resample scores of each system (same seed → same draws)
            _, res = PairedTest([("base", base_h), ("method", sys_h)], {name: metric}, [refs],
                                   test_type="bs", n_samples=N_BOOT)()
            key = next(k for k in res if k != "System")
            bl_res, sys_res = res[key]
            assert str(metric.get_signature()) == base_results[subset]["signatures"][name]
            ref_bl = np.array([s.score for s in _bootstrap_resample(metric._extract_corpus_statistics(base_h, [refs]),
                                                                      metric, N_BOOT)[1]])
            ref_sys = np.array([s.score for s in _bootstrap_resample(metric._extract_corpus_statistics(sys_h, [refs]),
                                                                       metric, N_BOOT)[1]])
            # ours: the leaderboard's per-subset scores and resamples of both runs
            ids = ev.subset_ids(method_row.tasks["flores"], subset)
            pt, boot = ev.scores(cols[name], method_row.tasks["flores"], subset, ids, True)
            bpt, bboot = ev.scores(cols[name], base_row.tasks["flores"], subset, ids, True)
            assert (bpt, pt) == (bl_res.score, sys_res.score), (subset, name)
            # the same resamples, paired the same way (our rows are a reordering of sacrebleu's): exact equality
            ours = np.stack([bboot, boot], 1)
            theirs = np.stack([ref_bl, ref_sys], 1)
            assert np.array_equal(ours[np.lexsort(ours.T[::-1])], theirs[np.lexsort(theirs.T[::-1])]), (subset, name)
            # hence what `sacrebleu --paired-bs` prints: bootstrap mean ± CI of each system, p-value
            assert estimate_ci(bboot) == (bl_res.mean, bl_res.ci)
            assert estimate_ci(boot) == (sys_res.mean, sys_res.ci)
            diffs = np.abs(boot - bboot)
            assert _compute_p_value(diffs - diffs.mean(), abs(bpt - pt)) == pytest.approx(sys_res.p_value, abs=1e-12)
            if subset == "de-en":  # the only x-en subset: the "x-en" cells are this subset's paired Δ
                label = {"bleu": "BLEU x-en", "chrf": "chrF++ x-en"}[name]
                c = rows["method"].cells[label]
                d = np.sort(ref_sys - ref_bl)
                assert c.delta == pytest.approx(sys_res.score - bl_res.score, abs=1e-9)
                assert (c.lo, c.hi) == (d[N_BOOT // 40], d[N_BOOT - N_BOOT // 40 - 1])  # estimate_ci's order statistics
    # the grouped columns of the full run are the recomputed results.json summaries
    summary = json.loads((runs / "method" / "results.json").read_text())["tasks"]["flores"]["summary"]
    for label, key in (("BLEU", "bleu"), ("chrF++", "chrf"), ("BLEU en-x", "bleu_pivot-x")):
        assert rows["method"].cells[label].value == pytest.approx(summary[key])
        assert rows["method"].cells[label].lo <= rows["method"].cells[label].delta <= rows["method"].cells[label].hi


def test_results_record_the_sacrebleu_tokenizer_name(runs):
    """results.json keeps the constructor arguments: the signature's tokenizer field is not a tokenizer name."""
    metrics = json.loads((runs / "base" / "results.json").read_text())["tasks"]["flores"]["metrics"]
    assert metrics["en-ja"]["metric_args"]["bleu"] == {"tokenize": "ja-mecab"}
    assert "tok:ja-mecab-0.996-IPA" in metrics["en-ja"]["signatures"]["bleu"]
    assert metrics["en-ko"]["metric_args"]["bleu"] == {"tokenize": "ko-mecab"}
    for subset in SUBSETS:
        assert metrics[subset]["metric_args"]["bleu"] == {"tokenize": TOKENIZE.get(subset.split("-")[1], "13a")}


def test_old_results_without_metric_args_are_rebuilt_from_the_signature(runs, tmp_path):
    """Results files written before `metric_args` existed: the tokenizer name is derived from the signature."""
    import shutil

    for m in ("base", "method"):
        shutil.copytree(runs / m, tmp_path / m)
        p = tmp_path / m / "results.json"
        res = json.loads(p.read_text())
        for per in res["tasks"]["flores"]["metrics"].values():
            per.pop("metric_args")
        p.write_text(json.dumps(res))
    new = {r.label: r
           for r in build(collect.group(collect.load_runs(collect.find_results([runs]), [])), 200, 3)[0].rows}
    old = {r.label: r
           for r in build(collect.group(collect.load_runs(collect.find_results([tmp_path]), [])), 200, 3)[0].rows}
    for label in ("BLEU", "BLEU en-x", "chrF++"):
        a, b = new["method"].cells[label], old["method"].cells[label]
        assert (a.value, a.delta, a.lo, a.hi) == (b.value, b.delta, b.lo, b.hi)
