"""compare: the U test and its interval, verdicts on synthetic rounds, matching, output, exit codes."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from seqbench.cli import main
from seqbench.errors import CompareError
from seqbench.analysis.compare import compare_frames, drop_disturbed, judge_point, mann_whitney, round_statistics, shift_interval, u_null_counts, verdict_for
from seqbench.results.schema import COLUMNS, Row, format_samples
from seqbench.results.writer import CsvSink


@pytest.mark.parametrize("n,m", [(1, 1), (2, 3), (3, 4), (5, 5)])
def test_u_null_distribution_matches_enumeration(n, m):
    counts = Counter()
    for chosen in itertools.combinations(range(n + m), n):  # positions of sample a in the joint ranking
        others = [y for y in range(n + m) if y not in chosen]
        counts[sum(y > x for x in chosen for y in others)] += 1
    assert u_null_counts(n, m) == tuple(counts[u] for u in range(n * m + 1))


def test_mann_whitney_complete_separation_and_symmetry():
    a, b = [1, 2, 3, 4, 5], [6, 7, 8, 9, 10]
    u, p = mann_whitney(a, b)
    assert u == 25 and p == pytest.approx(2 / 252)  # the two extreme arrangements of C(10, 5)
    assert mann_whitney(b, a) == (0, pytest.approx(2 / 252))
    assert mann_whitney(a, a)[1] == 1.0


def test_shift_interval_is_lehmanns_for_5_vs_5():
    est, lo, hi = shift_interval([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], alpha=0.05)
    # 95% for n=m=5: k=3 (P(U <= 2) = 4/252 <= 0.025 < P(U <= 3)); differences run 1..9
    assert (est, lo, hi) == (5, 2, 8)
    assert shift_interval([1, 2], [3, 4], alpha=0.05)[1:] == (-math.inf, math.inf)  # too few rounds


def _rounds(center, cv, n, seed):
    rng = random.Random(seed)
    return [center * math.exp(rng.gauss(0, cv)) for _ in range(n)]


def test_clear_regression():
    v = verdict_for(_rounds(1.0, 0.01, 8, 1), _rounds(1.2, 0.01, 8, 2), threshold=0.05, alpha=0.01)
    assert v["verdict"] == "regression"
    assert v["ci_low"] > 1.1 and v["ratio"] == pytest.approx(1.2, rel=0.03)


def test_clear_improvement():
    v = verdict_for(_rounds(1.0, 0.01, 8, 1), _rounds(0.8, 0.01, 8, 2), threshold=0.05, alpha=0.01)
    assert v["verdict"] == "improvement"


def test_same_distribution_tight_noise_is_unchanged():
    v = verdict_for(_rounds(1.0, 0.005, 10, 3), _rounds(1.0, 0.005, 10, 4), threshold=0.05, alpha=0.01)
    assert v["verdict"] == "unchanged"
    assert 1 / 1.05 <= v["ci_low"] <= v["ci_high"] <= 1.05


def test_large_noise_is_inconclusive_not_regression():
    v = verdict_for(_rounds(1.0, 0.3, 8, 5), _rounds(1.08, 0.3, 8, 6), threshold=0.05, alpha=0.01)
    assert v["verdict"] == "inconclusive"


def test_borderline_significant_but_below_threshold_is_not_a_regression():
    # a real 3% slowdown, measured precisely: significant, yet below the 5% threshold
    base, head = _rounds(1.0, 0.002, 10, 7), _rounds(1.03, 0.002, 10, 8)
    v = verdict_for(base, head, threshold=0.05, alpha=0.01)
    assert v["p_value"] < 0.01 and v["verdict"] == "unchanged"
    assert verdict_for(base, head, threshold=0.02, alpha=0.01)["verdict"] == "regression"


def test_noise_floor_blocks_a_significant_change_below_it():
    # 40 rounds a side wobbling ~10%: an 8% shift is significant, yet below one round's spread
    base, head = _rounds(1.0, 0.10, 40, 9), _rounds(1.08, 0.10, 40, 10)
    v = verdict_for(base, head, threshold=0.05, alpha=0.05)
    assert v["p_value"] < 0.05 and v["ratio"] > 1.05
    assert 0.06 < v["noise_floor"] < 0.16 and v["ratio"] < 1 + v["noise_floor"]
    assert v["verdict"] == "inconclusive"
    tight = verdict_for(_rounds(1.0, 0.01, 40, 9), _rounds(1.08, 0.01, 40, 10), threshold=0.05, alpha=0.05)
    assert tight["verdict"] == "regression"


def test_drop_disturbed_removes_slow_rounds_relative_to_each_side():
    stats = [1.0, 1.01, 0.99, 2.0, 1.02, 1.3]
    assert drop_disturbed(stats, 0.15) == [1.0, 1.01, 0.99, 1.02]
    mostly_disturbed = [2.0, 2.1, 1.0, 1.95, 2.05, 1.01, 2.0]  # more than half the rounds at 2x
    assert drop_disturbed(mostly_disturbed, 0.15) == [1.0, 1.01]
    slowed = [x * 1.1 for x in stats]  # a real slowdown moves the reference too: nothing extra dropped
    assert len(drop_disturbed(slowed, 0.15)) == 4
    assert drop_disturbed(stats, None) == stats


def test_undisturbed_rounds_from_a_single_run_are_inconclusive():
    # base ran in 3 runs, but only run b1 was undisturbed: the apparent 30% shift is one process's luck
    base = [("b1", 1.0), ("b1", 1.001), ("b1", 0.999), ("b1", 1.002)] + [(r, 2.0 + i / 100) for r in ("b2", "b3") for i in range(4)]
    head = [(r, 1.3 + i / 1000) for r in ("h1", "h2", "h3") for i in range(4)]
    v = judge_point(base, head, threshold=0.05, alpha=0.01, slow_cut=0.15)
    assert v["verdict"] == "inconclusive" and "one run" in v["note"]
    assert v["dropped_rounds"] == 8 and v["base_rounds"] == 4 and v["head_rounds"] == 12
    base_ok = [("b1", 1.0), ("b1", 1.001), ("b2", 0.999), ("b2", 1.002), ("b3", 1.0), ("b3", 1.001)]
    assert judge_point(base_ok, head, threshold=0.05, alpha=0.01, slow_cut=0.15)["verdict"] == "regression"


# --- tables ---------------------------------------------------------------------------------------

KEY = dict(mode="forward", device="cpu", dtype="float32", batch_size=8, hidden_size=64, num_heads=4, causal=False)


def _row(kernel, seq_len, rounds, *, run_id="r1", status="ok", ref=None):
    samples = [s for r in rounds for s in r]
    row = Row(schema_version=1, run_id=run_id, kernel=kernel, family="recurrent", seq_len=seq_len, threads=1, status=status, **KEY)
    if status == "ok":
        row.repeats, row.median_s = len(samples), sorted(samples)[len(samples) // 2]
        row.samples_s = format_samples(samples)
        row.sample_rounds = " ".join(str(i) for i, r in enumerate(rounds, 1) for _ in r)
        row.ref_s = format_samples(ref) if ref else ""
    else:
        row.error = "RuntimeError: boom"
    return row


def _frame(rows):
    return pd.DataFrame([r.as_csv() for r in rows], columns=COLUMNS)


def _rounds_block(center, n=8, seed=0, per=3):
    rng = random.Random(seed)
    return [[center * (1 + rng.gauss(0, 0.003)) for _ in range(per)] for _ in range(n)]


def test_round_statistics_per_round_median_and_reference():
    row = _row("rnn_loop", 64, [[1.0, 3.0, 2.0], [4.0, 4.0, 5.0]], ref=[2.0, 4.0])
    df = _frame([row])
    assert round_statistics(df, statistic="median") == [2.0, 4.0]
    assert round_statistics(df, statistic="min") == [1.0, 4.0]
    assert round_statistics(df, statistic="median", normalize="reference") == [1.0, 1.0]
    with pytest.raises(CompareError, match="--reference"):
        round_statistics(_frame([_row("rnn_loop", 64, [[1.0]])]), normalize="reference")


def test_matching_lists_one_sided_points_and_judges_the_rest():
    base = _frame([_row("rnn_loop", 64, _rounds_block(1e-3, seed=1)), _row("rnn_loop", 128, _rounds_block(2e-3, seed=2)),
                   _row("sdpa", 64, _rounds_block(1e-3, seed=3))])
    head = _frame([_row("rnn_loop", 64, _rounds_block(1.3e-3, seed=4)), _row("rnn_loop", 128, _rounds_block(2e-3, seed=5)),
                   _row("gru_loop", 64, _rounds_block(1e-3, seed=6))])
    comp = compare_frames(base, head)
    verdicts = {(p.key["kernel"], p.key["seq_len"]): p.verdict for p in comp.points}
    assert verdicts == {("rnn_loop", 64): "regression", ("rnn_loop", 128): "unchanged"}
    assert [k["kernel"] for k in comp.only_base] == ["sdpa"] and [k["kernel"] for k in comp.only_head] == ["gru_loop"]
    assert comp.exit_code == 1


def test_appended_runs_pool_their_rounds_and_failures_are_reported():
    base = _frame([_row("rnn_loop", 64, _rounds_block(1e-3, n=3, seed=s), run_id=f"b{s}") for s in range(3)]
                  + [_row("sdpa", 64, _rounds_block(1e-3, seed=9))])
    head = _frame([_row("rnn_loop", 64, _rounds_block(1e-3, n=3, seed=10 + s), run_id=f"h{s}") for s in range(3)]
                  + [_row("sdpa", 64, [], status="error")])
    comp = compare_frames(base, head)
    by = {p.key["kernel"]: p for p in comp.points}
    assert by["rnn_loop"].base_rounds == 9 and by["rnn_loop"].head_rounds == 9
    assert by["sdpa"].verdict == "failed" and comp.exit_code == 1


def test_no_common_point_is_bad_input():
    with pytest.raises(CompareError, match="no point in common"):
        compare_frames(_frame([_row("rnn_loop", 64, [[1.0]])]), _frame([_row("sdpa", 64, [[1.0]])]))


# --- CLI: formats and exit codes -------------------------------------------------------------------

def _write(path, rows):
    with CsvSink(path) as sink:
        for r in rows:
            sink.write(r)
    return str(path)


@pytest.fixture
def pair(tmp_path):
    base = _write(tmp_path / "base.csv", [_row("rnn_loop", 64, _rounds_block(1e-3, seed=1)), _row("sdpa", 64, _rounds_block(1e-3, seed=2))])
    same = _write(tmp_path / "same.csv", [_row("rnn_loop", 64, _rounds_block(1e-3, seed=3)), _row("sdpa", 64, _rounds_block(1e-3, seed=4))])
    slow = _write(tmp_path / "slow.csv", [_row("rnn_loop", 64, _rounds_block(1.2e-3, seed=5)), _row("sdpa", 64, _rounds_block(1e-3, seed=6))])
    return base, same, slow


def test_exit_codes_and_json(pair, capsys):
    base, same, slow = pair
    assert main(["compare", base, same, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 0 and {p["verdict"] for p in doc["points"]} == {"unchanged"}
    assert main(["compare", base, slow, "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [p["verdict"] for p in doc["points"]] == ["regression", "unchanged"]
    assert doc["points"][0]["ratio"] == pytest.approx(1.2, rel=0.02)
    few = _write(Path(base).parent / "few.csv", [_row("rnn_loop", 64, _rounds_block(1e-3, n=2, seed=7))])
    assert main(["compare", base, few, "--format", "json"]) == 0
    point = json.loads(capsys.readouterr().out)["points"][0]
    assert point["verdict"] == "inconclusive" and point["ci_low"] is None and point["ci_high"] is None


def test_markdown_and_table_name_the_regression(pair, capsys):
    base, _, slow = pair
    assert main(["compare", base, slow, "--format", "markdown", "--threshold", "10%"]) == 1
    md = capsys.readouterr().out
    assert md.startswith("### seqbench compare: 1 regression, 1 unchanged")
    assert "| rnn_loop forward cpu float32 B=8 T=64" in md and "regression" in md
    assert main(["compare", base, slow]) == 1
    assert "regression" in capsys.readouterr().out


@pytest.mark.parametrize("args,needle", [
    (["missing.csv"], "no such results file"),
    (["{base}", "--threshold", "abc"], "--threshold"),
    (["{base}", "--threshold", "150%"], "threshold"),
    (["{base}", "--format", "xml"], "--format"),
    (["{base}", "--normalize", "magic"], "--normalize"),
    (["{base}", "--statistic", "mean"], "--statistic"),
    (["{base}", "--normalize", "reference"], "--reference"),
    (["{garbage}"], "not a seqbench results CSV"),
])
def test_bad_input_is_one_line_and_exit_2(pair, tmp_path, capsys, args, needle):
    base, same, _ = pair
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("a,b\n1,2\n")
    args = [a.format(base=base, garbage=garbage) for a in args]
    assert main(["compare", same, *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
