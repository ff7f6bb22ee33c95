#!/usr/bin/env bash
# First look at a lent GPU machine: versions, the test suite (CUDA tests must run), the timer
# cross-check on CUDA, and a small sweep in float32 and bfloat16 to size the full run.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch,typer,rich,pandas,matplotlib,sys;print(sys.version.split()[0],'torch',torch.__version__,'typer',typer.__version__,'rich',rich.__version__ if hasattr(rich,'__version__') else '?','pandas',pandas.__version__,'mpl',matplotlib.__version__)" | tee -a "$OUT/gpu.txt"
timeout 150 python3 -m pytest -q -x -p no:cacheprovider tests 2>&1 | tail -25 | tee "$OUT/pytest.txt"
timeout 60 python3 benchmarks/timer_vs_torch.py --device cuda --rounds 4 --min-time 0.1 2>&1 | tee "$OUT/timer_vs_torch_cuda.txt"
for dt in float32 bfloat16; do
  timeout 60 python3 -m seqbench run --device cuda --dtype $dt --kernels rnn_loop,lstm_loop,rnn_fused,lstm_fused,attention_naive,sdpa,mha \
    --seq-lens 64,1024 --batch-sizes 8 --mode forward,train --min-time 0.05 -q -o "$OUT/smoke-$dt.csv" --force 2>&1 | tail -5
done
python3 - <<'PY'
import pandas as pd, glob
for f in sorted(glob.glob(__import__("os").environ["OUT"] + "/smoke-*.csv")):
    d = pd.read_csv(f)
    print(f); print(d[["kernel","mode","dtype","seq_len","status","median_s","gflops_per_s","peak_mem_bytes","sdpa_backend","error"]].to_string())
PY
