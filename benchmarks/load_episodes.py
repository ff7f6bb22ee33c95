"""Why `seqbench ab` called identical code a regression (issues 21 and 25), simulated.

    python benchmarks/load_episodes.py      # ~10 s

A/A comparisons (12 points, ABBA, the fixed 4- and 8-run recipes, compare's own test) on a machine
whose load comes in busy stretches: at each run a stretch starts with probability 0.15 and slows the
next 2-4 runs by 20-40% (every point of a run alike), on top of 1.5% run-to-run noise, a 1% offset
shared by a run's points and a slow drift. ABBA puts one side's runs next to each other (B B, A A), so
a stretch often lands on one side only; its runs then agree with each other and differ from the other
side's, which the t-test over runs reads as a confident change. Without each run's load record the
comparison calls false changes; with it (compare.split_by_load) loaded runs are compared only with
runs measured alike, and a side-only load is a mismatch, not a change.
"""

from __future__ import annotations

import math
import random

from lab import PointResult, finish, judge_runs, run_value, split_by_load


def one(rng: random.Random, runs: int, *, marked: bool, points: int = 12, episodes: float = 0.15) -> bool:
    level, slow_left, slow = 0.0, 0, 0.0
    loaded: set[str] = set()
    data = {p: ({}, {}) for p in range(points)}
    for n in range(1, runs + 1):
        for side in (("base", "head") if n % 2 else ("head", "base")):
            level += rng.gauss(0, 0.003)
            if slow_left == 0 and rng.random() < episodes:
                slow, slow_left = rng.uniform(0.2, 0.4), rng.randint(2, 4)
            now = slow if slow_left else 0.0
            slow_left = max(0, slow_left - 1)
            rid = f"{side}{n}"
            if now:
                loaded.add(rid)
            shared = rng.gauss(0, 0.01)
            for p in range(points):
                v = math.exp(level + shared + rng.gauss(0, 0.015)) * (1 + now * rng.uniform(0.8, 1.2))
                data[p][side == "head"][rid] = [v * (1 + abs(rng.gauss(0, 0.005))) for _ in range(3)]
    results, tests = [], []
    for p in range(points):
        rb, rh, ok = data[p][0], data[p][1], True
        if marked:
            rb, rh, ok, _ = split_by_load(rb, rh, loaded)
        r = PointResult(key={}, verdict="inconclusive")
        r.load_mismatch = not ok
        tests.append(judge_runs(r, [run_value(x) for x in rb.values()], [run_value(x) for x in rh.values()], alpha=0.01))
        results.append(r)
    finish(results, tests, threshold=0.05, alpha=0.01)
    return any(r.verdict in ("regression", "improvement") for r in results)


def main() -> None:
    for runs in (4, 8):
        for marked in (False, True):
            rng = random.Random(3)
            alarms = sum(one(rng, runs, marked=marked) for _ in range(1000))
            print(f"{runs} runs a side, {'with' if marked else 'without'} each run's load record: "
                  f"{alarms} of 1000 A/A comparisons called a change")


if __name__ == "__main__":
    main()
