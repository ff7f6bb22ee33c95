"""compare: t distribution and BH against tables, run-level verdicts on synthetic runs (issue 13's
items 1 and 4), FDR over synthetic A/A tables, matching, --fail-on, exit codes."""

from __future__ import annotations

import json
import math
import random

import pandas as pd
import pytest

from seqbench.analysis.compare import (PointResult, compare_frames, finish, judge_runs, min_detectable,
                                       run_statistics, t_test_runs)
from seqbench.analysis.stats import benjamini_hochberg, t_cdf, t_ppf, t_two_sided_p
from seqbench.cli import main
from seqbench.errors import CompareError
from compare_helpers import make_row, make_runs, make_table
from seqbench.results.schema import COLUMNS


@pytest.mark.parametrize("q,df,expected", [  # Student's t table
    (0.975, 10, 2.228139), (0.995, 2, 9.924843), (0.995, 6, 3.707428), (0.8, 6, 0.905703), (0.975, 1, 12.706205),
    (0.9995, 3, 12.923979), (0.975, 1000, 1.962339),
])
def test_t_quantiles_match_the_table(q, df, expected):
    assert t_ppf(q, df) == pytest.approx(expected, abs=2e-6)
    assert t_cdf(expected, df) == pytest.approx(q, abs=1e-6)
    assert t_two_sided_p(expected, df) == pytest.approx(2 * (1 - q), abs=1e-6)


def test_t_cdf_closed_forms():
    assert t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    assert t_cdf(-1.0, 1) == pytest.approx(0.25)
    assert t_cdf(1.0, 2) == pytest.approx(0.5 + 1 / (2 * math.sqrt(3)))  # 1/2 + t / (2 sqrt(2 + t^2))


def test_benjamini_hochberg_by_hand():
    # sorted p: 0.001, 0.008, 0.039, 0.041, 0.6 -> p*m/rank: 0.005, 0.02, 0.065, 0.05125, 0.6; then running minima from the top
    q = benjamini_hochberg([0.039, 0.001, 0.6, 0.008, 0.041])
    assert q == pytest.approx([0.05125, 0.005, 0.6, 0.02, 0.05125])


def test_pooled_t_test_by_hand():
    # logs: base 0, 0.02 (mean 0.01), head 0.10, 0.12 (mean 0.11); squared deviations 4 x 0.0001, df 2:
    # pooled variance 0.0002, se = sqrt(0.0002 * (1/2 + 1/2))
    base, head = [1.0, math.exp(0.02)], [math.exp(0.10), math.exp(0.12)]
    out = t_test_runs(base, head, alpha=0.05)
    se = math.sqrt(0.0002 * (1 / 2 + 1 / 2))
    assert out["ratio"] == pytest.approx(math.exp(0.10))
    assert out["se"] == pytest.approx(se) and out["df"] == 2
    assert out["p_value"] == pytest.approx(t_two_sided_p(0.10 / se, 2))
    assert out["ci_low"] == pytest.approx(math.exp(0.10 - 4.302653 * se), rel=1e-6)


def test_mde_shrinks_with_noise_and_never_drops_below_the_threshold():
    tiny = min_detectable(1e-5, 6, threshold=0.05, alpha=0.01, tested=10)
    assert tiny == pytest.approx(0.05, abs=1e-4)
    noisy = min_detectable(0.02, 6, threshold=0.05, alpha=0.01, tested=10)
    # lone discovery among 10 at alpha 0.01: t_crit at 0.9995 with 6 df, plus t at 0.8 for 80% power
    assert noisy == pytest.approx(math.expm1((t_ppf(1 - 0.0005, 6) + t_ppf(0.8, 6)) * 0.02), rel=1e-9)


# --- the run is the unit ----------------------------------------------------------------------------

def _judge(base, head, threshold=0.05, alpha=0.01):
    res = PointResult(key={}, verdict="inconclusive")
    test = judge_runs(res, base, head, alpha=alpha)
    finish([res], [test], threshold=threshold, alpha=alpha)
    return res


def test_clear_regression_improvement_and_unchanged():
    base = [1.00, 1.01, 0.99, 1.00]
    assert _judge(base, [1.20, 1.21, 1.19, 1.20]).verdict == "regression"
    assert _judge(base, [0.80, 0.81, 0.79, 0.80]).verdict == "improvement"
    same = _judge(base, [1.00, 0.99, 1.01, 1.005])
    assert same.verdict == "unchanged" and 1 / 1.05 <= same.ci_low <= same.ci_high <= 1.05


def test_significant_but_below_the_threshold_is_not_a_regression():
    base, head = [1.000, 1.001, 0.999, 1.000], [1.030, 1.031, 1.029, 1.030]
    res = _judge(base, head)
    assert res.q_value < 0.01 and res.verdict == "unchanged"
    assert _judge(base, head, threshold=0.02).verdict == "regression"


def test_one_run_a_side_is_inconclusive_however_tight_its_rounds():
    res = _judge([1.0], [1.5])
    assert res.verdict == "inconclusive" and res.p_value is None and "1 run" in res.note
    assert res.ratio == pytest.approx(1.5)


def test_issue_item_1_one_lucky_run_cannot_fake_a_regression():
    # Both sides are the same code on a loaded machine: rounds hit by another process run 2x slower.
    # The base had one lucky run (all its rounds ~8% fast). A cut relative to each side's own
    # second-fastest round dropped 9 of the base's 16 rounds and none of the head's, and called it
    # a regression of +8%. Every run is reduced alike here, so the lucky run is one run in four.
    rng = random.Random(1)

    def run(center, disturbed):
        return [[center * (2.0 if r in disturbed else 1.0) * (1 + rng.gauss(0, 0.004)) for _ in range(5)] for r in range(4)]

    base = [run(0.92e-3, set())] + [run(1e-3, {0, 2}) for _ in range(3)]
    head = [run(1e-3, {1}) for _ in range(4)]
    comp = compare_frames(make_table({256: base}, side="b"), make_table({256: head}, side="h"))
    p = comp.points[0]
    assert p.verdict != "regression" and comp.exit_code == 0
    assert (p.base_runs, p.head_runs, p.base_rounds, p.head_rounds) == (4, 4, 16, 16)
    # the same files the other way round: no "improvement" either, and the same size of change
    back = compare_frames(make_table({256: head}, side="h"), make_table({256: base}, side="b")).points[0]
    assert back.verdict != "improvement" and back.ratio == pytest.approx(1 / p.ratio)


def test_issue_item_4_two_runs_with_a_process_offset_are_not_significant():
    # 2 runs a side x 4 rounds; rounds inside a run agree within 0.2%, but each process has its own
    # offset (+-4%). Treating 8 rounds as independent called this a significant change.
    rng = random.Random(4)

    def run(offset):
        return [[1e-3 * (1 + offset) * (1 + rng.gauss(0, 0.002)) for _ in range(6)] for _ in range(4)]

    base, head = [run(0.00), run(0.04)], [run(-0.035), run(0.005)]
    p = compare_frames(make_table({64: base}, side="b"), make_table({64: head}, side="h"), threshold=0.02).points[0]
    assert p.verdict in ("inconclusive", "unchanged") and p.p_value > 0.05
    assert p.base_runs == p.head_runs == 2 and p.mde > 0.05  # and it says how blind it was


def test_fdr_over_synthetic_aa_tables():
    # 300 A/A comparisons of 50 points, 4 runs a side with per-run offsets; a tiny threshold so
    # that only the test decides. Benjamini-Hochberg at alpha 0.05 keeps comparisons with any false
    # discovery near 5% (all nulls true: FDR = family-wise rate); raw p < 0.05 flags nearly all.
    rng = random.Random(13)
    alpha, flagged_bh, flagged_raw = 0.05, 0, 0
    for _ in range(300):
        results, tests = [], []
        for _ in range(50):
            res = PointResult(key={}, verdict="inconclusive")
            runs = [[math.exp(rng.gauss(0, 0.02)) for _ in range(4)] for _ in range(2)]
            tests.append(judge_runs(res, runs[0], runs[1], alpha=alpha))
            results.append(res)
        finish(results, tests, threshold=1e-6, alpha=alpha)
        flagged_bh += any(r.verdict in ("regression", "improvement") for r in results)
        flagged_raw += any(r.p_value < alpha for r in results)
    assert flagged_bh <= 0.05 * 300 + 9  # binomial(300, 0.05): mean 15, sd 3.8
    assert flagged_raw >= 0.85 * 300  # 1 - 0.95^50 = 92%


# --- tables: rounds, matching, failures ---------------------------------------------------------------

def test_run_statistics_per_round_min_median_and_reference():
    df = pd.DataFrame([make_row("rnn_loop", 64, [[1.0, 3.0, 2.0], [4.0, 4.0, 5.0]], ref=[2.0, 4.0]).as_csv()], columns=COLUMNS)
    assert run_statistics(df, statistic="median") == {"r1": [2.0, 4.0]}
    assert run_statistics(df, statistic="min") == {"r1": [1.0, 4.0]}
    assert run_statistics(df, statistic="median", normalize="reference") == {"r1": [1.0, 1.0]}
    plain = pd.DataFrame([make_row("rnn_loop", 64, [[1.0]]).as_csv()], columns=COLUMNS)
    with pytest.raises(CompareError, match="--reference"):
        run_statistics(plain, normalize="reference")


def test_matching_one_sided_points_and_failures():
    base = pd.concat([make_table({64: make_runs(1e-3, seed=1), 128: make_runs(2e-3, seed=2)}, side="b"),
                      make_table({64: make_runs(1e-3, seed=3)}, side="b", kernel="sdpa"),
                      make_table({64: make_runs(1e-3, seed=4)}, side="b", kernel="mha")])
    head = pd.concat([make_table({64: make_runs(1.3e-3, seed=5), 128: make_runs(2e-3, seed=6)}, side="h"),
                      make_table({64: make_runs(1e-3, seed=7)}, side="h", kernel="sdpa", status={(64, 2): "error"}),
                      make_table({64: make_runs(1e-3, seed=8)}, side="h", kernel="gru_loop")])
    comp = compare_frames(base, head)
    verdicts = {(p.key["kernel"], p.key["seq_len"]): p.verdict for p in comp.points}
    assert verdicts == {("rnn_loop", 64): "regression", ("rnn_loop", 128): "unchanged", ("sdpa", 64): "failed"}
    sdpa = next(p for p in comp.points if p.key["kernel"] == "sdpa")
    assert "1 of 4 candidate runs" in sdpa.note and "boom" in sdpa.note
    assert [k["kernel"] for k in comp.only_base] == ["mha"] and [k["kernel"] for k in comp.only_head] == ["gru_loop"]
    assert comp.failing() == {"regression": 1, "failed": 1, "missing": 1} and comp.exit_code == 1
    allowed = compare_frames(base, head, allow_missing=True, fail_on=["regression"])
    assert allowed.failing() == {"regression": 1} and allowed.missing == []


def test_no_common_point_and_bad_options_are_bad_input():
    b = make_table({64: make_runs(1e-3)}, side="b")
    with pytest.raises(CompareError, match="no point in common"):
        compare_frames(b, make_table({64: make_runs(1e-3)}, side="h", kernel="sdpa"))
    with pytest.raises(CompareError, match="--fail-on"):
        compare_frames(b, b, fail_on=["regression", "slow"])


# --- CLI: formats, --fail-on and exit codes -------------------------------------------------------------

def _write(path, frame):
    frame.to_csv(path, index=False)  # cells are the writer's text already (Row.as_csv)
    return str(path)


@pytest.fixture
def pair(tmp_path):
    def side(name, slow=1.0, runs=4, kernel_seed=0):
        frame = pd.concat([make_table({64: make_runs(1e-3 * slow, n=runs, seed=kernel_seed + 1)}, side=name),
                           make_table({64: make_runs(1e-3, n=runs, seed=kernel_seed + 2)}, side=name, kernel="sdpa")])
        return _write(tmp_path / f"{name}.csv", frame)

    return side("base"), side("same", kernel_seed=10), side("slow", slow=1.2, kernel_seed=20), side("one", runs=1, kernel_seed=30)


def test_exit_codes_fail_on_and_json(pair, capsys):
    base, same, slow, one = pair
    assert main(["compare", base, same, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 0 and {p["verdict"] for p in doc["points"]} == {"unchanged"}
    assert doc["points"][0]["q_value"] is not None and doc["points"][0]["mde"] > 0
    assert main(["compare", base, slow, "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [p["verdict"] for p in doc["points"]] == ["regression", "unchanged"]
    assert doc["points"][0]["ratio"] == pytest.approx(1.2, rel=0.02) and doc["failing"] == {"regression": 1}
    assert main(["compare", base, slow, "--fail-on", "failed"]) == 0  # a regression is not what this team fails on
    capsys.readouterr()
    # one run a side: no verdict can reach alpha; it says so, exits 0, and 1 under --fail-on inconclusive
    assert main(["compare", base, one, "--format", "json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert {p["verdict"] for p in doc["points"]} == {"inconclusive"} and any("single run" in w for w in doc["warnings"])
    assert "single run" in captured.err
    assert main(["compare", base, one, "--fail-on", "regression,failed,inconclusive", "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["failing"] == {"inconclusive": 2}


def test_markdown_marks_every_verdict_and_says_what_it_computed(pair, capsys):
    base, _, slow, _ = pair
    assert main(["compare", base, slow, "--format", "markdown", "--threshold", "10%"]) == 1
    md = capsys.readouterr().out
    assert md.startswith("### seqbench compare: 1 regression, 1 unchanged — exit 1")
    assert "| point | base min | head min | change | 99% CI | q | MDE | runs | verdict |" in md
    assert "| rnn_loop | " in md and "🔴 regression" in md and "⚪ unchanged" in md
    assert "each run's fastest round" in md and "Benjamini-Hochberg" in md
    assert "All points: forward cpu float32 B=8 T=64 d=64 h=4 non-causal" in md  # said once, not per row


@pytest.mark.parametrize("args,needle", [
    (["missing.csv"], "no such results file"),
    (["{base}", "--threshold", "abc"], "--threshold"),
    (["{base}", "--threshold", "150%"], "threshold"),
    (["{base}", "--format", "xml"], "--format"),
    (["{base}", "--normalize", "magic"], "--normalize"),
    (["{base}", "--statistic", "mean"], "--statistic"),
    (["{base}", "--normalize", "reference"], "--reference"),
    (["{base}", "--fail-on", "slowness"], "--fail-on"),
    (["{base}", "--allow-mismatch", "colour"], "--allow-mismatch"),
    (["{garbage}"], "not a seqbench results CSV"),
])
def test_bad_input_is_one_line_and_exit_2(pair, tmp_path, capsys, args, needle):
    base, same, _, _ = pair
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("a,b\n1,2\n")
    args = [a.format(base=base, garbage=garbage) for a in args]
    assert main(["compare", same, *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


# --- disturbed runs ------------------------------------------------------------------------------------

def test_a_disturbed_run_is_left_out_alike_on_either_side():
    # bench-ci saw whole runs 30-50% slow (fastest round included): with it the pooled variance
    # hid a clear 10% regression. Left out, the regression is found, and the note says what was dropped.
    base, head = [1.000, 1.004, 0.997, 1.002], [1.100, 1.45, 1.104, 1.098]
    res = _judge(base, head)
    assert res.verdict == "regression" and (res.base_dropped, res.head_dropped) == (0, 1)
    assert res.head_runs == 4 and "left out 1 candidate run" in res.note
    assert res.head_value == pytest.approx((1.100 * 1.104 * 1.098) ** (1 / 3))
    # the same rule for the base: a slow base run cannot turn an A/A into an improvement, either way round
    same = [1.001, 0.998, 1.003, 1.000]
    for a, b in ((base[:3] + [1.4], same), (same, base[:3] + [1.4])):
        r = _judge(a, b)
        assert r.verdict == "unchanged" and r.base_dropped + r.head_dropped == 1


def test_slow_runs_are_kept_when_too_few_would_remain_or_none_is_slow():
    from seqbench.analysis.compare import drop_slow_runs

    assert drop_slow_runs([1.0, 1.5]) == ([1.0, 1.5], 0)  # 2 runs: no median to trust
    assert drop_slow_runs([1.0, 1.5, 1.6]) == ([1.0, 1.5, 1.6], 0)  # median 1.5: nothing 10% above it
    assert drop_slow_runs([1.0, 1.05, 1.09, 1.3]) == ([1.0, 1.05, 1.09], 1)
    assert drop_slow_runs([0.7, 1.0, 1.0, 1.0]) == ([0.7, 1.0, 1.0, 1.0], 0)  # fast runs are never dropped


def test_the_method_line_counts_the_runs_left_out():
    from seqbench.analysis.compare import Comparison
    from seqbench.render.compare_text import method_lines

    base, head = [1.000, 1.004, 0.997, 1.002], [1.100, 1.45, 1.104, 1.098]
    res = _judge(base, head)
    assert "1 disturbed run(s) left out (over 10% slower" in method_lines(Comparison([res]))[0]
    assert "left out" not in method_lines(Comparison([_judge(base, base)]))[0]
