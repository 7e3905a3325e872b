"""`harness study STUDY.yaml`: a whole study (models x methods x seeds x evaluation blocks) as phases with
dependencies, run by a local pool of worker processes or on a Ray cluster, resumable at phase and sample
granularity.

spec.py reads the YAML strictly; plan.py makes the phases and tells which are done; worker.py runs one phase
through mt_harness.api in a worker process; executors.py runs workers (local, ray); cost.py writes COST.md; run.py
drives it all. The entry point is `mt_harness.api.study`.
"""
