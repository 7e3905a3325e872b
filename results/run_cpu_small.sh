#!/usr/bin/env bash
# Regenerates the committed small-scale CPU results (SmolLM2-135M-Instruct, 2-core CPU) and the leaderboard.
# Each method trains with methods/<m>/recipes/cpu-30.yaml (30 steps, 240 ALMA de<->en pairs, FLORES excluded),
# then every method is scored on the same FLORES and safety samples.
set -euo pipefail
cd "$(dirname "$0")/.."
EVAL=(--tasks flores,safety --langs de-en,en-de,advbench,xstest_safe --limit 32 --threads 2 --seed 0)
OUT=results/smollm2-135m-instruct
harness run --method base "${EVAL[@]}" --output $OUT/base
for m in radis sft lora lms; do
  harness run --method $m --method-config methods/$m/recipes/cpu-30.yaml "${EVAL[@]}" --output $OUT/$m
done
# LANDeRMT trains on all ten ALMA directions (cs, de, is, ru, zh <-> en), 24 each: same 240 examples / 30 steps budget
harness run --method landermt --method-config methods/landermt/recipes/cpu-30.yaml "${EVAL[@]}" --output $OUT/landermt
harness leaderboard results/smollm2-135m-instruct  # the committed runs only, not scratch runs in results/runs/
