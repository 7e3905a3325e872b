"""One owner of a run folder (`OUT/results.json`, `OUT/<task>/samples.jsonl`, `OUT/<task>/run.json`; or, for a
method deliberately not run, `OUT/not_run.json` with the reason instead).

`harness.rundir.read` reads a finished folder (the leaderboard imports only this side);
`harness.rundir.write` writes it: the results.json header and task entries, the run.json fingerprint
check, samples.jsonl rewritten after re-scoring or judging, and a finished run reopened for
`harness score` / `harness judge`; `harness.rundir.pack` gzips a finished folder's samples for committing
(`samples.jsonl.gz`, which the reader reads as it is) and restores them. This file imports none of them, so readers
do not load the writer.
"""
