"""Issue 25: what a newcomer tripped on, each break reproduced (charts that belong to one output, ...)."""

from __future__ import annotations

import hashlib

import pytest

from seqbench.sweep.runner import Harness
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
from seqbench.orchestration import signals

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
    from seqbench.orchestration.run import run_to_files

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
        run_to_files(tiny_config(kernels=["rnn_loop"], seq_lens=[8, 16]), out, command=["test"], harness=Harness.scripted(clock))
    monkeypatch.undo()
    meta = read_metadata(out)
    assert meta["status"] == "failed" and "interrupted_by" not in meta
    assert meta["error"].startswith("ResourceError: a SIGINT came while no thread could be started")


# --- item 2: noise said out loud ------------------------------------------------------------------

def _noisy_rows():
    import dataclasses

    rows = [row(k, T, 1) for k in KERNELS for T in (32, 64, 128, 256)]
    # as seen on a loaded machine: the calibration read low, so kernels showed 124-208% of peak,
    # and one point's IQR exceeded its median (933 µs ± 2.17 ms)
    cal = dataclasses.replace(row("rnn_loop", 512, 1, median=1e-3, gflops=23.7), kernel="calibration",
                              family="calibration")
    rows = [dataclasses.replace(r, pct_of_peak=208.0 if (r.kernel, r.seq_len) == ("sdpa", 256) else 50.0)
            for r in rows]
    rows[1] = dataclasses.replace(rows[1], median_s=933e-6, iqr_s=2.17e-3)
    return rows + [cal]


def test_noise_warnings_name_the_calibration_and_the_spread_points():
    import dataclasses

    import pandas as pd

    from seqbench.analysis import noise

    df = pd.DataFrame([dataclasses.asdict(r) for r in _noisy_rows()])
    got = noise.warnings(df, {})
    assert got[0].startswith("calibration disturbed: 1 point(s) ran faster than the measured matmul peak (23.7 GFLOP/s; "
                             "up to 208% of peak, sdpa forward B=1 T=256)")
    assert got[1] == ("1 of 8 points have an IQR wider than their median (worst: rnn_loop forward B=1 T=64, "
                      "933 µs ± 2170 µs): their timings were disturbed")
    assert got[-1] == "the figures above may be off: rerun with --rounds 3 (on a quieter machine if you can)"
    quiet = pd.DataFrame([dataclasses.asdict(r) for r in _small_rows()])
    assert noise.warnings(quiet, {}) == []


def test_a_noisy_report_warns_before_any_figure(tmp_path):
    csv = write_csv(tmp_path / "noisy.csv", _noisy_rows())
    assert main(["report", str(csv), "--no-charts", "-q"]) == 0
    md = (tmp_path / "noisy.md").read_text()
    warn = md.index("> **Warning: this run was disturbed.**")
    assert warn < md.index("## Key figures")
    assert "> - calibration disturbed: 1 point(s) ran faster" in md
    assert "rnn\\_loop forward B=1 T=64, 933 µs ± 2170 µs" in md
    assert "rerun with --rounds 3" in md
    clean = write_csv(tmp_path / "clean.csv", _small_rows())
    assert main(["report", str(clean), "--no-charts", "-q"]) == 0
    assert "disturbed" not in (tmp_path / "clean.md").read_text()


@pytest.fixture
def neighbours(monkeypatch):
    """Three spinning processes beside the test, and /proc scans that see only them."""
    import subprocess
    import sys
    import time

    from seqbench.measure import load

    spins = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    pids = {s.pid for s in spins}
    real = load._cpu_ticks
    monkeypatch.setattr(load, "_cpu_ticks", lambda proc, skip: {p: v for p, v in real(proc, skip).items() if p in pids})
    monkeypatch.setattr(load, "available_cores", lambda: 1)  # as under a one-CPU quota
    monkeypatch.setenv("SEQBENCH_LOAD_WINDOW", "0.3")
    time.sleep(0.1)
    yield pids
    for s in spins:
        s.kill()
        s.wait()


@pytest.mark.skipif(not __import__("os").path.isdir("/proc"), reason="reads /proc (Linux)")
def test_a_run_beside_a_busy_neighbour_warns_and_records_the_load(tmp_path, neighbours, capsys):
    """The run's own path (run_to_files, then the summary `seqbench run` prints) with a scripted clock:
    the neighbours are real, only the timings are not (a real tiny run takes 10-25 s on this machine)."""
    import json

    from reliability_helpers import FakeClock, tiny_config
    from seqbench.render import console
    from seqbench.results.reader import read_metadata
    from seqbench.orchestration.run import run_to_files

    out = tmp_path / "busy.csv"
    rows = run_to_files(tiny_config(kernels=["rnn_loop"], seq_lens=[8]), out, command=["test"], harness=Harness.scripted(FakeClock()))
    console.set_verbosity()
    console.run_summary(rows, out, read_metadata(out))
    err = capsys.readouterr().err
    assert "warning: machine busy at the start: other processes used" in err and "of 1 cores while the run needed 1" in err
    assert "rerun with --rounds 3" in err
    load = json.loads(out.with_suffix(".json").read_text())["load"]
    assert load["start"]["busy_cores"] > 0.25 and load["end"]["cores"] == 1
    assert any(str(p) in " ".join(load["start"]["busiest"]) for p in neighbours)
    for p in neighbours:  # the report reads the sidecar: no need to keep them spinning
        __import__("os").kill(p, 9)
    assert main(["report", str(out), "--no-charts", "-q"]) == 0
    md = out.with_suffix(".md").read_text()
    assert "> - machine busy at the start: other processes used" in md


# --- item 5: numbers a person can read -----------------------------------------------------------

@pytest.mark.parametrize("value, text", [
    (0.9996e-3, "1 ms"), (2.1e-3, "2.1 ms"), (933e-6, "933 µs"), (1234.0, "1234 s"), (5e-10, "0.5 ns"),
])
def test_times_never_in_exponent_notation(value, text):
    from seqbench.units import fmt_time

    assert fmt_time(value) == text


@pytest.mark.parametrize("median, iqr, text", [
    (2.1e-3, 0.9996e-3, "2.1 ms ± 1.0 ms"),   # was "2.1 ms ± 1e+03 µs"
    (933e-6, 2.17e-3, "933 µs ± 2170 µs"),    # the median's unit: the two read side by side
    (36.8e-3, 11.9e-3, "36.8 ms ± 11.9 ms"),
])
def test_a_spread_is_in_the_medians_unit(median, iqr, text):
    from seqbench.units import fmt_spread

    assert fmt_spread(median, iqr) == text


@pytest.mark.parametrize("n, text", [
    (1023.9 * 2**20, "1 GiB"),    # was "1.02e+03 MiB"
    (1.02 * 2**30, "1.02 GiB"), (14.2 * 1024, "14.2 KiB"), (999, "999 B"), (3 * 2**40, "3 TiB"),
])
def test_bytes_never_in_exponent_notation(n, text):
    from seqbench.units import fmt_bytes

    assert fmt_bytes(n) == text


# --- item 4: speed-ups point the right way ---------------------------------------------------------

def test_who_is_faster_is_said_in_words():
    from seqbench.units import fmt_faster

    # the newcomer's case: a recurrence 7.8x faster than attention read "0.128x" under "speed-up > 1: attention faster"
    assert fmt_faster(0.128, "recurrence", "attention") == "recurrence 7.81× faster"
    assert fmt_faster(6.89, "recurrence", "attention") == "attention 6.89× faster"
    assert fmt_faster(float("nan"), "a", "b") == "-"


def test_the_run_summary_names_the_winner_and_each_column(capsys):
    from seqbench.render import console

    # rnn_loop 2e-6 T, rnn_fused 5e-7 T, sdpa 1e-8 T²: at T=32 sdpa takes 10.2 µs against rnn_fused's 16 µs
    # (attention 1.56x faster) and the loop's 64 µs (6.25x); at T=512 rnn_fused 256 µs beats sdpa's 2.62 ms
    # 10.2x, and the loop (1.02 ms) 2.56x
    rows = [row(k, T, 1) for k in ("rnn_loop", "rnn_fused", "sdpa") for T in (32, 512)]
    console.set_verbosity()
    console.fight_summary(rows)
    err = capsys.readouterr().err
    assert "who is faster, by how much" in " ".join(err.split()) and "speed-up" not in err
    lines = err.splitlines()
    assert max(map(len, lines)) <= 80
    assert any(ln.split() == ["1", "32", "rnn_fused", "16", "µs", "sdpa", "10.2", "µs", "attention", "1.56×", "64",
                              "µs", "attention", "6.25×"] for ln in lines), err
    assert any(ln.split() == ["1", "512", "rnn_fused", "256", "µs", "sdpa", "2.62", "ms", "recurrence", "10.2×", "1.02",
                              "ms", "rnn_loop", "2.56×"] for ln in lines), err
    assert "(best vs best)" in err and "(rnn_loop vs best)" in err


# --- item 6: a shard's summary names no "best" from a partial view ---------------------------------

def test_a_shard_summary_says_it_is_partial_and_names_no_best(tmp_path, capsys):
    from reliability_helpers import FakeClock, tiny_config
    from seqbench.render import console
    from seqbench.results.reader import read_metadata
    from seqbench.orchestration.run import run_to_files

    cfg = tiny_config(kernels=["rnn_loop", "attention_naive", "sdpa"], seq_lens=[8, 16], batch_sizes=[1, 2])
    out = tmp_path / "part1.csv"
    rows = run_to_files(cfg, out, command=["test"], harness=Harness.scripted(FakeClock()), shard=(1, 2))
    assert 0 < len(rows) < 12  # part of the 12 points
    console.set_verbosity()
    console.run_summary(rows, out, read_metadata(out))
    err = capsys.readouterr().err
    assert "shard 1/2: these rows cover part of the sweep" in " ".join(err.split())
    assert "best recurrence vs best softmax attention" not in err and "who is faster" not in err
    assert main(["report", str(out), "--no-charts", "-q"]) == 0
    assert "> **Part of a sweep: shard 1/2.**" in out.with_suffix(".md").read_text()
    # a whole run still gets its comparison
    whole = tmp_path / "whole.csv"
    rows = run_to_files(cfg, whole, command=["test"], harness=Harness.scripted(FakeClock()))
    console.set_verbosity()  # report -q left it quiet
    console.run_summary(rows, whole, read_metadata(whole))
    assert "best recurrence vs best softmax attention" in capsys.readouterr().err


# --- item 8: seqbench list -------------------------------------------------------------------------

def test_list_in_a_pipe_prints_whole_names_one_line_per_kernel(capsys, monkeypatch):
    from seqbench.kernels import kernels

    monkeypatch.setenv("COLUMNS", "80")  # the newcomer's terminal width: names were cut to "rnn_l…"
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = list(kernels())
    assert lines[0].split()[:2] == ["name", "family"] and len(lines) == 1 + len(names)
    assert [ln.split()[0] for ln in lines[1:]] == names  # every name whole, one line each
    assert "…" not in "".join(lines)
    loop = next(ln for ln in lines if ln.startswith("rnn_loop "))
    assert loop.endswith(kernels()["rnn_loop"].description)  # grep returns the whole description


def test_list_format_markdown_is_markdown(capsys):
    assert main(["list", "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| name | family | forward FLOPs |") and lines[1].startswith("| --- |")
    assert all(ln.startswith("| ") and ln.endswith(" |") for ln in lines)
    assert "┃" not in "".join(lines) and "│" not in "".join(lines)
    assert any(ln.startswith("| `rnn_loop` | recurrent | `4*B*T*d^2` |") for ln in lines)


@pytest.mark.parametrize("command", ["run", "report", "compare", "launch"])
def test_help_at_80_columns_names_every_option_whole(command, capsys, monkeypatch):
    import typer

    from seqbench.cli import app

    monkeypatch.setenv("COLUMNS", "80")
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "<bool>" not in text and "…" not in text  # was "--max-time-per-p…" and "<bool>"
    assert max(map(len, text.splitlines())) <= 80
    cmd = typer.main.get_command(app).commands[command]
    for param in cmd.params:
        for name in param.opts + param.secondary_opts:
            if name.startswith("--"):
                assert name in text, name


def test_compare_of_single_runs_says_its_note_once_within_80_columns(tmp_path, capsys, monkeypatch):
    from seqbench.render import console

    monkeypatch.setattr(console.out, "width", 80)  # a terminal of 80 columns (the width is fixed at import)
    base = write_csv(tmp_path / "base.csv", [row(k, T, B) for k in KERNELS for T in (32, 64, 128) for B in (1, 4)])
    head = write_csv(tmp_path / "head.csv", [row(k, T, B, median=1.02 * (2e-6 * T if k == "rnn_loop" else 1e-8 * T * T))
                                             for k in KERNELS for T in (32, 64, 128) for B in (1, 4)])
    main(["compare", str(base), str(head)])
    text = capsys.readouterr().out
    lines = [ln.rstrip() for ln in text.splitlines()]
    assert max(map(len, lines)) <= 80
    footnotes = [ln for ln in lines if ln.startswith("[")]
    assert len(footnotes) == 1 and footnotes[0].startswith("[1] 12 points: 1 run in"), text
    assert " ".join(text.split()).count("how much one process differs") == 1  # was once per point
    assert sum(ln.rstrip().endswith("inconclusive [1]") for ln in lines) == 12


# --- item 9: the README path ------------------------------------------------------------------------

from pathlib import Path  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
DOCS = README.parent / "docs"


def _block_after(marker: str, lang: str, page: str = "README.md") -> str:
    text = (README.parent / page).read_text()
    start = text.index(f"```{lang}\n", text.index(marker)) + len(lang) + 4
    return text[start:text.index("```", start)]


def test_env_shows_the_threads_runs_use(capsys):
    import json

    assert main(["env", "--device", "cpu", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["torch_threads"] == 1  # was torch's default (2 here) while runs use 1


def test_the_readmes_layer_toml_is_a_complete_config(tmp_path):
    import tomllib

    from seqbench.sweep.config import build_config

    data = tomllib.loads(_block_after("`bench/layer.toml` is an ordinary sweep config", "toml", "docs/ci-start.md"))
    assert data["plugins"] == ["mylab.bench_kernels"] and "my_glr" in data["kernels"]
    # every field is one seqbench knows, with a valid value (the plugin itself is the user's)
    cfg = build_config({**data, "plugins": [], "kernels": ["rnn_loop", "sdpa"]}, "bench/layer.toml")
    assert list(cfg.seq_lens) == data["seq_lens"] and cfg.min_time == data["min_time"]


def test_the_readmes_python_example_names_files_that_exist_and_compare():
    import re

    import seqbench

    block = _block_after("In a notebook the same charts are plain matplotlib Figures", "python", "docs/charts.md")
    paths = re.findall(r'"(results/[^"]+\.csv)"', block)
    assert len(paths) == 3 and all((README.parent / p).is_file() for p in paths), paths
    compare_line = next(ln for ln in block.splitlines() if "seqbench.compare(" in ln)
    base, head = re.findall(r'"([^"]+)"', compare_line)
    comp = seqbench.compare(README.parent / base, README.parent / head)  # was compare("base.csv", ...): a traceback
    assert comp.exit_code in (0, 1) and comp.points


def test_setup_says_where_seqbench_is_and_what_the_seed_is():
    setup = README.read_text().split("## What it found")[0]
    assert ".venv/bin/seqbench" in setup and "source .venv/bin/activate" in setup
    assert "*the seed*" in setup and "--install-completion" in setup
    ci = _block_after("# How to gate CI on speed", "bash", "docs/ci-start.md")
    # `git worktree add ../main-checkout origin/main` failed in a fresh repo (no remote): the local branch works
    assert "git worktree add ../main-checkout origin/main" not in ci
    assert "git worktree add --detach ../main-checkout main" in ci


def test_shell_completion_is_offered(capsys):
    assert main(["--help"]) == 0
    assert "--install-completion" in capsys.readouterr().out


def test_a_long_run_is_estimated_up_front(capsys):
    from seqbench.render import console
    from seqbench.sweep.config import Point
    from seqbench.sweep.shards import estimate_seconds

    point = Point(kernel="rnn_loop", mode="forward", device="cpu", dtype="float32", batch_size=1, seq_len=64,
                  hidden_size=32, num_heads=2, causal=False)
    one = estimate_seconds([point], 0.2)
    assert 0.5 < one < 2 and estimate_seconds([point] * 10, 0.2, rounds=3) == pytest.approx(30 * one)
    console.set_verbosity()
    console.run_estimate(200, 3, 600.0)
    console.run_estimate(10, 1, 20.0)  # short: nothing to plan around
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("200 points x 3 round(s): roughly 10 min") and err.count("roughly") == 1


def test_the_gflops_chart_says_when_the_peak_was_measured_low():
    import dataclasses

    import pandas as pd

    from seqbench.analysis.roles import annotate

    rows = _noisy_rows()
    rows = [dataclasses.replace(r, gflops_per_s=50.0) if (r.kernel, r.seq_len) == ("sdpa", 256) else r for r in rows]
    df = annotate(pd.DataFrame([dataclasses.asdict(r) for r in rows]).assign(source="noisy"))
    fig = plot.gflops_vs_seq_len(df)
    labels = [ln.get_label() for ax in fig.axes for ln in ax.get_lines()]
    assert "matmul peak 23.7 GFLOP/s; measured low: 1 point(s) above it" in labels
