"""How long `compare`, `report --no-charts` and `plot` take on a large results file (issue 26.16: goal
under 30 s each for 100,000 rows on 2 cores).

    python benchmarks/scale.py --rows 100000 --dir /tmp/scale   # writes a.csv, b.csv, then times each command

Rows: 10 kernels x 100 batch sizes x (rows / 1000) sequence lengths, forward, 5 samples each (one
run a side); b.csv is a.csv 2% slower. Each command runs as its own `python -m seqbench` process
(start-up included) and the wall time is printed per command.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

KERNELS = ["rnn_loop", "rnn_fused", "lstm_loop", "lstm_fused", "gru_loop", "gru_fused", "attention_naive", "sdpa",
           "mha", "linear_attention"]


def write(path: Path, rows: int, slower: float = 1.0, run_id: str = "scale-run") -> None:
    from seqbench.kernels import get_kernel
    from seqbench.results.schema import COLUMNS, SCHEMA_VERSION

    n_t = max(1, rows // (len(KERNELS) * 100))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for k in KERNELS:
            fam = str(get_kernel(k).family)
            for b in range(1, 101):
                for i in range(n_t):
                    t = 16 * (i + 1)
                    m = slower * (2e-6 * t if fam == "recurrent" else 1e-8 * t * t + 1e-5) * b
                    samples = [m * f for f in (0.98, 0.99, 1.0, 1.01, 1.02)]
                    rec = dict.fromkeys(COLUMNS, "")
                    rec.update(schema_version=SCHEMA_VERSION, run_id=run_id, kernel=k, family=fam, mode="forward",
                               device="cpu", dtype="float32", batch_size=b, seq_len=t, hidden_size=64, num_heads=2,
                               causal="false", threads=1, status="ok", repeats=5, median_s=f"{m:.9g}",
                               iqr_s=f"{0.02 * m:.9g}", min_s=f"{min(samples):.9g}", mean_s=f"{m:.9g}",
                               tokens_per_s=f"{b * t / m:.9g}", gflop=f"{1e-6 * b * t:.9g}",
                               gflops_per_s=f"{1e-6 * b * t / m:.9g}", peak_mem_bytes=1024 * b * t,
                               samples_s=" ".join(f"{s:.9g}" for s in samples), peak_mem_method="analytic", number=1)
                    w.writerow([rec[c] for c in COLUMNS])
    path.with_suffix(".json").write_text(json.dumps({
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "command": ["seqbench", "run", "scale"],
        "config": {"name": "scale", "dtype": "float32", "hidden_size": 64, "num_heads": 2, "threads": 1},
        "environment": {"cpu": "Test CPU", "torch": "0.0-test", "device": "cpu"}, "status": "complete"}))


def timed(args: list[str], cwd: Path) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "seqbench", *args], cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - t0, r.returncode, (r.stderr.strip().splitlines() or [""])[-1][:160]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/seqbench-scale"))
    ap.add_argument("--only", default="compare,report,plot")
    args = ap.parse_args()
    d = args.dir
    d.mkdir(parents=True, exist_ok=True)
    write(d / "a.csv", args.rows)
    write(d / "b.csv", args.rows, slower=1.02, run_id="scale-run-b")
    commands = {"compare": ["compare", "a.csv", "b.csv", "--format", "json"],
                "report": ["report", "a.csv", "--no-charts", "-o", "a.md", "--force"],
                "plot": ["plot", "a.csv", "-d", "charts", "--force"]}
    for name in args.only.split(","):
        wall, rc, last = timed(commands[name], d)
        print(f"{name}: {args.rows} rows, {wall:.1f} s wall, exit {rc}  {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
