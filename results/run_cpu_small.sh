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
# Relay Decoding (methods/relay/README.md): Gemma-3-270M -> SmolLM2 for de->en, SmolLM2 -> Gemma-3-270M for en->de;
# only the maps train. Safety is answered by SmolLM2 alone, i.e. the base model (unchanged by construction).
RELAY=(--method relay --method-config methods/relay/recipes/cpu-30.yaml --limit 32 --threads 1 --seed 0 --output $OUT/relay)
harness run "${RELAY[@]}" --tasks flores --langs de-en,en-de --batch-size 8  # batch 32 was OOM-killed at 14 GB RSS
harness run "${RELAY[@]}" --tasks safety --langs advbench,xstest_safe --batch-size 32  # base's batch size
# the relay's other single model on the same FLORES samples (SmolLM2 alone is $OUT/base)
harness run --method base --model gemma3-270m --tasks flores --langs de-en,en-de --limit 32 --threads 1 --seed 0 \
  --output results/gemma3-270m/base
harness leaderboard results/smollm2-135m-instruct results/gemma3-270m  # committed runs only, not results/runs/
