"""Rounds bookkeeping, shards, --append and merge: every point exactly once, every sample with its round."""

from __future__ import annotations

import pytest

from seqbench.sweep.runner import Harness
from seqbench.cli import main
from seqbench.errors import ConfigError
from seqbench.sweep.config import build_config
from seqbench.results.merge import merge_files
from seqbench.results.schema import KEY_COLUMNS, Row, parse_samples
from seqbench.errors import ResultsError
from seqbench.results.reader import read_metadata, read_results
from seqbench.sweep.rounds import measure_in_rounds, round_config
from seqbench.sweep.plan import parse_shard, shard_points
from seqbench.orchestration.run import run_to_files

CFG = dict(name="t", kernels=["rnn_loop", "sdpa"], seq_lens=[8, 16, 32], batch_sizes=[1, 2], hidden_size=16,
           num_heads=2, min_time=0.01, min_repeats=4, max_warmup=0.05, threads=1)


def fake_timer(fn, number):
    """A clock that never runs the kernel: 1 ms per call, so tests are fast and timings known."""
    return 1e-3 * number


def test_rounds_run_round_1_of_every_point_before_round_2():
    cfg = build_config(CFG)
    points = cfg.points()[:3]
    order = []

    def measure_round(point, r):
        order.append((point.seq_len, r))
        return Row(1, "id", point.kernel, "recurrent", "forward", "cpu", "float32", 1, point.seq_len, 16, 2, False, 1,
                   "ok", repeats=2, median_s=r * 1.0, samples_s=f"{r} {r}", number=1, gflop=1.0, warmup_s=0.1)

    rows = list(measure_in_rounds(points, 3, measure_round, reference=lambda: 0.5))
    assert order == [(8, 1), (16, 1), (32, 1), (8, 2), (16, 2), (32, 2), (8, 3), (16, 3), (32, 3)]
    assert [r.seq_len for r in rows] == [8, 16, 32]
    for row in rows:
        assert parse_samples(row.samples_s) == [1, 1, 2, 2, 3, 3]
        assert row.sample_rounds == "1 1 2 2 3 3"
        assert row.repeats == 6 and row.median_s == 2 and row.ref_s == "0.5 0.5 0.5"
        assert row.warmup_s == pytest.approx(0.3)


def test_a_point_failing_in_round_2_is_written_at_once_and_skipped_later():
    cfg = build_config(CFG)
    points = cfg.points()[:2]
    calls = []

    def measure_round(point, r):
        calls.append((point.seq_len, r))
        bad = point.seq_len == 8 and r == 2
        return Row(1, "id", point.kernel, "recurrent", "forward", "cpu", "float32", 1, point.seq_len, 16, 2, False, 1,
                   "error" if bad else "ok", samples_s="" if bad else "1", error="RuntimeError: x" if bad else "",
                   repeats=None if bad else 1, median_s=None if bad else 1.0, number=1, gflop=1.0)

    rows = list(measure_in_rounds(points, 3, measure_round))
    assert [(r.seq_len, r.status) for r in rows] == [(8, "error"), (16, "ok")]
    assert rows[0].error == "round 2/3: RuntimeError: x"
    assert (8, 3) not in calls


def test_round_config_splits_the_budget():
    cfg = build_config(CFG)
    r = round_config(cfg, 4)
    assert r.min_time == pytest.approx(0.0025) and r.min_repeats == 1 and r.max_repeats == 250
    assert round_config(cfg, 1) is cfg


def test_run_with_rounds_and_reference_writes_rounds_per_sample(tmp_path):
    cfg = build_config(dict(CFG, kernels=["rnn_loop"], seq_lens=[8], batch_sizes=[1]))
    out = tmp_path / "r.csv"
    run_to_files(cfg, out, command=["test"], harness=Harness.scripted(fake_timer), rounds=3, reference=True)
    df = read_results(out)
    assert len(df) == 1
    row = df.iloc[0]
    rounds = [int(x) for x in row["sample_rounds"].split()]
    assert len(rounds) == len(parse_samples(row["samples_s"])) == row["repeats"]
    assert sorted(set(rounds)) == [1, 2, 3] and rounds == sorted(rounds)
    assert parse_samples(row["ref_s"]) == [1e-3] * 3  # the fake clock, as the reference matmul saw it
    assert read_metadata(out)["schedule"] == {"rounds": 3, "reference": True, "peak": False}


@pytest.mark.parametrize("n", [1, 2, 3, 5, 13])
def test_shards_partition_the_points(n):
    points = build_config(CFG).points()
    shards = [shard_points(points, (k, n)) for k in range(1, n + 1)]
    flat = [p for s in shards for p in s]
    assert sorted(flat, key=lambda p: p.key()) == sorted(points, key=lambda p: p.key())
    assert len(flat) == len(set(flat)) == len(points)
    assert shard_points(points, (1, n)) == shards[0]  # deterministic


@pytest.mark.parametrize("text", ["0/2", "3/2", "a/b", "2", "1/0"])
def test_bad_shard(text):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


def test_shards_merge_back_into_the_whole_sweep(tmp_path):
    cfg = build_config(dict(CFG, kernels=["rnn_loop"]))
    parts = []
    for k in (1, 2, 3):
        p = tmp_path / f"part{k}.csv"
        run_to_files(cfg, p, command=["t"], harness=Harness.scripted(fake_timer), shard=(k, 3))
        parts.append(p)
    out = tmp_path / "all.csv"
    assert merge_files(parts, out).rows == len(cfg.points())
    merged = read_results(out)
    keys = [tuple(r) for r in merged[list(KEY_COLUMNS)].itertuples(index=False)]
    assert len(keys) == len(set(keys)) == len(cfg.points())
    assert len(read_metadata(out)["merged_from"]) == 3
    with pytest.raises(ResultsError, match="in both"):
        merge_files([parts[0], out], tmp_path / "x.csv")  # overlapping: part 1 is inside all.csv


def test_merge_refuses_mixed_schemas(tmp_path):
    cfg = build_config(dict(CFG, kernels=["rnn_loop"], seq_lens=[8], batch_sizes=[1]))
    a = tmp_path / "a.csv"
    run_to_files(cfg, a, command=["t"], harness=Harness.scripted(fake_timer))
    b = tmp_path / "b.csv"
    lines = a.read_text().splitlines()
    b.write_text("\n".join([lines[0] + ",note"] + [ln.replace(",8,", ",16,", 1) + ",x" for ln in lines[1:]]) + "\n")
    with pytest.raises(ResultsError, match="different schemas"):
        merge_files([a, b], tmp_path / "m.csv")


def test_append_adds_runs_and_refuses_a_foreign_file(tmp_path, capsys):
    cfg = build_config(dict(CFG, kernels=["rnn_loop"], seq_lens=[8], batch_sizes=[1]))
    out = tmp_path / "x.csv"
    run_to_files(cfg, out, command=["t"], harness=Harness.scripted(fake_timer), append=True)
    run_to_files(cfg, out, command=["t"], harness=Harness.scripted(fake_timer), append=True)
    df = read_results(out)
    assert len(df) == 2 and df["run_id"].nunique() == 2
    assert len(read_metadata(out)["previous_runs"]) == 1
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    assert main(["run", "--kernels", "rnn_loop", "--seq-lens", "8", "--batch-sizes", "1", "--append", "-o", str(foreign)]) == 2
    assert "cannot append" in capsys.readouterr().err
    assert foreign.read_text() == "a,b\n1,2\n"  # untouched


def test_merge_cli_bad_inputs(tmp_path, capsys):
    assert main(["merge", str(tmp_path / "nope.csv"), str(tmp_path / "nope2.csv"), "-o", str(tmp_path / "m.csv")]) == 2
    assert "no such results file" in capsys.readouterr().err
    assert main(["run", "--kernels", "rnn_loop", "--seq-lens", "8", "--batch-sizes", "1", "--shard", "3/2"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_points_select_from_the_grid_are_recorded_and_kept_by_resume(tmp_path):
    from seqbench.sweep.plan import parse_points, pending_points, plan_run

    cfg = build_config(CFG)
    only = parse_points("sdpa:16, rnn_loop:8:2,sdpa:16", cfg)  # spaces and repeats are forgiven
    assert only == ("sdpa:16", "rnn_loop:8:2")
    chosen = pending_points(cfg, only=only)
    assert sorted((p.kernel, p.seq_len, p.batch_size) for p in chosen) == [
        ("rnn_loop", 8, 2), ("sdpa", 16, 1), ("sdpa", 16, 2)]
    assert pending_points(cfg, (1, 2), only=only) + pending_points(cfg, (2, 2), only=only) != []  # shards of the selection
    out = tmp_path / "p.csv"
    run_to_files(cfg, out, command=["test"], harness=Harness.scripted(fake_timer), only=list(only))
    assert sorted(zip(read_results(out).kernel, read_results(out).seq_len)) == [("rnn_loop", 8), ("sdpa", 16), ("sdpa", 16)]
    assert read_metadata(out)["schedule"]["only"] == ["sdpa:16", "rnn_loop:8:2"]
    # interrupted after its first row: --resume measures the rest of the selection, not the whole grid
    import json

    out.write_text("".join(out.read_text().splitlines(keepends=True)[:2]))
    meta = json.loads(out.with_suffix(".json").read_text())
    out.with_suffix(".json").write_text(json.dumps({**meta, "status": "interrupted"}))
    resumed = plan_run(out=out, resume=True)
    assert resumed.only == only and len(resumed.points) == 2
    assert any("1 of 3 points already done" in n for n in resumed.notes), resumed.notes
    resumed.resume.output.release()
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text("kernels = ['rnn_loop', 'sdpa']\nseq_lens = [8, 16]\nbatch_sizes = [1]\nhidden_size = 16\n"
                        "num_heads = 2\n")
    assert [p.kernel for p in plan_run(config=cfg_path, points="sdpa:8", out=tmp_path / "q.csv").points] == ["sdpa"]


@pytest.mark.parametrize("text, needle", [
    ("sdpa:99", "'sdpa:99' is not a point of the sweep; it has kernels rnn_loop,sdpa, T 8,16,32, B 1,2, modes forward"),
    ("sdpa", "allowed: KERNEL:T[:B[:MODE]]"),
    ("sdpa:x", "whole numbers T and B"),
    ("sdpa:8:1:forward:extra", "allowed: KERNEL:T[:B[:MODE]]"),
    (" , ", "--points is empty"),
])
def test_bad_points_are_refused_with_what_the_sweep_has(text, needle):
    from seqbench.sweep.plan import parse_points

    with pytest.raises(ConfigError, match="--points") as exc:
        parse_points(text, build_config(CFG))
    assert needle in str(exc.value)


def test_points_with_resume_is_refused(tmp_path):
    from seqbench.sweep.plan import plan_run

    with pytest.raises(ConfigError, match="drop --rounds, --shard, --points"):
        plan_run(out=tmp_path / "x.csv", resume=True, points="sdpa:8")
