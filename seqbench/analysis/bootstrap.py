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

import os
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


CHUNK = 2000  # rows whose plain replicates are reduced together (~80 MB at 5 samples a row)


def _median_last(x: np.ndarray) -> np.ndarray:
    """np.median over the last axis, bit for bit (the mean of the two middle values when even), by a sort
    in place (x is reordered): twice as fast as np.median on the short axes of samples per point."""
    n = x.shape[-1]
    x.sort(axis=-1)  # in place: callers pass an array of their own (a stack of draws)
    return x[..., n // 2] if n % 2 else (x[..., n // 2 - 1] + x[..., n // 2]) / 2


def _fill(out: np.ndarray, parsed: list, part: range, n_boot: int, seed: int) -> None:
    """out[i] = row i's replicates for i in part: rows of one round reduced together by their number of
    samples (CHUNK at a time), rows of several rounds one by one."""
    plain: dict[int, list] = {}  # samples a row -> [(position, drawn values)]

    def reduce(group: list) -> None:
        out[[i for i, _ in group]] = _median_last(np.stack([d for _, d in group]))
        group.clear()

    for i in part:
        _, row, samples = parsed[i]
        rounds, rng = _rounds_of(row, len(samples)), _rng(row, seed)
        if rounds is not None:
            out[i] = point_replicates(samples, rounds, n_boot=n_boot, rng=rng)
            continue
        group = plain.setdefault(len(samples), [])
        group.append((i, _drawn(np.asarray(samples, dtype=float), n_boot, rng)))
        if len(group) >= CHUNK:
            reduce(group)
    for group in plain.values():
        if group:
            reduce(group)


FORK_MIN_ROWS = 20_000  # below this a second process costs more than it saves


def _forked(work) -> int | None:
    """Run work() in a forked child (its writes to shared memory are seen here); its pid, or None when a
    fork is not safe or not useful: one core, or other threads alive (a lock one of them holds would be
    held forever in the child)."""
    import threading

    from seqbench.measure.load import available_cores  # affinity and a container's CPU quota

    if available_cores() < 2 or threading.active_count() > 1 or not hasattr(os, "fork"):
        return None
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid:
        return pid
    try:  # the child: compute, never return into the caller's code (no atexit, no flushed buffers)
        work()
        code = 0
    except BaseException:  # noqa: BLE001 - any failure: the parent computes this part itself
        code = 1
    os._exit(code)


def replicate_medians(df, *, n_boot: int = N_BOOT, seed: int = SEED):
    """A (rows x n_boot) DataFrame of bootstrap medians, indexed like df's rows that have samples.

    The same replicates as point_replicates row by row (each row's own generator, drawn in the same
    order, so a point's replicates do not depend on the other rows or on who computes them). Rows of one
    round are reduced together into one preallocated array (a frame of one float block); the rows are
    read as plain column lists (a per-row Series copies the frame's attrs). On a large file the second
    half of the rows is computed by a forked child into shared memory while this process does the first:
    the per-point generators hold the GIL, so threads would not help (100,000 rows: ~16 s -> ~10 s on 2
    cores); if the child fails, this process computes its half too."""
    import mmap

    import pandas as pd

    # plain column lists (a record per row built by pandas costs more than the draws); `row` holds what
    # _rounds_of and _rng read, as to_dict("records") would give it
    cols = [c for c in dict.fromkeys((*_IDENTITY, "samples_s", "sample_rounds")) if c in df.columns]
    values = [df[c].tolist() for c in cols]
    parsed = [(label, row, parse_samples(row.get("samples_s", "")))
              for label, row in zip(df.index, (dict(zip(cols, v)) for v in zip(*values)))]
    parsed = [p for p in parsed if p[2]]
    n = len(parsed)
    if n >= FORK_MIN_ROWS:  # anonymous shared memory: a forked child's writes land here
        out = np.frombuffer(mmap.mmap(-1, n * n_boot * 8), dtype=float).reshape(n, n_boot)
    else:
        out = np.empty((n, n_boot))
    half = n // 2
    child = _forked(lambda: _fill(out, parsed, range(half, n), n_boot, seed)) if n >= FORK_MIN_ROWS else None
    try:
        _fill(out, parsed, range(0, half if child else n), n_boot, seed)
        status = os.waitpid(child, 0)[1] if child else 0
        child = None
    finally:
        if child:  # interrupted (Ctrl-C, SIGTERM): the child goes too
            import signal

            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
    if status != 0:
        _fill(out, parsed, range(half, n), n_boot, seed)
    return pd.DataFrame(out, index=pd.Index([label for label, _, _ in parsed], dtype=df.index.dtype),
                        columns=range(n_boot), copy=False)
