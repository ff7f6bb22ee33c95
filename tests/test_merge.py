"""Merging shards with default flags, each refusal (one line, exit 2), and machines side by side."""

from __future__ import annotations

import json

import pytest

from seqbench.sweep.runner import Harness
from seqbench.analysis import load
from seqbench.cli import main
from seqbench.render import plot, report
from seqbench.results.merge import merge_files
from seqbench.results.reader import read_many, read_metadata, read_results
from seqbench.results.schema import KEY_COLUMNS
from seqbench.sweep.config import build_config
from seqbench.orchestration.run import run_to_files

CFG = dict(name="m", kernels=["rnn_loop", "sdpa"], seq_lens=[8, 16, 32], batch_sizes=[1, 2], hidden_size=16,
           num_heads=2, min_time=0.01, min_repeats=4, max_warmup=0.05, threads=1)


def clock(per_call):
    """A fake block timer: per_call seconds a call, the kernel never run (fast, and each 'machine' its own speed)."""
    return lambda fn, number: per_call * number


def run_shards(tmp_path, n, *, cfg=CFG, per_call=(1e-3, 2e-3, 3e-3), prefix="sh", **kw):
    c = build_config(cfg)
    paths = []
    for k in range(1, n + 1):
        p = tmp_path / f"{prefix}{k}.csv"
        run_to_files(c, p, command=["t"], harness=Harness.scripted(clock(per_call[(k - 1) % len(per_call)])), shard=(k, n), peak=True, **kw)
        paths.append(p)
    return paths


def edit_sidecar(csv, **changes):
    p = csv.with_suffix(".json")
    meta = json.loads(p.read_text())
    for dotted, value in changes.items():
        d, *keys = meta, *dotted.split("__")
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    p.write_text(json.dumps(meta))


def refused(capsys, args) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seqbench: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("n", [2, 3])
def test_shards_merge_with_default_flags_and_keep_their_own_peaks(tmp_path, capsys, n):
    parts = run_shards(tmp_path, n)
    out = tmp_path / "all.csv"
    assert main(["merge", *map(str, parts), "-o", str(out)]) == 0
    df = read_results(out)
    kernels = df[df["kernel"] != "calibration"]
    keys = [tuple(r) for r in kernels[list(KEY_COLUMNS)].itertuples(index=False)]
    assert sorted(keys) == sorted(p.key() for p in build_config(CFG).points())  # every point exactly once
    cal = df[df["kernel"] == "calibration"].set_index("run_id")["gflops_per_s"]
    assert len(cal) == n and cal.nunique() == n  # one calibration row per shard, each its machine's own
    for r in kernels.itertuples():  # pct_of_peak against its own shard's calibration
        assert r.pct_of_peak == pytest.approx(100 * r.gflops_per_s / cal[r.run_id], rel=1e-6)
    meta = read_metadata(out)
    assert meta["shards"] == {"count": n, "missing": [], "unfinished": []} and meta["partial"] is False
    assert [p["shard"] for p in meta["merged_from"]] == [[k, n] for k in range(1, n + 1)]
    # the reader keeps every shard's calibration row (they share a point key)
    assert (read_many([out])["kernel"] == "calibration").sum() == n


def test_missing_shard_refused_then_allowed_partial(tmp_path, capsys):
    parts = run_shards(tmp_path, 3)
    out = tmp_path / "m.csv"
    err = refused(capsys, ["merge", str(parts[0]), str(parts[2]), "-o", str(out)])
    assert "shard 2 of 3 missing" in err and "--allow-partial" in err
    assert not out.exists()
    assert main(["merge", str(parts[0]), str(parts[2]), "-o", str(out), "--allow-partial"]) == 0
    meta = read_metadata(out)
    assert meta["partial"] is True and meta["shards"]["missing"] == [2]
    assert "partial" in capsys.readouterr().err


def test_unfinished_shard_refused(tmp_path, capsys):
    parts = run_shards(tmp_path, 2)
    edit_sidecar(parts[1], status="interrupted")
    err = refused(capsys, ["merge", *map(str, parts), "-o", str(tmp_path / "m.csv")])
    assert "did not finish" in err and "--resume" in err


def test_shards_of_another_sweep_refused(tmp_path, capsys):
    a = run_shards(tmp_path, 2, prefix="d16-")
    b = run_shards(tmp_path, 2, cfg=dict(CFG, hidden_size=32), prefix="d32-")
    err = refused(capsys, ["merge", str(a[0]), str(b[1]), "-o", str(tmp_path / "m.csv")])
    assert "another sweep" in err and "hidden_size" in err
    edit_sidecar(a[1], environment__seqbench="0.0.1")
    err = refused(capsys, ["merge", *map(str, a), "-o", str(tmp_path / "m.csv")])
    assert "0.0.1" in err


def test_mixed_environment_refused_or_flagged(tmp_path, capsys):
    parts = run_shards(tmp_path, 2)
    edit_sidecar(parts[1], environment__cpu="Other CPU 9000", environment__torch="9.9.9", machine="other")
    out = tmp_path / "m.csv"
    err = refused(capsys, ["merge", *map(str, parts), "-o", str(out)])
    assert "different machines" in err and "Other CPU 9000" in err and "--allow-mixed" in err
    assert main(["merge", *map(str, parts), "-o", str(out), "--allow-mixed"]) == 0
    meta = read_metadata(out)
    assert set(meta["mixed_environment"]) == {"cpu", "torch", "machine"}
    df = load([out])
    assert sorted(df["source"].unique()) == sorted({meta["merged_from"][0]["machine"][0], "other"})


def test_same_file_twice_and_overlapping_runs_refused(tmp_path, capsys):
    parts = run_shards(tmp_path, 2)
    err = refused(capsys, ["merge", str(parts[0]), str(parts[0]), "-o", str(tmp_path / "m.csv")])
    assert "in both" in err
    c = build_config(CFG)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    run_to_files(c, a, command=["t"], harness=Harness.scripted(clock(1e-3)), peak=True)
    run_to_files(c, b, command=["t"], harness=Harness.scripted(clock(2e-3)), peak=True)
    err = refused(capsys, ["merge", str(a), str(b), "-o", str(tmp_path / "m.csv")])  # one machine measured it twice
    assert "in both" in err and "a100=a.csv" in err


def test_two_machines_merged_and_reported_side_by_side(tmp_path, capsys):
    c = build_config(dict(CFG, seq_lens=[128, 256, 512]))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    # machine a: rnn_loop slower than sdpa above T=256; machine b: 3x faster everywhere
    run_to_files(c, a, command=["t"], harness=Harness.scripted(clock(1e-3)), peak=True)
    run_to_files(c, b, command=["t"], harness=Harness.scripted(clock(3e-3)), peak=True)
    both = tmp_path / "both.csv"
    assert main(["merge", f"a100={a}", f"h100={b}", "-o", str(both)]) == 0
    assert "machines: a100, h100" in capsys.readouterr().err
    assert set(read_metadata(both)["machines"].values()) == {"a100", "h100"}
    df = load([both])
    assert sorted(df["source"].unique()) == ["a100", "h100"]
    fig = plot.latency_vs_seq_len(df)
    labels = {t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()}
    assert any("[a100]" in t for t in labels) and any("[h100]" in t for t in labels)
    md_path, _ = report.write_report(both, tmp_path / "both.md", charts_dir=None)
    md = md_path.read_text()
    assert "2 machines side by side" in md and "## Machine: a100" in md and "## Machine: h100" in md
    table = md[md.index("## Key figures per machine"):md.index("## Machine: a100")]
    rows = [ln for ln in table.splitlines() if ln.startswith("| a100") or ln.startswith("| h100")]
    assert len(rows) == 4  # 2 machines x 2 batch sizes
    peaks = md[md.index("## Machines"):md.index("## Key figures per machine")]
    gf = {m: read_results(p).query("kernel == 'calibration'")["gflops_per_s"].iloc[0] for m, p in (("a100", a), ("h100", b))}
    assert gf["a100"] == pytest.approx(3 * gf["h100"])  # the fake clocks' ratio, kept per machine
    # two CSVs straight into report give the same side-by-side report, labelled on the command line
    assert main(["report", f"a100={a}", f"h100={b}", "-o", str(tmp_path / "two.md"), "--no-charts"]) == 0
    two = (tmp_path / "two.md").read_text()
    assert "## Machine: a100" in two and "## Machines" in two
    assert peaks.count("| a100") == 1 and peaks.count("| h100") == 1


def test_the_api_refuses_to_overwrite_a_merge_output_as_the_cli_does(tmp_path):
    """seqbench.merge() overwrote an existing output silently (merge_files defaulted to force=True)."""
    import seqbench
    from seqbench.errors import ResultsError

    parts = run_shards(tmp_path, 2)
    out = tmp_path / "merged.csv"
    out.write_text("the user's own file\n")
    with pytest.raises(ResultsError, match="exists"):
        seqbench.merge(parts, out)
    assert out.read_text() == "the user's own file\n"
    assert seqbench.merge(parts, out, force=True).rows == len(build_config(CFG).points()) + 2  # + a peak row a shard
