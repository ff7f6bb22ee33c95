"""Decode analysis, shared by the decode charts and the report's decode section: step latency against
context (fitted exponent), decode crossovers, the state's bytes and the capacity batch.

In decode rows T is the context length, so they are kept out of the forward/train analysis (its
exponents are fitted from T >= 128 and mean k ~ 1 for a recurrence) and get their own rules here.
Sides are best of family as everywhere (analysis/matchup.py: best recurrence = the fastest recurrent
or scan kernel, best attention = the fastest softmax-attention kernel); in decode every kernel that
is not softmax attention has a fixed-size state (linear attention too), and each is also set against
the best attention on its own.
"""

from __future__ import annotations

from seqbench.analysis import matchup
from seqbench.analysis.roles import ensure_annotated
from seqbench.analysis.scaling import _by, kernel_fits, ok_points, ordered_kernels
from seqbench.choices import Mode


def decode_points(df):
    """Successful decode rows, annotated with each kernel's role."""
    ok = ok_points(ensure_annotated(df))
    return ok[ok["mode"] == Mode.DECODE]


def other_modes(df):
    """Every row but the decode ones (forward and train: T is the sequence length), attributes kept."""
    rest = df[df["mode"] != Mode.DECODE]
    rest.attrs.update(df.attrs)
    return rest


def fit_min_T(hidden_size: int) -> int:
    """Contexts from which a step's exponent is fitted: T >= 4d, where attention's cache read
    (4*T*d FLOPs) is at least twice its projections (8*d^2), so ~1 is what a KV cache should show."""
    return 4 * int(hidden_size)


def decode_fits(df, reps=None) -> list[dict]:
    """One fit of step latency ∝ T^k per (source, kernel, device, dtype, B), over T >= fit_min_T(d),
    with its bootstrap interval when reps (bootstrap.replicate_medians) are given."""
    dec = decode_points(df)
    if dec.empty:
        return []
    min_T = fit_min_T(dec["hidden_size"].max())
    quadratic = dict(zip(dec["kernel"], dec["quadratic"].astype(bool)))
    return [{**f, "min_T": min_T, "quadratic": quadratic[f["kernel"]]} for f in kernel_fits(dec, min_T=min_T, reps=reps)]


def best_steps(df):
    """Per decode point: best recurrence (left) against best attention (right), matchup.versus's columns;
    right_s / left_s > 1 means the recurrence decodes faster."""
    return matchup.versus(decode_points(df), matchup.BEST_RECURRENCE, matchup.BEST_ATTENTION)


def crossings(df, reps=None) -> list[matchup.Crossing]:
    """The decode crossover per series (B, ...): the context where the best recurrence's step and the
    best attention's step take the same time."""
    return matchup.crossings(decode_points(df), matchup.BEST_RECURRENCE, matchup.BEST_ATTENTION, reps)


def kernel_crossings(df, reps=None) -> list[matchup.Crossing]:
    """Each fixed-state kernel (every kernel but softmax attention) against the best attention's step."""
    dec = decode_points(df)
    fixed = dec[~dec["quadratic"].astype(bool)]
    return [c for k in ordered_kernels(fixed["kernel"])
            for c in matchup.crossings(dec, matchup.kernel_side(k), matchup.BEST_ATTENTION, reps)]


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
    order = {k: i for i, k in enumerate(ordered_kernels(cap["kernel"]))}
    return cap.sort_values(keys, key=lambda s: s.map(order) if s.name == "kernel" else s).reset_index(drop=True)
