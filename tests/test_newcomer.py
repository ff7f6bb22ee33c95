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
