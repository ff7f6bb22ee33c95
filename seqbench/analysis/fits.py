"""Fits, defined once: straight lines in log space with their R², power laws t ∝ T^k (scaling
exponents), exponential decay (gradient norm vs distance), where two curves cross, and the
percentile intervals of exponents and crossings over bootstrap replicates (analysis/bootstrap.py)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np


def line_fit(x, y) -> tuple[float, float, float]:
    """Least-squares line y = slope*x + intercept: (slope, intercept, R²); R² is 1 for a flat, exact line."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (intercept + slope * x)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 1.0
    return float(slope), float(intercept), r2


LEVEL = 0.95  # confidence level of every interval
# When an interval is too wide for its figure to be a key figure: an exponent whose interval spans
# more than a quarter (half the way from "linear" k = 1 to "bending towards quadratic" k = 1.5), a T*
# whose interval spans more than one doubling of T (the sweeps' grid step), or a figure missing from
# more than 1 - LEVEL of the replicates (the curves do not cross at all in 5% of them).
K_WIDE = 0.25
T_STAR_WIDE = 2.0
MISSING_WIDE = 1 - LEVEL


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval; `missing` is the share of replicates that gave no value."""

    lo: float
    hi: float
    level: float = LEVEL
    missing: float = 0.0
    wide: bool = False

    def text(self, fmt: str = "{:.2f}") -> str:
        if not math.isfinite(self.lo):
            return "no interval"
        return f"[{fmt.format(self.lo)}, {fmt.format(self.hi)}]".replace("-0.00", "0.00")


def percentile_interval(values, *, wide_if=lambda lo, hi: False, level: float = LEVEL) -> Interval:
    """Central `level` interval of the finite values; wide when wide_if(lo, hi) or too many are missing."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    missing = 1 - len(finite) / len(v) if len(v) else 1.0
    if not len(finite):
        return Interval(math.nan, math.nan, level, missing, True)
    lo, hi = (float(q) for q in np.quantile(finite, [(1 - level) / 2, (1 + level) / 2]))
    return Interval(lo, hi, level, missing, bool(missing > MISSING_WIDE or wide_if(lo, hi)))


@dataclass(frozen=True)
class Fit:
    """t ≈ a·T^k, fitted by least squares on log T vs log t."""

    k: float
    r2: float
    log_a: float  # natural log of the prefactor
    n: int  # points used
    t_lo: int  # smallest and largest T used
    t_hi: int
    ci: Interval | None = None  # of k, from bootstrap replicates of the points (exponent_interval)

    @property
    def k_text(self) -> str:
        """k to 2 decimals, as charts and report print it (no '-0.00' for a flat series)."""
        return f"{self.k:.2f}".replace("-0.00", "0.00")

    @property
    def r2_text(self) -> str:
        return f"{self.r2:.3f}".replace("-0.000", "0.000")

    def predict(self, T) -> np.ndarray:
        return np.exp(self.log_a + self.k * np.log(np.asarray(T, dtype=float)))


def fit_exponent(T: Iterable[float], t: Iterable[float], *, min_T: float = 0) -> Fit | None:
    """Scaling exponent k of t ∝ T^k with its R², over the points with T >= min_T.

    None when fewer than two distinct lengths qualify (a slope through one point means nothing).
    With exactly two points R² is 1 by construction; the report shows n so a reader can tell.
    """
    T = np.asarray(list(T), dtype=float)
    t = np.asarray(list(t), dtype=float)
    keep = (T >= min_T) & np.isfinite(t) & (t > 0) & (T > 0)
    T, t = T[keep], t[keep]
    if len(np.unique(T)) < 2:
        return None
    k, log_a, r2 = line_fit(np.log(T), np.log(t))
    return Fit(k, r2, log_a, int(len(T)), int(T.min()), int(T.max()))


def exponent_interval(T, replicates, *, min_T: float = 0) -> Interval | None:
    """Interval of k from replicate latencies: replicates[i, b] is replicate b of the point at T[i].

    Each replicate column is fitted like the point estimate (least squares in log-log over T >= min_T).
    """
    T = np.asarray(T, dtype=float)
    reps = np.asarray(replicates, dtype=float)
    keep = (T >= min_T) & (T > 0)
    if len(np.unique(T[keep])) < 2:
        return None
    x = np.log(T[keep])
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(reps[keep])
    dx = x - x.mean()
    slopes = (dx[:, None] * (y - y.mean(axis=0))).sum(axis=0) / (dx ** 2).sum()
    return percentile_interval(slopes, wide_if=lambda lo, hi: hi - lo > K_WIDE)


def crossing_replicates(T, reps_a, reps_b, near: float) -> np.ndarray:
    """Per replicate column, the crossing of curves a and b nearest (in log T) to `near`; NaN where none.

    Crossings are located as `crossover` does, between neighbouring measured lengths.
    """
    T = np.asarray(T, dtype=float)
    order = np.argsort(T)
    x = np.log(T[order])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(np.asarray(reps_a, dtype=float)[order]) - np.log(np.asarray(reps_b, dtype=float)[order])
    r0, r1 = r[:-1], r[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        at = x[:-1, None] + (x[1:] - x[:-1])[:, None] * r0 / (r0 - r1)
    crossing = np.where((r0 * r1 < 0) | (r0 == 0), at, np.nan)
    crossing = np.where(r0 == 0, x[:-1, None], crossing)
    last = np.where(r[-1:] == 0, x[-1], np.nan)
    crossing = np.vstack([crossing, last])  # (points, replicates), NaN where no crossing
    dist = np.abs(crossing - math.log(near))
    has = np.isfinite(dist).any(axis=0)
    pick = np.argmin(np.where(np.isfinite(dist), dist, np.inf), axis=0)
    out = np.exp(crossing[pick, np.arange(crossing.shape[1])])
    return np.where(has, out, np.nan)


def crossover_interval(T, reps_a, reps_b, t_star: float) -> Interval:
    """Interval of a crossing T* from replicates; wide when it spans more than a doubling or often vanishes."""
    values = crossing_replicates(T, reps_a, reps_b, t_star)
    return percentile_interval(values, wide_if=lambda lo, hi: hi / lo > T_STAR_WIDE)


def crossing_share(T, reps_a, reps_b) -> float:
    """Share of replicates in which curves a and b cross somewhere in the measured range."""
    T = np.asarray(T, dtype=float)
    return float(np.isfinite(crossing_replicates(T, reps_a, reps_b, float(np.sqrt(T.min() * T.max())))).mean())


def crossover(T: Iterable[float], t_a: Iterable[float], t_b: Iterable[float]) -> list[float]:
    """Lengths where curves a and b cost the same, interpolated linearly in log T vs log(t_a/t_b).

    Piecewise between neighbouring measured lengths rather than one power law over the whole range:
    attention's slope bends from ~1 (projections) to ~2 (scores) across a sweep, so a single fit
    would misplace T*. For two exact power laws this is exact. Empty list: none in range.
    """
    T = np.asarray(list(T), dtype=float)
    r = np.log(np.asarray(list(t_a), dtype=float)) - np.log(np.asarray(list(t_b), dtype=float))
    order = np.argsort(T)
    T, r = T[order], r[order]
    x = np.log(T)
    out: list[float] = []
    for i in range(len(T) - 1):
        if r[i] == 0:
            out.append(float(T[i]))
        elif r[i] * r[i + 1] < 0:
            out.append(float(math.exp(x[i] + (x[i + 1] - x[i]) * r[i] / (r[i] - r[i + 1]))))
    if len(T) and r[-1] == 0:
        out.append(float(T[-1]))
    return out


@dataclass(frozen=True)
class DecayFit:
    """||grad|| ~ exp(-rate * distance), fitted on log ||grad|| against distance."""

    layer: str
    rate_per_step: float  # fitted decay rate: ||grad|| ~ exp(-rate * distance); negative = growth
    factor_per_step: float  # exp(-rate)
    r2: float  # of the straight-line fit of log ||grad|| against distance
    max_over_min: float  # of the seed-averaged norm over distances 1..T-1: the "constant factor"
    points: int  # distances with a non-zero norm used in the fit

    def as_dict(self) -> dict:
        return asdict(self)


def fit_decay(label: str, mean_norm_by_distance) -> DecayFit:
    """Least-squares line through log ||grad|| against distance, distances >= 1 with a non-zero norm."""
    g = np.asarray(mean_norm_by_distance, dtype=float)
    dist = np.arange(len(g))
    keep = (dist >= 1) & (g > 0) & np.isfinite(g)
    if keep.sum() < 2:
        return DecayFit(label, math.nan, math.nan, math.nan, math.nan, int(keep.sum()))
    slope, _, r2 = line_fit(dist[keep], np.log(g[keep]))
    return DecayFit(label, -slope, math.exp(slope), r2, float(g[keep].max() / g[keep].min()),
               int(keep.sum()))


def decay_fits(norms) -> list[DecayFit]:
    """One DecayFit per layer of measure.gradflow's table, on the geometric mean over seeds by distance."""
    fits = []
    for label, grp in norms.groupby("layer", sort=False):
        wide = grp.pivot(index="distance", columns="seed", values="grad_norm").sort_index()
        with np.errstate(divide="ignore"):
            geo = np.exp(np.log(wide.to_numpy(dtype=float)).mean(axis=1))
        fits.append(fit_decay(label, geo))
    return fits
