"""Kernel correctness: fused vs loop, SDPA/MHA vs the explicit formula, FLOP formulas vs counts."""

import pytest
from kit import builtin_kernels
import torch
from torch.utils.flop_counter import FlopCounterMode

from seqbench.kernels import KERNELS, Shape, get_kernel
from seqbench.errors import SeqbenchError

DEV = torch.device("cpu")
F64 = torch.float64


def make(name, shape, seed=0):
    torch.manual_seed(seed)
    return get_kernel(name).build(shape, DEV, F64)


@pytest.mark.parametrize("name", sorted(builtin_kernels()))  # HF blocks: test_hf_blocks
@pytest.mark.parametrize("mode", ["forward", "train"])
def test_every_kernel_maps_btd_to_btd(name, mode):
    if mode == "train" and not KERNELS[name].supports_train:
        pytest.skip(f"{name} is forward-only")
    shape = Shape(3, 5, 8, 2, False)
    m = make(name, shape)
    x = torch.randn(3, 5, 8, dtype=F64)
    y = m(x)
    assert y.shape == (3, 5, 8)
    assert torch.isfinite(y).all()
    if mode == "train":
        y.sum().backward()
        grads = [p.grad for p in m.parameters()]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def _copy_rnn_weights(loop, fused_rnn):
    """Give a loop kernel the fused layer's parameters (same layouts: W_ih (G*d, d), W_hh (G*d, d))."""
    with torch.no_grad():
        src = [fused_rnn.weight_ih_l0, fused_rnn.weight_hh_l0, fused_rnn.bias_ih_l0, fused_rnn.bias_hh_l0]
        dst = list(loop.parameters())
        assert [t.shape for t in src] == [t.shape for t in dst]
        for d, s in zip(dst, src):
            d.copy_(s)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_loop_equals_fused_given_same_weights(cell):
    shape = Shape(3, 7, 8)
    loop, fused = make(f"{cell}_loop", shape, seed=1), make(f"{cell}_fused", shape, seed=2)
    x = torch.randn(3, 7, 8, dtype=F64)
    assert not torch.allclose(loop(x), fused(x))  # different seeds: the copy below is what matters
    _copy_rnn_weights(loop, fused.rnn)
    torch.testing.assert_close(loop(x), fused(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("T", [1, 7])
def test_hoisted_loop_equals_the_seed_loop_and_nn_rnn(T):
    """rnn_loop_hoisted (input projection for all T in one GEMM, addmm + tanh per step) computes the seed's
    recurrence exactly: same outputs and gradients as rnn_loop and nn.RNN given the same weights (float64)."""
    shape = Shape(3, T, 8)
    seed_loop, hoisted, fused = make("rnn_loop", shape, seed=1), make("rnn_loop_hoisted", shape, seed=2), make(
        "rnn_fused", shape, seed=3)
    x = torch.randn(3, T, 8, dtype=F64, requires_grad=True)
    assert not torch.allclose(hoisted(x), seed_loop(x))  # different seeds: the copies below are what matter
    _copy_rnn_weights(seed_loop, fused.rnn)  # the loop gets nn.RNN's weights, then the hoisted loop the same
    hoisted.load_state_dict(seed_loop.state_dict())
    outs = []
    for m in (seed_loop, hoisted, fused):
        y = m(x)
        grads = torch.autograd.grad((y * torch.linspace(-1, 1, y.numel(), dtype=F64).view_as(y)).sum(),
                                    [x, *m.parameters()])
        outs.append((y, grads))
    for y, grads in outs[1:]:
        torch.testing.assert_close(y, outs[0][0], rtol=1e-10, atol=1e-12)
        for g, ref in zip(grads, outs[0][1]):
            torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12)


def test_hoisted_loop_runs_one_projection_gemm_and_one_addmm_per_step():
    """The form, not just the result: T + 1 matmuls (the seed's loop runs 2T) and one bias addition (it runs 2T)."""
    from torch.profiler import ProfilerActivity, profile

    T = 6
    m = make("rnn_loop_hoisted", Shape(2, T, 8))
    x = torch.randn(2, T, 8, dtype=F64)
    with profile(activities=[ProfilerActivity.CPU]) as prof, torch.inference_mode():
        m(x)
    counts = {e.key: e.count for e in prof.key_averages()}
    assert counts.get("aten::addmm") == T + 1
    assert counts.get("aten::add") == 1  # b_ih + b_hh, once
    assert counts.get("aten::clone", 0) <= 1  # x to time-major, once; no weight copied per step
    assert "aten::mm" not in counts and "aten::matmul" not in counts


def test_fused_layers_reflatten_after_every_dtype_change(monkeypatch):
    """cuDNN needs a fused layer's weights in one buffer; nn.RNNBase's own flatten_parameters() skips
    bfloat16. The fused kernels call flatten_rnn after every .to(): on CPU (a no-op there) the call path."""
    from seqbench.kernels import recurrent

    seen = []
    real = recurrent.flatten_rnn
    monkeypatch.setattr(recurrent, "flatten_rnn", lambda rnn: (seen.append((type(rnn).__name__, rnn.weight_hh_l0.dtype)),
                                                              real(rnn)))
    for cell in ("rnn", "lstm", "gru"):
        m = make(f"{cell}_fused", Shape(2, 3, 8))  # built in float32, then moved to float64
        assert seen[-1] == ({"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell], F64)
        m.to(torch.float32)
        assert seen[-1][1] == torch.float32
    assert not recurrent.is_flat(m.rnn)  # CPU: nothing to flatten, and nothing was changed
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(m(x), m.rnn(x)[0])


def test_rnn_loop_is_the_seed_recurrence():
    """h_t = tanh(x_t W^T + b_ih + h_{t-1} U^T + b_hh), written out by hand for T=2."""
    shape = Shape(2, 2, 4)
    m = make("rnn_loop", shape)
    x = torch.randn(2, 2, 4, dtype=F64)
    W, U, b1, b2 = m.weight_ih, m.weight_hh, m.bias_ih, m.bias_hh
    h1 = torch.tanh(x[:, 0] @ W.T + b1 + b2)
    h2 = torch.tanh(x[:, 1] @ W.T + b1 + h1 @ U.T + b2)
    torch.testing.assert_close(m(x), torch.stack([h1, h2], dim=1))


def _share_attention_weights(src, dst):
    with torch.no_grad():
        if hasattr(dst, "mha"):
            dst.mha.in_proj_weight.copy_(src.in_proj.weight)
            dst.mha.in_proj_bias.copy_(src.in_proj.bias)
            dst.mha.out_proj.weight.copy_(src.out_proj.weight)
            dst.mha.out_proj.bias.copy_(src.out_proj.bias)
        else:
            dst.load_state_dict(src.state_dict())


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("other", ["sdpa", "mha"])
def test_attention_kernels_equal_the_explicit_formula(other, causal):
    shape = Shape(2, 9, 16, 4, causal)
    naive, fast = make("attention_naive", shape, seed=1), make(other, shape, seed=2)
    _share_attention_weights(naive, fast)
    x = torch.randn(2, 9, 16, dtype=F64)
    torch.testing.assert_close(fast(x), naive(x), rtol=1e-9, atol=1e-11)


def test_causal_mask_hides_the_future():
    shape = Shape(1, 6, 8, 2, True)
    m = make("attention_naive", shape)
    x = torch.randn(1, 6, 8, dtype=F64)
    x2 = x.clone()
    x2[:, 4:] += 1.0  # change only the last two tokens
    y, y2 = m(x), m(x2)
    torch.testing.assert_close(y[:, :4], y2[:, :4])
    assert not torch.allclose(y[:, 4:], y2[:, 4:])


def test_flop_formulas_by_hand():
    s = Shape(batch_size=2, seq_len=8, hidden_size=16, num_heads=4)
    # rnn: per step two (B x d) @ (d x d) matmuls, 2 FLOPs per multiply-add: 2 * 2*2*16*16 * 8 steps
    assert KERNELS["rnn_loop"].flops(s) == 2 * (2 * 2 * 16 * 16) * 8 == 16384
    assert KERNELS["lstm_fused"].flops(s) == 4 * 16384
    assert KERNELS["gru_loop"].flops(s) == 3 * 16384
    # attention: 4 projections (2*B*T*d*d each) + QK^T and AV (2*B*h*T*T*d_h each)
    proj, core = 4 * 2 * 2 * 8 * 16 * 16, 2 * 2 * 2 * 4 * 8 * 8 * 4
    assert KERNELS["sdpa"].flops(s) == proj + core == 40960
    causal = Shape(2, 8, 16, 4, True)
    assert KERNELS["attention_naive"].flops(causal) == proj + core / 2
    assert KERNELS["mha"].flops(s, "train") == 3 * (proj + core)


@pytest.mark.parametrize(
    "name", ["rnn_loop", "rnn_loop_hoisted", "lstm_loop", "gru_loop", "rnn_fused", "lstm_fused", "gru_fused",
             "attention_naive"]
)
def test_flop_formula_matches_torch_flop_counter(name):
    """torch's FlopCounterMode counts the matmuls the kernel actually runs."""
    s = Shape(2, 8, 16, 4, False)
    m = make(name, s)
    x = torch.randn(2, 8, 16, dtype=F64)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        m(x)
    assert counter.get_total_flops() == KERNELS[name].flops(s)


def test_unknown_kernel_lists_the_known_ones():
    with pytest.raises(SeqbenchError, match="known kernels: .*rnn_loop.*sdpa"):
        get_kernel("rnn_lop")
