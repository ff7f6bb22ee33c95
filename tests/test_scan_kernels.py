"""minGRU (loop / chunked scan / log-space scan) and linear attention (chunked / loop): same outputs, FLOPs."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from seqbench.kernels import Shape, get_kernel
from seqbench.kernels.linear_attention import LinearAttention, LinearAttentionLoop
from seqbench.kernels.scan import MinGRULogScan, MinGRULoop, MinGRUScan, chunked_linear_scan

F64 = torch.float64


def _same_weights(classes, *args):
    torch.manual_seed(0)
    first = classes[0](*args).to(F64)
    mods = [first]
    for cls in classes[1:]:
        m = cls(*args).to(F64)
        m.load_state_dict(first.state_dict())
        mods.append(m)
    return mods


def _reference_scan(a, b):
    h, out = torch.zeros_like(a[:, 0]), []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("T", [1, 2, 5, 37, 100])  # 37, 100: T not a multiple of the chunk (padding path)
def test_mingru_three_forms_agree_in_float64(T):
    loop, scan, logscan = _same_weights([MinGRULoop, MinGRUScan, MinGRULogScan], 16)
    x = torch.randn(3, T, 16, dtype=F64) * 2
    ref = loop(x)
    torch.testing.assert_close(scan(x), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(logscan(x), ref, rtol=1e-10, atol=1e-12)


def test_mingru_scan_gradients_match_loop():
    loop, scan = _same_weights([MinGRULoop, MinGRUScan], 8)
    x = torch.randn(2, 23, 8, dtype=F64, requires_grad=True)
    g = torch.randn(2, 23, 8, dtype=F64)
    (gl,) = torch.autograd.grad(loop(x), x, g)
    (gs,) = torch.autograd.grad(scan(x), x, g)
    torch.testing.assert_close(gs, gl, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 3, 7, 50])
def test_chunked_scan_matches_sequential_recurrence(chunk):
    a, b = torch.rand(2, 50, 4, dtype=F64), torch.randn(2, 50, 4, dtype=F64)
    a[:, 10] = 0  # a reset: h_10 = b_10
    a[:, 20:25] = 1  # pure accumulation
    torch.testing.assert_close(chunked_linear_scan(a, b, chunk=chunk), _reference_scan(a, b), rtol=1e-12, atol=1e-12)


def test_chunked_scan_is_safe_where_log_space_would_need_care():
    # Products of a that underflow float32 must give ~0 contribution, never inf/nan.
    a = torch.full((1, 400, 4), 1e-3)
    b = torch.rand(1, 400, 4)
    out = chunked_linear_scan(a, b)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), _reference_scan(a.double(), b.double()), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("T", [1, 7, 64, 65, 130])  # around the chunk of 64
def test_linear_attention_parallel_equals_recurrent(causal, T):
    par, loop = _same_weights([LinearAttention, LinearAttentionLoop], 16, 4, causal)
    x = torch.randn(2, T, 16, dtype=F64)
    torch.testing.assert_close(par(x), loop(x), rtol=1e-11, atol=1e-12)


def test_linear_attention_matches_explicit_formula():
    (m,) = _same_weights([LinearAttention], 8, 2, True)
    x = torch.randn(1, 70, 8, dtype=F64)
    q, k, v = m.split_heads(x)
    q, k = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
    w = (q @ k.transpose(-2, -1)).tril()  # causal: token t sees s <= t
    torch.testing.assert_close(m(x), m.merge_heads((w @ v) / w.sum(-1, keepdim=True)), rtol=1e-11, atol=1e-12)


def test_flop_formulas_by_hand():
    s = Shape(batch_size=2, seq_len=3, hidden_size=4, num_heads=2)
    # minGRU: z and h~ projections, each 2*B*T*d*d = 2*2*3*4*4 = 192
    for k in ("mingru_loop", "mingru_scan", "mingru_logscan"):
        assert get_kernel(k).flops(s) == 384
        assert get_kernel(k).flops(s, "train") == 3 * 384
    # linear attention: 4 projections 4*192 = 768; per token and head, phi(k)v^T and phi(q)^T S,
    # 2 * 2*d_h^2 = 16 FLOPs, x B*T*h = 12 -> 192
    for k in ("linear_attention", "linear_attention_loop"):
        assert get_kernel(k).flops(s) == 960
        assert get_kernel(k).flops(Shape(2, 3, 4, 2, causal=True)) == 960
    # calibration: one N x N by N x N product, N carried as hidden_size (1024 on CPU, 8192 on CUDA)
    assert get_kernel("calibration").flops(Shape(1, 1024, 1024, 1)) == 2 * 1024 ** 3
    assert get_kernel("calibration").flops(s) == 2 * 4 ** 3


def test_calibration_is_sized_for_the_device():
    from seqbench.sweep.matmul_peak import calibration_point

    assert calibration_point("cpu", "float32").hidden_size == 1024
    assert calibration_point("cuda", "bfloat16").hidden_size == 8192


@pytest.mark.parametrize("kernel", ["mingru_loop", "mingru_scan"])
def test_mingru_flops_match_counted_matmuls(kernel):
    s = Shape(2, 9, 8)
    m = get_kernel(kernel).build(s, torch.device("cpu"), torch.float32)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        m(torch.randn(2, 9, 8))
    assert fc.get_total_flops() == get_kernel(kernel).flops(s)


def test_calibration_kernel_counts_one_square_matmul():
    m = get_kernel("calibration").build(Shape(1, 1, 8), torch.device("cpu"), torch.float32)
    x = torch.randn(1, 1, 8)
    with FlopCounterMode(display=False) as fc:
        assert m(x) is x
    assert fc.get_total_flops() == get_kernel("calibration").flops(Shape(1, 1, 8))


def test_mingru_scan_time_blocks_carry_the_state(monkeypatch):
    from seqbench.kernels import scan

    monkeypatch.setattr(scan, "BLOCK_ELEMS", 3 * 16 * 16)  # blocks of 16 tokens: 7 blocks, the last one short
    loop, blocked = _same_weights([MinGRULoop, MinGRUScan], 16)
    x = torch.randn(3, 100, 16, dtype=F64)
    torch.testing.assert_close(blocked(x), loop(x), rtol=1e-12, atol=1e-12)


def test_chunked_scan_starts_from_given_state():
    a, b, h0 = torch.rand(2, 9, 3, dtype=F64), torch.randn(2, 9, 3, dtype=F64), torch.randn(2, 3, dtype=F64)
    ref = _reference_scan(torch.cat([torch.zeros(2, 1, 3, dtype=F64), a], 1), torch.cat([h0[:, None], b], 1))[:, 1:]
    torch.testing.assert_close(chunked_linear_scan(a, b, h0, chunk=4), ref, rtol=1e-12, atol=1e-12)
