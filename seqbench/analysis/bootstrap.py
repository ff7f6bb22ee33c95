"""Bootstrap replicates of every point's median: the raw material of the exponent and T* intervals.

Each row keeps every timed sample (`samples_s`) and, with `--rounds R`, the round each came from
(`sample_rounds`). A replicate redraws what was measured, with replacement, and takes the median
again:
  - rows with two rounds or more: the rounds are drawn (R of them), then each drawn round's samples.
    On a shared machine slow phases last whole blocks of samples (on a shared machine they last seconds), so the
    round, not the sample, is the independent unit; redrawing the samples too keeps a replicate from
    being one of only a few multisets when R is small (with R = 3 rounds alone give 10). It errs wide.
  - rows of one round: the samples are drawn. Those samples are one block in time and not
    independent, so these intervals err narrow: measure with `--rounds 3` or more when they matter.

Replicates are seeded by the point's identity, so a point gets the same replicates whatever else
the file holds and whatever order its rows are in: the report, the charts and the console agree.
"""

from __future__ import annotations

import zlib

import numpy as np

from seqbench.results.identity import KEY_COLUMNS
from seqbench.results.schema import parse_samples

N_BOOT = 1000  # replicates: 95% percentile intervals move by < 1% of their width between seeds beyond this
SEED = 0
_IDENTITY = ("source", *KEY_COLUMNS)


def _rounds_of(row, n: int) -> np.ndarray | None:
    text = row.get("sample_rounds", "")
    if not isinstance(text, str) or not text.strip():
        return None
    rounds = np.array(text.split(), dtype=int)
    return rounds if len(rounds) == n and len(np.unique(rounds)) > 1 else None


def _rng(row, seed: int) -> np.random.Generator:
    key = "|".join(str(row.get(c, "")) for c in _IDENTITY)
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _drawn(s: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, len(s)): the samples drawn with replacement, one replicate a row (before its median)."""
    return s[rng.integers(0, len(s), size=(n_boot, len(s)))]


def point_replicates(samples, rounds=None, *, n_boot: int = N_BOOT, rng: np.random.Generator) -> np.ndarray:
    """n_boot bootstrap medians of one point: rounds then samples within them, or samples alone."""
    s = np.asarray(samples, dtype=float)
    if rounds is None:
        return np.median(_drawn(s, n_boot, rng), axis=1)
    labels, idx = np.unique(np.asarray(rounds), return_inverse=True)
    groups = [np.sort(s[idx == j]) for j in range(len(labels))]
    sizes = np.array([len(g) for g in groups])
    n_max = sizes.max()
    padded = np.full((len(groups), n_max), np.nan)
    for j, g in enumerate(groups):
        padded[j, :len(g)] = g
    chosen = rng.integers(0, len(groups), size=(n_boot, len(groups)))  # (n_boot, R) rounds drawn
    n_chosen = sizes[chosen][..., None]  # each drawn round contributes as many samples as it holds
    pick = np.floor(rng.random((n_boot, len(groups), n_max)) * n_chosen).astype(int)
    values = padded[chosen[..., None], pick]
    values[np.arange(n_max) >= n_chosen] = np.nan  # slots past a smaller round's size
    return np.nanmedian(values.reshape(n_boot, -1), axis=1)


CHUNK = 2000  # rows whose plain replicates are reduced in one np.median call (~80 MB at 5 samples a row)


def replicate_medians(df, *, n_boot: int = N_BOOT, seed: int = SEED):
    """A (rows x n_boot) DataFrame of bootstrap medians, indexed like df's rows that have samples.

    The same replicates as point_replicates row by row (each row's own generator, drawn in the same
    order); rows of one round are reduced together, grouped by their number of samples, and the rows
    are read as plain records (a per-row Series copies the frame's attrs): 100,000 rows in seconds."""
    import pandas as pd

    cols = [c for c in dict.fromkeys((*_IDENTITY, "samples_s", "sample_rounds")) if c in df.columns]
    out: dict = {}
    plain: dict[int, list] = {}  # samples a row -> [(label, drawn indices' values)], reduced per CHUNK

    def reduce(group: list) -> None:
        meds = np.median(np.stack([d for _, d in group]), axis=2)
        for (label, _), m in zip(group, meds):
            out[label] = m
        group.clear()

    for label, row in zip(df.index, df[cols].to_dict("records")):
        samples = parse_samples(row.get("samples_s", ""))
        if not samples:
            continue
        rounds, rng = _rounds_of(row, len(samples)), _rng(row, seed)
        if rounds is not None:
            out[label] = point_replicates(samples, rounds, n_boot=n_boot, rng=rng)
            continue
        group = plain.setdefault(len(samples), [])
        group.append((label, _drawn(np.asarray(samples, dtype=float), n_boot, rng)))
        if len(group) >= CHUNK:
            reduce(group)
    for group in plain.values():
        if group:
            reduce(group)
    order = [label for label in df.index if label in out]
    return pd.DataFrame.from_dict({label: out[label] for label in order}, orient="index", columns=range(n_boot))
