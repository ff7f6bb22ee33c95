"""Layers written by others, as they come: a forward that returns a tuple, a state object updated in
place with plain values beside its tensors, a cache that grows with every token, a FLOP formula with
the kernel's own names. Loaded from a throwaway package (written to tmp_path) as a plugin, and run
in forward, decode and capacity; the decode check's two-chunk prefill catches a planted layer whose
prefill ignores the state it is given."""

from __future__ import annotations

import textwrap

import pytest
import torch

from seqbench.sweep.runner import Harness
from seqbench.cli import main
from seqbench.kernels import get_kernel, load_plugins
from seqbench.kernels.check import check_decode, check_shape
from seqbench.kernels.registry import unregister
from seqbench.kernels.state import Snapshot, logical_bytes, retained_bytes
from seqbench.results.reader import read_results

LAYERS = '''
import torch
import torch.nn.functional as F
from torch import nn


class Cache:
    """A state object, as HF caches are: a tensor updated in place, a position and a name beside it."""

    def __init__(self, h):
        self.h = h
        self.pos = 0
        self.kind = "glr"


class WideGLR(nn.Module):
    """A gated linear recurrence of width expand*d: forward returns (outputs, gates)."""

    def __init__(self, d, expand, ignore_state=False):
        super().__init__()
        e = expand * d
        self.gate, self.value = nn.Linear(d, e, bias=False), nn.Linear(d, e, bias=False)
        self.out = nn.Linear(e, d, bias=False)
        self.ignore_state = ignore_state

    def forward(self, x):
        a, v = torch.sigmoid(self.gate(x)), self.value(x)
        h, outs = x.new_zeros(x.shape[0], a.shape[2]), []
        for t in range(x.shape[1]):
            h = a[:, t] * h + (1 - a[:, t]) * v[:, t]
            outs.append(h)
        return self.out(torch.stack(outs, 1)), a

    def init_state(self, batch_size, max_len):
        return Cache(self.out.weight.new_zeros(batch_size, self.out.in_features))

    def step(self, x_t, cache):
        a, v = torch.sigmoid(self.gate(x_t[:, 0])), self.value(x_t[:, 0])
        cache.h.mul_(a).add_((1 - a) * v)  # in place, as HF's Mamba updates its SSM state
        cache.pos += 1
        return (self.out(cache.h).unsqueeze(1), a), cache

    def prefill(self, x, cache):
        a, v = torch.sigmoid(self.gate(x)), self.value(x)
        h = torch.zeros_like(cache.h) if self.ignore_state else cache.h.clone()  # the planted bug: starts from 0
        for t in range(x.shape[1]):
            h = a[:, t] * h + (1 - a[:, t]) * v[:, t]
        cache.h.copy_(h)
        cache.pos += x.shape[1]
        return cache


class GrowingAttention(nn.Module):
    """Causal softmax attention whose cache grows with torch.cat (empty at init_state), as HF's DynamicCache."""

    def __init__(self, d):
        super().__init__()
        self.qkv, self.o = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return (self.o(F.scaled_dot_product_attention(q, k, v, is_causal=True)),)

    def init_state(self, batch_size, max_len):
        w = self.o.weight
        return {"k": w.new_zeros(batch_size, 0, w.shape[0]), "v": w.new_zeros(batch_size, 0, w.shape[0])}

    def step(self, x_t, state):
        q, k, v = self.qkv(x_t).chunk(3, dim=-1)
        k, v = torch.cat([state["k"], k], 1), torch.cat([state["v"], v], 1)
        return (self.o(F.scaled_dot_product_attention(q, k, v)),), {"k": k, "v": v}
'''

BENCH = '''
import seqbench
from forlab.layers import GrowingAttention, WideGLR


@seqbench.register_kernel("forlab_glr", family="scan", flops="6*expand*B*T*d^2", decode_flops="6*expand*B*d^2",
                          params={"expand": 2}, inplace_state=True)
def forlab_glr(shape):
    return WideGLR(shape.hidden_size, expand=2)


@seqbench.register_kernel("forlab_glr_functional", family="scan", flops="6*expand*B*T*d^2", params={"expand": 2})
def forlab_glr_functional(shape):   # the same layer, its in-place step not declared
    return WideGLR(shape.hidden_size, expand=2)


@seqbench.register_kernel("forlab_forgets", family="scan", flops="6*expand*B*T*d^2", params={"expand": 2},
                          inplace_state=True)
def forlab_forgets(shape):   # prefill ignores the state it is given
    return WideGLR(shape.hidden_size, expand=2, ignore_state=True)


@seqbench.register_kernel("forlab_attn", family="attention", flops="8*B*T*d^2 + 4*B*T^2*d",
                          decode_flops="8*B*d^2 + 4*B*(T+1)*d", causal="always")
def forlab_attn(shape):
    return GrowingAttention(shape.hidden_size)
'''

KERNELS = ("forlab_glr", "forlab_glr_functional", "forlab_forgets", "forlab_attn")


@pytest.fixture(scope="module")
def forlab(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "forlab").mkdir()
    (root / "forlab" / "__init__.py").write_text("")
    (root / "forlab" / "layers.py").write_text(textwrap.dedent(LAYERS))
    (root / "forlab" / "bench.py").write_text(textwrap.dedent(BENCH))
    import sys

    sys.path.insert(0, str(root))
    load_plugins(["forlab.bench"])
    yield root
    sys.path.remove(str(root))
    for k in KERNELS:
        unregister(k)


def test_a_tuple_an_inplace_state_object_and_a_growing_cache_run_forward_decode_and_capacity(forlab, tmp_path):
    out = tmp_path / "f.csv"
    assert main(["run", "--plugin", "forlab.bench", "--kernels", "forlab_glr,forlab_attn", "--mode",
                 "forward,decode", "--seq-lens", "8,16", "--batch-sizes", "2", "--hidden-size", "16", "--heads", "1",
                 "--min-time", "0.002", "--no-peak", "-q", "--capacity", "--max-memory", "1MiB", "-o", str(out)]) == 0
    df = read_results(out)
    assert (df["status"] == "ok").all() and (df["error"].fillna("") == "").all(), df[["kernel", "mode", "error"]]
    glr = df[(df["kernel"] == "forlab_glr") & (df["mode"] == "forward")].set_index("seq_len")
    assert glr.loc[16, "gflop"] == pytest.approx(6 * 2 * 2 * 16 * 16**2 / 1e9)  # the declared expand = 2
    dec = df[df["mode"] == "decode"].set_index(["kernel", "seq_len"])
    assert dec.loc[("forlab_glr", 8), "state_bytes"] == dec.loc[("forlab_glr", 8), "state_retained_bytes"] == 32 * 4
    # the growing cache holds K and V for the T context tokens (the decoded token's row is the step's own)
    for T in (8, 16):
        assert dec.loc[("forlab_attn", T), "state_bytes"] == 2 * T * 16 * 4
        assert dec.loc[("forlab_attn", T), "capacity_batch"] > 2  # found by repeating one sequence's cache
    assert dec.loc[("forlab_glr", 16), "capacity_batch"] > dec.loc[("forlab_attn", 16), "capacity_batch"]
    assert dec.loc[("forlab_glr", 8), "gflop"] == pytest.approx(6 * 2 * 2 * 16**2 / 1e9)


def test_an_undeclared_inplace_step_is_refused_and_the_snapshot_puts_everything_back(forlab):
    shape = check_shape(16, 1, True)
    assert check_decode(get_kernel("forlab_glr"), shape, "cpu", "float32") is None
    why = check_decode(get_kernel("forlab_glr_functional"), shape, "cpu", "float32")
    assert "called again with the same state" in why and "register it with inplace_state=True" in why
    m = get_kernel("forlab_glr").build(shape, "cpu", torch.float32)
    with torch.inference_mode():
        cache = m.prefill(torch.randn(2, 5, 16), m.init_state(2, 6))
        h, snap = cache.h.clone(), Snapshot(cache)
        for _ in range(3):
            m.step(torch.randn(2, 1, 16), cache)
        assert cache.pos == 8 and not torch.equal(cache.h, h)
        snap.restore()
    assert cache.pos == 5 and cache.kind == "glr" and torch.equal(cache.h, h)
    assert logical_bytes(cache) == retained_bytes(cache) == 2 * 32 * 4


def test_the_two_chunk_prefill_catches_a_prefill_that_ignores_its_initial_state(forlab):
    why = check_decode(get_kernel("forlab_forgets"), check_shape(16, 1, True), "cpu", "float32")
    # from an empty state its one-chunk prefill is right: only the second chunk shows the bug
    assert why.startswith("decode check: steps after a prefill in two chunks (t < 2, then 2 <= t < 4) differ from "
                          "the causal forward at t = 4..7 by ")
    assert "x the tolerance" in why and "of the output's scale" in why


def test_views_count_as_owned_bytes_and_retain_their_buffer():
    buf = torch.zeros(16, 8)  # every chunk's state, as xLSTM's chunked prefill leaves it
    state = {"c": buf[-1], "n": buf[-1], "pos": 3}
    assert logical_bytes(state) == 8 * 4 and retained_bytes(state) == 16 * 8 * 4
    assert logical_bytes((buf, buf[:2])) == retained_bytes((buf, buf[:2])) == 16 * 8 * 4  # never above the buffer


def test_counted_flops_and_quadratic_read_off_a_python_flop_function(forlab):
    import seqbench
    from seqbench.kernels.registry import Shape

    layers = __import__("forlab.layers", fromlist=["WideGLR"])
    try:
        spec = seqbench.register_kernel("forlab_counted", family="scan", flops="count", decode_flops="count",
                                        factory=lambda s: layers.WideGLR(s.hidden_size, expand=2), inplace_state=True)
        # three d x 2d matmuls per token, counted at T = 64, 128, 256 and fitted: exact at any T and B
        assert spec.flops(Shape(3, 100, 16, 1, True)) == 3 * 100 * 6 * 2 * 16**2
        assert spec.flops(Shape(3, 100, 16, 1, True), "decode") == 3 * 6 * 2 * 16**2
        assert spec.formula.startswith("counted (FlopCounterMode") and not spec.quadratic
        attn = seqbench.register_kernel("forlab_fn", family="attention", factory=lambda s: None,
                                        flops=lambda s: 8 * s.batch_size * s.seq_len * s.hidden_size**2
                                        + 4 * s.batch_size * s.seq_len**2 * s.hidden_size)
        assert attn.quadratic  # read off the function's growth, as for a formula string
    finally:
        unregister("forlab_counted")
        unregister("forlab_fn")


def test_a_kernels_own_limits_and_a_resume_with_a_changed_limit(forlab, tmp_path):
    import json

    import seqbench
    from seqbench.errors import ConfigError
    from seqbench.sweep.config import build_config
    from seqbench.sweep.resume import check_same_config
    from seqbench.sweep.runner import kernel_limits, run_sweep

    from kit import FakeTimer
    from reliability_helpers import ListSink

    layers = __import__("forlab.layers", fromlist=["WideGLR"])
    try:
        spec = seqbench.register_kernel("forlab_short", family="scan", flops="6*expand*B*T*d^2", params={"expand": 2},
                                        factory=lambda s: layers.WideGLR(s.hidden_size, expand=2), max_seq_len=8,
                                        max_time_per_point=30)
        cfg = build_config({"name": "t", "kernels": ["forlab_short"], "seq_lens": [8, 16], "batch_sizes": [2],
                            "hidden_size": 16, "num_heads": 1, "max_time_per_point": 2}, source="test")
        assert kernel_limits(cfg, spec).max_time_per_point == 30 and kernel_limits(cfg, get_kernel("forlab_glr")) is cfg
        rows = {r.seq_len: r for r in run_sweep(cfg, ListSink(), run_id="t", harness=Harness.scripted(FakeTimer(lambda i: 0.001)))}
        assert rows[8].status == "ok"
        assert rows[16].status == "skipped" and "beyond the kernel's max_seq_len=8" in rows[16].error
        with pytest.raises(seqbench.errors.PluginError, match="max_seq_len=0; allowed: a number > 0"):
            seqbench.register_kernel("forlab_bad", family="scan", flops="1", factory=lambda s: None, max_seq_len=0)
        meta = {"config": json.loads(json.dumps(cfg.to_dict()))}
        slower = build_config({**meta["config"], "max_time_per_point": 60}, source="test")
        (note,) = check_same_config(meta, slower, tmp_path)
        assert "max_time_per_point changed from 2.0 to 60.0" in note
        assert meta["config"]["max_time_per_point"] == 60 and meta["limit_changes"][0]["to"] == 60
        with pytest.raises(ConfigError, match="--resume refused: seq_lens"):
            check_same_config(meta, build_config({**meta["config"], "seq_lens": [8]}, source="test"), tmp_path)
    finally:
        unregister("forlab_short")
