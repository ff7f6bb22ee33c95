"""Rounds (`--rounds R`): each point's samples taken in R rounds spread across the sweep.

Rounds exist because of noise: on a shared machine a point's timings drift by up to +-20% in slow
phases that last whole blocks of samples (on a shared machine they last seconds). Taking every point's samples
in one block lets one slow phase ruin one point. With R rounds the sweep measures round 1 of every
point, then round 2, ..., so each point's samples are spread across the whole run, a slow phase hits
all points alike, and `seqbench compare` can use the spread between rounds as the point's noise.

Bookkeeping: each round gets 1/R of the point's time budget (min_time, min/max repeats), so R does
not multiply the run time (warm-up is repeated per round, since caches go cold in between).
A point's row is written when its LAST round completes: with R > 1 almost every row lands during the
final round, so an interrupted run keeps only points that had already failed. For interruptible
runs use several `--rounds 1 --append` invocations instead (the CI recipe does). A point failing in
any round is written at once as a failure row and skipped in later rounds. The combined row keeps
every sample with its round number (`sample_rounds`) and, with `--reference`, one time of the
reference matmul per round (`ref_s`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterator, Sequence

from seqbench.measure.timer import Measurement
from seqbench.results.schema import Row, format_samples, parse_samples, tokens_per_call

CAPACITY_FIELDS = tuple(f.name for f in dataclasses.fields(Row) if f.name.startswith("capacity_"))
from seqbench.results.identity import Point
from seqbench.sweep.config import SweepConfig


def round_config(cfg: SweepConfig, rounds: int) -> SweepConfig:
    """A point's budget per round: 1/R of min_time and of the repeat bounds."""
    if rounds == 1:
        return cfg
    return dataclasses.replace(
        cfg,
        min_time=cfg.min_time / rounds,
        min_repeats=max(1, math.ceil(cfg.min_repeats / rounds)),
        max_repeats=max(1, math.ceil(cfg.max_repeats / rounds)),
    )


def combine_rounds(parts: list[Row], ref: list[float | None]) -> Row:
    """One row from a point's per-round rows: all samples pooled, statistics recomputed."""
    row = dataclasses.replace(parts[-1])
    if row.metric == "instructions":  # one round only (sweep.plan): its counts are the row's
        return row
    samples: list[float] = []
    rounds: list[int] = []
    for i, part in enumerate(parts, start=1):
        s = parse_samples(part.samples_s)
        samples += s
        rounds += [i] * len(s)
    m = Measurement(samples=samples, number=parts[-1].number or 1, warmup_s=0.0, warmup_settled=True)
    row.repeats = len(samples)
    row.median_s, row.iqr_s, row.min_s, row.mean_s = m.median, m.iqr, m.min, m.mean
    row.tokens_per_s = tokens_per_call(row.mode, row.batch_size, row.seq_len) / m.median
    row.gflops_per_s = row.gflop / m.median if row.gflop is not None else None
    row.peak_mem_bytes, row.peak_mem_method = parts[0].peak_mem_bytes, parts[0].peak_mem_method
    row.sdpa_backend = parts[0].sdpa_backend  # profiled in the first round only, like memory
    for name in CAPACITY_FIELDS:  # the capacity search, too, runs in the first round only
        setattr(row, name, getattr(parts[0], name))
    row.warmup_s = sum(p.warmup_s or 0.0 for p in parts)
    row.warmup_settled = all(bool(p.warmup_settled) for p in parts)
    row.samples_s = format_samples(samples)
    row.sample_rounds = " ".join(map(str, rounds))
    row.ref_s = format_samples(ref) if ref and all(c is not None for c in ref) else ""
    return row


def measure_in_rounds(
    points: Sequence[Point],
    rounds: int,
    measure_round: Callable[[Point, int], Row],
    reference: Callable[[], float] | None = None,
) -> Iterator[Row]:
    """Yield each point's final row: after its last round, or as soon as one of its rounds fails.

    measure_round(point, r) measures one round (r = 1..rounds) of one point; reference(), if given,
    times the reference matmul and is called just before every point's round.
    """
    parts: dict[int, list[Row]] = {}
    refs: dict[int, list[float | None]] = {}
    failed: set[int] = set()
    for r in range(1, rounds + 1):
        for i, point in enumerate(points):
            if i in failed:
                continue
            c = reference() if reference else None
            row = measure_round(point, r)
            if row.status != "ok":
                failed.add(i)
                parts.pop(i, None)
                if rounds > 1:
                    row.error = f"round {r}/{rounds}: {row.error}"
                yield row
                continue
            parts.setdefault(i, []).append(row)
            refs.setdefault(i, []).append(c)
            if r == rounds:
                yield combine_rounds(parts.pop(i), refs.pop(i))


def make_reference(cfg: SweepConfig, rounds: int, timer=None) -> Callable[[], float]:
    """Build the reference workload once; each call returns its seconds per call.

    The workload is a fixed 256x256 matmul in cfg's dtype on cfg's device: the same work whatever
    the sweep measures, so dividing by it (`compare --normalize reference`) cancels a machine-wide
    slow phase or a slower runner. Its budget is small (at most 50 ms of samples) because it runs
    before every point's round.
    """
    import torch

    from seqbench.measure.timer import measure

    # not the registry's `calibration` kernel: that one is sized to find the device's matmul peak
    # (seconds), this one must be short enough to run before every point's round
    g = torch.Generator().manual_seed(cfg.seed)
    a = torch.randn(256, 256, generator=g).to(cfg.device, getattr(torch, cfg.dtype))
    step, context = (lambda: a @ a), torch.inference_mode
    budget = min(0.05, cfg.min_time / rounds)

    def reference() -> float:
        with context():
            m = measure(step, device=cfg.device, min_time=budget, min_repeats=3, max_warmup=0.2, timer=timer)
        return m.median

    return reference
