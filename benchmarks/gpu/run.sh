#!/usr/bin/env bash
# The CUDA run of issue 8, prepared on the CPU and run once on a lent GPU machine:
#   OUT=/some/dir bash benchmarks/gpu/run.sh
# 1. the test suite (CUDA tests run there), 2. the timer cross-check against torch.utils.benchmark
# at two shapes, 3. benchmarks/configs/cuda.toml in float32 and bfloat16, 4. charts and report.
# Everything lands in $OUT/cuda.tar.gz (results/cuda/<gpu>/...) plus the logs.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9_-')
DEST=results/cuda/$GPU; mkdir -p "$DEST"
save() { tar czf "$OUT/cuda.tar.gz" results/cuda; }  # after each step: a cut-off run still returns what it has
{ nvidia-smi; python3 -m seqbench env --device cuda; } > "$DEST/environment.txt" 2>&1
timeout 90 python3 -m pytest -q -p no:cacheprovider -rs tests 2>&1 | tail -40 > "$OUT/pytest.txt"; cp "$OUT/pytest.txt" "$DEST/pytest.txt"; tail -15 "$OUT/pytest.txt"
for B in 8 64; do
  timeout 45 python3 benchmarks/timer_vs_torch.py --device cuda --rounds 4 --min-time 0.1 --batch-size $B
done 2>&1 | tee "$DEST/timer_vs_torch.txt"
# float32: the whole of cuda.toml; bfloat16: the longer lengths and larger batches only (time).
timeout 200 python3 -m seqbench run benchmarks/configs/cuda.toml --dtype float32 -q -o "$DEST/cuda-float32.csv" --force 2>&1 | tail -3
save
timeout 100 python3 -m seqbench run benchmarks/configs/cuda.toml --dtype bfloat16 --seq-lens 256,1024,4096 --batch-sizes 16,64 \
  -q -o "$DEST/cuda-bfloat16.csv" --force 2>&1 | tail -3
save
for dt in float32 bfloat16; do
  [ -f "$DEST/cuda-$dt.csv" ] || continue
  timeout 30 python3 -m seqbench report "$DEST/cuda-$dt.csv" -o "$DEST/report-$dt.md" --charts-dir "$DEST/charts-$dt" --force -q 2>&1 | tail -3
done
timeout 40 python3 -m seqbench plot "$DEST"/cuda-*.csv --out-dir "$DEST/charts-overlay" --image-format png --force -q 2>&1 | tail -3
save
ls -la "$DEST"
