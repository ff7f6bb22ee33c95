"""Shared analysis for plot and report: loading several CSVs, scaling fits, best-attention speedups, crossover.

Everything here works on the DataFrame from `seqbench.results.read_results` (plus a `source` column
when several files are combined), so a chart and the report can never disagree about a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from seqbench.results import KEY_COLUMNS, ResultsError, parse_samples, read_results

FIT_MIN_T = 128  # below this the d²-per-token projections hide attention's T² term (see design.md)
BASELINES = ("rnn_loop", "rnn_fused")  # the seed's loop and PyTorch's fused RNN
# Display order for tables and legends: recurrent loops, fused recurrent, attention; new kernels after.
KERNEL_ORDER = ("rnn_loop", "lstm_loop", "gru_loop", "rnn_fused", "lstm_fused", "gru_fused",
                "attention_naive", "sdpa", "mha")


def read_many(paths: Sequence[str | Path]):
    """Read one or more results CSVs into one DataFrame with a `source` column (the file's stem)."""
    import pandas as pd

    if not paths:
        raise ResultsError("no results CSV given")
    names = _source_names([Path(p) for p in paths])
    frames = []
    for path, name in zip(paths, names):
        df = read_results(path)
        if df.empty:
            raise ResultsError(f"{path}: has a header but no rows; the run recorded no points")
        frames.append(df.assign(source=name))
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    # A CSV appended to twice can hold the same point twice: the later measurement wins (the report says so).
    unique = out.drop_duplicates(subset=["source", *KEY_COLUMNS], keep="last").reset_index(drop=True)
    unique.attrs.update(paths=[str(p) for p in paths], duplicates_dropped=len(out) - len(unique))
    return unique


def ordered_kernels(kernels) -> list[str]:
    names = set(kernels)
    return [k for k in KERNEL_ORDER if k in names] + sorted(names - set(KERNEL_ORDER))


def _source_names(paths: list[Path]) -> list[str]:
    """File stems, widened with the parent folder when two stems collide (results/cpu/x vs results/cuda/x)."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    named = [f"{p.parent.name}/{p.stem}" for p in paths]
    return named if len(set(named)) == len(named) else [f"{i}:{s}" for i, s in enumerate(stems, 1)]


def is_calibration(df):
    """Rows of the device's matmul calibration point (a reference line, not a kernel to compare)."""
    return (df["kernel"] == "calibration") | (df["family"] == "calibration")


def ok_points(df):
    """Successful kernel measurements only: failed rows and calibration rows are dropped."""
    return df[(df["status"] == "ok") & ~is_calibration(df)]


def failed_points(df):
    return df[df["status"] != "ok"]


def matmul_peak(df) -> dict:
    """Highest measured calibration GFLOP/s per (source, device, dtype); empty when no calibration ran."""
    cal = df[is_calibration(df) & (df["status"] == "ok")].dropna(subset=["gflops_per_s"])
    if cal.empty:
        return {}
    return {k: float(v) for k, v in cal.groupby(_by(cal, "device", "dtype"))["gflops_per_s"].max().items()}


def _by(df, *cols: str) -> list[str]:
    return (["source"] if "source" in df else []) + list(cols)


def quartiles(samples_s: str) -> tuple[float, float]:
    """(q1, q3) of a row's raw samples, in seconds: the IQR band drawn around the median."""
    s = parse_samples(samples_s)
    if not s:
        return (math.nan, math.nan)
    q1, q3 = np.percentile(s, [25, 75])
    return float(q1), float(q3)


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
    x, y = np.log(T), np.log(t)
    k, log_a = np.polyfit(x, y, 1)
    resid = y - (log_a + k * x)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 1.0
    return Fit(float(k), r2, float(log_a), int(len(T)), int(T.min()), int(T.max()))


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


def best_attention(df):
    """Per (source, mode, B, T): the fastest successful attention kernel's row."""
    att = ok_points(df)
    att = att[att["family"] == "attention"]
    if att.empty:
        return att
    idx = att.groupby(_by(att, "mode", "batch_size", "seq_len"))["median_s"].idxmin()
    return att.loc[idx.values]


def speedups(df, baseline: str):
    """Baseline median / best attention median per (source, mode, B, T); > 1 means attention is faster.

    Columns: source?, mode, batch_size, seq_len, baseline_s, attention_s, attention_kernel, speedup.
    """
    import pandas as pd

    keys = _by(df, "mode", "batch_size", "seq_len")
    base = ok_points(df)
    base = base[base["kernel"] == baseline][keys + ["median_s"]].rename(columns={"median_s": "baseline_s"})
    best = best_attention(df)
    if base.empty or best.empty:
        return pd.DataFrame(columns=keys + ["baseline_s", "attention_s", "attention_kernel", "speedup"])
    best = best[keys + ["median_s", "kernel"]].rename(columns={"median_s": "attention_s", "kernel": "attention_kernel"})
    m = base.merge(best, on=keys)
    m["speedup"] = m["baseline_s"] / m["attention_s"]
    return m.sort_values(keys).reset_index(drop=True)


def kernel_fits(df, min_T: float = FIT_MIN_T) -> list[dict]:
    """One scaling fit per (source, kernel, mode, B) series of successful points."""
    ok = ok_points(df)
    cols = _by(ok, "kernel", "family", "mode", "batch_size")
    rows = []
    for key, g in ok.groupby(cols, sort=True):
        fit = fit_exponent(g["seq_len"], g["median_s"], min_T=min_T)
        rows.append({**dict(zip(cols, key)), "fit": fit})
    order = {k: i for i, k in enumerate(ordered_kernels(ok["kernel"]))}
    return sorted(rows, key=lambda r: (r.get("source", ""), order[r["kernel"]], r["mode"], r["batch_size"]))
