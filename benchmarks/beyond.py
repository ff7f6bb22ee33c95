"""Benchmarks for the "Beyond the textbook" section (not tests: they measure, they do not assert).

  python benchmarks/beyond.py peak [--threads N] [--rounds R]
      % of the measured matmul peak per kernel at B=8, d=256, 4 heads, T=1024, forward.
  python benchmarks/beyond.py scan [--threads N] [--rounds R]
      minGRU scan-vs-loop speedup per T (B=1 and 8, d=256), with the log-space form beside it.

The machine may be shared, so every round measures every kernel once, in a fresh random order,
with the calibration matmul measured in the same round; figures are given as min-median-max over
rounds (speedups and % of peak are computed within a round, so a slow phase hits both sides).
"""

from __future__ import annotations

import argparse
import random
import statistics

import torch

from lab import Point, Shape, build_workload, burn_in, calibration_point, get_kernel, measure


PEAK_KERNELS = ["calibration", "rnn_loop", "lstm_loop", "gru_loop", "rnn_fused", "lstm_fused", "gru_fused",
                "attention_naive", "sdpa", "mha", "mingru_loop", "mingru_scan", "mingru_logscan",
                "linear_attention", "linear_attention_loop"]


def point(kernel: str, B: int, T: int, d: int = 256, heads: int = 4) -> Point:
    if kernel == "calibration":
        return calibration_point("cpu", "float32")
    return Point(kernel, "forward", "cpu", "float32", B, T, d, heads, False)


def time_point(p: Point, min_time: float) -> float:
    work = build_workload(p)
    with work.mode_context():
        return measure(work.step, min_time=min_time, min_repeats=3, max_warmup=1.0).median


def gflops(p: Point, seconds: float) -> float:
    return get_kernel(p.kernel).flops(Shape(p.batch_size, p.seq_len, p.hidden_size, p.num_heads, p.causal)) / seconds / 1e9


def rounds_of(points: list[Point], rounds: int, min_time: float) -> list[dict]:
    out = []
    for r in range(rounds):
        order = points[:]
        random.Random(r).shuffle(order)
        out.append({p: time_point(p, min_time) for p in order})
        print(f"  round {r + 1}/{rounds} done", flush=True)
    return out


def spread(values) -> str:
    v = sorted(values)
    return f"{v[0]:.3g} / {statistics.median(v):.3g} / {v[-1]:.3g}"


def bench_peak(rounds: int, min_time: float) -> None:
    pts = [point(k, 8, 1024) for k in PEAK_KERNELS]
    res = rounds_of(pts, rounds, min_time)
    calib = pts[0]
    print(f"\n| kernel | median time (ms) | GFLOP/s min/med/max | % of peak min/med/max |\n|---|---|---|---|")
    for p in pts:
        times = [r[p] for r in res]
        rates = [gflops(p, r[p]) for r in res]
        pct = [100 * gflops(p, r[p]) / gflops(calib, r[calib]) for r in res]
        print(f"| {p.kernel} | {1e3 * statistics.median(times):.1f} | {spread(rates)} | {spread(pct)} |")


def bench_scan(rounds: int, min_time: float, seq_lens: list[int]) -> None:
    kernels = ["mingru_loop", "mingru_scan", "mingru_logscan"]
    for B in (1, 8):
        pts = [point(k, B, T) for T in seq_lens for k in kernels]
        res = rounds_of(pts, rounds, min_time)
        print(f"\nB={B}, d=256, forward, float32\n| T | loop (ms) | scan (ms) | logscan (ms) | "
              "speedup loop/scan min/med/max | loop/logscan min/med/max |\n|---|---|---|---|---|---|")
        for T in seq_lens:
            lp, sc, lg = (point(k, B, T) for k in kernels)
            med = [1e3 * statistics.median(r[q] for r in res) for q in (lp, sc, lg)]
            print(f"| {T} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | {spread([r[lp] / r[sc] for r in res])} | "
                  f"{spread([r[lp] / r[lg] for r in res])} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["peak", "scan"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds of samples per point per round")
    ap.add_argument("--seq-lens", default="64,128,256,512,1024,2048,4096")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds", flush=True)
    burn_in("cpu")
    if args.what == "peak":
        bench_peak(args.rounds, args.min_time)
    else:
        bench_scan(args.rounds, args.min_time, [int(t) for t in args.seq_lens.split(",")])


if __name__ == "__main__":
    main()
