"""Best of family, defined once: which kernel stands for recurrence and which for attention at each
point, how their times compare, and where they cross (T*), with bootstrap intervals.

A side is either the fastest successful kernel of a contender class at each point (roles.py: best
recurrence = recurrent and scan kernels; best attention = softmax attention, registered quadratic;
linear attention is O(T) attention, a side of its own and never the "best attention"), or one named
kernel (the seed's `rnn_loop`, the textbook case, or a user's --baseline). A point is (source,
device, dtype, mode, B, T): devices, dtypes and modes are never mixed. Report, charts and the run's
console summary all take their comparisons from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqbench.analysis import fits
from seqbench.analysis.roles import baseline_kernels, ensure_annotated
from seqbench.analysis.scaling import ok_points
from seqbench.choices import Contender

SERIES = ("device", "dtype", "mode", "batch_size")  # one curve over T per series (and per source)


def point_keys(df) -> list[str]:
    return (["source"] if "source" in df else []) + [*SERIES, "seq_len"]


def series_keys(df) -> list[str]:
    return (["source"] if "source" in df else []) + list(SERIES)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: the fastest kernel of a contender class at each point, or one kernel."""

    label: str
    contender: str = ""
    kernel: str = ""

    def candidates(self, df):
        ok = ok_points(ensure_annotated(df))
        return ok[ok["kernel"] == self.kernel] if self.kernel else ok[ok["contender"] == self.contender]


BEST_RECURRENCE = Side("best recurrence", contender=Contender.RECURRENCE)
BEST_ATTENTION = Side("best attention", contender=Contender.ATTENTION)
BEST_LINEAR_ATTENTION = Side("best linear attention", contender=Contender.LINEAR_ATTENTION)


def kernel_side(name: str) -> Side:
    return Side(name, kernel=name)


def challengers(df) -> list[Side]:
    """What the best attention is compared with: the best recurrence, then each textbook baseline."""
    return [BEST_RECURRENCE] + [kernel_side(b) for b in baseline_kernels(df)]


def best(df, side: Side):
    """Per point, the side's fastest successful row (original index kept, for the bootstrap replicates)."""
    rows = side.candidates(df)
    if rows.empty:
        return rows
    return rows.loc[rows.groupby(point_keys(rows))["median_s"].idxmin().values]


def versus(df, left: Side, right: Side = BEST_ATTENTION):
    """left against right at every point both have: left_s / right_s is the speed-up (> 1: right faster).

    Columns: point keys, left_kernel, left_s, right_kernel, right_s, speedup.
    """
    import pandas as pd

    keys = point_keys(df)
    a, b = best(df, left), best(df, right)
    if a.empty or b.empty:
        return pd.DataFrame(columns=keys + ["left_kernel", "left_s", "right_kernel", "right_s", "speedup"])
    a = a[keys + ["kernel", "median_s"]].rename(columns={"kernel": "left_kernel", "median_s": "left_s"})
    b = b[keys + ["kernel", "median_s"]].rename(columns={"kernel": "right_kernel", "median_s": "right_s"})
    m = a.merge(b, on=keys)
    m["speedup"] = m["left_s"] / m["right_s"]
    return m.sort_values(keys).reset_index(drop=True)


BLOCK = 4096  # points whose replicates side_replicates reduces together (~30-100 MB at 1000 replicates)


def side_replicates(df, side: Side, reps) -> dict[tuple, np.ndarray]:
    """Point key -> the side's replicate times: per replicate, the fastest of its candidates.

    The best-of choice is part of what is resampled: where two kernels are close, replicates pick either.
    """
    rows = side.candidates(df)
    rows = rows[rows.index.isin(reps.index)]
    if rows.empty:
        return {}
    keys = point_keys(rows)
    # one pass in numpy (a groupby loop with reps.loc per point took ~3 ms a point: minutes at 100k rows)
    codes = rows.groupby(keys, sort=False).ngroup().to_numpy()
    keep = codes >= 0  # rows whose key holds a NaN belong to no group (groupby's dropna)
    rows, codes = rows[keep], codes[keep]
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    at = reps.index.get_indexer(rows.index)[order]  # positions in the replicates' single float block
    table = reps.to_numpy()
    mins = np.empty((len(starts), table.shape[1]))
    ends = np.r_[starts[1:], len(order)]
    for lo in range(0, len(starts), BLOCK):  # a few thousand points at a time: no copy of every candidate's replicates
        first, last = starts[lo], ends[min(lo + BLOCK, len(starts)) - 1]
        mins[lo:lo + BLOCK] = np.minimum.reduceat(table[at[first:last]], starts[lo:lo + BLOCK] - first, axis=0)
    firsts = rows.iloc[order[starts]][keys]
    return {tuple(k): m for k, m in zip(firsts.itertuples(index=False), mins)}


@dataclass(frozen=True)
class Crossing:
    """Where left and right cost the same along one series (source?, device, dtype, mode, B)."""

    series: dict
    left: str
    right: str
    t_star: list[float]  # every crossing, in T order; empty: none in the measured range
    interval: fits.Interval | None  # of the last crossing (the one above which the winner holds)
    crossing_share: float | None  # with no crossing: share of replicates that do cross (uncertain "none")
    note: str
    t_range: tuple[int, int]
    points: int
    faster_at_longest: str  # the side (and its kernel) that is faster at the longest T measured

    @property
    def key(self) -> bool:
        """A key figure: one crossing with a narrow interval, or no crossing in (nearly) any replicate."""
        if self.t_star:
            return len(self.t_star) == 1 and self.interval is not None and not self.interval.wide
        return self.points >= 2 and (self.crossing_share is None or self.crossing_share <= fits.MISSING_WIDE)


def crossings(df, left: Side, right: Side = BEST_ATTENTION, reps=None, cache: dict | None = None) -> list[Crossing]:
    """T* per series where left and right take the same time, with intervals when replicates are given.

    cache: side -> its side_replicates, kept across calls on the same df and reps (figures.Figures)."""
    v = versus(df, left, right)
    if v.empty:
        return []
    skeys = series_keys(v)
    cache = {} if cache is None else cache

    def replicates(side: Side) -> dict:
        if reps is None:
            return {}
        if side not in cache:
            cache[side] = side_replicates(df, side, reps)
        return cache[side]

    rep_a, rep_b = replicates(left), replicates(right)
    out = []
    for key, g in v.groupby(skeys, sort=True):
        g = g.sort_values("seq_len")
        T = g["seq_len"].to_numpy(float)
        ts = fits.crossover(T, g["left_s"], g["right_s"])
        lo, hi = int(T.min()), int(T.max())
        pkeys = [tuple(r) for r in g[point_keys(v)].itertuples(index=False)]
        have = reps is not None and all(k in rep_a and k in rep_b for k in pkeys)
        a = np.array([rep_a[k] for k in pkeys]) if have else None
        b = np.array([rep_b[k] for k in pkeys]) if have else None
        interval = fits.crossover_interval(T, a, b, ts[-1]) if have and ts else None
        share = fits.crossing_share(T, a, b) if have and not ts and len(T) > 1 else None
        above = g.iloc[-1]
        winner = _named(left, above["left_kernel"]) if above["speedup"] < 1 else _named(right, above["right_kernel"])
        if ts:
            note = f"{winner} faster above {'the last T*' if len(ts) > 1 else 'T*'}"
            if len(ts) > 1:
                note += f"; the curves cross {len(ts)} times (noisy or flat ratio)"
        elif len(g) < 2:
            note = "one length measured: no crossover can be located"
        else:
            side = (right if (g["speedup"] > 1).all() else left)
            note = f"none in range: {side.label} faster at every measured T ({lo}–{hi})"
        out.append(Crossing(dict(zip(skeys, key)), left.label, right.label, ts, interval, share, note, (lo, hi),
                            len(g), winner))
    return out


def _named(side: Side, kernel: str) -> str:
    return side.label if side.kernel else f"{side.label} ({kernel})"


def fight_table(df):
    """Per point: the best recurrence and best attention (kernel, time, speed-up), each textbook kernel's
    time and speed-up, and the best linear attention: what the run's console summary prints.

    Columns: point keys, recurrence_kernel, recurrence_s, attention_kernel, attention_s, speedup, then
    per textbook kernel K: K_s and K_speedup, then linear_kernel, linear_s (NaN/"" where absent).
    """
    main = versus(df, BEST_RECURRENCE).rename(columns={
        "left_kernel": "recurrence_kernel", "left_s": "recurrence_s", "right_kernel": "attention_kernel",
        "right_s": "attention_s"})
    keys = point_keys(df)
    for side in challengers(df)[1:]:
        v = versus(df, side)[keys + ["left_s", "speedup"]]
        main = main.merge(v.rename(columns={"left_s": f"{side.kernel}_s", "speedup": f"{side.kernel}_speedup"}),
                          on=keys, how="left")
    lin = best(df, BEST_LINEAR_ATTENTION)
    lin = lin[keys + ["kernel", "median_s"]].rename(columns={"kernel": "linear_kernel", "median_s": "linear_s"})
    return main.merge(lin, on=keys, how="left")
