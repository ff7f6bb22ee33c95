"""Cross-check seqbench's timer against torch.utils.benchmark on the same points, in one process.

For each point the two timers take turns (ABBA order over rounds), so the machine's slow phases hit
both alike; the ratio of their pooled medians must stay within +-3%. Run with `make bench`.

    python benchmarks/timer_vs_torch.py [--rounds 10] [--min-time 0.2] [--threads N] [--device cuda]

On CUDA, torch's Timer synchronises and reads the host clock; seqbench records CUDA events.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
from torch.utils.benchmark import Timer

from seqbench.sweep.config import Point
from seqbench.sweep.runner import build_workload
from seqbench.measure.timer import burn_in, measure

POINTS = [("rnn_loop", 64), ("rnn_loop", 512), ("sdpa", 64), ("sdpa", 512)]
TOLERANCE = 0.03


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=0, help="0: torch's default")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    burn_in(args.device)
    print(f"torch {torch.__version__}, {args.device}, {threads} threads, B={args.batch_size} d=256 heads=4, {args.rounds} rounds of "
          f"{args.min_time}s per timer per point, ABBA order")
    print(f"{'kernel':10} {'T':>5} {'seqbench':>11} {'torch':>11} {'ratio':>7} {'round ratios (min-max)':>24}")
    worst = 0.0
    for kernel, T in POINTS:
        work = build_workload(Point(kernel, "forward", args.device, "float32", args.batch_size, T, 256, 4, False))
        ours, theirs = [], []
        with work.mode_context():
            for r in range(args.rounds):
                order = ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")
                for who in order:
                    if who == "ours":
                        ours.append(measure(work.step, device=args.device, min_time=args.min_time).median)
                    else:
                        t = Timer("f()", globals={"f": work.step}, num_threads=threads)
                        theirs.append(t.blocked_autorange(min_run_time=args.min_time).median)
        ratio = statistics.median(ours) / statistics.median(theirs)
        per_round = [a / b for a, b in zip(ours, theirs)]
        worst = max(worst, abs(ratio - 1))
        print(f"{kernel:10} {T:>5} {statistics.median(ours) * 1e3:>9.3f}ms {statistics.median(theirs) * 1e3:>9.3f}ms "
              f"{ratio:>7.3f} {min(per_round):>11.3f} - {max(per_round):.3f}")
    verdict = "PASS" if worst <= TOLERANCE else "FAIL"
    print(f"{verdict}: largest deviation {worst * 100:.1f}% (tolerance {TOLERANCE * 100:.0f}%)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
