"""Fault injection: failing kernels, simulated OOM, timeouts, the memory budget and SIGTERM never
cost the user a finished row, and never stop the sweep early."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reliability_helpers import FakeClock, ListSink, frozen_gc, register_probe, tiny_config  # noqa: F401
from seqbench.sweep.runner import Harness
from seqbench.sweep import resume as resume_mod
from seqbench.sweep import runner as sweep
from seqbench.measure.memory import estimate_bytes
from seqbench.sweep.budget import Preflight
from seqbench.results.identity import Point
from seqbench.errors import ResultsError
from seqbench.results.ownership import own
from seqbench.results.reader import read_metadata, read_results
from seqbench.orchestration.signals import CountingSink, interrupts_as_exceptions
from seqbench.orchestration.run import run_to_files
from seqbench.sweep.runner import classify_failure, measure_point, run_sweep


def statuses(rows):
    return [(r.kernel, r.batch_size, r.seq_len, r.status) for r in rows]


@pytest.mark.parametrize(
    "fault, status",
    [
        (lambda: ValueError("bad shape"), "error"),
        (lambda: MemoryError(), "oom"),
        (lambda: RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"), "oom"),
        (lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), "oom"),
    ],
    ids=["raises", "MemoryError", "cpu-alloc", "cuda-oom"],
)
def test_failing_point_is_a_row_and_the_sweep_goes_on(monkeypatch, fault, status):
    clock = FakeClock()
    leaks = register_probe(monkeypatch, fail_at=16, fault=fault, clock=clock)
    dead_at_release = []  # the failed call's tensors must be gone when the cache is emptied, not later
    real_release = sweep._release_memory
    monkeypatch.setattr(sweep, "_release_memory", lambda device: (dead_at_release.append(leaks[-1]() is None), real_release(device)))
    cfg = tiny_config(kernels=["probe", "rnn_loop"], seq_lens=[8, 16, 32], batch_sizes=[1, 2])
    sink = ListSink()
    rows = run_sweep(cfg, sink, run_id="r", harness=Harness.scripted(clock))
    assert sink.rows == rows and len(rows) == 12
    probe = [(r.batch_size, r.seq_len, r.status) for r in rows if r.kernel == "probe"]
    # after an oom the larger T of that kernel and B are skipped, after a plain error they are retried
    after = "skipped" if status == "oom" else status
    assert probe == [(1, 8, "ok"), (1, 16, status), (1, 32, after), (2, 8, "ok"), (2, 16, status), (2, 32, after)]
    assert all(r.status == "ok" for r in rows if r.kernel == "rnn_loop")
    failed = [r for r in rows if r.status == status]
    assert all(r.error and r.median_s is None and r.samples_s == "" for r in failed)
    n_failed = 2 if status == "oom" else 4
    assert len(leaks) == n_failed and dead_at_release == [True] * n_failed, "a failed call's tensors were still alive"


def test_classify_failure():
    assert classify_failure(MemoryError()) == "oom"
    assert classify_failure(torch.cuda.OutOfMemoryError("x")) == "oom"
    assert classify_failure(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")) == "oom"
    assert classify_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) == "error"


def test_oom_on_cuda_empties_the_cache(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(1))
    register_probe(monkeypatch, fail_at=1, fault=MemoryError)  # fails in forward, before any CUDA work
    monkeypatch.setattr("seqbench.sweep.runner.build_workload", lambda p, seed=0: (_ for _ in ()).throw(MemoryError()))
    cfg = tiny_config(kernels=["probe"])
    point = Point("probe", "forward", "cuda", "float32", 1, 8, 8, 2, False)
    row = measure_point(point, cfg, "r", harness=Harness.scripted(FakeClock()))
    assert row.status == "oom" and calls == [1]


def test_timeout_skips_larger_t_for_that_kernel_and_batch_only(monkeypatch):
    clock = FakeClock(per_call=lambda t: t * 1e-3)  # 1 ms per token: T=32 takes 32 ms
    register_probe(monkeypatch, clock=clock)
    cfg = tiny_config(kernels=["probe"], seq_lens=[8, 64, 32, 16], batch_sizes=[1, 2], max_time_per_point=0.02)
    rows = run_sweep(cfg, ListSink(), run_id="r", harness=Harness.scripted(clock))
    got = [(r.batch_size, r.seq_len, r.status) for r in rows]
    # listed order is kept: T=64 times out first, then T=32 (smaller) is still tried and times out too
    assert got == [(1, 8, "ok"), (1, 64, "timeout"), (1, 32, "timeout"), (1, 16, "ok"),
                   (2, 8, "ok"), (2, 64, "timeout"), (2, 32, "timeout"), (2, 16, "ok")]
    assert "0.064 s" in rows[1].error and "--max-time-per-point" in rows[1].error
    cfg = tiny_config(kernels=["probe"], seq_lens=[8, 32, 64], batch_sizes=[1], max_time_per_point=0.02)
    rows = run_sweep(cfg, ListSink(), run_id="r", harness=Harness.scripted(clock))
    assert [r.status for r in rows] == ["ok", "timeout", "skipped"]
    assert "T=32" in rows[2].error
    # without a limit the same points are measured
    rows = run_sweep(tiny_config(kernels=["probe"], seq_lens=[64]), ListSink(), run_id="r", harness=Harness.scripted(clock))
    assert rows[0].status == "ok" and rows[0].median_s == pytest.approx(0.064)


def test_budget_skips_points_that_do_not_fit():
    cfg = tiny_config(kernels=["attention_naive", "rnn_loop"], seq_lens=[8, 128], batch_sizes=[1])
    big = Point("attention_naive", "forward", "cpu", "float32", 1, 128, 8, 2, False)
    small = Point("attention_naive", "forward", "cpu", "float32", 1, 8, 8, 2, False)
    budget = (estimate_bytes(big.kernel, big.shape, big.mode, big.dtype) + estimate_bytes(small.kernel, small.shape, small.mode, small.dtype)) // 2
    rows = run_sweep(cfg, ListSink(), run_id="r", harness=Harness.scripted(FakeClock()), preflight=Preflight(budget))
    assert [(r.kernel, r.seq_len, r.status) for r in rows] == [
        ("attention_naive", 8, "ok"), ("attention_naive", 128, "skipped"), ("rnn_loop", 8, "ok"), ("rnn_loop", 128, "ok")]
    assert "exceeds the budget" in rows[1].error and rows[1].median_s is None


def _signal_in_second_batch(sig, t_at):
    """A clock hook that sends `sig` to this process at the first call of the point (B=2, T=t_at),
    i.e. when the sequence of T values seen reaches its second stretch of t_at."""
    stretches = []

    def hook(t):
        if not stretches or stretches[-1] != t:
            stretches.append(t)
            if stretches.count(t_at) == 2 and t == t_at:
                os.kill(os.getpid(), sig)

    return hook


def test_sigterm_keeps_rows_marks_sidecar_and_resume_completes(tmp_path, monkeypatch):
    out = tmp_path / "run.csv"
    clock = FakeClock(hook=_signal_in_second_batch(signal.SIGTERM, 16))
    register_probe(monkeypatch, clock=clock)
    cfg = tiny_config(kernels=["probe"], seq_lens=[8, 16, 32], batch_sizes=[1, 2])
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)  # SIG_IGN in a background job
    with pytest.raises(KeyboardInterrupt):
        run_to_files(cfg, out, command=["test"], harness=Harness.scripted(clock))
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # handlers restored
    meta = read_metadata(out)
    assert meta["status"] == "interrupted" and meta["interrupted_by"] == "SIGTERM"
    first = read_results(out)
    assert list(zip(first.batch_size, first.seq_len)) == [(1, 8), (1, 16), (1, 32), (2, 8)]  # B=2 T=16 abandoned
    assert meta["rows"] == 4

    state = resume_mod.load(out, cfg)
    assert len(state.done) == len(first)
    new = run_to_files(cfg, out, command=["test", "--resume"], harness=Harness.scripted(FakeClock()), resume=state)
    assert len(new) == 6 - len(first)
    df = read_results(out)
    keys = list(zip(df.batch_size, df.seq_len))
    assert sorted(keys) == sorted((b, t) for b in (1, 2) for t in (8, 16, 32)) and len(set(keys)) == 6
    assert set(df.run_id) == {meta["run_id"]}
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["status"] == "complete" and meta["rows"] == 6 and "interrupted_by" not in meta
    assert meta["resumed"][0]["rows_before"] == len(first)


def test_resume_remembers_timeouts_and_drops_a_half_written_row(tmp_path, monkeypatch):
    clock = FakeClock(per_call=lambda t: t * 1e-3)
    register_probe(monkeypatch, clock=clock)
    out = tmp_path / "run.csv"
    cfg = tiny_config(kernels=["probe"], seq_lens=[8, 32, 64, 128], max_time_per_point=0.02)
    run_to_files(cfg, out, command=["test"], harness=Harness.scripted(clock))
    lines = out.read_text().splitlines(keepends=True)
    assert [ln.split(",")[13] for ln in lines[1:]] == ["ok", "timeout", "skipped", "skipped"]
    # as if killed mid-write of the 3rd row: 2 rows on disk plus half a line
    out.write_text("".join(lines[:3]) + lines[3][:25])
    state = resume_mod.load(out, cfg)
    assert "unfinished last line" in state.note and len(state.done) == 2
    rows = run_to_files(cfg, out, command=["test"], harness=Harness.scripted(clock), resume=state)
    assert [(r.seq_len, r.status) for r in rows] == [(64, "skipped"), (128, "skipped")]
    assert list(read_results(out).seq_len) == [8, 32, 64, 128]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_row_write_waits_until_the_row_is_written_and_counted(sig):
    class InterruptedWrite:
        def __init__(self):
            self.written = []

        def write(self, row):
            if not self.written:
                os.kill(os.getpid(), sig)  # lands in the middle of writing the first row
            self.written.append(row)

    sink = CountingSink()
    sink.sink = InterruptedWrite()
    with interrupts_as_exceptions():
        with pytest.raises(KeyboardInterrupt):
            sink.write("row 1")
        assert sink.sink.written == ["row 1"] and sink.rows == ["row 1"]
        sink.write("row 2")  # nothing pending any more
    assert sink.rows == ["row 1", "row 2"]


def test_resume_refuses_a_run_that_is_still_being_written_and_trusts_no_pid(tmp_path):
    out = tmp_path / "run.csv"
    cfg = tiny_config()
    run_to_files(cfg, out, command=["test"], harness=Harness.scripted(FakeClock()))
    side = out.with_suffix(".json")
    meta = json.loads(side.read_text())
    assert meta["pid"] == os.getpid() and meta["status"] == "complete"
    with own(out, "append"):  # a live writer holds the lock (a second open file: flock conflicts in-process too)
        with pytest.raises(ResultsError, match=f"being written by another seqbench process \\(pid {os.getpid()}"):
            resume_mod.load(out, cfg)
    # killed with -9 inside a container or PID namespace: the sidecar names pid 1, which is alive here,
    # but the lock died with the writer, so the run is resumable
    side.write_text(json.dumps({**meta, "status": "running", "pid": 1}))
    state = resume_mod.load(out, cfg)
    assert len(state.done) == 2
    with pytest.raises(ResultsError, match="being written by another seqbench process \\(pid 1 "):
        resume_mod.load(out, cfg)  # while `state` owns it, a second resume is refused
    state.output.release()
    assert len(resume_mod.load(out, cfg).done) == 2


def _overcommit_refuses_huge_allocations() -> bool:
    try:  # 0 (heuristic) and 2 (never) refuse a request far beyond RAM + swap; 1 would grant it lazily
        return Path("/proc/sys/vm/overcommit_memory").read_text().strip() in ("0", "2")
    except OSError:
        return False


@pytest.mark.skipif(not _overcommit_refuses_huge_allocations(), reason="needs Linux overcommit mode 0 or 2")
def test_a_real_cpu_out_of_memory_is_a_row_and_the_sweep_goes_on():
    # Naive attention at T=2^17 asks the allocator for B*h*T^2*4 bytes = 1 TiB of scores: refused at once.
    cfg = tiny_config(kernels=["attention_naive"], seq_lens=[8, 2**17], batch_sizes=[8, 1], max_memory="1000TB")
    rows = run_sweep(cfg, ListSink(), run_id="r", harness=Harness.scripted(FakeClock()), preflight=Preflight(cfg.max_memory))
    assert [(r.batch_size, r.seq_len, r.status) for r in rows] == [(8, 8, "ok"), (8, 2**17, "oom"), (1, 8, "ok"), (1, 2**17, "oom")]
    assert "can't allocate memory" in rows[1].error
    # with the default budget the same point is never tried
    rows = run_sweep(tiny_config(kernels=["attention_naive"], seq_lens=[2**17], batch_sizes=[8]), ListSink(),
                     run_id="r", harness=Harness.scripted(FakeClock()), preflight=Preflight(10 * 2**30))
    assert rows[0].status == "skipped" and "exceeds the budget" in rows[0].error
