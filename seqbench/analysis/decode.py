"""Decode analysis, shared by the decode charts and the report's decode section: step latency against
context (fitted exponent), the decode crossover, the state's bytes and the capacity batch.

Sides come from the kernels' registry attributes (roles.py), never their names: `quadratic` kernels
(softmax attention, a KV cache that grows with the context) against every other kernel, whose state
has a fixed size (recurrent, scan, and linear attention, which decodes as a recurrence).
"""

from __future__ import annotations

from seqbench.analysis.fits import crossover, fit_exponent
from seqbench.analysis.roles import ensure_annotated
from seqbench.analysis.scaling import _by, ok_points, ordered_kernels
from seqbench.choices import Mode

ATTENTION_SIDE = "KV cache (softmax attention)"
RECURRENT_SIDE = "fixed-size state (recurrent, scan, linear attention)"


def decode_points(df):
    """Successful decode rows, annotated with each kernel's role."""
    ok = ok_points(ensure_annotated(df))
    return ok[ok["mode"] == Mode.DECODE]


def fit_min_T(hidden_size: int) -> int:
    """Contexts from which a step's exponent is fitted: T >= 4d, where attention's cache read
    (4*T*d FLOPs) is at least twice its projections (8*d^2), so ~1 is what a KV cache should show."""
    return 4 * int(hidden_size)


def decode_fits(df) -> list[dict]:
    """One fit of step latency ∝ T^k per (source, kernel, B), over T >= fit_min_T(d)."""
    dec = decode_points(df)
    cols = _by(dec, "kernel", "family", "quadratic", "batch_size", "hidden_size")
    rows = []
    for key, g in dec.groupby(cols, sort=True):
        row = dict(zip(cols, key))
        row["min_T"] = fit_min_T(row["hidden_size"])
        row["fit"] = fit_exponent(g["seq_len"], g["median_s"], min_T=row["min_T"])
        rows.append(row)
    order = {k: i for i, k in enumerate(ordered_kernels(dec["kernel"]))}
    return sorted(rows, key=lambda r: (r.get("source", ""), order[r["kernel"]], r["batch_size"]))


def best_steps(df):
    """Per (source, B, T): the fastest step of each side, its kernel and the ratio attention / recurrent.

    Columns: source?, batch_size, seq_len, attention_s, attention_kernel, recurrent_s, recurrent_kernel, ratio
    (> 1: the fixed-size state decodes faster). Only (B, T) where both sides have a point.
    """
    import pandas as pd

    dec = decode_points(df)
    keys = _by(dec, "batch_size", "seq_len")
    sides = []
    for name, part in (("attention", dec[dec["quadratic"].astype(bool)]), ("recurrent", dec[~dec["quadratic"].astype(bool)])):
        if part.empty:
            return pd.DataFrame(columns=keys + ["attention_s", "attention_kernel", "recurrent_s", "recurrent_kernel", "ratio"])
        best = part.loc[part.groupby(keys)["median_s"].idxmin().values, keys + ["median_s", "kernel"]]
        sides.append(best.rename(columns={"median_s": f"{name}_s", "kernel": f"{name}_kernel"}))
    m = sides[0].merge(sides[1], on=keys)
    m["ratio"] = m["attention_s"] / m["recurrent_s"]
    return m.sort_values(keys).reset_index(drop=True)


def _crossing(g, attention_s: str, fixed_s: str, fixed_name: str) -> dict:
    """T* where the attention and fixed-state curves of one series (g, sorted by T) meet, and a note."""
    ts = crossover(g["seq_len"], g[attention_s], g[fixed_s])
    lo, hi = int(g["seq_len"].min()), int(g["seq_len"].max())
    last_faster = fixed_name if g[attention_s].iloc[-1] > g[fixed_s].iloc[-1] else "KV cache"
    if ts:
        note = f"{last_faster} faster above T*" + (f"; the curves cross {len(ts)} times" if len(ts) > 1 else "")
    elif len(g) < 2:
        note = "one context length measured: no crossover can be located"
    else:
        note = f"none in range: {last_faster} faster at every measured context ({lo}–{hi})"
    return {"t_star": ts, "note": note, "range": (lo, hi)}


def decode_crossovers(df) -> list[dict]:
    """Per (source, B): the contexts T* where the best KV-cache step and the best fixed-state step take
    the same time (fits.crossover: linear in log T between the bracketing lengths), and a note."""
    best = best_steps(df)
    out = []
    group = _by(best, "batch_size")
    for key, g in best.groupby(group, sort=True):
        g = g.sort_values("seq_len")
        entry = dict(zip(group, key if isinstance(key, tuple) else (key,)))
        entry.update(_crossing(g, "attention_s", "recurrent_s", "fixed-size state"), batch_size=int(entry["batch_size"]),
                     attention_kernels=sorted(set(g["attention_kernel"])), recurrent_kernels=sorted(set(g["recurrent_kernel"])))
        out.append(entry)
    return out


def kernel_crossovers(df) -> list[dict]:
    """Per (source, fixed-state kernel, B): T* of that kernel's step against the best softmax-attention
    step at each context (a heavier state, e.g. linear attention's d_h x d_h matrix, crosses later)."""
    dec = decode_points(df)
    best = best_steps(df)
    if best.empty:
        return []
    keys = _by(dec, "batch_size", "seq_len")
    att = best[keys + ["attention_s"]]
    fixed = dec[~dec["quadratic"].astype(bool)]
    out = []
    for kernel in ordered_kernels(fixed["kernel"]):
        mine = fixed[fixed["kernel"] == kernel][keys + ["median_s"]].merge(att, on=keys)
        for key, g in mine.groupby(_by(mine, "batch_size"), sort=True):
            entry = dict(zip(_by(mine, "batch_size"), key if isinstance(key, tuple) else (key,)))
            entry.update(_crossing(g.sort_values("seq_len"), "attention_s", "median_s", kernel), kernel=kernel,
                         batch_size=int(entry["batch_size"]))
            out.append(entry)
    return out


def state_sizes(df):
    """Per (source, kernel, T): state bytes per sequence (the same at every B)."""
    dec = decode_points(df)
    keys = _by(dec, "kernel", "family", "seq_len")
    if "state_bytes" not in dec:
        return dec.iloc[0:0]
    return dec.dropna(subset=["state_bytes"]).drop_duplicates(subset=keys).sort_values(keys).reset_index(drop=True)


def capacity(df):
    """Per (source, kernel, T): the capacity batch, its measured bytes, step time and tokens/s, and the budget.

    Every decode row of a (kernel, T) carries the same search (it runs once per context); empty when
    the run had no --capacity."""
    import pandas as pd

    dec = decode_points(df)
    cols = ["capacity_batch", "capacity_tokens_per_s", "capacity_step_s", "capacity_peak_bytes", "capacity_budget_bytes"]
    keys = _by(dec, "kernel", "family", "quadratic", "seq_len")
    if "capacity_batch" not in dec or dec["capacity_batch"].isna().all():
        return pd.DataFrame(columns=keys + cols)
    cap = dec.dropna(subset=["capacity_batch"]).drop_duplicates(subset=keys)[keys + cols]
    return cap.sort_values(keys).reset_index(drop=True)
