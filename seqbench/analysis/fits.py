"""Fits, defined once: straight lines in log space with their R², power laws t ∝ T^k (scaling
exponents), exponential decay (gradient norm vs distance) and where two curves cross."""

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


@dataclass(frozen=True)
class Fit:
    """t ≈ a·T^k, fitted by least squares on log T vs log t."""

    k: float
    r2: float
    log_a: float  # natural log of the prefactor
    n: int  # points used
    t_lo: int  # smallest and largest T used
    t_hi: int

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
