"""CUDA path: runs only where a GPU is present (skipped elsewhere, see conftest)."""

import time

import pytest
import torch

from seqbench.results.identity import Point
from seqbench.sweep.config import build_config
from seqbench.kernels import Shape, get_kernel
from seqbench.measure.memory import analytic_bytes, cuda_peak_bytes
from seqbench.sweep.runner import build_workload, measure_point
from seqbench.measure.timer import cpu_block_timer, cuda_block_timer

pytestmark = pytest.mark.gpu


def _copy(loop, fused):
    with torch.no_grad():
        src = [fused.weight_ih_l0, fused.weight_hh_l0, fused.bias_ih_l0, fused.bias_hh_l0]
        for d, s in zip(loop.parameters(), src):
            d.copy_(s)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fused_equals_loop_on_cuda(cell):
    s = Shape(4, 16, 32)
    dev = torch.device("cuda")
    loop = get_kernel(f"{cell}_loop").build(s, dev, torch.float64)
    fused = get_kernel(f"{cell}_fused").build(s, dev, torch.float64)
    _copy(loop, fused.rnn)
    x = torch.randn(4, 16, 32, device=dev, dtype=torch.float64)
    torch.testing.assert_close(loop(x), fused(x), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fused_layers_are_flat_after_a_dtype_change_and_cudnn_does_not_warn(cell, dtype):
    """The H200 run's bfloat16 rnn_fused was 6.5x slower than float32: cuDNN warned that the weights
    were not one contiguous chunk and compacted them on every call. After the build (.to(dtype)) they
    must be one buffer, and a call must not warn."""
    import warnings

    from seqbench.kernels.recurrent import is_flat

    dev = torch.device("cuda")
    fused = get_kernel(f"{cell}_fused").build(Shape(4, 16, 32), dev, dtype)
    if dtype != torch.bfloat16 or (torch.backends.cudnn.version() or 0) >= 91300:  # bfloat16 cuDNN RNNs: 9.13+
        assert is_flat(fused.rnn)
    x = torch.randn(4, 16, 32, device=dev, dtype=dtype)
    with warnings.catch_warnings(record=True) as caught, torch.inference_mode():
        warnings.simplefilter("always")
        fused(x)
        torch.cuda.synchronize()
    assert not [w for w in caught if "contiguous chunk" in str(w.message)]


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_equals_naive_on_cuda(causal):
    s = Shape(2, 64, 64, 4, causal)
    dev = torch.device("cuda")
    naive = get_kernel("attention_naive").build(s, dev, torch.float32)
    sdpa = get_kernel("sdpa").build(s, dev, torch.float32)
    sdpa.load_state_dict(naive.state_dict())
    x = torch.randn(2, 64, 64, device=dev)
    torch.testing.assert_close(sdpa(x), naive(x), rtol=2e-3, atol=2e-3)


def test_cuda_timer_measures_device_time_not_launch_time():
    """A 50M-cycle spin kernel launches in microseconds; the event timer must see it run."""
    spin = lambda: torch.cuda._sleep(50_000_000)  # noqa: E731
    spin()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    spin()
    launch = time.perf_counter() - t0  # host clock around an async launch: wrong by design
    torch.cuda.synchronize()
    device_time = cuda_block_timer(spin, 1)
    assert device_time > 10 * launch
    assert device_time > 1e-3  # 50M cycles at < 3 GHz is > 16 ms


def test_peak_memory_matches_allocator_and_estimate_within_factor_two():
    for kernel in ("attention_naive", "sdpa", "rnn_fused"):
        p = Point(kernel, "forward", "cuda", "float32", 8, 1024, 256, 4, False)
        w = build_workload(p)
        with w.mode_context():
            w.step()  # first call: cuBLAS workspace and other one-off allocations
            peak = w.resident_bytes + cuda_peak_bytes(w.step)
        est = analytic_bytes(get_kernel(kernel), Shape(8, 1024, 256, 4, False), 4, False, w.param_bytes)
        assert 0.5 <= est / peak <= 2.0, (kernel, est, peak)


def test_gpu_sweep_records_oom_and_goes_on():
    # B*h*T^2 float32 scores at B=64, h=4, T=65536: 4 TiB, more than any GPU holds
    cfg = build_config({"kernels": ["attention_naive"], "seq_lens": [65536], "batch_sizes": [64],
                        "hidden_size": 64, "num_heads": 4, "device": "cuda", "min_time": 0.01})
    row = measure_point(cfg.points()[0], cfg, "t")
    assert row.status == "oom", row.error
    ok = measure_point(Point("sdpa", "forward", "cuda", "float32", 2, 64, 64, 4, False), cfg, "t")
    assert ok.status == "ok" and ok.peak_mem_method == "cuda_allocator"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_runs_and_reports_backend(dtype):
    cfg = build_config({"kernels": ["sdpa"], "seq_lens": [256], "batch_sizes": [4], "hidden_size": 256,
                        "num_heads": 4, "device": "cuda", "dtype": dtype, "min_time": 0.02})
    row = measure_point(cfg.points()[0], cfg, "t")
    assert row.status == "ok" and row.median_s > 0
    assert row.sdpa_backend in ("flash", "efficient", "cudnn")


def test_host_timer_is_not_used_for_cuda():
    from seqbench.measure.timer import block_timer_for

    assert block_timer_for("cuda") is cuda_block_timer
    assert block_timer_for("cpu") is cpu_block_timer
