"""Shards keep curves whole and balance estimated cost: every point exactly once, whatever the grid and N."""

from __future__ import annotations

import itertools

import pytest

from seqbench.kernels import get_kernel
from seqbench.results.identity import Point
from seqbench.sweep.config import build_config
from seqbench.sweep.plan import shard_points
from seqbench.sweep.shards import assign, curve_key, point_cost

GRIDS = {
    "2 kernels x 2 B x 3 T": dict(kernels=["rnn_loop", "sdpa"], seq_lens=[8, 16, 32], batch_sizes=[1, 2]),
    "5 kernels x 3 B x 4 T, both modes": dict(kernels=["rnn_loop", "lstm_fused", "sdpa", "mha", "mingru_scan"],
                                               seq_lens=[64, 128, 1024, 4096], batch_sizes=[1, 8, 64],
                                               modes=["forward", "train"]),
    "1 curve of 7 T": dict(kernels=["sdpa"], seq_lens=[16, 32, 64, 128, 256, 512, 1024], batch_sizes=[4]),
    "1 point": dict(kernels=["rnn_loop"], seq_lens=[8], batch_sizes=[1]),
}


def grid(name, **over):
    return build_config(dict(GRIDS[name], name="g", hidden_size=16, num_heads=2, **over)).points()


@pytest.mark.parametrize("name", GRIDS)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 13, 200])
def test_shards_hold_every_point_exactly_once(name, n):
    points = grid(name)
    shards = [shard_points(points, (k, n)) for k in range(1, n + 1)]
    flat = [p for s in shards for p in s]
    assert sorted(flat, key=Point.key) == sorted(points, key=Point.key)
    assert len(flat) == len(set(flat))
    assert shard_points(points, (n, n)) == shards[-1]  # deterministic
    for s in shards:  # each shard in the grid's order
        assert s == [p for p in points if p in set(s)]
    if n <= len(points):
        assert all(shards), "no shard may be empty while there are at least N points"


@pytest.mark.parametrize("name", GRIDS)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 13])
def test_a_curve_stays_on_one_shard_when_there_are_enough_curves(name, n):
    points = grid(name)
    owner = dict(zip(points, assign(points, n)))
    curves = {}
    for p in points:
        curves.setdefault(curve_key(p), []).append(p)
    if n <= len(curves):
        for members in curves.values():
            assert len({owner[p] for p in members}) == 1
    else:  # more shards than curves: a curve is cut into runs of consecutive T, never interleaved
        for members in curves.values():
            shards_in_t_order = [owner[p] for p in sorted(members, key=lambda p: p.seq_len)]
            runs = [k for k, _ in itertools.groupby(shards_in_t_order)]
            assert len(runs) == len(set(runs))


def test_the_old_striding_is_gone():
    """Neighbouring T of one curve used to land on different shards (every N-th point)."""
    points = grid("2 kernels x 2 B x 3 T")
    shard1 = shard_points(points, (1, 2))
    assert {curve_key(p) for p in shard1} and all(
        sum(curve_key(q) == curve_key(p) for q in shard1) == 3 for p in shard1)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_greedy_balance_bound(n):
    """No shard exceeds the mean load by more than the costliest curve (list scheduling's guarantee)."""
    points = grid("5 kernels x 3 B x 4 T, both modes")
    cost = {p: point_cost(p) for p in points}
    owner = assign(points, n)
    loads = [sum(cost[p] for p, k in zip(points, owner) if k == s) for s in range(1, n + 1)]
    curves = {}
    for p in points:
        curves[curve_key(p)] = curves.get(curve_key(p), 0.0) + cost[p]
    assert max(loads) <= sum(loads) / n + max(curves.values()) + 1e-9


def test_a_heavy_curve_gets_a_shard_of_its_own():
    """attention_naive at B=64, T=4096 in train mode outweighs three light curves together."""
    heavy = build_config(dict(name="h", kernels=["attention_naive"], seq_lens=[2048, 4096], batch_sizes=[64],
                              modes=["train"], hidden_size=256, num_heads=4)).points()
    light = build_config(dict(name="l", kernels=["sdpa"], seq_lens=[16, 32], batch_sizes=[1, 2, 4],
                              hidden_size=256, num_heads=4)).points()
    points = light + heavy  # the heavy curve last in the grid: an index-based split would not isolate it
    owner = dict(zip(points, assign(points, 2)))
    assert len({owner[p] for p in heavy}) == 1
    assert {owner[p] for p in light} == {3 - owner[heavy[0]]}


def test_point_cost_by_hand():
    """rnn_loop, forward, B=8, T=1024, d=256 on CPU: 4*B*T*d^2 FLOPs at 50 GFLOP/s, its activation
    bytes at 10 GB/s, 1024 sequential steps at 20 us, 8 calls, plus 0.5 s per point."""
    p = Point("rnn_loop", "forward", "cpu", "float32", 8, 1024, 256, 4, False)
    flops = 4 * 8 * 1024 * 256**2
    act = get_kernel("rnn_loop").activation_bytes_fn(p.shape, 4, False)
    call = flops / 5e10 + act / 1e10 + 1024 * 2e-5
    assert point_cost(p) == pytest.approx(0.5 + 8 * call)
    # sdpa of the same shape has no sequential steps; a tiny point costs the timer's fixed budget
    q = Point("sdpa", "forward", "cpu", "float32", 1, 8, 16, 2, False)
    assert point_cost(q, min_time=0.2) == pytest.approx(0.5 + 0.2)
