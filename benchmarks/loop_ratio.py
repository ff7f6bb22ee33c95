"""Time ratios between kernels of one results CSV, point by point, with 95% bootstrap intervals.

    python benchmarks/loop_ratio.py results/cpu/loops/loops-cpu.csv [--pairs rnn_loop/rnn_loop_hoisted,...]

Each ratio's interval comes from the same replicates the report uses (seqbench.analysis.bootstrap:
each point's rounds, then its samples, redrawn), one replicate of the numerator over one of the
denominator.
"""

from __future__ import annotations

import argparse

import numpy as np

import seqbench
from lab import bootstrap, scaling


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--pairs", default="rnn_loop/rnn_loop_hoisted,rnn_loop_hoisted/rnn_fused,rnn_loop/rnn_fused")
    args = ap.parse_args()
    df = scaling.ok_points(seqbench.load([args.csv]))
    reps = bootstrap.replicate_medians(df)
    keys = ["mode", "batch_size", "seq_len"]
    threads = ", ".join(map(str, sorted(set(df["threads"]))))
    print(f"{args.csv}: torch threads {threads}; ratio = time of the first kernel / time of the second, "
          "median of medians, [95% bootstrap interval]")
    print("| pair | mode | B | T | first | second | ratio [95%] |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for pair in args.pairs.split(","):
        a, b = pair.split("/")
        for key, g in df[df["kernel"].isin([a, b])].groupby(keys, sort=True):
            ra, rb = g[g["kernel"] == a], g[g["kernel"] == b]
            if ra.empty or rb.empty:
                continue
            ratio = ra["median_s"].iloc[0] / rb["median_s"].iloc[0]
            lo, hi = np.quantile(reps.loc[ra.index[0]].to_numpy() / reps.loc[rb.index[0]].to_numpy(), [0.025, 0.975])
            print(f"| {a} / {b} | {key[0]} | {key[1]} | {key[2]} | {ra['median_s'].iloc[0] * 1e3:.3g} ms | "
                  f"{rb['median_s'].iloc[0] * 1e3:.3g} ms | {ratio:.2f} [{lo:.2f}, {hi:.2f}] |")


if __name__ == "__main__":
    main()
