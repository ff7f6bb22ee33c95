"""Baseline vs candidate on instruction counts (`seqbench run --metric instructions`): a verdict per point.

A count moves little from one process to the next (docs/instructions.md: the same code agrees to
~0.3% under one hash seed, ~0.7% across hash seeds, whatever the machine's load), so no statistical
test is needed, only an honest look at the spread each side actually showed. Per point and side, each run contributes its instructions per call (the
median over its blocks); the side's value is the median over runs and its RANGE is [min, max] over
runs. The change is head/base of the medians, and the range of the change is what the two ranges
allow: [min head / max base, max head / min base].

Verdicts, threshold t (default 1%):
  regression    change >= 1 + t and the whole range of the change is above 1 (the sides' runs do
                not overlap: each side agrees within its own spread, and they disagree with each other)
  improvement   change <= 1/(1 + t) and the whole range is below 1
  unchanged     the whole range of the change lies within (1/(1 + t), 1 + t)
  inconclusive  otherwise: a side's runs disagree by as much as the threshold, or a change at the
                threshold falls inside the spread; or a side has a single run (its process-to-process
                spread is unknown)
  failed        the candidate fails a point the baseline runs (as for time)
"""

from __future__ import annotations

import statistics

from seqbench.analysis.compare import (DEFAULT_FAIL_ON, MIN_RUNS, Comparison, PointResult, _first_error, _groups,
                                       _key_dict, check_options)
from seqbench.choices import Metric, Statistic, Verdict
from seqbench.errors import CompareError
from seqbench.results.schema import parse_samples

DEFAULT_THRESHOLD = 0.01  # counts resolve far smaller changes; 1% is a change in the work, not in its noise


def frames_metric(base, head, names: tuple[str, str] = ("baseline", "candidate")) -> str:
    """The metric both result tables hold ('time' or 'instructions'); a mixture is a CompareError."""
    seen = []
    for df, name in zip((base, head), names):
        found = set(df["metric"]) if "metric" in df else {Metric.TIME.value}
        if len(found) > 1:
            raise CompareError(f"{name} mixes metrics ({', '.join(sorted(found))}); compare files of one metric")
        seen.append(found.pop() if found else Metric.TIME.value)
    if seen[0] != seen[1]:
        raise CompareError(f"{names[0]} holds {seen[0]} and {names[1]} holds {seen[1]}: a count and a time cannot be "
                           "compared; run both sides with the same --metric")
    return seen[0]


def run_counts(rows, where: str = "") -> dict[str, tuple[float, list[float]]]:
    """run_id -> (instructions per call, the run's per-block counts) for a point's ok rows."""
    out: dict[str, tuple[float, list[float]]] = {}
    for row in rows:
        blocks = parse_samples(row.get("instructions_samples", ""))
        value = row.get("instructions")
        if not blocks or value is None or value != value:
            raise CompareError(f"{where}: an ok row of run {row['run_id']} has no instruction count "
                               "(columns instructions, instructions_samples)")
        out[str(row["run_id"])] = (float(value), blocks)
    return out


def spread(values: list[float]) -> float:
    """(max - min) / median of a side's run counts: 0 when its runs agree exactly."""
    return (max(values) - min(values)) / statistics.median(values)


def judge_counts(res: PointResult, base: list[float], head: list[float], *, threshold: float) -> PointResult:
    """Fill res (value, change, its range, spreads, verdict) from each side's per-run counts."""
    res.base_runs, res.head_runs = len(base), len(head)
    res.base_value, res.head_value = statistics.median(base), statistics.median(head)
    res.ratio = res.head_value / res.base_value
    res.ci_low, res.ci_high = min(head) / max(base), max(head) / min(base)
    res.base_spread, res.head_spread = spread(base), spread(head)
    if min(len(base), len(head)) < MIN_RUNS:
        res.verdict = Verdict.INCONCLUSIVE
        side = "baseline" if len(base) < MIN_RUNS else "candidate"
        res.note = (f"1 run in the {side}: how much one process counts differently from the next is unknown; "
                    f"needs >= {MIN_RUNS} runs a side (seqbench ab --metric instructions --runs 2)")
        return res
    up, down = 1 + threshold, 1 / (1 + threshold)
    if res.ratio >= up and res.ci_low > 1:
        res.verdict = Verdict.REGRESSION
    elif res.ratio <= down and res.ci_high < 1:
        res.verdict = Verdict.IMPROVEMENT
    elif down < res.ci_low and res.ci_high < up:
        res.verdict = Verdict.UNCHANGED
    else:
        res.verdict = Verdict.INCONCLUSIVE
        res.note = (f"runs disagree: base spread {res.base_spread:.3%}, head spread {res.head_spread:.3%}, "
                    f"so the change lies in [{res.ci_low - 1:+.3%}, {res.ci_high - 1:+.3%}] against a threshold "
                    f"of {threshold:.2%}")
    return res


def judge_point(base_rows, head_rows, res: PointResult, *, threshold: float, names: tuple[str, str]) -> PointResult:
    b_ok, h_ok = [r for r in base_rows if r["status"] == "ok"], [r for r in head_rows if r["status"] == "ok"]
    b_bad, h_bad = [r for r in base_rows if r["status"] != "ok"], [r for r in head_rows if r["status"] != "ok"]
    if len(h_bad) and not len(b_bad) or not h_ok and b_ok:
        res.verdict = Verdict.FAILED
        res.note = f"fails in {len(h_bad)} of {len(head_rows)} candidate runs: {_first_error(h_bad)}"
        return res
    if not b_ok or not h_ok:
        res.note = ("fails on both sides" if not h_ok else "fails in the baseline, runs in the candidate") + \
            f": {_first_error(b_bad)}"
        return res
    runs_b = run_counts(b_ok, f"{names[0]}: {res.name()}")
    runs_h = run_counts(h_ok, f"{names[1]}: {res.name()}")
    res.base_rounds, res.head_rounds = len(runs_b), len(runs_h)  # one round a run
    judge_counts(res, [v for v, _ in runs_b.values()], [v for v, _ in runs_h.values()], threshold=threshold)
    if len(b_bad) or len(h_bad):
        res.note = "; ".join(filter(None, [res.note, f"failed in {len(b_bad)} baseline and {len(h_bad)} candidate "
                                                     f"runs (left out): {_first_error(b_bad)}"]))
    return res


def compare_count_frames(base, head, *, threshold: float = DEFAULT_THRESHOLD, fail_on=DEFAULT_FAIL_ON,
                         allow_missing: bool = False, base_name: str = "baseline", head_name: str = "candidate",
                         **_time_options) -> Comparison:
    """Match points on the key columns and judge each on its instruction counts (module doc).

    The time comparison's options (alpha, statistic, normalize) do not apply and are ignored."""
    fail = check_options(threshold=threshold, alpha=0.01, statistic=Statistic.MIN, normalize="none", fail_on=fail_on)
    gb, gh = _groups(base), _groups(head)
    common = [k for k in gb if k in gh]
    if not common:
        raise CompareError(f"{base_name} and {head_name} have no point in common")
    results = [judge_point(gb[k], gh[k], PointResult(key=_key_dict(k), verdict=Verdict.INCONCLUSIVE),
                           threshold=threshold, names=(base_name, head_name)) for k in common]
    comp = Comparison(results, [_key_dict(k) for k in gb if k not in gh], [_key_dict(k) for k in gh if k not in gb],
                      threshold, 0.0, "none", "instructions", fail, allow_missing)
    comp.metric = Metric.INSTRUCTIONS.value
    comp.method = {"per run": "instructions per call under Callgrind, the median over the run's blocks",
                   "per side": "median over runs; spread = (max - min) / median over runs",
                   "range of the change": "[min head / max base, max head / min base] (ci_low, ci_high)",
                   "regression": "change >= 1 + threshold and the whole range above 1"}
    single = [p for p in results if p.base_runs and p.head_runs and min(p.base_runs, p.head_runs) < MIN_RUNS]
    if single:
        comp.warnings.append(f"{len(single)} point(s) have a single run on a side, so their spread is unknown and "
                             f"they stay inconclusive: run each side at least {MIN_RUNS} times")
    return comp
