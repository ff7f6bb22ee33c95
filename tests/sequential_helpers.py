"""Simulated `seqbench ab --runs auto` sequences: runs of rounds on a drifting, sometimes disturbed
machine, judged pass by pass with the same code as AutoJudge (autostop.judge_point)."""

from __future__ import annotations

import math
import random

from seqbench.analysis import sequential as seq
from seqbench.analysis.autostop import judge_point
from seqbench.analysis.compare import PointResult


def simulate(rng: random.Random, design: seq.Design, *, effects=None, sd_run=0.015, sd_round=0.005, rounds=3,
             drift=0.005, p_disturbed=0.05, load_episodes=0.0, loaded_marked=True, futility=True):
    """One sequence. effects: {point: factor on the head}. The machine's speed drifts as a random walk
    (drift: sd of its step per run, on every point alike); each run has its own offset per point
    (sd_run) and rounds (sd_round); a run is disturbed with p_disturbed (all its rounds 10-50% slower);
    load_episodes: the chance that a busy stretch starts at a run and lasts 2-4 runs (+20-40%), which
    the run's load record marks if loaded_marked. futility=False ignores "unchanged" (a point runs on
until a change is called or max_runs). Returns ({point: verdict or None}, runs a side, looks)."""
    effects = effects or {}
    level, episode, episode_left = 0.0, 0.0, 0
    runs = {p: ({}, {}) for p in range(design.points)}
    verdicts: dict[int, str | None] = {}
    loaded: set[str] = set()
    n = 0
    for n in range(1, design.max_runs + 1):
        for side in (("base", "head") if n % 2 else ("head", "base")):
            level += rng.gauss(0, drift)
            if episode_left == 0 and rng.random() < load_episodes:
                episode, episode_left = rng.uniform(0.2, 0.4), rng.randint(2, 4)
            slow = episode if episode_left else 0.0
            episode_left = max(0, episode_left - 1)
            rid = f"{side}{n}"
            if slow and loaded_marked:
                loaded.add(rid)
            disturbed = rng.uniform(0.1, 0.5) if rng.random() < p_disturbed else 0.0
            for p in range(design.points):
                if p in verdicts:
                    continue
                base_log = math.log(1e-3 * (1 + p)) + level + rng.gauss(0, sd_run) + math.log1p(slow + disturbed)
                if side == "head":
                    base_log += math.log(effects.get(p, 1.0))
                vals = [math.exp(base_log + abs(rng.gauss(0, sd_round))) for _ in range(rounds)]
                runs[p][0 if side == "base" else 1][rid] = vals
        for p in range(design.points):
            if p in verdicts:
                continue
            res = PointResult(key={}, verdict="inconclusive")
            lk = judge_point(res, runs[p][0], runs[p][1], loaded, design)
            if lk.verdict and (futility or lk.verdict != "unchanged"):
                verdicts[p] = str(lk.verdict)
        if len(verdicts) == design.points:
            break
    return verdicts, n


class Peeking(seq.Design):
    """The mistake the sequential design avoids: each look tested at the fixed-sample level."""

    @property
    def alpha_look(self) -> float:
        return self.alpha / max(1, self.points)
