#!/usr/bin/env bash
# Regression gate (README, "Regression gate in your CI"): a fixed small evaluation of MODEL, then
# `harness compare` against the committed baseline run. Exit 0: no gated metric regressed; 1: regressed
# (the report names the metric, its Δ and interval); 2: not comparable or bad input (one line says what).
#
#   bash examples/ci/gate.sh                     # MODEL=smollm2-135m-instruct (the embedded default)
#   MODEL=path/to/your/model bash examples/ci/gate.sh
#   BLESS=1 bash examples/ci/gate.sh             # (re)write the baseline from this run instead; commit it
#
# Needs HARNESS_DATA_DIR (FLORES, IFEval) and, to skip the one-time model conversion, a kept HARNESS_CACHE.
set -euo pipefail
MODEL="${MODEL:-smollm2-135m-instruct}"
BASELINE="${BASELINE:-examples/ci/baseline}"
OUT="${OUT:-ci-run}"

# The fixed evaluation: first 8 FLORES devtest lines of de-en and en-de plus the first 8 IFEval prompts,
# greedy, float32 on CPU. The baseline must come from the same command (BLESS=1) on the baseline model.
harness run --model "$MODEL" --method base --tasks flores,ifeval --langs de-en,en-de --limit 8 \
  --seed 0 --dtype float32 --device cpu --threads 2 --output "$OUT"

if [ "${BLESS:-0}" = 1 ]; then
  rm -rf "$BASELINE" && cp -r "$OUT" "$BASELINE" && harness pack "$BASELINE"
  exit 0
fi
# Gate: the translation-gain and general-ability-loss composites (default); regressed = the whole 95%
# paired-bootstrap interval is worse than the tolerance. JUnit for the CI's test view, JSON for scripts;
# the markdown summary goes to $GITHUB_STEP_SUMMARY when it is set.
harness compare "$BASELINE" "$OUT" --tolerance translation=0.5,general=1 --junit compare-junit.xml --json compare.json
