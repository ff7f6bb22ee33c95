"""Decode mode: every built-in step equals the causal forward, the timed step neither grows nor drifts,
the decode columns (tokens/s, FLOPs, state bytes) hold exact numbers, kernels without a step are
skipped, and a user's layer decodes through the plugin API."""

import textwrap

import pytest
from kit import builtin_kernels
import torch
from torch.utils.flop_counter import FlopCounterMode

from seqbench.sweep.runner import Harness
from seqbench.errors import ConfigError
from seqbench.kernels import KERNELS, Shape, decode, get_kernel
from seqbench.kernels.registry import register_kernel, unregister
from seqbench.results.identity import Point
from seqbench.sweep.config import build_config
from seqbench.sweep.runner import run_sweep

from kit import FakeTimer, tiny_config
from reliability_helpers import ListSink

DECODING = sorted(k for k, s in builtin_kernels().items() if s.family != "calibration")  # HF blocks: test_hf_blocks
F64 = torch.float64


def build(name, shape, dtype=F64, seed=0):
    torch.manual_seed(seed)
    return get_kernel(name).build(shape, torch.device("cpu"), dtype).eval()


@pytest.mark.parametrize("name", DECODING)
def test_decode_steps_after_a_prefill_equal_the_causal_forward(name):
    """Prefill t0 tokens (in two chunks, as the runner does at long contexts), then step: the outputs are
    the causal forward's at those positions, in float64, to rounding."""
    B, T, d = 3, 11, 16
    m = build(name, Shape(B, T, d, 4, True))
    assert decode.has_decode(m)
    x = torch.randn(B, T, d, dtype=F64)
    with torch.inference_mode():
        ref = m(x)
        state = m.init_state(B, T)
        state = decode.prefill(m, x[:, :3], state)
        state = decode.prefill(m, x[:, 3:5], state)
        outs = []
        for t in range(5, T):
            y, state = m.step(x[:, t:t + 1], state)
            outs.append(y)
    torch.testing.assert_close(torch.cat(outs, dim=1), ref[:, 5:], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", DECODING)
def test_the_timed_step_repeats_from_one_state_without_growing(name):
    """seqbench times step(x_t, state_T) again and again: same output, same state, nothing grows."""
    B, T, d = 2, 6, 16
    m = build(name, Shape(B, T, d, 4, True))
    with torch.inference_mode():
        state = decode.prefill(m, torch.randn(B, T, d, dtype=F64), m.init_state(B, T + 1))
        before = [t.clone() for t in decode.tensors(state)]
        plain = [v for v in decode.leaves(state) if not isinstance(v, torch.Tensor)]
        size = decode.state_nbytes(state)
        step = decode.step_fn(m, torch.randn(B, 1, d, dtype=F64), state)
        first = step()
        for _ in range(3):
            torch.testing.assert_close(step(), first, rtol=0, atol=0)
    assert decode.state_nbytes(state) == size
    assert [v for v in decode.leaves(state) if not isinstance(v, torch.Tensor)] == plain  # a KV cache's n stays T
    if not get_kernel(name).quadratic:  # a KV cache writes its slot T; every other state is left exactly as it was
        for a, b in zip(before, decode.tensors(state)):
            assert torch.equal(a, b)


def test_decode_flops_by_hand():
    s = Shape(batch_size=2, seq_len=10, hidden_size=16, num_heads=4)
    # recurrences: x W_ih and h W_hh for one token, 2 FLOPs per multiply-add, whatever the context
    assert KERNELS["rnn_fused"].flops(s, "decode") == 2 * (2 * 2 * 16 * 16) == 2048
    assert KERNELS["lstm_loop"].flops(s, "decode") == 4 * 2048
    assert KERNELS["gru_fused"].flops(s, "decode") == 3 * 2048
    assert KERNELS["mingru_scan"].flops(s, "decode") == 2 * 2 * 16 * (2 * 16) == 2048  # the d -> 2d projection
    # softmax attention: 4 projections of one token + QK^T and AV over the T + 1 cached positions
    proj, core = 4 * 2 * 2 * 16 * 16, 2 * 2 * 2 * 4 * 11 * 4
    assert KERNELS["sdpa"].flops(s, "decode") == proj + core == 5504
    # linear attention: projections + state update and readout, 2 * 2*h*d_h^2 per token
    assert KERNELS["linear_attention"].flops(s, "decode") == proj + 2 * 2 * 2 * 4 * 4 * 4 == 4608


@pytest.mark.parametrize("name", ["rnn_loop", "lstm_fused", "gru_loop", "attention_naive", "mingru_loop",
                                  "linear_attention"])
def test_decode_flop_formula_matches_torch_flop_counter(name):
    B, T, d = 2, 10, 16
    s = Shape(B, T, d, 4, True)
    m = build(name, s)
    with torch.inference_mode():
        state = decode.prefill(m, torch.randn(B, T, d, dtype=F64), m.init_state(B, T + 1))
        with FlopCounterMode(display=False) as counter:
            m.step(torch.randn(B, 1, d, dtype=F64), state)
    # linear attention's normaliser (a column of ones on V: 4*B*d) is not counted, as in the forward formula
    extra = 4 * B * d if name == "linear_attention" else 0
    assert counter.get_total_flops() == KERNELS[name].flops(s, "decode") + extra


def _decode_cfg(**over):
    return tiny_config(**{"name": "dec", "kernels": ["rnn_fused", "sdpa", "linear_attention", "mingru_scan", "lstm_loop"],
                          "seq_lens": [10], "batch_sizes": [2], "hidden_size": 16, "num_heads": 4, "modes": ["decode"],
                          "min_time": 0.002, "max_warmup": 0.01, **over})


def test_decode_rows_hold_exact_tokens_flops_and_state_bytes():
    rows = run_sweep(_decode_cfg(), ListSink(), run_id="t", harness=Harness.scripted(FakeTimer(lambda i: 0.002)))
    by = {r.kernel: r for r in rows}
    assert all(r.status == "ok" and r.mode == "decode" and r.causal and r.regime == "eager" for r in rows)
    r = by["sdpa"]
    assert r.median_s == pytest.approx(0.002)
    assert r.tokens_per_s == pytest.approx(2 / 0.002)  # B new tokens per step, not B*T
    assert r.gflop == pytest.approx(5504 / 1e9) and r.gflops_per_s == pytest.approx(5504 / 1e9 / 0.002)
    # per sequence, float32: K and V for T + 1 = 11 positions of d = 16; h, (h, c); h x d_h x (d_h + 1)
    assert r.state_bytes == 2 * 11 * 16 * 4 == 1408
    assert by["rnn_fused"].state_bytes == by["mingru_scan"].state_bytes == 16 * 4
    assert by["lstm_loop"].state_bytes == 2 * 16 * 4
    assert by["linear_attention"].state_bytes == 4 * 4 * 5 * 4
    # peak memory counts the cache: weights + state of both sequences + the new token + one step's activations
    # (analytic with an injected clock: 5 d-vectors a token for SDPA's projections, a score row and its softmax)
    params = sum(p.numel() * 4 for p in build("sdpa", Shape(2, 10, 16, 4, True)).parameters())
    assert r.peak_mem_bytes == params + 2 * 1408 + 2 * 16 * 4 + 5 * 2 * 16 * 4 + 2 * 2 * 4 * 11 * 4


def test_decode_points_are_causal_and_a_config_without_decode_refuses_capacity():
    cfg = _decode_cfg(modes=["forward", "decode"], kernels=["sdpa"])
    assert [(p.mode, p.causal) for p in cfg.points()] == [("forward", False), ("decode", True)]
    with pytest.raises(ConfigError, match="capacity is measured for decode"):
        _decode_cfg(modes=["forward"], capacity=True)
    with pytest.raises(ConfigError, match="cuda_graph captures forward and decode calls"):
        _decode_cfg(modes=["train"], cuda_graph=True)


@pytest.fixture
def stepless_kernel():
    spec = register_kernel("test_stepless", family="scan", flops="2*B*T*d^2",
                           factory=lambda s: torch.nn.Linear(s.hidden_size, s.hidden_size))
    yield spec
    unregister("test_stepless")


def test_a_kernel_without_a_step_is_skipped_in_decode_not_failed(stepless_kernel):
    cfg = _decode_cfg(kernels=["test_stepless", "rnn_fused"], modes=["forward", "decode"])
    rows = run_sweep(cfg, ListSink(), run_id="t", harness=Harness.scripted(FakeTimer(lambda i: 0.001)))
    got = {(r.kernel, r.mode): r for r in rows}
    assert got["test_stepless", "forward"].status == "ok"
    skipped = got["test_stepless", "decode"]
    assert skipped.status == "skipped" and skipped.error.startswith("no decode step") and "init_state" in skipped.error
    assert got["rnn_fused", "decode"].status == "ok"


PLUGIN = '''
import torch
from torch import nn

import seqbench


class GLR(nn.Module):
    """h_t = a_t * h_{t-1} + (1 - a_t) * v_t, a_t = sigmoid(x_t W_a); y_t = h_t W_o."""

    def __init__(self, d, inplace=False):
        super().__init__()
        self.gate, self.value, self.out = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.inplace = inplace

    def forward(self, x):
        a, v = torch.sigmoid(self.gate(x)), self.value(x)
        h, outs = x.new_zeros(x.shape[0], x.shape[2]), []
        for t in range(x.shape[1]):
            h = a[:, t] * h + (1 - a[:, t]) * v[:, t]
            outs.append(h)
        return self.out(torch.stack(outs, 1))

    def init_state(self, batch_size, max_len):
        return self.out.weight.new_zeros(batch_size, self.out.in_features)

    def step(self, x_t, h):
        a, v = torch.sigmoid(self.gate(x_t[:, 0])), self.value(x_t[:, 0])
        if self.inplace:  # wrong: updates the state seqbench times every repeat from
            h.mul_(a).add_((1 - a) * v)
        else:
            h = a * h + (1 - a) * v
        return self.out(h).unsqueeze(1), h


@seqbench.register_kernel("user_glr", family="scan", flops="6*B*T*d^2", decode_flops="6*B*d^2")
def user_glr(shape):
    return GLR(shape.hidden_size)


@seqbench.register_kernel("user_glr_inplace", family="scan", flops="6*B*T*d^2", decode_flops="6*B*d^2")
def user_glr_inplace(shape):
    return GLR(shape.hidden_size, inplace=True)
'''


def test_a_users_layer_decodes_through_the_plugin_api_and_a_step_that_mutates_its_state_is_refused(tmp_path):
    from seqbench.kernels import load_plugins

    path = tmp_path / "user_glr_plugin.py"
    path.write_text(textwrap.dedent(PLUGIN))
    load_plugins([str(path)])
    try:
        cfg = _decode_cfg(kernels=["user_glr", "user_glr_inplace", "sdpa"], modes=["forward", "decode"])
        rows = run_sweep(cfg, ListSink(), run_id="t", harness=Harness.scripted(FakeTimer(lambda i: 0.004)))
        got = {(r.kernel, r.mode): r for r in rows}
        ok = got["user_glr", "decode"]
        assert ok.status == "ok" and ok.gflop == pytest.approx(6 * 2 * 16**2 / 1e9)
        assert ok.tokens_per_s == pytest.approx(2 / 0.004) and ok.state_bytes == 16 * 4
        bad = got["user_glr_inplace", "decode"]
        assert bad.status == "error" and "called again with the same state" in bad.error
        assert got["user_glr_inplace", "forward"].status == "ok"  # only its decode step is wrong
    finally:
        unregister("user_glr")
        unregister("user_glr_inplace")


def test_rounds_pool_decode_samples_into_tokens_per_step():
    from seqbench.sweep.rounds import combine_rounds

    rows = run_sweep(_decode_cfg(kernels=["rnn_fused"]), ListSink(), run_id="t", harness=Harness.scripted(FakeTimer(lambda i: 0.002)),
                     rounds=2)
    (r,) = rows
    assert r.sample_rounds.split()[0] == "1" and r.sample_rounds.split()[-1] == "2"
    assert r.tokens_per_s == pytest.approx(2 / 0.002)
    again = combine_rounds([r, r], [None, None])
    assert again.tokens_per_s == pytest.approx(2 / 0.002)


def test_broadcast_state_copies_one_sequence_into_every_row():
    m = build("sdpa", Shape(1, 6, 16, 4, True))
    with torch.inference_mode():
        one = decode.prefill(m, torch.randn(1, 6, 16, dtype=F64), m.init_state(1, 7))
        many = decode.broadcast_state(m.init_state(3, 7), one)
        x = torch.randn(1, 1, 16, dtype=F64)
        y1, _ = m.step(x, one)
        y3, _ = m.step(x.expand(3, 1, 16), many)
    assert many[2] == one[2] == 6
    torch.testing.assert_close(y3, y1.expand(3, 1, 16))


def test_point_identity_of_decode_rows_matches_its_point():
    cfg = _decode_cfg(kernels=["rnn_fused"])
    (p,) = cfg.points()
    assert p == Point("rnn_fused", "decode", "cpu", "float32", 2, 10, 16, 4, True)


def test_cli_decode_with_capacity_end_to_end_and_refusals(tmp_path, capsys):
    from seqbench.cli import main
    from seqbench.results.reader import read_results

    out = tmp_path / "d.csv"
    args = ["run", "--mode", "decode", "--kernels", "rnn_fused,sdpa", "--seq-lens", "8,16", "--batch-sizes", "2",
            "--hidden-size", "16", "--heads", "4", "--min-time", "0.002", "--no-peak", "-q"]
    assert main([*args, "--capacity", "--max-memory", "256KiB", "-o", str(out)]) == 0
    df = read_results(out)
    assert (df["status"] == "ok").all() and (df["mode"] == "decode").all() and (df["regime"] == "eager").all()
    assert (df["tokens_per_s"] * df["median_s"]).round(6).tolist() == [2.0] * 4
    assert (df["capacity_batch"] > 0).all() and (df["capacity_peak_bytes"] <= 256 * 1024).all()
    capsys.readouterr()
    for extra, words in ((["--cuda-graph"], "--cuda-graph needs CUDA and the device is cpu"),
                         (["--mode", "forward", "--capacity"], "capacity is measured for decode")):
        assert main([*args, *extra, "-o", str(tmp_path / "x.csv")]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()
