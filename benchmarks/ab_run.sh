#!/usr/bin/env bash
# The CI recipe: time two installs of seqbench (base and head) on the same machine, interleaved.
#
#   benchmarks/ab_run.sh OUTDIR BASE_SEQBENCH HEAD_SEQBENCH
#
# BASE_SEQBENCH / HEAD_SEQBENCH: the `seqbench` commands of two venvs (e.g. base/.venv/bin/seqbench);
# a command with arguments (".venv/bin/python -m seqbench") is split on spaces.
# Runs RUNS pairs of invocations in ABBA order (base first in odd pairs, head first in even ones, so
# neither side always runs first), each `--rounds ROUNDS --calibrate --append`, into OUTDIR/base.csv
# and OUTDIR/head.csv. Every invocation is its own process, so compare sees process-to-process noise
# as well as drift within a run. Then: seqbench compare OUTDIR/base.csv OUTDIR/head.csv
set -euo pipefail
out=${1:?usage: ab_run.sh OUTDIR BASE_SEQBENCH HEAD_SEQBENCH}
base=${2:?base seqbench executable}
head=${3:?head seqbench executable}
CONFIG=${CONFIG:-benchmarks/ci.toml}
RUNS=${RUNS:-4}
ROUNDS=${ROUNDS:-4}
mkdir -p "$out"
SECONDS=0
for ((i = 1; i <= RUNS; i++)); do
  if ((i % 2)); then order="base head"; else order="head base"; fi
  for side in $order; do
    if [[ $side == base ]]; then exe=$base; else exe=$head; fi
    $exe run "$CONFIG" --rounds "$ROUNDS" --calibrate --no-peak --append -o "$out/$side.csv" -q >/dev/null
  done
done
echo "ab_run: $RUNS x 2 runs of $CONFIG (rounds $ROUNDS) in ${SECONDS} s -> $out/base.csv $out/head.csv"
