import re

import pytest

from seqbench.render import report
from seqbench.cli import main

from synthetic_results import T_STAR_SDPA_VS_LOOP, row, standard_rows, write_csv


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    csv = write_csv(d / "data" / "synthetic.csv", standard_rows())
    out = d / "out" / "report.md"
    assert main(["report", str(csv), "-o", str(out), "-q"]) == 0
    return csv, out, out.read_text()


def test_report_has_environment_from_sidecar_and_every_section(rendered):
    _, _, md = rendered
    for heading in ("## Key figures", "## Environment", "## Scaling exponents", "## Crossover length T*",
                    "## Results: B = 1, forward", "## Results: B = 4, forward", "## Results: B = 1, train",
                    "## Failed points", "## Charts"):
        assert heading in md
    assert "| cpu | Test CPU 9000 |" in md
    assert "`seqbench run synthetic`" in md


def test_report_fits_and_crossover_match_the_algebra(rendered):
    _, _, md = rendered
    interval = r"\[\d\.\d\d, \d\.\d\d\]"
    assert re.search(rf"\| rnn_loop \| recurrent \| forward \| 1 \| 1\.00 \| {interval} \| 1\.000 \| 4 \| 128–1024 \|", md)
    assert re.search(rf"\| sdpa \| attention \| forward \| 4 \| 2\.00 \| {interval} \| 1\.000 \| 4 \| 128–1024 \|", md)
    # sdpa (1e-8 T²) vs the seed's rnn_loop (2e-6 T): T* = 200 at both batch sizes
    assert re.search(rf"\| rnn_loop \| forward \| 1 \| {T_STAR_SDPA_VS_LOOP:.0f} \[\d+, \d+\] \| rnn_loop faster above T\* \|", md)
    # the best recurrence is rnn_fused (5e-7 T): T* = 50 against sdpa, and it is named
    assert re.search(r"\| best recurrence \| forward \| 4 \| 50 \[\d+, \d+\] \| best recurrence \(rnn_fused\) faster", md)
    # the train series has only rnn_loop: no crossover row for it
    assert "| rnn_loop | train |" not in md and "| best recurrence | train |" not in md


def test_key_figures_are_one_short_table_with_intervals(rendered):
    _, _, md = rendered
    key = md[md.index("## Key figures"):md.index("## Environment")]
    table = [ln for ln in key.splitlines() if ln.startswith("| forward")]
    assert len(table) == 2  # one row per (mode, B) with both sides present, not a list of every fit
    b1 = table[0].split(" | ")
    assert b1[2].startswith("50 [") and "above: best recurrence (rnn_fused)" in b1[2]
    assert b1[3].startswith("200 [") and "above: rnn_loop" in b1[3]
    assert b1[5].startswith("rnn_fused 1.00 [") and b1[6].startswith("sdpa 2.00 [")
    assert "torch threads: 1" in key


def test_report_tables_failures_and_calibration(rendered):
    _, _, md = rendered
    # rnn_loop at T=512, B=1: 2e-6*512 s = 1.02 ms; 512 tokens / 1.024 ms = 500k tokens/s
    assert "| rnn_loop | 512 | 1.02 ms ± 0.02 ms | 500k |" in md  # the IQR in the median's unit (issue 25)
    assert "| attention_naive | forward | 4 | 1024 | oom | RuntimeError: not enough memory: 64 GiB |" in md
    assert "Measured matmul peak (cpu, float32): 123 GFLOP/s." in md
    assert "calibration |" not in md  # not a kernel row anywhere


def test_report_embeds_charts_by_relative_path_that_exist(rendered):
    _, out, md = rendered
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 10  # 5 charts x 2 modes
    for link in links:
        assert not link.startswith("/") and (out.parent / link).is_file()


def test_report_of_a_run_where_everything_failed(tmp_path, capsys):
    csv = write_csv(tmp_path / "bad.csv", [row("sdpa", 64, 1, status="oom", error="MemoryError: x"),
                                           row("rnn_loop", 64, 1, status="error", error="RuntimeError: y")],
                    sidecar=False)
    assert main(["report", str(csv), "-q"]) == 0
    md = (tmp_path / "bad.md").read_text()
    assert "**No point succeeded** (2 of 2 failed)" in md
    assert "| sdpa | forward | 1 | 64 | oom | MemoryError: x |" in md
    assert "no JSON sidecar found" in md
    assert "## Charts" not in md and not (tmp_path / "charts").exists()


def test_report_refuses_to_overwrite_without_force(rendered, capsys):
    csv, out, md = rendered
    assert main(["report", str(csv), "-o", str(out), "--no-charts"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "report.md already exists" in err and "--force" in err
    assert main(["report", str(csv), "-o", str(out), "--no-charts", "--force", "-q"]) == 0
    assert "## Charts" not in out.read_text()


def test_report_bad_csv_exits_2(tmp_path, capsys):
    p = tmp_path / "foreign.csv"
    p.write_text("a,b\n1,2\n")
    assert main(["report", str(p)]) == 2
    assert f"{p}: not a seqbench results CSV" in capsys.readouterr().err


def test_crossovers_reports_which_side_wins_when_none_in_range(tmp_path):
    from seqbench.analysis import load, matchup

    rows = [row(k, t, 1) for k in ("rnn_loop", "sdpa") for t in (32, 64, 128)]  # sdpa faster below T=200
    df = load([write_csv(tmp_path / "r.csv", rows)])
    (c,) = matchup.crossings(df, matchup.kernel_side("rnn_loop"))
    assert c.t_star == [] and c.note == "none in range: best attention faster at every measured T (32–128)"


def test_report_names_the_sdpa_backend_and_flags_a_poor_fit(tmp_path):
    import dataclasses

    rows = [dataclasses.replace(row("sdpa", t, 1), sdpa_backend="math") for t in (128, 256, 512)]
    # rnn_loop zig-zags: a slope through it is meaningless, and the key figures must say so
    rows += [row("rnn_loop", t, 1, median=m) for t, m in ((128, 1e-3), (256, 4e-3), (512, 1.5e-3))]
    csv = write_csv(tmp_path / "r.csv", rows)
    assert main(["report", str(csv), "--no-charts", "-q"]) == 0
    md = (tmp_path / "r.md").read_text()
    assert "| sdpa (math) | 512 |" in md
    # slope = ln(1.5) / ln(4) = 0.29 through points far off any line: not a key figure, whatever its interval
    key = md[md.index("## Key figures"):md.index("## Environment")]
    assert re.search(r"\| not key \(R² 0\.0\d\d\): 0\.29 \[", key)
    assert re.search(r"\| sdpa 2\.00 \[\d\.\d\d, \d\.\d\d\] \|", key)
    assert re.search(r"\| rnn_loop \| recurrent \| forward \| 1 \| 0\.29 \| .* \| poor fit", md)


@pytest.mark.parametrize("status, extra, says", [
    ("running", {}, "ended without recording how"),  # no process holds the CSV: killed or crashed
    ("interrupted", {"interrupted_by": "SIGTERM"}, "interrupted by SIGTERM"),
    ("failed", {"error": "disk full"}, "failed: disk full"),
    ("complete", {}, None),
])
def test_a_run_that_did_not_finish_says_so_before_any_figure(tmp_path, status, extra, says):
    import json

    csv = write_csv(tmp_path / "r.csv", [row("rnn_loop", 32, 1), row("sdpa", 32, 1)])
    meta = json.loads(csv.with_suffix(".json").read_text())
    csv.with_suffix(".json").write_text(json.dumps({**meta, "status": status, **extra}))
    assert main(["report", str(csv), "--no-charts", "-o", str(tmp_path / "r.md"), "-q"]) == 0
    text = (tmp_path / "r.md").read_text()
    if says is None:
        assert "did not finish" not in text
    else:
        warning = next(ln for ln in text.splitlines() if "did not finish" in ln)
        assert says in warning and "--resume -o r.csv" in warning
        assert text.index("did not finish") < text.index("## Key figures")
