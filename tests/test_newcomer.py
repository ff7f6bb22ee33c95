"""Issue 25: what a newcomer tripped on, each break reproduced (charts that belong to one output, ...)."""

from __future__ import annotations

import hashlib

import pytest

from seqbench.cli import main
from seqbench.render import plot

from synthetic_results import row, write_csv

KERNELS = ("rnn_loop", "sdpa")


def _small_rows():
    # one mode, two kernels: 5 charts a render, cheap
    return [row(k, T, 1) for k in KERNELS for T in (32, 64, 128, 256)]


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


@pytest.fixture
def two_runs(tmp_path):
    mine = write_csv(tmp_path / "results" / "mine.csv", _small_rows())
    other = [row(k, T, 1, median=(3e-6 if k == "rnn_loop" else 5e-8) * T) for k in KERNELS for T in (32, 64, 128, 256)]
    quick = write_csv(tmp_path / "results" / "quick.csv", other)
    return mine, quick


def test_plot_then_report_then_plot_each_own_their_charts(two_runs, capsys):
    mine, _ = two_runs
    results = mine.parent
    assert main(["plot", str(mine), "-q"]) == 0
    plotted = _digest(results / "mine-charts")
    assert len(plotted) == 5
    assert main(["report", str(mine), "-q"]) == 0  # was: "charts/latency_vs_T-forward.png already exists"
    report_charts = results / "mine-report-charts"
    embedded = _digest(report_charts)
    assert len(embedded) == 5
    md = (results / "mine.md").read_text()
    assert "](mine-report-charts/latency_vs_T-forward.png)" in md
    # the README's order for a layer: report, then plot, with --baseline; and plot again with --force
    assert main(["plot", str(mine), "--baseline", "rnn_loop", "--force", "-q"]) == 0
    assert _digest(report_charts) == embedded  # what the report shows did not change


def test_a_report_never_borrows_or_overwrites_another_reports_charts(two_runs, capsys):
    mine, quick = two_runs
    shared = mine.parent / "charts"
    assert main(["report", str(mine), "--charts-dir", str(shared), "-q"]) == 0
    before = _digest(shared)
    capsys.readouterr()
    # what the old message invited: --force. Another report's charts are refused even then, the folder unchanged
    assert main(["report", str(quick), "--charts-dir", str(shared), "--force", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{shared} holds the charts of report " in err and "mine.md" in err
    assert "even with --force" in err
    assert main(["plot", str(quick), "--out-dir", str(shared), "--force", "-q"]) == 2
    assert _digest(shared) == before and not (mine.parent / "quick.md").exists()
    # the owner itself may redraw them
    assert main(["report", str(mine), "--charts-dir", str(shared), "--force", "-q"]) == 0


def test_default_chart_folders_are_named_for_their_output():
    assert plot.default_plot_dir("results/mine.csv").as_posix() == "results/mine-charts"
    assert plot.default_report_charts_dir("out/mine.md").as_posix() == "out/mine-report-charts"


# --- item 3: a startup failure is not an interrupt -------------------------------------------------

def test_an_os_resource_error_at_start_has_its_own_code_and_message(monkeypatch, capsys):
    import errno

    from seqbench.measure import env

    def eagain(device="cpu"):
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(env, "capture", eagain)
    assert main(["env"]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Resource temporarily unavailable" in err
    assert "out of threads or processes" in err and "nothing was interrupted" in err and "interrupted;" not in err


def test_cannot_start_a_thread_is_exit_5_not_an_internal_error(monkeypatch, capsys):
    from seqbench.measure import env

    def no_thread(device="cpu"):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(env, "capture", no_thread)
    assert main(["env"]) == 5
    assert "can't start new thread: the machine is out of threads" in capsys.readouterr().err


OPENBLAS_LIKE = """
import os, signal, sys, threading, time
from seqbench.sweep import signals

def boom(self):
    raise RuntimeError("can't start new thread")

signals.install_handlers(exit_at_once=True)   # what seqbench's first line does
if sys.argv[1] == "limit":
    threading.Thread.start = boom             # the machine at its thread limit
# OpenBLAS's blas_thread_init, when pthread_create fails: raise(SIGINT) in its own process
os.kill(os.getpid(), signal.SIGINT)
time.sleep(5)
"""


@pytest.mark.parametrize("case, code, needle", [
    ("limit", 5, "a SIGINT came while no thread could be started (can't start new thread)"),
    ("ctrl-c", 130, "seqbench: error: interrupted"),   # a person's Ctrl-C stays an interrupt
])
def test_openblas_sigint_at_the_thread_limit_is_not_an_interrupt(case, code, needle):
    import subprocess
    import sys

    got = subprocess.run([sys.executable, "-c", OPENBLAS_LIKE, case], capture_output=True, text=True, timeout=60)
    assert got.returncode == code, got.stderr
    assert needle in got.stderr and got.stderr.count("\n") == 1
    if code == 5:
        assert "not an interrupt" in got.stderr and "interrupted" not in got.stderr.replace("not an interrupt", "")


def test_a_run_that_hits_the_thread_limit_says_so_in_its_sidecar(tmp_path, monkeypatch):
    """Inside a run the same SIGINT stops the run as failed (not interrupted), and the CLI exits 5."""
    import os
    import signal
    import threading

    from reliability_helpers import FakeClock, tiny_config
    from seqbench.errors import ResourceError
    from seqbench.results.reader import read_metadata
    from seqbench.sweep.runner import run_to_files

    calls = []

    def limit_then_sigint(_t):
        calls.append(1)
        if len(calls) == 3:
            monkeypatch.setattr(threading.Thread, "start", lambda self: (_ for _ in ()).throw(
                RuntimeError("can't start new thread")))
            os.kill(os.getpid(), signal.SIGINT)

    clock = FakeClock(hook=limit_then_sigint)
    out = tmp_path / "run.csv"
    with pytest.raises(ResourceError, match="not an interrupt"):
        run_to_files(tiny_config(kernels=["rnn_loop"], seq_lens=[8, 16]), out, command=["test"], timer=clock)
    monkeypatch.undo()
    meta = read_metadata(out)
    assert meta["status"] == "failed" and "interrupted_by" not in meta
    assert meta["error"].startswith("ResourceError: a SIGINT came while no thread could be started")
