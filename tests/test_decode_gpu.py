"""Decode and --cuda-graph on CUDA: run only where a GPU is present (skipped elsewhere, see conftest).

What a CPU cannot check: a captured call replays to the eager call's outputs, every built-in kernel
can be captured (forward and decode step) and timed from replays, rows record the regime and the
capture cost, and the capacity search survives real CUDA out-of-memory errors.
"""

import pytest
import torch

from seqbench.kernels import KERNELS, Shape, decode, get_kernel
from seqbench.measure.cudagraph import capture
from seqbench.sweep.capacity import measure_capacity
from seqbench.results.identity import Point
from seqbench.sweep.config import build_config
from seqbench.sweep.runner import run_sweep

from reliability_helpers import ListSink

pytestmark = pytest.mark.gpu

BUILTIN = sorted(k for k, s in KERNELS.items() if s.family != "calibration")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("name", BUILTIN)
def test_a_captured_decode_step_replays_to_the_eager_step(name):
    B, T, d = 4, 64, 64
    torch.manual_seed(0)
    m = get_kernel(name).build(Shape(B, T, d, 4, True), CUDA, torch.float32).eval()
    with torch.inference_mode():
        state = decode.prefill(m, torch.randn(B, T, d, device=CUDA), m.init_state(B, T + 1))
        x_t = torch.randn(B, 1, d, device=CUDA)
        step = decode.step_fn(m, x_t, state)
        eager = step().clone()
        graphed = capture(step)
        x_t.copy_(torch.randn_like(x_t))  # a static input: the replay reads it in place
        graphed.replay()
        torch.cuda.synchronize()
        out = graphed.keep[1]
        torch.testing.assert_close(out, step(), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(out, eager)
    assert graphed.capture_s > 0


@pytest.mark.parametrize("name", ["rnn_loop", "lstm_loop", "mingru_loop", "linear_attention_loop", "sdpa"])
def test_a_captured_forward_replays_to_the_eager_forward(name):
    torch.manual_seed(0)
    m = get_kernel(name).build(Shape(2, 32, 64, 4, False), CUDA, torch.float32).eval()
    x = torch.randn(2, 32, 64, device=CUDA)
    with torch.inference_mode():
        graphed = capture(lambda: m(x))
        graphed.replay()
        torch.cuda.synchronize()
        torch.testing.assert_close(graphed.keep[1], m(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_every_builtin_kernel_decodes_and_forwards_on_cuda_in_both_regimes(cuda_graph):
    cfg = build_config({"name": "g", "kernels": BUILTIN, "seq_lens": [64, 256], "batch_sizes": [2], "hidden_size": 64,
                        "num_heads": 4, "modes": ["forward", "decode"], "device": "cuda", "cuda_graph": cuda_graph,
                        "min_time": 0.01, "min_repeats": 3, "max_warmup": 0.05})
    rows = run_sweep(cfg, ListSink(), run_id="t")
    bad = [(r.kernel, r.mode, r.seq_len, r.status, r.error) for r in rows if r.status != "ok"]
    assert not bad
    assert {r.regime for r in rows} == {"cuda_graph" if cuda_graph else "eager"}
    assert all((r.capture_s or 0) > 0 for r in rows) if cuda_graph else all(r.capture_s is None for r in rows)
    dec = {(r.kernel, r.seq_len): r for r in rows if r.mode == "decode"}
    assert dec["sdpa", 256].state_bytes == 2 * 257 * 64 * 4 and dec["rnn_fused", 256].state_bytes == 64 * 4
    assert dec["sdpa", 256].peak_mem_method == "cuda_allocator"
    assert dec["sdpa", 256].peak_mem_bytes >= 2 * dec["sdpa", 256].state_bytes  # both sequences' caches


def test_capacity_on_cuda_fits_the_budget_and_stops_at_out_of_memory():
    free, total = torch.cuda.mem_get_info()
    p = Point("sdpa", "decode", "cuda", "float32", 1, 4096, 1024, 8, True)
    within = measure_capacity(p, 1 << 30)  # 1 GiB: well inside the device
    assert within.batch_size > 0 and within.peak_bytes <= 1 << 30
    assert not next(q for q in within.probes if q.batch_size == within.batch_size + 1).fits
    # A budget far beyond the device: the allocator, not the budget, ends the search
    beyond = measure_capacity(p, 4 * total)
    assert any(q.note == "out of memory" for q in beyond.probes)
    assert 0 < beyond.batch_size and beyond.peak_bytes <= total
    assert torch.cuda.memory_allocated() < 1 << 30  # every candidate's tensors were handed back


def test_cuda_graph_capacity_times_replays():
    cfg = build_config({"name": "g", "kernels": ["rnn_loop", "sdpa"], "seq_lens": [1024], "batch_sizes": [1],
                        "hidden_size": 256, "num_heads": 4, "modes": ["decode"], "device": "cuda", "cuda_graph": True,
                        "capacity": True, "max_memory": "512MiB", "min_time": 0.02, "min_repeats": 3})
    from seqbench.sweep.budget import Preflight

    rows = run_sweep(cfg, ListSink(), run_id="t", preflight=Preflight(budget_bytes=512 << 20))
    for r in rows:
        assert r.status == "ok" and r.regime == "cuda_graph", r.error
        assert r.capacity_batch > 0 and r.capacity_peak_bytes <= 512 << 20
        assert r.capacity_tokens_per_s == pytest.approx(r.capacity_batch / r.capacity_step_s)
