"""A/A and planted-slowdown experiment for `seqbench compare` (run by `make bench-ci`).

    python benchmarks/aa_test.py collect --reps 20 --dir /tmp/seqbench-aa
    python benchmarks/aa_test.py analyze --dir /tmp/seqbench-aa

collect: REPS repetitions of the CI recipe (benchmarks/ab_run.sh) where base and head are the SAME
install (A/A): whatever compare reports there is noise. Each repetition writes rep-NN/base.csv and
rep-NN/head.csv and its wall time.

analyze: for every repetition,
  - A/A: compare base vs head; any regression is a false positive;
  - planted slowdown: the head's recorded samples of PLANTED points are multiplied by 1+s (s = 2%,
    3%, 5%, 7%, 10%, 15%), the reference times are left alone, and compare must flag exactly those
    points. Scaling recorded samples is how the slowdown is planted: it happens only here, in this
    benchmark script, never in seqbench itself, and it is equivalent to a kernel that got s slower
    under the same noise;
  - with and without --normalize reference, and with fewer runs per side (the first k ABBA pairs);
  - a naive compare for contrast: one block of samples per side (the first run), ratio of medians
    against the same 5% threshold.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOWDOWNS = (0.02, 0.03, 0.05, 0.07, 0.10, 0.15)
PLANTED = (("rnn_loop", 64), ("lstm_fused", 256), ("sdpa", 64))  # (kernel, seq_len) slowed in the head


def collect(args) -> None:
    exe = f"{sys.executable} -m seqbench"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               RUNS=str(args.runs), ROUNDS=str(args.rounds), CONFIG=args.config)
    out = Path(args.dir)
    for rep in range(1, args.reps + 1):
        d = out / f"rep-{rep:02d}"
        if (d / "wall_s").exists():
            continue  # resume an interrupted collection
        for f in d.glob("*"):
            f.unlink()
        t0 = time.perf_counter()
        subprocess.run([str(ROOT / "benchmarks" / "ab_run.sh"), str(d), exe, exe], env=env, check=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        (d / "wall_s").write_text(f"{wall:.1f}\n")
        print(f"rep {rep}: {wall:.1f} s", flush=True)


def _first_runs(df, k: int):
    """The rows of the first k runs (invocations) of a side, in file order."""
    keep = list(dict.fromkeys(df["run_id"]))[:k]
    return df[df["run_id"].isin(keep)]


def _plant(df, slowdown: float):
    """The head with its PLANTED points' recorded samples scaled by 1 + slowdown (see module doc)."""
    from seqbench.results.schema import format_samples, parse_samples

    df = df.copy()
    hit = [(k, t) in PLANTED for k, t in zip(df["kernel"], df["seq_len"])]
    df.loc[hit, "samples_s"] = [format_samples(s * (1 + slowdown) for s in parse_samples(t)) for t in df.loc[hit, "samples_s"]]
    return df


def _naive_regressions(base, head, threshold: float) -> int:
    """One block per side (the first run), ratio of pooled sample medians > 1 + threshold."""
    import statistics

    from seqbench.results.schema import parse_samples

    b, h = _first_runs(base, 1), _first_runs(head, 1)
    n = 0
    for (_, gb), (_, gh) in zip(b.groupby(["kernel", "seq_len"]), h.groupby(["kernel", "seq_len"])):
        mb = statistics.median(s for t in gb["samples_s"] for s in parse_samples(t))
        mh = statistics.median(s for t in gh["samples_s"] for s in parse_samples(t))
        n += mh / mb > 1 + threshold
    return n


def _round_stats(df, runs: int, normalize: str, statistic: str = "median") -> dict[tuple, list[float]]:
    """(kernel, seq_len) -> per-round statistics of the first `runs` runs, as compare computes them."""
    from seqbench.analysis.compare import rounds_by_run

    sub = _first_runs(df, runs)
    return {(k, t): rounds_by_run(g, normalize=normalize, statistic=statistic) for (k, t), g in sub.groupby(["kernel", "seq_len"])}


def _verdicts(base: dict, head: dict, slowdown: float, *, cut, alpha, threshold=0.05) -> dict[tuple, str]:
    """compare's verdict per point (the same functions compare_frames calls), head planted if slowdown."""
    from seqbench.analysis.compare import judge_point

    out = {}
    for point, b in base.items():
        h = [(run, x * (1 + slowdown)) for run, x in head[point]] if point in PLANTED else head[point]
        out[point] = judge_point(b, h, threshold=threshold, alpha=alpha, slow_cut=cut)["verdict"]
    return out


def analyze(args) -> dict:
    import math
    import statistics

    from seqbench.analysis.compare import drop_disturbed, robust_spread
    from seqbench.results.reader import read_results

    reps = sorted(p for p in Path(args.dir).glob("rep-*") if (p / "wall_s").exists())[args.skip:]
    if not reps:
        raise SystemExit(f"no finished repetitions under {args.dir}; run `collect` first")
    data = [(read_results(d / "base.csv"), read_results(d / "head.csv"), float((d / "wall_s").read_text())) for d in reps]
    runs_max = min(df["run_id"].nunique() for b, h, _ in data for df in (b, h))
    n = len(data)
    walls = sorted(w for _, _, w in data)
    out = {"reps": n, "runs_per_side": runs_max, "wall_s_median": walls[n // 2], "wall_s_max": walls[-1],
           "naive_false_positive_reps": sum(_naive_regressions(b, h, 0.05) > 0 for b, h, _ in data), "variants": []}
    print(f"{n} repetitions; CI recipe wall time median {walls[n // 2]:.0f} s, max {walls[-1]:.0f} s "
          f"({runs_max} runs per side)")
    print(f"naive (one block per side, median ratio > 5%): false regressions in {out['naive_false_positive_reps']}/{n} A/A repetitions")
    out["round_spread"] = {}
    for normalize in ("none", "reference"):  # how much the reference narrows the spread between rounds
        per_point = [[x for _, x in st] for b, h, _ in data for side in (b, h) for st in _round_stats(side, runs_max, normalize).values()]
        spreads = [robust_spread([math.log(x) for x in drop_disturbed(st, 0.15)]) for st in per_point]
        dropped = [1 - len(drop_disturbed(st, 0.15)) / len(st) for st in per_point]
        out["round_spread"][normalize] = {"median": statistics.median(spreads), "p90": statistics.quantiles(spreads, n=10)[-1],
                                          "dropped_fraction": statistics.fmean(dropped)}
        print(f"spread between kept rounds (robust CV), normalize={normalize}: median {statistics.median(spreads):.1%}, "
              f"p90 {statistics.quantiles(spreads, n=10)[-1]:.1%}; rounds dropped as disturbed: {statistics.fmean(dropped):.0%}")
    print("runs/side statistic normalize slow_cut alpha | A/A: reps with a false regression (or improvement); verdict counts | "
          "planted slowdown: reps where exactly the planted points are flagged")
    for runs, statistic, normalize in itertools.product(sorted({2, runs_max}), ("median", "min"), ("none", "reference")):
        stats = [(_round_stats(b, runs, normalize, statistic), _round_stats(h, runs, normalize, statistic)) for b, h, _ in data]
        for alpha, cut in itertools.product((0.01, 0.05), (None, 0.15)):
            aa = [_verdicts(b, h, 0.0, cut=cut, alpha=alpha) for b, h in stats]
            fp_reps = sum("regression" in v.values() for v in aa)
            # a false improvement is a false regression with the sides swapped: count both
            false_any = sum(bool({"regression", "improvement"} & set(v.values())) for v in aa)
            counts = {k: sum(list(v.values()).count(k) for v in aa) for k in ("regression", "improvement", "unchanged", "inconclusive")}
            planted, hit_rate = {}, {}
            for s in SLOWDOWNS:
                flagged = [{p for p, v in _verdicts(b, h, s, cut=cut, alpha=alpha).items() if v == "regression"} for b, h in stats]
                planted[s] = sum(f == set(PLANTED) for f in flagged)
                hit_rate[s] = sum(len(f & set(PLANTED)) for f in flagged) / (len(PLANTED) * n)
            reliable = [s for s in SLOWDOWNS if planted[s] >= 0.95 * n]
            row = {"runs": runs, "statistic": statistic, "normalize": normalize, "slow_cut": cut, "alpha": alpha, "aa_false_positive_reps": fp_reps, "aa_reps_with_any_false_change": false_any,
                   "aa_verdicts": counts, "planted_exact_reps": {str(k): v for k, v in planted.items()},
                   "planted_point_hit_rate": {str(k): v for k, v in hit_rate.items()},
                   "smallest_reliable": min(reliable) if reliable else None}
            out["variants"].append(row)
            print(f"{runs} {statistic:6s} {normalize:11s} {str(cut):4s} {alpha:<4} | FP {fp_reps:2d}/{n} (either way {false_any}) "
                  + " ".join(f"{k[:5]}={v}" for k, v in counts.items())
                  + " | " + " ".join(f"{s:.0%}:{planted[s]}" for s in SLOWDOWNS)
                  + f" | 10% per-point hit rate {hit_rate[0.10]:.0%} | reliable >= {row['smallest_reliable']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--reps", type=int, default=20)
    c.add_argument("--runs", type=int, default=4, help="ABBA pairs of invocations per repetition")
    c.add_argument("--rounds", type=int, default=4, help="--rounds per invocation")
    c.add_argument("--config", default="benchmarks/ci.toml")
    c.add_argument("--dir", default="/tmp/seqbench-aa")
    a = sub.add_parser("analyze")
    a.add_argument("--dir", default="/tmp/seqbench-aa")
    a.add_argument("--json", help="also write the figures to this JSON file")
    a.add_argument("--skip", type=int, default=0, help="leave out the first N repetitions (e.g. those used to pick defaults)")
    args = ap.parse_args()
    if args.cmd == "collect":
        collect(args)
    else:
        analyze(args)


if __name__ == "__main__":
    main()
