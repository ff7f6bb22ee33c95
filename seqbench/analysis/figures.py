"""The crossings and scaling fits of one set of points, each computed once.

A report's key figures, its crossover table and its exponent table read the same crossings and fits;
on 100,000 rows each costs seconds, and the best-attention side's replicates are the same in every
crossing. Figures holds them for one frame (and its bootstrap replicates), computed on first use.
"""

from __future__ import annotations

from seqbench.analysis import matchup, scaling


class Figures:
    def __init__(self, df, reps=None):
        self.df, self.reps = df, reps
        self._crossings: dict = {}
        self._side_reps: dict = {}  # side -> point -> replicate times (matchup.side_replicates)
        self._fits: list[dict] | None = None

    def crossings(self, side: matchup.Side, right: matchup.Side = matchup.BEST_ATTENTION) -> list[matchup.Crossing]:
        if (side, right) not in self._crossings:
            self._crossings[side, right] = matchup.crossings(self.df, side, right, self.reps, cache=self._side_reps)
        return self._crossings[side, right]

    def fits(self) -> list[dict]:
        if self._fits is None:
            self._fits = scaling.kernel_fits(self.df, reps=self.reps)
        return self._fits
