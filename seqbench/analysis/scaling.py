"""Shared analysis for plot and report: scaling fits with intervals, the matmul peak, point filters.
Best-of-family comparisons and crossovers live in matchup.py.

Everything here works on the DataFrame from `seqbench.analysis.load` (read_many plus the kernels'
roles, see roles.py), so a chart and the report can never disagree about a number.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from seqbench.analysis.fits import exponent_interval, fit_exponent
from seqbench.choices import Family
from seqbench.results.schema import parse_samples

FIT_MIN_T = 128  # below this the d²-per-token projections hide attention's T² term (see design.md)
# Display order for tables and legends: recurrent loops, fused recurrent, attention; new kernels after.
KERNEL_ORDER = ("rnn_loop", "rnn_loop_hoisted", "lstm_loop", "gru_loop", "rnn_fused", "lstm_fused", "gru_fused",
                "attention_naive", "sdpa", "mha")


def ordered_kernels(kernels) -> list[str]:
    names = set(kernels)
    return [k for k in KERNEL_ORDER if k in names] + sorted(names - set(KERNEL_ORDER))


def is_calibration(df):
    """Rows of the device's matmul calibration point (a reference line, not a kernel to compare)."""
    return (df["kernel"] == "calibration") | (df["family"] == Family.CALIBRATION)


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


def kernel_fits(df, min_T: float = FIT_MIN_T, reps=None) -> list[dict]:
    """One scaling fit per (source, kernel, device, dtype, mode, B) series of successful points.

    reps (bootstrap.replicate_medians): give each fit the bootstrap interval of its exponent.
    """
    ok = ok_points(df)
    cols = _by(ok, "kernel", "family", "device", "dtype", "mode", "batch_size")
    rows = []
    table = reps.to_numpy() if reps is not None else None  # by position: one take per series, not .loc
    at = reps.index.get_indexer(ok.index) if reps is not None else None
    for key, g in ok.groupby(cols, sort=True):
        fit = fit_exponent(g["seq_len"], g["median_s"], min_T=min_T)
        where = at[ok.index.get_indexer(g.index)] if at is not None else None
        if fit is not None and where is not None and (where >= 0).all():
            ci = exponent_interval(g["seq_len"], table[where], min_T=min_T)
            fit = dataclasses.replace(fit, ci=ci)
        rows.append({**dict(zip(cols, key)), "fit": fit})
    order = {k: i for i, k in enumerate(ordered_kernels(ok["kernel"]))}
    return sorted(rows, key=lambda r: (r.get("source", ""), order[r["kernel"]], r["mode"], r["batch_size"]))

