#!/usr/bin/env bash
# Real runs for the history figures: N separate processes of benchmarks/configs/history.toml, 3 rounds
# each, into OUT/run-XX.csv + .json (a run without its sidecar is redone, so it resumes). Run it under
# the machine's lock: flock /work/.cpu.lock benchmarks/history_runs.sh 24
set -euo pipefail
N=${1:-24}; OUT=${2:-results/history/runs}
mkdir -p "$OUT"
for i in $(seq -w 1 "$N"); do
  [ -f "$OUT/run-$i.json" ] && [ -f "$OUT/run-$i.csv" ] && continue
  rm -f "$OUT/run-$i.csv" "$OUT/run-$i.json"
  .venv/bin/seqbench run benchmarks/configs/history.toml --rounds 3 --no-peak -q -o "$OUT/run-$i.csv" >/dev/null
done
