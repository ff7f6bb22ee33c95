"""Instruction counts (`--metric instructions`) without Valgrind: compare's verdicts on synthetic rows,
the schema's new columns, and the refusals. The counting itself is in test_instructions_valgrind.py."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from seqbench.analysis.verdicts import compare_frames
from seqbench.cli import main
from seqbench.errors import CompareError, ResultsError
from seqbench.results.reader import read_results
from seqbench.results.schema import COLUMNS, SCHEMA_VERSION, Row, format_samples
from seqbench.results.writer import CsvSink

KEY = dict(mode="forward", device="cpu", dtype="float32", batch_size=4, hidden_size=32, num_heads=2, causal=False)


def count_row(run_id: str, counts: list[float], seq_len: int = 64, kernel: str = "rnn_loop", status: str = "ok") -> Row:
    row = Row(schema_version=SCHEMA_VERSION, run_id=run_id, kernel=kernel, family="recurrent", seq_len=seq_len,
              threads=1, status=status, metric="instructions", **KEY)
    if status == "ok":
        row.repeats, row.number = len(counts), 1
        row.instructions = sorted(counts)[len(counts) // 2]
        row.instructions_samples = format_samples(counts)
    else:
        row.error = "RuntimeError: boom"
    return row


def table(runs: list[float], *, side: str, seq_len: int = 64, status: str = "ok") -> pd.DataFrame:
    """One point, one row per run whose blocks all counted `value` instructions per call."""
    rows = [count_row(f"{side}{i}", [v] * 3, seq_len, status=status) for i, v in enumerate(runs)]
    return pd.DataFrame([r.as_csv() for r in rows], columns=COLUMNS).assign(
        instructions=[r.instructions for r in rows])


M = 6_238_402.0  # a real count: the tanh RNN step of B=4, T=64, d=128 on this machine


@pytest.mark.parametrize("base, head, verdict", [
    ([M, M + 3], [M + 1, M + 2], "unchanged"),  # A/A: runs a few instructions apart
    ([M, M + 3], [M * 1.02, M * 1.02 + 5], "regression"),
    ([M, M + 3], [M * 0.97, M * 0.97 + 5], "improvement"),
    ([M, M + 3], [M * 1.005, M * 1.005 + 1], "unchanged"),  # below the 1% threshold
    ([M, M * 1.03], [M * 1.015, M * 1.016], "inconclusive"),  # the baseline's runs disagree by 3%
    ([M], [M * 1.05], "inconclusive"),  # one run: its process-to-process spread is unknown
])
def test_count_verdicts(base, head, verdict):
    comp = compare_frames(table(base, side="b"), table(head, side="h"))
    p = comp.points[0]
    assert comp.metric == "instructions" and comp.threshold == 0.01  # the default for counts
    assert p.verdict == verdict, p.note
    assert p.base_value == pytest.approx(sorted(base)[(len(base) - 1) // 2] if len(base) > 2 else
                                         (base[0] + base[-1]) / 2)
    assert p.ci_low <= p.ratio <= p.ci_high


def test_threshold_is_settable():
    base, head = table([M, M], side="b"), table([M * 1.005, M * 1.005], side="h")
    assert compare_frames(base, head).points[0].verdict == "unchanged"
    assert compare_frames(base, head, threshold=0.004).points[0].verdict == "regression"


def test_failed_point_and_mixed_metrics():
    comp = compare_frames(table([M, M], side="b"), table([M, M], side="h", status="error"))
    assert comp.points[0].verdict == "failed" and comp.exit_code == 1
    timed = table([M, M], side="h").assign(metric="time")
    with pytest.raises(CompareError, match="cannot be compared"):
        compare_frames(table([M, M], side="b"), timed)


def write_csv(path, rows):
    sink = CsvSink(path)
    for r in rows:
        sink.write(r)
    sink.close()
    return path


def test_compare_cli_shows_counts_and_exits_as_time_does(tmp_path, capsys):
    base = write_csv(tmp_path / "base.csv", [count_row(f"b{i}", [M, M, M]) for i in range(2)])
    head = write_csv(tmp_path / "head.csv", [count_row(f"h{i}", [M * 1.02] * 3) for i in range(2)])
    assert main(["compare", str(base), str(head), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["metric"] == "instructions" and out["counts"]["regression"] == 1
    assert out["points"][0]["head_value"] == pytest.approx(M * 1.02) and out["points"][0]["base_spread"] == 0
    assert main(["compare", str(base), str(head), "--format", "markdown", "--threshold", "3%"]) == 0
    md = capsys.readouterr().out
    assert "6.24 M instr" in md and "6.36 M instr" in md and "unchanged" in md and "| range |" in md
    assert main(["compare", str(base), str(head), "--fail-on", "inconclusive", "--threshold", "3%"]) == 0


def test_schema_round_trip_and_honest_time_columns(tmp_path):
    path = write_csv(tmp_path / "c.csv", [count_row("r", [M, M + 1, M + 2])])
    df = read_results(path)
    assert df.loc[0, "metric"] == "instructions" and df.loc[0, "instructions"] == M + 1
    assert pd.isna(df.loc[0, "median_s"]) and df.loc[0, "samples_s"] == ""
    text = path.read_text().splitlines()
    header = text[0].split(",")
    cells = text[1].split(",")
    cells[header.index("median_s")] = "0.5"  # a time beside a count: refused
    path.write_text("\n".join([text[0], ",".join(cells)]) + "\n")
    with pytest.raises(ResultsError, match="time columns must be empty"):
        read_results(path)


def test_older_files_read_as_time(tmp_path):
    cols = [c for c in COLUMNS if c not in ("metric", "instructions", "instructions_samples")]
    row = {c: "" for c in cols} | dict(schema_version="2", run_id="r", kernel="rnn_loop", family="recurrent",
                                       mode="forward", device="cpu", dtype="float32", batch_size="4", seq_len="64",
                                       hidden_size="32", num_heads="2", causal="false", threads="1", status="ok",
                                       repeats="2", median_s="0.001", samples_s="0.001 0.001")
    path = tmp_path / "old.csv"
    pd.DataFrame([row], columns=cols).to_csv(path, index=False)
    assert list(read_results(path)["metric"]) == ["time"]


@pytest.mark.parametrize("args, message", [
    (["--threads", "2"], "needs threads = 1"),
    (["--threads", "0"], "needs threads = 1"),
    (["--device", "cuda"], "cannot see CUDA"),
    (["--rounds", "3"], "drop them"),
])
def test_refusals(tmp_path, capsys, args, message):
    code = main(["run", "--metric", "instructions", "--kernels", "rnn_loop", "--seq-lens", "8", "--batch-sizes", "1",
                 "--hidden-size", "8", "--heads", "1", *args, "-o", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()


def test_refused_without_valgrind(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no valgrind on it
    code = main(["run", "--metric", "instructions", "--kernels", "rnn_loop", "--seq-lens", "8", "--batch-sizes", "1",
                 "--hidden-size", "8", "--heads", "1", "-o", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "apt-get install valgrind" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()


def test_a_counted_sweep_writes_counts_and_no_times(tmp_path, monkeypatch, tiny_cfg_data):
    """The runner's instructions path end to end, with the Callgrind counter replaced (no Valgrind here)."""
    from seqbench.measure import callgrind
    from seqbench.sweep.config import build_config
    from seqbench.orchestration.run import run_to_files

    calls, warmups = [], []

    class FakeCounter:
        def count(self, fn, *, number=None, repeats, warmup):
            fn()
            calls.append(repeats)
            warmups.append(warmup)
            return callgrind.Counts([1000.0 + len(calls)] * repeats, number or 1, 40)

    monkeypatch.setattr(callgrind, "Counter", FakeCounter)
    cfg = build_config({**tiny_cfg_data, "metric": "instructions"})
    out = tmp_path / "c.csv"
    rows = run_to_files(cfg, out, command=["test"])
    df = read_results(out)
    assert len(rows) == len(df) == 4 and calls == [3] * 4  # min_repeats blocks a point
    assert warmups == [0] * 4  # the output check at the real size already called the step once
    assert set(df["metric"]) == {"instructions"} and list(df["instructions"]) == [1001.0, 1002.0, 1003.0, 1004.0]
    assert df["median_s"].isna().all() and df["tokens_per_s"].isna().all() and df["gflops_per_s"].isna().all()
    assert (df["samples_s"] == "").all() and (df["peak_mem_method"] == "analytic").all()
    assert json.loads(out.with_suffix(".json").read_text())["config"]["metric"] == "instructions"


def test_report_and_plot_refuse_counts(tmp_path, capsys):
    path = write_csv(tmp_path / "c.csv", [count_row("r", [M, M, M], seq_len=t) for t in (16, 32)])
    for argv in (["report", str(path), "-o", str(tmp_path / "r.md")], ["plot", str(path), "--out-dir", str(tmp_path)]):
        assert main(argv) == 2
        assert "holds instruction counts" in capsys.readouterr().err


def test_ab_passes_the_metric_to_its_runs(tmp_path, monkeypatch):
    from seqbench import api
    from seqbench.orchestration import ab as ab_mod

    seen = {}

    def fake_run_ab(config, sides, out, *, runs, rounds, metric, **kw):
        seen.update(runs=runs, rounds=rounds, metric=metric,
                    argv=ab_mod.run_command(sides[0], config, out / "base.csv", rounds, metric=metric))
        raise SystemExit  # stop before compare: only the schedule is under test

    monkeypatch.setattr(ab_mod, "run_ab", fake_run_ab)
    config = tmp_path / "c.toml"
    config.write_text('metric = "instructions"\n')
    with pytest.raises(SystemExit):
        api.ab(config, str(tmp_path), str(tmp_path), out=tmp_path / "ab")
    assert (seen["runs"], seen["rounds"], seen["metric"]) == (2, 1, "instructions")  # from the config's field
    assert seen["argv"][seen["argv"].index("--metric") + 1] == "instructions"
    assert seen["argv"][seen["argv"].index("--rounds") + 1] == "1"


def test_a_failed_point_of_a_counted_sweep_is_labelled_instructions(tmp_path, monkeypatch, tiny_cfg_data):
    """A point that fails under --metric instructions is still a row of that metric (it read 'time' before)."""
    from seqbench.measure import callgrind
    from seqbench.orchestration.run import run_to_files
    from seqbench.sweep.config import build_config

    class BrokenCounter:
        def count(self, fn, *, number=None, repeats, warmup=1):
            raise RuntimeError("planted failure inside the counted call")

    monkeypatch.setattr(callgrind, "Counter", BrokenCounter)
    out = tmp_path / "c.csv"
    run_to_files(build_config({**tiny_cfg_data, "metric": "instructions"}), out, command=["test"])
    df = read_results(out)
    assert set(df["status"]) == {"error"} and set(df["metric"]) == {"instructions"}
    assert df["error"].str.contains("planted failure").all()


def test_ab_counts_the_sides_of_a_pass_side_by_side_each_run_under_its_own_hash_seed(tmp_path, monkeypatch):
    """--metric instructions: a pass's two runs overlap (a count does not depend on the load), and run i of
    both sides gets PYTHONHASHSEED=i-1, so two runs a side show what another hash seed does to a count."""
    import subprocess
    import threading
    import time as time_mod
    from pathlib import Path

    from seqbench.orchestration.ab import resolve_side, run_ab

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    cfg = tmp_path / "bench.toml"
    cfg.write_text("kernels = ['rnn_loop']\nseq_lens = [8]\nbatch_sizes = [2]\n")
    (tmp_path / "base").mkdir(), (tmp_path / "head").mkdir()
    sides = [resolve_side("base", str(tmp_path / "base")), resolve_side("head", str(tmp_path / "head"))]
    lock, running, seen = threading.Lock(), [0], []

    def runner(argv, *, cwd, env, capture_output, text):
        with lock:
            running[0] += 1
            seen.append((Path(cwd).name, env["PYTHONHASHSEED"], running[0]))
        time_mod.sleep(0.2)
        out = Path(argv[argv.index("-o") + 1])
        with lock:
            with out.open("a") as fh:
                fh.write(("header\n" if out.stat().st_size == 0 else "") + "row\n")
            running[0] -= 1
        return subprocess.CompletedProcess(argv, 0, "", "")

    res = run_ab(cfg, sides, tmp_path / "out", runs=2, rounds=1, runner=runner, metric="instructions")
    assert sorted((s, seed) for s, seed, _ in seen) == [("base", "0"), ("base", "1"), ("head", "0"), ("head", "1")]
    assert max(n for *_, n in seen) == 2  # both sides of a pass at once
    assert [r.side for r in res.runs].count("base") == 2 and len(res.runs) == 4
