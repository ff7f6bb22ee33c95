#!/usr/bin/env bash
# The "Beyond the textbook" kernels on a lent GPU: float64 equivalence on CUDA, then scan vs loop and
# % of the measured matmul peak in float32 and bfloat16 (each run starts with its calibration row).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 60 python3 - <<'PY' 2>&1 | tee "$OUT/equivalence.txt"
import torch
from seqbench.kernels.scan import MinGRULoop, MinGRUScan, MinGRULogScan
from seqbench.kernels.linear_attention import LinearAttention, LinearAttentionLoop
dev, f64 = "cuda", torch.float64
torch.manual_seed(0)
ref = MinGRULoop(64).to(dev, f64); x = torch.randn(4, 300, 64, device=dev, dtype=f64)
for cls in (MinGRUScan, MinGRULogScan):
    m = cls(64).to(dev, f64); m.load_state_dict(ref.state_dict())
    print(cls.__name__, "max |diff| vs loop:", (m(x) - ref(x)).abs().max().item())
for causal in (True, False):
    a = LinearAttention(64, 4, causal).to(dev, f64); b = LinearAttentionLoop(64, 4, causal).to(dev, f64)
    b.load_state_dict(a.state_dict())
    print("linear_attention causal", causal, "max |diff| vs loop:", (a(x) - b(x)).abs().max().item())
PY
for dt in float32 bfloat16; do
  timeout 150 python3 -m seqbench run --device cuda --dtype $dt \
    --kernels mingru_loop,mingru_scan,mingru_logscan,linear_attention,linear_attention_loop,sdpa,lstm_fused \
    --seq-lens 256,4096 --batch-sizes 8 --mode forward --min-time 0.05 -q -o "$OUT/beyond-$dt.csv" --force 2>&1 | tail -3
done
python3 - <<'PY'
import glob, os
import pandas as pd
for f in sorted(glob.glob(os.environ["OUT"] + "/beyond-*.csv")):
    d = pd.read_csv(f)
    print(f); print(d[["kernel", "dtype", "seq_len", "status", "median_s", "gflops_per_s", "pct_of_peak", "error"]].to_string())
PY
