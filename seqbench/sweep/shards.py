"""Shards (`--shard K/N`): which points of a sweep each of N machines measures.

The unit of assignment is a curve: every T of one (kernel, mode, B). A fitted exponent or a
crossover T* reads several T of one curve, and if neighbouring T came from different machines the
fit would mix machines; so a whole curve goes to one shard. Only when there are fewer curves than
shards is a curve cut, into runs of consecutive T, the costliest first, until there are N pieces.

Pieces are then dealt out by estimated cost, largest first, each to the shard with the least cost
so far (greedy list scheduling, ties to the lower shard): no shard's total exceeds the mean by more
than the costliest piece. Everything is deterministic, so shard K/N names the same points on every
machine running the same seqbench version and config; shards 1..N hold every point exactly once.

The cost of a point is a rough model of its wall time, only good for balancing: the timer's fixed
budget (warm-up and min_time) plus (min_repeats + 3) calls, a call being FLOPs at a nominal rate,
activation bytes at a nominal bandwidth, and T sequential steps at a per-step overhead for kernels
that are causal by construction (recurrences: a loop pays Python/launch overhead at every step).
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import Sequence

from seqbench.results.identity import Point

# Nominal device speeds for the cost model (FLOP/s, bytes/s, seconds per sequential step). Only
# their ratios matter for balancing; the README's measured figures put a CPU core at ~40-90 GFLOP/s
# and a Python RNN step at ~20 us on CPU and ~90 us of launches on a GPU.
NOMINAL = {"cpu": (5e10, 1e10, 2e-5), "cuda": (2e13, 1e12, 1e-4)}
PER_POINT_S = 0.5  # warm-up windows, building the module, the profiled call: paid by every point
CALLS_PER_POINT = 8  # min_repeats (5) + warm-up and profiled calls, for points slower than min_time


def point_cost(point: Point, min_time: float = 0.2) -> float:
    """Estimated seconds to measure one point (a relative figure for balancing shards)."""
    from seqbench.kernels import get_kernel

    spec = get_kernel(point.kernel)
    rate, bandwidth, step_s = NOMINAL.get(point.device, NOMINAL["cpu"])
    shape, train = point.shape, point.mode == "train"
    elem = 2 if point.dtype in ("float16", "bfloat16") else 8 if point.dtype == "float64" else 4
    steps = point.seq_len * (3 if train else 1) if spec.causal == "always" else 0
    if point.mode == "decode":  # one step a call, after a prefill of T tokens (about T steps at no context) paid once
        call = (spec.flops(shape, "decode") or 0.0) / rate + step_s
        prefill = point.seq_len * ((spec.flops(dataclasses.replace(shape, seq_len=1), "decode") or 0.0) / rate
                                   + step_s * (spec.causal == "always"))
        return PER_POINT_S + prefill + max(min_time, CALLS_PER_POINT * call)
    call = (spec.flops(shape, point.mode) / rate + spec.activation_bytes_fn(shape, elem, train) / bandwidth
            + steps * step_s)
    return PER_POINT_S + max(min_time, CALLS_PER_POINT * call)


def curve_key(p: Point) -> tuple:
    """What one curve over T shares: everything but seq_len."""
    return (p.kernel, p.mode, p.device, p.dtype, p.batch_size, p.hidden_size, p.num_heads, p.causal)


def _pieces(points: Sequence[Point], n: int, cost) -> list[list[int]]:
    """Indices of points grouped into curves (sorted by T), cut further only until there are n pieces."""
    curves: dict[tuple, list[int]] = {}
    for i, p in enumerate(points):
        curves.setdefault(curve_key(p), []).append(i)
    pieces = [sorted(ix, key=lambda i: points[i].seq_len) for ix in curves.values()]
    while len(pieces) < n:
        splittable = [j for j, pc in enumerate(pieces) if len(pc) > 1]
        if not splittable:
            break  # fewer points than shards: some shards stay empty
        j = max(splittable, key=lambda j: (sum(cost[i] for i in pieces[j]), -j))
        pc = pieces.pop(j)
        # cut where the cost of the two halves is closest (costs grow with T, so not at the middle)
        total, run, best = sum(cost[i] for i in pc), 0.0, (float("inf"), 1)
        for m in range(1, len(pc)):
            run += cost[pc[m - 1]]
            best = min(best, (abs(total - 2 * run), m))
        pieces[j:j] = [pc[: best[1]], pc[best[1]:]]
    return pieces


def assign(points: Sequence[Point], n: int, min_time: float = 0.2) -> list[int]:
    """Shard index (1..n) of every point, in the order given."""
    if n < 1:
        raise ValueError("n must be >= 1")
    cost = [point_cost(p, min_time) for p in points]
    pieces = _pieces(points, n, cost)
    order = sorted(range(len(pieces)), key=lambda j: (-sum(cost[i] for i in pieces[j]), min(pieces[j])))
    loads = [(0.0, k) for k in range(1, n + 1)]  # (cost so far, shard): a heap, least loaded first
    owner = [0] * len(points)
    for j in order:
        load, k = heapq.heappop(loads)
        for i in pieces[j]:
            owner[i] = k
        heapq.heappush(loads, (load + sum(cost[i] for i in pieces[j]), k))
    return owner


def shard_of(points: Sequence[Point], shard: tuple[int, int], min_time: float = 0.2) -> list[Point]:
    """Shard K of N, in the grid's order."""
    k, n = shard
    return [p for p, owner in zip(points, assign(points, n, min_time)) if owner == k]


def estimate_seconds(points: Sequence[Point], min_time: float = 0.2, rounds: int = 1) -> float | None:
    """A rough length of a run, said before it starts: the cost model above (nominal speeds) times the
    rounds. Against real runs on a 2-core CPU it read 0.6x (examples.toml, 3 rounds: 22 min estimated,
    12.8 min taken) to 2.1x low (decode.toml, 3 rounds: 3.9 min estimated, 8.2 min taken)."""
    from seqbench.kernels import get_kernel

    try:
        if not all(get_kernel(k).builtin for k in {p.kernel for p in points}):
            return None  # never call a user's FLOP function an extra time just to guess (it may count its calls)
        return sum(point_cost(p, min_time) for p in points) * max(1, rounds)
    except Exception:  # noqa: BLE001 - a user's FLOP or memory function that fails: the run reports it, not this
        return None
