import xml.etree.ElementTree as ET

import pytest
from matplotlib.figure import Figure

from kit import one_line_error
from seqbench.analysis import fits, load, scaling as analysis
from seqbench.render import plot
from seqbench.cli import main

from synthetic_results import CALIBRATION_GFLOPS, standard_rows, write_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("plot") / "synthetic.csv", standard_rows())


@pytest.fixture(scope="module")
def df(csv_path):
    return load([csv_path])


def _labels(fig: Figure) -> list[str]:
    return [line.get_label() for ax in fig.axes for line in ax.get_lines()]


def test_render_all_writes_valid_pngs_with_fixed_names(df, tmp_path):
    written = plot.render_all(df, tmp_path, ("png",), dpi=60)
    expected = [f"{c}-{m}.png" for m in ("forward", "train") for c in plot.CHART_NAMES]
    assert [p.name for p in written] == expected
    for p in written:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_latency_legend_carries_fitted_exponents_and_skips_failed_points(df):
    fig = plot.latency_vs_seq_len(df)
    labels = _labels(fig)
    assert "rnn_loop, k=1.00" in labels and "sdpa, k=2.00" in labels
    ax_b4 = fig.axes[1]
    assert ax_b4.get_title() == "batch size B = 4"
    naive = next(line for line in ax_b4.get_lines() if line.get_label().startswith("attention_naive"))
    assert 1024 not in list(naive.get_xdata())  # the oom point is not drawn
    assert not any("calibration" in label for label in labels)
    assert "cpu · float32 · d=64 · heads=2" in fig._suptitle.get_text()


def test_kernels_are_told_apart_without_colour(df):
    lines = [ln for ln in plot.latency_vs_seq_len(df).axes[0].get_lines()]
    assert len({ln.get_marker() for ln in lines}) == len(lines) == 4
    styles = {ln.get_label().split(",")[0]: ln.get_linestyle() for ln in lines}
    assert styles["rnn_loop"] == styles["rnn_fused"] == "-" and styles["sdpa"] == styles["attention_naive"] == "--"


def test_kernels_unknown_to_the_palette_still_get_their_own_marker(tmp_path):
    from synthetic_results import row

    names = [("zeta_scan", "scan"), ("alpha_linear", "attention"), ("rnn_loop", "recurrent"), ("sdpa", "attention")]
    rows = [row(k, t, 1, family=f, median=1e-3 * t) for k, f in names for t in (128, 256)]
    fig = plot.latency_vs_seq_len(load([write_csv(tmp_path / "new.csv", rows)]))
    lines = fig.axes[0].get_lines()
    assert len({(ln.get_marker(), ln.get_color()) for ln in lines}) == len({ln.get_marker() for ln in lines}) == 4
    assert {ln.get_label().split(",")[0]: ln.get_linestyle() for ln in lines}["zeta_scan"] == "-."


def test_svg_is_valid_and_byte_for_byte_reproducible(df, tmp_path):
    a = plot.render_all(df[df["mode"] == "train"], tmp_path / "a", ("svg",))
    b = plot.render_all(df[df["mode"] == "train"], tmp_path / "b", ("svg",))
    assert [p.name for p in a] == [f"{c}-train.svg" for c in plot.CHART_NAMES]
    for p in a:
        assert ET.fromstring(p.read_bytes()).tag.endswith("svg")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_gflops_chart_draws_measured_peak_only_when_calibrated(df, tmp_path):
    peak_lines = [ln for ax in plot.gflops_vs_seq_len(df).axes for ln in ax.get_lines()
                  if ln.get_label().startswith("matmul peak")]
    assert peak_lines and all(list(ln.get_ydata()) == [CALIBRATION_GFLOPS] * 2 for ln in peak_lines)
    bare = load([write_csv(tmp_path / "nocal.csv", standard_rows(calibration=False))])
    assert not any(label.startswith("matmul peak") for label in _labels(plot.gflops_vs_seq_len(bare)))


def test_speedup_heatmap_annotates_ratio_per_cell(df):
    fig = plot.speedup_heatmap(df)
    # first panel: the best recurrence (rnn_fused, 5e-7 T) against the best attention (sdpa, 1e-8 T²)
    assert fig.axes[0].get_title() == "best recurrence vs best attention"
    at = lambda ax, pos: [t.get_text() for t in ax.texts if t.get_position() == pos]  # noqa: E731
    assert at(fig.axes[0], (0, 0)) == ["sdpa\n1.56× faster\nvs rnn_fused"]  # T=32, B=1: 5e-7*32 / (1e-8*32²) = 1.5625
    # then the seed's loop, the textbook case: rnn_loop / sdpa at T=512 = 2e-6*512 / (1e-8*512²) = 0.390625
    assert fig.axes[1].get_title() == "rnn_loop vs best attention"
    # (issue 25: this read "0.391×" under a title saying ">1×: attention faster"; who wins is now said)
    assert "rnn_loop\n2.56× faster" in [t.get_text() for t in fig.axes[1].texts]
    assert at(fig.axes[1], (0, 0)) == ["sdpa\n6.25× faster"]
    assert fig._suptitle.get_text().startswith("Who is faster, by how much")


def test_overlay_of_two_csvs_names_the_source_in_every_panel(tmp_path):
    a = write_csv(tmp_path / "cpu.csv", standard_rows())
    b = write_csv(tmp_path / "gpu.csv", [r for r in standard_rows() if r.batch_size == 1])  # no B=4 panel lines
    both = load([a, b])
    labels = _labels(plot.throughput_vs_batch(both))
    assert "rnn_loop [cpu]" in labels and "rnn_loop [gpu]" in labels
    fig = plot.gflops_vs_seq_len(both)
    b4 = [ln for ln in fig.axes[1].get_lines() if not ln.get_label().startswith("matmul")]
    assert b4 and all(ln.get_label().endswith("[cpu]") and ln.get_fillstyle() == "full" for ln in b4)
    b1_gpu = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "sdpa [gpu]"]
    assert b1_gpu[0].get_fillstyle() == "none"  # second source: hollow markers in every panel


def test_every_chart_survives_a_run_where_everything_failed(tmp_path):
    from synthetic_results import row

    df = load([write_csv(tmp_path / "bad.csv", [row("sdpa", 64, 1, status="error", error="boom")])])
    for name, chart in plot.CHARTS.items():
        fig = chart(df, None, None)
        assert isinstance(fig, Figure), name


def test_cli_plot_writes_charts_and_refuses_to_overwrite(tmp_path, capsys):
    from synthetic_results import row

    # Small CSV (forward only): the CLI path, not the drawing, is under test here.
    small = write_csv(tmp_path / "small.csv", [row(k, t, b) for k in ("rnn_loop", "sdpa") for t in (128, 256) for b in (1, 4)])
    out = tmp_path / "charts"
    assert main(["plot", str(small), "--out-dir", str(out), "--image-format", "png", "--batch", "4", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([plot.OWNER_FILE] + [f"{c}-forward.png" for c in plot.CHART_NAMES])
    before = (out / "latency_vs_T-forward.png").read_bytes()
    assert before.startswith(PNG_MAGIC)
    one_line_error(capsys, main(["plot", str(small), "--out-dir", str(out)]), "latency_vs_T-forward.png already exists", "--force")
    assert (out / "latency_vs_T-forward.png").read_bytes() == before
    assert main(["plot", str(small), "--out-dir", str(out), "--image-format", "svg", "--force", "-q"]) == 0
    assert (out / "memory_vs_T-forward.svg").exists()


@pytest.mark.parametrize("content, needle", [
    ("", "file is empty"),
    ("kernel,median\nrnn_loop,1.0\n", "not a seqbench results CSV"),
    (None, "truncated"),
    ("schema", "schema_version 99 is not supported"),
    ("header-only", "no rows"),
])
def test_cli_plot_bad_csv_exits_2_naming_the_file(tmp_path, capsys, content, needle):
    p = tmp_path / "bad.csv"
    good = write_csv(tmp_path / "good.csv", standard_rows()).read_text()
    if content is None:
        p.write_text(good[:-40])  # cut mid-row
    elif content == "schema":
        lines = good.splitlines(keepends=True)
        p.write_text(lines[0] + "99" + lines[1][1:])
    elif content == "header-only":
        p.write_text(good.splitlines(keepends=True)[0])
    else:
        p.write_text(content)
    one_line_error(capsys, main(["plot", str(p), "--out-dir", str(tmp_path / "o")]), str(p), needle)


@pytest.mark.parametrize("args, needle", [
    (["--image-format", "gif"], "allowed: png, svg, pdf"),
    (["--batch", "3"], "measured batch sizes: 1, 4"),
])
def test_cli_plot_bad_flags_exit_2(csv_path, tmp_path, capsys, args, needle):
    one_line_error(capsys, main(["plot", str(csv_path), "--out-dir", str(tmp_path), *args]), needle)


def test_a_sweep_of_many_sizes_draws_a_readable_few_and_says_so(tmp_path):
    """40 batch sizes x 20 lengths: 6 panels (first and last among them), at most 12 labelled ticks, no cell texts."""
    from synthetic_results import row

    bs, ts = list(range(1, 41)), [16 * (i + 1) for i in range(20)]
    df = load([write_csv(tmp_path / "big.csv", [row(k, t, b) for k in ("rnn_loop", "sdpa") for b in bs for t in ts])])
    fig = plot.latency_vs_seq_len(df)
    drawn = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    titles = [ax.get_title() for ax in drawn]
    assert len(drawn) == plot.MAX_PANELS and titles[0] == "batch size B = 1" and titles[-1] == "batch size B = 40"
    ticks = list(drawn[0].get_xticks())
    assert 5 <= len(ticks) <= plot.MAX_TICKS and ticks[0] == 16 and ticks[-1] == 320
    assert any("panels at 6 of the 40 measured batch sizes" in t.get_text() for t in fig.texts)
    heat = plot.speedup_heatmap(df)
    assert not any(ax.texts for ax in heat.axes)  # 800 cells a panel: colours only
    assert any("cells not labelled" in t.get_text() for t in heat.texts)
    assert plot.spread_log([1, 2, 4, 8, 16, 32, 64], 3) == [1, 8, 64] and plot.spread([1, 2, 3], 5) == [1, 2, 3]
