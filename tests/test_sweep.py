"""Sweeps: rows stream to the sink in order, failures are recorded and the sweep goes on."""

import pytest
import torch

from seqbench.sweep.runner import Harness
from seqbench.sweep.config import build_config
from seqbench.kernels.registry import register_kernel, unregister
from seqbench.results.schema import REQUIRED_COLUMNS
from seqbench.results.reader import read_results
from seqbench.orchestration.run import run_to_files
from seqbench.sweep.runner import classify_failure, run_sweep
from kit import FakeTimer
from reliability_helpers import ListSink


@pytest.fixture
def failing_kernel():
    """A registered kernel that raises at T=8 (and only there)."""
    class Boom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            if x.shape[1] == 8:
                raise RuntimeError("kernel exploded\nsecond line")
            return x * self.w

    spec = register_kernel("test_boom", family="recurrent", factory=lambda s: Boom(), flops="1",
                           memory=lambda s, e, tr: 0.0)
    yield spec
    unregister("test_boom")


def test_rows_have_the_numbers_the_samples_imply(tiny_cfg_data):
    cfg = build_config(tiny_cfg_data)
    sink = ListSink()
    rows = run_sweep(cfg, sink, run_id="t", harness=Harness.scripted(FakeTimer(lambda i: 0.004)))
    assert sink.rows == rows and len(rows) == 4
    r = rows[0]
    assert (r.kernel, r.seq_len, r.status) == ("rnn_loop", 4, "ok")
    assert r.median_s == pytest.approx(0.004)
    assert r.tokens_per_s == pytest.approx(2 * 4 / 0.004)
    assert r.gflop == pytest.approx(4 * 2 * 4 * 16**2 / 1e9)
    assert r.gflops_per_s == pytest.approx(r.gflop / 0.004)
    assert r.threads == torch.get_num_threads()
    assert r.peak_mem_method == "analytic"  # injected clock: no profiler


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tiny_cfg_data, failing_kernel):
    tiny_cfg_data["kernels"] = ["test_boom", "rnn_loop"]
    cfg = build_config(tiny_cfg_data)
    rows = run_sweep(cfg, ListSink(), run_id="t", harness=Harness.scripted(FakeTimer(lambda i: 0.001)))
    assert [(r.kernel, r.seq_len, r.status) for r in rows] == [
        ("test_boom", 4, "ok"), ("test_boom", 8, "error"), ("rnn_loop", 4, "ok"), ("rnn_loop", 8, "ok")]
    bad = rows[1]
    assert bad.error == "RuntimeError: kernel exploded"
    assert bad.median_s is None and bad.samples_s == ""


@pytest.mark.parametrize("exc, status", [
    (MemoryError(), "oom"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "oom"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"), "oom"),
    (torch.cuda.OutOfMemoryError("x"), "oom"),
    (ValueError("shape mismatch"), "error"),
])
def test_failure_classification(exc, status):
    assert classify_failure(exc) == status


def test_real_run_writes_csv_and_sidecar(tiny_cfg_data, tmp_path):
    import json

    cfg = build_config(tiny_cfg_data)
    out = tmp_path / "run.csv"
    rows = run_to_files(cfg, out, command=["seqbench", "test"])
    df = read_results(out)
    assert len(df) == len(rows) == 4
    assert list(df.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    assert (df["status"] == "ok").all()
    assert (df["median_s"] > 0).all() and (df["min_s"] <= df["median_s"]).all()
    # measured CPU peak memory is at least the weights and the input
    assert (df["peak_mem_bytes"] >= 2 * 16 * 8).all()
    assert set(df["peak_mem_method"]) == {"cpu_profiler"}
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["status"] == "complete" and meta["rows"] == 4
    assert meta["config"]["kernels"] == ["rnn_loop", "sdpa"]
    assert meta["environment"]["torch"] == torch.__version__
    assert len(set(df["run_id"])) == 1 and df["run_id"][0] == meta["run_id"]


def test_cpu_peak_memory_sees_the_score_matrix():
    """Naive attention at T=256 holds B*h*T^2 floats of scores; SDPA (flash on CPU) does not."""
    from seqbench.sweep.config import Point
    from seqbench.measure.memory import measure_peak
    from seqbench.sweep.runner import build_workload

    peaks = {}
    for k in ("attention_naive", "sdpa"):
        w = build_workload(Point(k, "forward", "cpu", "float32", 2, 256, 32, 4, False))
        with w.mode_context():
            peaks[k], method, _ = measure_peak(w.step, "cpu", w.resident_bytes)
    scores = 2 * 4 * 256 * 256 * 4  # bytes of one (B, h, T, T) float32 matrix
    assert peaks["attention_naive"] >= 2 * scores  # scores + softmax output alive together
    assert peaks["sdpa"] < scores


def test_sdpa_backend_is_read_from_the_ops_that_ran():
    from seqbench.sweep.config import Point
    from seqbench.measure.probe import backend_from_op_names, sdpa_backend
    from seqbench.sweep.runner import build_workload

    assert backend_from_op_names(["aten::_scaled_dot_product_flash_attention_for_cpu"]) == "flash"
    assert backend_from_op_names(["aten::_scaled_dot_product_efficient_attention", "aten::mm"]) == "efficient"
    assert backend_from_op_names(["aten::mm"]) == ""
    naive = build_workload(Point("attention_naive", "forward", "cpu", "float32", 1, 8, 16, 2, False))
    sdpa = build_workload(Point("sdpa", "train", "cpu", "float32", 1, 8, 16, 2, False))
    with naive.mode_context():
        assert sdpa_backend(naive.step) == ""
    with sdpa.mode_context():
        assert sdpa_backend(sdpa.step) in ("flash", "efficient", "math", "cudnn")
        # the CPU memory profile's events name the same backend: no second profiled call needed
        from seqbench.measure.memory import measure_peak

        _, _, events = measure_peak(sdpa.step, "cpu", sdpa.resident_bytes)
        assert events and sdpa_backend(sdpa.step, events) == sdpa_backend(sdpa.step)
