"""Change points in one series (a point's value over commits): E-divisive means, a trend with an interval.

E-divisive means (Matteson & James 2014; MongoDB's signal-processing-algorithms, DataStax's Hunter):
split a series where the energy distance between the two sides, weighted by their sizes, is largest;
keep the split when it is significant; split the pieces again, until no split is. Significance is
either a permutation test (Matteson & James: the split's statistic against the same statistic over
permutations of the piece) or, as Hunter replaced it for speed, Welch's t-test between the two sides.
benchmarks/history_detect.py measured both, and asv's step detection, on histories built from real runs
(docs/history.md): the default here is what that measurement chose.

Pure numpy; the energy statistic for every split of a piece costs one n x n distance matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from seqbench.analysis.stats import t_two_sided_p

MIN_SIZE = 3  # commits on each side of a split
P_MAX = {"ttest": 0.001, "permutation": 0.01}  # a split is kept when its p-value is below this
PERMUTATIONS = 199  # the smallest p-value a permutation test can give is 1 / (199 + 1)
WINDOW = 50  # commits each side of a split that its permutation test sees


def _split_stats(y: np.ndarray, min_size: int) -> np.ndarray:
    """Q(tau) for tau = min_size .. n - min_size (left = y[:tau]): the energy statistic, alpha = 1."""
    n = len(y)
    d = np.abs(y[:, None] - y[None, :])
    p = d.cumsum(0).cumsum(1)
    tau = np.arange(min_size, n - min_size + 1)
    m, k = tau.astype(float), (n - tau).astype(float)
    left = p[tau - 1, tau - 1]
    cross = p[tau - 1, n - 1] - left
    right = p[n - 1, n - 1] - 2 * cross - left
    e = 2 * cross / (m * k) - left / (m * (m - 1)) - right / (k * (k - 1))
    return m * k / n * e


def _best_split(y: np.ndarray, min_size: int) -> tuple[int, float]:
    if len(y) < 2 * min_size:
        return -1, -math.inf
    q = _split_stats(y, min_size)
    i = int(np.argmax(q))
    return i + min_size, float(q[i])


def welch_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of Welch's t-test between two samples (1.0 when it cannot be computed)."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return 1.0
    va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    se2 = va + vb
    if se2 <= 0:
        return 0.0 if a.mean() != b.mean() else 1.0
    t = (b.mean() - a.mean()) / math.sqrt(se2)
    df = se2 ** 2 / ((va ** 2 / (na - 1) if na > 1 else 0) + (vb ** 2 / (nb - 1) if nb > 1 else 0))
    return t_two_sided_p(t, df)


def _permutation_p(y: np.ndarray, min_size: int, permutations: int, p_max: float, rng) -> float:
    """p-value of the best split of y against the best splits of its permutations (Matteson & James).
    Stops as soon as the p-value cannot fall below p_max."""
    q_obs = _best_split(y, min_size)[1]
    hits = 0
    for _ in range(permutations):
        if _best_split(rng.permutation(y), min_size)[1] >= q_obs:
            hits += 1
            if (hits + 1) / (permutations + 1) >= p_max:
                break
    return (hits + 1) / (permutations + 1)


def e_divisive(values, *, min_size: int = MIN_SIZE, p_max: float | None = None, test: str = "permutation",
               permutations: int = PERMUTATIONS, seed: int = 0) -> list[tuple[int, float]]:
    """Change points of a series: [(index of the first value of a new level, p-value)], in order.

    test: "permutation" (Matteson & James; the default: as sensitive as the t-test in the middle of a
    history, far more so near its end, with a twentieth of its false change points, measured in
    docs/history.md) or "ttest" (Welch's t-test between the split's sides, Hunter's shortcut). Values are compared in log space (ratios), so a series in seconds or in tokens/s splits alike."""
    y = np.log(np.asarray(values, dtype=float))
    if not np.all(np.isfinite(y)):
        raise ValueError("e_divisive needs positive finite values")
    p_max = P_MAX[test] if p_max is None else p_max
    rng = np.random.default_rng(seed)
    bounds = [0, len(y)]
    found: list[tuple[int, float]] = []
    cache: dict[tuple[int, int], tuple[int, float]] = {}
    while True:
        best = None
        for s, e in zip(bounds[:-1], bounds[1:]):
            if (s, e) not in cache:
                tau, q = _best_split(y[s:e], min_size)
                cache[(s, e)] = (s + tau if tau >= 0 else -1, q)
            tau, q = cache[(s, e)]
            if tau >= 0 and (best is None or q > best[2]):
                best = (s, e, q, tau)
        if best is None:
            break
        s, e, q, tau = best
        if test == "permutation":
            # tested on at most WINDOW commits each side of the split: the cost stays flat in the
            # history's length, and a level far away says little about this step (Hunter windows too)
            p = _permutation_p(y[max(s, tau - WINDOW):min(e, tau + WINDOW)], min_size, permutations, p_max, rng)
        else:
            p = welch_p(y[s:tau], y[tau:e])
        if p >= p_max:
            break
        found.append((tau, p))
        bounds = sorted(bounds + [tau])
    return sorted(found)


@dataclass(frozen=True)
class Step:
    size: float  # after / before - 1 (of the medians of the two levels)
    lo: float  # 95% bootstrap interval of size
    hi: float


def step_size(before, after, *, n_boot: int = 1000, seed: int = 0) -> Step:
    """The change between two levels: ratio of medians - 1, with a 95% bootstrap interval (each side
    resampled on its own)."""
    a, b = np.asarray(before, float), np.asarray(after, float)
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, len(a), (n_boot, len(a)))], axis=1)
    mb = np.median(b[rng.integers(0, len(b), (n_boot, len(b)))], axis=1)
    ratio = mb / ma - 1
    return Step(float(np.median(b) / np.median(a) - 1), float(np.quantile(ratio, 0.025)),
                float(np.quantile(ratio, 0.975)))


@dataclass(frozen=True)
class Trend:
    per_commit: float  # relative change per commit (Theil-Sen slope of log values, exp - 1)
    lo: float  # 95% interval (Sen's, from the distribution of Kendall's S)
    hi: float
    commits: int

    @property
    def total(self) -> float:
        """The change over the window: (1 + per_commit) ** (commits - 1) - 1."""
        return (1 + self.per_commit) ** (self.commits - 1) - 1


def trend(values) -> Trend | None:
    """Theil-Sen slope of log(value) over the commit index, with Sen's 95% interval; None under 5 values."""
    y = np.log(np.asarray(values, dtype=float))
    n = len(y)
    if n < 5:
        return None
    i, j = np.triu_indices(n, 1)
    slopes = np.sort((y[j] - y[i]) / (j - i))
    big_n = len(slopes)
    c = 1.96 * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    lo_i = max(int(math.floor((big_n - c) / 2)), 0)
    hi_i = min(int(math.ceil((big_n + c) / 2)), big_n - 1)
    return Trend(math.expm1(float(np.median(slopes))), math.expm1(float(slopes[lo_i])),
                 math.expm1(float(slopes[hi_i])), n)

