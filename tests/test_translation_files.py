"""Translation test sets from files, configured in YAML only (tasks/translation.py; tasks/wmt16.yaml, multi30k.yaml).

End to end through `mt_harness.cli.main` on the tiny random model: run, results.json + samples.jsonl, resume,
`harness score`, `harness validate`, `--langs`. Multi-reference BLEU/chrF++ are checked against the sacrebleu
CLI with several reference files (and its Python API with several streams), on informative hypotheses written
into samples.jsonl and re-scored by `harness score`. The contamination guard and the leaderboard are checked on
a two-reference task. Bad YAML and bad files give one-line errors.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from echo_backend import EchoBackend
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import _paired_bs_test

from mt_harness.cli import main
from harness.data import DataSource
from harness.errors import HarnessError
from harness.rundir.context import EvalContext
from harness.runner import evaluate
from tasks import load_task
from harness.training.contamination import guard
from harness.training.data import TrainDataConfig, load_training_data
from leaderboard import make_leaderboard, stats

M30K = "parallel/multi30k/task1_raw/test_2016_flickr"


def gz_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def read_samples(out: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (out / task / "samples.jsonl").read_text().splitlines()]


def sacrebleu_cli(hyps: list[str], ref_files: list[Path], tmp: Path) -> tuple[float, float]:
    """(BLEU, chrF++) from the sacrebleu command line with one -r file per reference."""
    hyp = tmp / "hyp.txt"
    hyp.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "sacrebleu", *map(str, ref_files), "-i", str(hyp), "-m", "bleu",
                           "chrf", "--chrf-word-order", "2", "-b", "-w", "6"],
                          capture_output=True, text=True, check=True)
    bleu, chrf = json.loads(proc.stdout)
    return bleu, chrf


@pytest.fixture
def two_ref_task(data_dir, tmp_path) -> Path:
    """A user's own test set: German source, two English references (the second one gzipped), absolute paths,
    a YAML outside tasks/. The second reference is an independent rewording (every other sentence from
    Multi30k's English with its words in another order), so multi-reference scores differ from single ones."""
    de = gz_lines(data_dir / f"{M30K}.de.gz")[:6]
    en = gz_lines(data_dir / f"{M30K}.en.gz")[:6]
    alt = [" ".join(e.split()[1:] + e.split()[:1]) if i % 2 else e.upper() for i, e in enumerate(en)]
    d = tmp_path / "mydata"
    d.mkdir()
    (d / "src.de").write_text("\n".join(de) + "\n", encoding="utf-8")
    (d / "ref1.en").write_text("\r\n".join(en) + "\r\n", encoding="utf-8")  # Windows line ends are fine
    with gzip.open(d / "ref2.en.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(alt) + "\n")
    yaml = tmp_path / "mytest.yaml"
    yaml.write_text(f"""task: mytest
hook: translation
description: my own two-reference test set
languages: [de-en]
prompt:
  template: "Translate the following {{src_name}} text into {{tgt_name}}.\\n{{src_name}}: {{source}}\\n{{tgt_name}}:"
generation:
  max_new_tokens: 8
options:
  files:
    de-en:
      source: {d}/src.de
      references: [{d}/ref1.en, {d}/ref2.en.gz]
""", encoding="utf-8")
    return yaml


def test_multi30k_end_to_end_via_cli(tiny_model, data_dir, tmp_path):
    out = tmp_path / "out"
    args = ["run", "--method", "base", "--tasks", "multi30k", "--model", str(tiny_model), "--limit", "2",
            "--langs", "en-de,de-en", "--data-dir", str(data_dir), "--output", str(out), "--batch-size", "2"]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())["tasks"]["multi30k"]
    assert list(res["metrics"]) == ["en-de", "de-en"] and res["n_samples"] == 4
    m = res["metrics"]["de-en"]
    assert m["signatures"]["bleu"].startswith("nrefs:1|") and "tok:13a" in m["signatures"]["bleu"]
    assert "nw:2" in m["signatures"]["chrf"] and {"off_target", "ref_off_target", "empty"} <= set(m)
    assert {"bleu", "chrf", "bleu_x-pivot", "chrf_pivot-x", "off_target"} <= set(res["summary"])
    assert res["metadata"]["data_sha256"].keys() == {"en-de", "de-en"}
    samples = read_samples(out, "multi30k")
    en = gz_lines(data_dir / f"{M30K}.en.gz")
    de = gz_lines(data_dir / f"{M30K}.de.gz")
    by_id = {s["id"]: s for s in samples}
    assert by_id["de-en/1"]["reference"] == en[1] and de[1] in by_id["de-en/1"]["prompts"][0]
    assert by_id["en-de/0"]["reference"] == de[0] and "references" not in by_id["en-de/0"]
    # corpus scores equal sacrebleu's CLI on the saved outputs
    hyps = [by_id[f"de-en/{i}"]["outputs"][0] for i in range(2)]
    ref = tmp_path / "ref.en"
    ref.write_text("".join(x + "\n" for x in en[:2]), encoding="utf-8")
    bleu, chrf = sacrebleu_cli(hyps, [ref], tmp_path)
    assert m["bleu"] == pytest.approx(bleu, abs=1e-4) and m["chrf"] == pytest.approx(chrf, abs=1e-4)
    # rerun = resume: nothing regenerated; `harness score` recomputes the same metrics; validate renders
    before = (out / "multi30k" / "samples.jsonl").read_bytes()
    assert main(args) == 0 and (out / "multi30k" / "samples.jsonl").read_bytes() == before
    assert main(["score", str(out), "--data-dir", str(data_dir)]) == 0
    assert json.loads((out / "results.json").read_text())["tasks"]["multi30k"]["metrics"] == res["metrics"]
    assert main(["validate", "--tasks", "multi30k,wmt16", "--data-dir", str(data_dir)]) == 0


def test_resume_after_torn_line(tiny_model, data_dir, tmp_path):
    args = ["run", "--tasks", "wmt16", "--model", str(tiny_model), "--limit", "2", "--langs", "en-de",
            "--data-dir", str(data_dir), "--batch-size", "2"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(args + ["--output", str(full)]) == 0
    lines = (full / "wmt16" / "samples.jsonl").read_text().splitlines()
    (part / "wmt16").mkdir(parents=True)
    (part / "wmt16" / "run.json").write_text((full / "wmt16" / "run.json").read_text())
    (part / "wmt16" / "samples.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    assert main(args + ["--output", str(part)]) == 0
    assert sorted((part / "wmt16" / "samples.jsonl").read_text().splitlines()) == sorted(lines)
    eng = (data_dir / "wmt16/eng-deu/newstest2016.eng").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["id"] == "en-de/0" and eng[0] in json.loads(lines[0])["prompts"][0]


def test_multi_reference_scores_equal_sacrebleu(two_ref_task, tiny_model, tmp_path):
    out = tmp_path / "out"
    assert main(["run", "--tasks", str(two_ref_task), "--model", str(tiny_model), "--output", str(out)]) == 0
    samples = read_samples(out, "mytest")
    assert len(samples) == 6 and all(len(s["references"]) == 2 for s in samples)
    d = two_ref_task.parent / "mydata"
    ref_files = [d / "ref1.en", d / "ref2.en.gz"]
    r1 = (d / "ref1.en").read_text(encoding="utf-8").splitlines()
    r2 = gz_lines(d / "ref2.en.gz")
    assert [s["references"] for s in samples] == [list(x) for x in zip(r1, r2)]
    # informative hypotheses: a mix of words of both references, then `harness score` (no model)
    hyps = [" ".join(a.split()[: len(a.split()) // 2] + b.split()[len(b.split()) // 2:]) for a, b in zip(r1, r2)]
    for s, h in zip(samples, hyps):
        s["raw"], s["outputs"] = [h], [h]  # `score` cleans single-round outputs again from the raw text
    (out / "mytest" / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    assert main(["score", str(out)]) == 0  # the YAML is found through the config saved in results.json
    m = json.loads((out / "results.json").read_text())["tasks"]["mytest"]["metrics"]["de-en"]
    assert m["n_refs"] == 2 and m["signatures"]["bleu"].startswith("nrefs:2|")
    plain = tmp_path / "ref2.en"
    plain.write_text("\n".join(r2) + "\n", encoding="utf-8")  # the CLI reads plain text
    bleu, chrf = sacrebleu_cli(hyps, [ref_files[0], plain], tmp_path)
    assert m["bleu"] == pytest.approx(bleu, abs=1e-4) and m["chrf"] == pytest.approx(chrf, abs=1e-4)
    assert m["bleu"] == pytest.approx(BLEU().corpus_score(hyps, [r1, r2]).score)
    assert m["chrf"] == pytest.approx(CHRF(word_order=2).corpus_score(hyps, [r1, r2]).score)
    one_bleu, one_chrf = sacrebleu_cli(hyps, [ref_files[0]], tmp_path)
    assert m["bleu"] > one_bleu + 1 and m["chrf"] > one_chrf + 1  # the second reference is really used
    per = {s["id"]: s for s in read_samples(out, "mytest")}
    assert per["de-en/1"]["scores"]["chrf"] == pytest.approx(
        CHRF(word_order=2).sentence_score(hyps[1], [r1[1], r2[1]]).score)


def test_leaderboard_on_two_reference_task(two_ref_task, tmp_path):
    root = tmp_path / "runs"
    hyps = {}
    for method, pick in (("base", lambda refs: " ".join(refs[0].split()[::2])),
                         ("better", lambda refs: " ".join(refs[1].split()[:-1]))):
        task = load_task(str(two_ref_task), DataSource(None))
        docs = {d["id"]: d for d in task.docs("de-en")}
        ctx = EvalContext(out_dir=root / method, model={"name": "tiny", "weights_sha256": "a" * 64},
                          method={"name": method, "config": {"m": method},
                                  "artifact": {"kind": "none", "config_hash": "" if method == "base" else "b1"}})
        evaluate(task, EchoBackend(docs, lambda doc, i, pick=pick: pick(doc["references"])), ctx)
        hyps[method] = [pick(docs[f"de-en/{i}"]["references"]) for i in range(6)]
    r1, r2 = zip(*(d["references"] for d in docs.values()))
    tables, _ = make_leaderboard([root], tmp_path / "lb", n_boot=50, seed=1)
    row = {r.label: r for r in tables[0].rows}["better"]
    for label, metric in (("mytest chrF++", CHRF(word_order=2)), ("mytest BLEU", BLEU())):
        want = metric.corpus_score(hyps["better"], [list(r1), list(r2)]).score
        base = metric.corpus_score(hyps["base"], [list(r1), list(r2)]).score
        assert row.cells[label].value == pytest.approx(want) and row.cells[label].delta == pytest.approx(want - base)
    assert "translation gain" in row.composites and row.composites["translation gain"].delta is not None
    # the bootstrap statistics with two reference streams equal sacrebleu's paired bootstrap
    metric = CHRF(word_order=2)
    refs = [list(r1), list(r2)]
    bl_stats = metric._extract_corpus_statistics(hyps["base"], refs)
    _, res = _paired_bs_test({"chrf": (bl_stats, metric._aggregate_and_compute(bl_stats))}, "sys", hyps["better"],
                             refs, {"chrf": metric}, n_samples=100, seed=7)
    boot = stats.corpus_boot(metric, stats.corpus_stats(metric, hyps["better"], refs), stats.resample_counts(6, 100, 7))
    assert boot.mean() == pytest.approx(res["chrf"].mean, abs=1e-4)


def test_contamination_guard_checks_every_reference(data_dir, tmp_path):
    """A training pair whose target equals a line of the *second* reference file is refused."""
    train, _ = load_training_data(TrainDataConfig(sources=["multi30k"], pairs=["de-en"]), DataSource(data_dir))
    src = gz_lines(data_dir / f"{M30K}.de.gz")[:3]
    (tmp_path / "s.de").write_text("\n".join(src) + "\n")
    (tmp_path / "r1.en").write_text("x one\nx two\nx three\n")
    (tmp_path / "r2.en").write_text(f"y one\n{train[5].reference}\ny three\n")
    yaml = tmp_path / "leak.yaml"
    yaml.write_text(f"task: leak\nhook: translation\ndescription: d\nlanguages: [de-en]\nprompt:\n  template: "
                    f"'{{source}}'\ngeneration: {{}}\noptions:\n  source: {tmp_path}/s.de\n  references: "
                    f"[{tmp_path}/r1.en, {tmp_path}/r2.en]\n")
    task = load_task(str(yaml), DataSource(data_dir))
    with pytest.raises(HarnessError, match=r"1 pairs of .*multi30k.* also appear in leak \(de-en\)"):
        guard(train, [task], drop=False)
    kept, report = guard(train, [task], drop=True)
    assert report["dropped"] == 1 and len(kept) == len(train) - 1


def test_langs_selection(data_dir, tiny_model, tmp_path, capsys):
    from tasks import load_tasks

    src = DataSource(data_dir)
    flores, m30k = load_tasks(["flores", "multi30k"], src, ["de-en"])
    assert flores.selected == m30k.selected == ["de-en"]
    (m30k,) = load_tasks(["multi30k"], src, ["de-fr"])  # not listed, but both files exist
    assert m30k.docs("de-fr")[0]["reference"] == gz_lines(data_dir / f"{M30K}.fr.gz")[0]
    flores, m30k = load_tasks(["flores", "multi30k"], src, ["de-sw", "en-de"])  # no Swahili Multi30k
    assert flores.selected == ["de-sw", "en-de"] and m30k.selected == ["en-de"]
    with pytest.raises(HarnessError, match=r"test_2016_flickr.sw.gz not found"):
        load_tasks(["multi30k"], src, ["de-sw"])
    with pytest.raises(HarnessError, match=r"unknown direction 'de-fr' \(known: de-en, en-de"):
        load_tasks(["wmt16"], src, ["de-fr"])


GOOD = """task: t
hook: translation
description: d
languages: [de-en]
prompt:
  template: "{{source}}"
generation: {{}}
options:
{options}
"""


@pytest.mark.parametrize("options,needle", [
    ("  source: SRC\n  refrences: [REF]", "unknown key 'refrences'"),
    ("  source: SRC\n  references: [DIR/missing.en]", "missing.en not found; fix the path in"),
    ("  source: SRC\n  references: [DIR/short.en]", "has 3 lines but reference"),
    ("  source: SRC\n  references: [DIR/bad.en.gz]", "not a readable gzip file"),
    ("  source: SRC", "give both source and references"),
    ("  files:\n    en-de: {source: SRC, references: [REF]}", "direction 'de-en' has no files"),
    ("  source: SRC\n  references: [REF]\n  files:\n    fr-en: {source: SRC, references: [REF]}",
     "options.files.fr-en: not a direction in languages"),
    ("  source: 'DIR/{lang}.de'\n  references: [REF]", "uses {lang}; known placeholders"),
    ("  files:\n    de-en: {source: SRC, references: []}", "list at least one file"),
])
def test_bad_yaml_is_one_line(options, needle, tmp_path, tiny_model, capsys):
    (tmp_path / "s.de").write_text("a\nb\nc\n")
    (tmp_path / "r.en").write_text("A\nB\nC\n")
    (tmp_path / "short.en").write_text("A\nB\n")
    (tmp_path / "bad.en.gz").write_text("not gzip\n")
    opts = options.replace("SRC", str(tmp_path / "s.de")).replace("REF", str(tmp_path / "r.en"))
    yaml = tmp_path / "t.yaml"
    yaml.write_text(GOOD.format(options=opts.replace("DIR", str(tmp_path))))
    out = tmp_path / "out"
    rc = main(["run", "--tasks", str(yaml), "--model", str(tiny_model), "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and needle in err and len(err.splitlines()) == 1, err
    assert not out.exists()  # refused before the model loads and before anything is written


def test_bad_yaml_process_contract(tmp_path):
    """Unknown language code and a relative path without a data directory, as a subprocess: one line, exit 2."""
    yaml = tmp_path / "t.yaml"
    yaml.write_text(GOOD.replace("[de-en]", "[xx-en]").format(options="  source: a\n  references: [b]"))
    proc = subprocess.run([sys.executable, "-m", "mt_harness.cli", "validate", "--tasks", str(yaml)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "unknown language code 'xx'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_real_files_are_read_as_is(data_dir):
    src = DataSource(data_dir)
    wmt = load_task("wmt16", src)
    assert len(wmt.all_subsets()) == 10
    docs = wmt.docs("ro-en")
    ron = (data_dir / "wmt16/eng-ron/newstest2016.ron").read_text(encoding="utf-8").splitlines()
    eng = (data_dir / "wmt16/eng-ron/newstest2016.eng").read_text(encoding="utf-8").splitlines()
    assert len(docs) == 1999 and [d["source"] for d in docs] == ron and [d["reference"] for d in docs] == eng
    assert docs[0]["src_name"] == "Romanian" and docs[0]["tgt_name"] == "English"
    m30k = load_task("multi30k", src)
    docs = m30k.docs("en-cs")
    assert len(docs) == 1000 and [d["reference"] for d in docs] == gz_lines(data_dir / f"{M30K}.cs.gz")


def test_readme_example_yaml_works(tmp_path):
    """The YAML of README's "Add a test set without code" section loads and renders on files it names."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    text = readme.split("# my_news.yaml", 1)[1].split("```", 1)[0].split("\n", 1)[1]
    (tmp_path / "news").mkdir()
    (tmp_path / "news" / "test.de").write_text("Guten Morgen.\nDas Haus ist alt.\n")
    (tmp_path / "news" / "test.en").write_text("Good morning.\nThe house is old.\n")
    with gzip.open(tmp_path / "alt2.gz", "wt") as f:
        f.write("Morning.\nThe building is old.\n")
    yaml = tmp_path / "my_news.yaml"
    yaml.write_text(text.replace("/abs/path/test.en.alt2.gz", str(tmp_path / "alt2.gz")))
    task = load_task(str(yaml), DataSource(tmp_path))
    assert task.docs("de-en")[1]["references"] == ["The house is old.", "The building is old."]
    assert task.docs("en-de")[1]["reference"] == "Das Haus ist alt." and "references" not in task.docs("en-de")[1]
    assert main(["validate", "--tasks", str(yaml), "--data-dir", str(tmp_path)]) == 0
