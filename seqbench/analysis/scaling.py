"""Shared analysis for plot and report: scaling fits, best-attention speed-ups, the matmul peak.

Everything here works on the DataFrame from `seqbench.analysis.load` (read_many plus the kernels'
roles, see roles.py), so a chart and the report can never disagree about a number.
"""

from __future__ import annotations

import math

import numpy as np

from seqbench.analysis.fits import crossover, fit_exponent
from seqbench.analysis.roles import ensure_annotated
from seqbench.choices import Family
from seqbench.results.schema import parse_samples

FIT_MIN_T = 128  # below this the d²-per-token projections hide attention's T² term (see design.md)
# Display order for tables and legends: recurrent loops, fused recurrent, attention; new kernels after.
KERNEL_ORDER = ("rnn_loop", "lstm_loop", "gru_loop", "rnn_fused", "lstm_fused", "gru_fused",
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


def best_attention(df):
    """Per (source, mode, B, T): the fastest successful quadratic (softmax) attention kernel's row.

    Linear attention (family attention too, but O(T)) is left out: the crossover the textbook
    predicts is between O(T) recurrence and O(T^2) softmax attention; linear attention has its own line.
    """
    att = ok_points(ensure_annotated(df))
    att = att[att["quadratic"].astype(bool)]
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


def crossovers(df, baseline: str) -> list[dict]:
    """T* per (mode, B) where the best quadratic attention kernel and `baseline` take the same time, with a note."""
    out = []
    s = speedups(df, baseline)
    for (mode, b), g in s.groupby(["mode", "batch_size"], sort=True):
        g = g.sort_values("seq_len")
        ts = crossover(g["seq_len"], g["attention_s"], g["baseline_s"])
        lo, hi = int(g["seq_len"].min()), int(g["seq_len"].max())
        if ts:
            above = "the last T*" if len(ts) > 1 else "T*"
            note = f"{baseline if g['speedup'].iloc[-1] < 1 else 'attention'} faster above {above}"
            if len(ts) > 1:
                note += f"; the curves cross {len(ts)} times (noisy or flat ratio)"
        elif len(g) < 2:
            note = "one length measured: no crossover can be located"
        else:
            faster = "attention" if (g["speedup"] > 1).all() else baseline
            note = f"none in range: {faster} faster at every measured T ({lo}–{hi})"
        out.append({"mode": mode, "batch_size": int(b), "t_star": ts, "note": note, "range": (lo, hi)})
    return out
