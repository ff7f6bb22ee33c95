"""Reliability on CUDA: the memory estimate against torch's allocator, and a real out-of-memory point.

Skipped without CUDA. Run on a GPU machine with: pytest -q -m gpu tests/test_reliability_gpu.py
"""

from __future__ import annotations

import pytest
import torch

from reliability_helpers import ListSink, frozen_gc, tiny_config  # noqa: F401
from seqbench.measure.memory import estimate_bytes
from seqbench.sweep.budget import Preflight, resolve_budget
from seqbench.results.identity import Point
from seqbench.sweep.config import build_config
from seqbench.sweep.runner import build_workload, run_sweep

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _cfg(**fields):
    return tiny_config(**{"name": "gpu", "kernels": ["attention_naive"], "seq_lens": [64], "hidden_size": 64,
                          "num_heads": 8, "device": "cuda", "min_time": 0.01, "max_warmup": 0.1, **fields})


@pytest.mark.parametrize("kernel", ["attention_naive", "sdpa", "mha", "lstm_fused", "rnn_loop"])
@pytest.mark.parametrize("mode", ["forward", "train"])
def test_estimate_against_the_cuda_allocator(kernel, mode):
    # Measured as the sweep does: after a first call (cuBLAS's workspace and other one-off
    # allocations belong to the process, not the kernel), plus the resident weights and inputs.
    from seqbench.measure.memory import cuda_peak_bytes

    torch.cuda.empty_cache()
    point = Point(kernel, mode, "cuda", "float32", 16, 1024 if kernel != "rnn_loop" else 256, 256, 4, False)
    work = build_workload(point)
    with work.mode_context():
        work.step()
        peak = work.resident_bytes + cuda_peak_bytes(work.step)
    ratio = estimate_bytes(point.kernel, point.shape, point.mode, point.dtype) / peak
    assert 0.7 <= ratio <= 3.5, f"estimate/measured = {ratio:.2f} ({estimate_bytes(point.kernel, point.shape, point.mode, point.dtype)} vs {peak})"


def test_real_cuda_oom_is_a_row_and_memory_is_released():
    # B*h*T^2 float32 scores at T=65536, B=8, h=8: ~1.1 TB, far beyond any GPU; the budget is lifted so it runs.
    cfg = _cfg(kernels=["attention_naive", "sdpa"], seq_lens=[64, 65536], batch_sizes=[8], max_memory="1000TB")
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    rows = run_sweep(cfg, ListSink(), run_id="gpu", preflight=Preflight(cfg.max_memory))
    got = [(r.kernel, r.seq_len, r.status) for r in rows]
    assert got[:2] == [("attention_naive", 64, "ok"), ("attention_naive", 65536, "oom")], got
    assert got[2] == ("sdpa", 64, "ok")
    assert "out of memory" in rows[1].error.lower()
    assert torch.cuda.memory_allocated() - before < 64 * 2**20  # nothing of the failed point is left


def test_default_budget_skips_what_cannot_fit():
    cfg = _cfg(seq_lens=[64, 65536], batch_sizes=[8])
    budget, source = resolve_budget(cfg)
    free, _ = torch.cuda.mem_get_info()
    assert budget == int(0.8 * free) and "mem_get_info" in source
    rows = run_sweep(cfg, ListSink(), run_id="gpu", preflight=Preflight(budget))
    assert [r.status for r in rows] == ["ok", "skipped"] and "exceeds the budget" in rows[1].error
