"""Baseline vs candidate: a verdict per point that holds on a loaded machine and with few runs.

The unit of evidence is the RUN (one `seqbench run` process), not the round and not the sample.
Rounds of one process share that process's offset (memory layout, allocator and library state,
the core it landed on), so eight rounds from two processes are not eight independent observations;
what varies from one process to the next can only be learnt from several processes a side
(`seqbench ab --runs`, or `seqbench run --append`). So, per point:

1. round statistic: the minimum of the round's samples (`--statistic median` for the median),
   optionally divided by the reference matmul timed just before the round (`--normalize reference`);
2. run statistic: the fastest round of the run. Load from other processes only ever slows a round
   down, so the fastest round is the one least disturbed. The rule is applied to every run alike,
   whatever its side and whatever the other runs did: nothing is cut relative to a side's own
   reference, so one lucky (or unlucky) run cannot make one side look faster;
   a side of 3 or more runs leaves out a run more than SLOW_RUN (10%) slower than its median run
   (a disturbed process; drop_slow_runs), the same rule for both sides, and says so per point;
3. the runs' statistics, in logs, are compared with a two-sample t-test with pooled variance (the
   test of a nested design: rounds within runs within sides). The change is the ratio of the
   geometric means (head / base), with its 1-alpha confidence interval. With one run on a side,
   the run-to-run variance is unknown and the point is inconclusive;
4. Benjamini-Hochberg across the points of the comparison: q-values, and a point is significant
   when q <= alpha, so among the points called changed at most a share alpha is expected to be
   noise (50 points at alpha 0.01 no longer give a false alarm every other comparison);
5. minimum detectable change (MDE) per point: the slowdown it would flag with probability POWER
   (80%) if it were the only point changed, from its standard error and degrees of freedom:
   max(threshold, t_crit * se) + t_power * se, t_crit at alpha / (points tested) (BH's threshold
   for a lone discovery). "Unchanged" and "inconclusive" say how blind they were.

Verdicts, threshold t:
  regression    q <= alpha and ratio > 1 + t
  improvement   q <= alpha and ratio < 1 / (1 + t)
  unchanged     otherwise, when the CI lies inside [1/(1+t), 1+t]: any change is below the threshold
  inconclusive  otherwise (too few runs, or too noisy for this threshold)
  failed        the candidate fails the point (in any run) while the baseline does not
Points measured by the baseline but absent from the candidate also count as failed (--allow-missing
lists them instead); points only in the candidate are listed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from seqbench.analysis.stats import benjamini_hochberg, t_ppf, t_two_sided_p
from seqbench.choices import FailOn, Normalize, Statistic, Verdict, allowed, values
from seqbench.errors import CompareError, ResultsError
from seqbench.results.schema import KEY_COLUMNS, parse_samples

VERDICTS = values(Verdict)
STATISTIC = "min"  # of each round's samples: the minimum resists time-slicing by other processes
POWER = 0.8  # of the minimum detectable change
MIN_RUNS = 2  # a side needs this many runs for a verdict: one run says nothing of run-to-run noise
SLOW_RUN = 0.10  # a run this much slower than its side's median run was a disturbed process (drop_slow_runs)
DEFAULT_FAIL_ON = (FailOn.REGRESSION, FailOn.FAILED)


@dataclass
class PointResult:
    key: dict
    verdict: str
    ratio: float | None = None  # head / base of the geometric means of the run statistics (> 1: head slower)
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None  # two-sided t-test over runs
    q_value: float | None = None  # Benjamini-Hochberg across the points of the comparison
    mde: float | None = None  # minimum detectable change, relative (0.06 = 6%)
    base_value: float | None = None  # geometric mean over runs of each run's fastest round (seconds, or x reference)
    head_value: float | None = None
    base_runs: int = 0
    head_runs: int = 0
    base_rounds: int = 0
    head_rounds: int = 0
    base_dropped: int = 0  # runs left out as disturbed (drop_slow_runs); base_runs counts them
    head_dropped: int = 0
    load_mismatch: bool = False  # one side ran under a load the other did not see: no change is called
    note: str = ""
    base_spread: float | None = None  # instructions (analysis/instructions.py): (max - min) / median over runs
    head_spread: float | None = None

    def name(self) -> str:
        k = self.key
        return f"{k['kernel']} {k['mode']} B={k['batch_size']} T={k['seq_len']}"

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("ratio", "ci_low", "ci_high", "p_value", "q_value", "mde"):
            if d[k] is not None and not math.isfinite(d[k]):
                d[k] = None  # JSON has no infinity: null = unbounded / unknown
        return d


@dataclass
class Comparison:
    points: list[PointResult]
    only_base: list[dict] = field(default_factory=list)
    only_head: list[dict] = field(default_factory=list)
    threshold: float = 0.05
    alpha: float = 0.01
    normalize: str = "none"
    statistic: str = STATISTIC
    fail_on: tuple[str, ...] = DEFAULT_FAIL_ON
    allow_missing: bool = False  # points only in the baseline are listed, not failed
    warnings: list[str] = field(default_factory=list)  # accepted mismatches, runs too few for a verdict
    metric: str = "time"  # time (this module) | instructions (analysis/instructions.py)
    method: dict = field(default_factory=dict)  # how another metric's verdicts were reached (JSON "method")
    method_lines: list[str] = field(default_factory=list)  # how it decided, when not the fixed-runs test (--runs auto)
    sequential: dict = field(default_factory=dict)  # --runs auto: design, each point's looks, variance components

    def counts(self) -> dict[str, int]:
        return {v: sum(p.verdict == v for p in self.points) for v in VERDICTS}

    @property
    def missing(self) -> list[dict]:
        """Baseline points the candidate lacks, when they count as failures."""
        return [] if self.allow_missing else self.only_base

    def failing(self) -> dict[str, int]:
        """What makes this comparison exit 1, by --fail-on category."""
        c = self.counts()
        out = {f: c[f] for f in self.fail_on if c.get(f)}
        if FailOn.FAILED in self.fail_on and self.missing:
            out["missing"] = len(self.missing)
        return out

    @property
    def exit_code(self) -> int:
        """1 if anything named by --fail-on happened, else 0 (never 1 for anything else)."""
        return 1 if self.failing() else 0

    def runs_per_side(self) -> tuple[set[int], set[int]]:
        compared = [p for p in self.points if p.base_runs and p.head_runs]
        return {p.base_runs for p in compared}, {p.head_runs for p in compared}

    def to_json(self) -> dict:
        return {
            "metric": self.metric,
            "method": {"sequential": self.method_lines} if self.method_lines else self.method or {"round": f"{self.statistic} of the round's samples" + (", / reference" if self.normalize != "none" else ""),
                       "run": "fastest round of the run", "across runs": "geometric mean; two-sample t-test "
                       "(pooled variance) on log run statistics", "multiplicity": "Benjamini-Hochberg q-values",
                       "mde_power": POWER},
            "threshold": self.threshold,
            "alpha": self.alpha,
            "normalize": self.normalize,
            "statistic": self.statistic,
            "fail_on": list(self.fail_on),
            "counts": self.counts(),
            "exit_code": self.exit_code,
            "failing": self.failing(),
            "warnings": self.warnings,
            "points": [p.to_json() for p in self.points],
            "only_in_baseline": self.only_base,
            "only_in_candidate": self.only_head,
            "missing_counts_as_failed": not self.allow_missing,
            **({"sequential": self.sequential} if self.sequential else {}),
        }


# --- one point: runs -> test ----------------------------------------------------------------------


def run_statistics(rows, *, normalize: str = "none", statistic: str = STATISTIC, where: str = "") -> dict[str, list[float]]:
    """run_id -> the round statistics (seconds, or x reference) of a point's ok rows, in round order."""
    reduce = statistics.median if statistic == Statistic.MEDIAN else min
    runs: dict[str, list[float]] = {}
    for row in _records(rows):
        samples = parse_samples(row["samples_s"])
        rounds_text = row.get("sample_rounds", "")
        idx = ([int(r) for r in str(rounds_text).split()] if isinstance(rounds_text, str) and rounds_text.strip()
               else [1] * len(samples))
        if len(idx) != len(samples):
            raise CompareError(f"{where}: sample_rounds has {len(idx)} entries but samples_s has {len(samples)}")
        if not samples:
            raise CompareError(f"{where}: an ok row of run {row['run_id']} has no samples (column samples_s)")
        ref = []
        if normalize == Normalize.REFERENCE:
            ref = parse_samples(row.get("ref_s", "")) if isinstance(row.get("ref_s", ""), str) else []
            if not ref:
                raise CompareError(f"{where}: --normalize reference needs reference times (column ref_s); record both "
                                   "sides with `seqbench run --reference`, or drop --normalize")
        out = runs.setdefault(str(row["run_id"]), [])
        for r in sorted(set(idx)):
            value = reduce([s for s, i in zip(samples, idx) if i == r])
            if ref:
                if not 1 <= r <= len(ref):
                    raise CompareError(f"{where}: round {r} has no reference time in ref_s")
                value /= ref[r - 1]
            out.append(value)
    return runs


def run_value(rounds: list[float]) -> float:
    """A run's statistic: its fastest round (the same rule for every run of either side)."""
    return min(rounds)


def drop_slow_runs(values: list[float]) -> tuple[list[float], int]:
    """The runs to test and how many were left out. With 3 or more runs, a run more than SLOW_RUN
    slower than its side's median run was a disturbed process (in `make bench-ci` whole runs came out
    30-50% slow, their fastest round included, a few times in a hundred, and turned clear 10%
    regressions into "inconclusive"); it is left out if MIN_RUNS runs remain. The same rule for both
    sides, each against its own median run, which one lucky fast run barely moves (the trap of a cut
    relative to a side's fastest round). Only slow runs are dropped: load never makes code faster."""
    if len(values) < 3:
        return list(values), 0
    mid = statistics.median(values)
    kept = [v for v in values if v <= mid * (1 + SLOW_RUN)]
    return (kept, len(values) - len(kept)) if len(kept) >= MIN_RUNS else (list(values), 0)


def t_test_runs(base: list[float], head: list[float], *, alpha: float) -> dict:
    """Two-sample t-test (pooled variance) on log run statistics: ratio, CI, p, standard error, df."""
    a, b = [math.log(x) for x in base], [math.log(x) for x in head]
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    out = {"ratio": math.exp(mb - ma)}
    df = len(a) + len(b) - 2
    if min(len(a), len(b)) < MIN_RUNS:
        return out
    ss = sum((x - ma) ** 2 for x in a) + sum((x - mb) ** 2 for x in b)
    se = math.sqrt(ss / df * (1 / len(a) + 1 / len(b)))
    diff = mb - ma
    if se == 0.0:
        t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        t = diff / se
    half = t_ppf(1 - alpha / 2, df) * se
    out.update(p_value=t_two_sided_p(t, df), ci_low=math.exp(diff - half), ci_high=math.exp(diff + half), se=se, df=df)
    return out


def min_detectable(se: float, df: int, *, threshold: float, alpha: float, tested: int, power: float = POWER) -> float:
    """The slowdown found with probability `power` if it were the only change among `tested` points."""
    crit = t_ppf(1 - alpha / (2 * max(1, tested)), df) * se
    return math.expm1(max(math.log1p(threshold), crit) + t_ppf(power, df) * se)


def split_by_load(runs_b: dict, runs_h: dict, loaded) -> tuple[dict, dict, bool, str]:
    """Runs measured under load (`ab` records each run's: orchestration.ab.LoadMeter) are compared only with
    runs measured alike. Load slows a whole run down, every point of it, so a side whose runs saw a
    load the other side did not is not evidence of a change (once seen: a +37% "regression" on identical
    code whose head runs landed in a busier stretch). When both sides have MIN_RUNS runs that ran
    quiet, the loaded runs are left out (the load is measured apart from the timings, so leaving them
    out biases neither side); else, when the sides' loaded runs differ by more than one, no change may
    be called (load mismatch). Returns (base runs, head runs, a change may be called, note)."""
    lb, lh = [r for r in runs_b if r in loaded], [r for r in runs_h if r in loaded]
    if not lb and not lh or len(lb) == len(runs_b) and len(lh) == len(runs_h):
        return runs_b, runs_h, True, ""  # measured alike: all quiet or all loaded
    qb = {r: v for r, v in runs_b.items() if r not in loaded}
    qh = {r: v for r, v in runs_h.items() if r not in loaded}
    if len(qb) >= MIN_RUNS and len(qh) >= MIN_RUNS:
        return qb, qh, True, f"left out {len(lb) + len(lh)} run(s) measured under load ({len(lb)} base, {len(lh)} head)"
    if abs(len(lb) - len(lh)) <= 1:
        return runs_b, runs_h, True, ""
    return runs_b, runs_h, False, (f"load mismatch: {len(lb)} of {len(runs_b)} base and {len(lh)} of {len(runs_h)} "
                                   "head runs ran under load (their load records): no change is called; add runs")


def decide(p: PointResult, *, threshold: float, alpha: float) -> str:
    if p.q_value is None:
        return Verdict.INCONCLUSIVE
    if p.load_mismatch and not (p.ci_low >= 1 / (1 + threshold) and p.ci_high <= 1 + threshold):
        return Verdict.INCONCLUSIVE
    if p.q_value <= alpha and p.ratio > 1 + threshold:
        return Verdict.REGRESSION
    if p.q_value <= alpha and p.ratio < 1 / (1 + threshold):
        return Verdict.IMPROVEMENT
    if p.ci_low >= 1 / (1 + threshold) and p.ci_high <= 1 + threshold:
        return Verdict.UNCHANGED
    return Verdict.INCONCLUSIVE


# --- from result tables to verdicts ---------------------------------------------------------------


def _key_dict(key: tuple) -> dict:
    d = dict(zip(KEY_COLUMNS, key))
    for col in ("batch_size", "seq_len", "hidden_size", "num_heads"):
        d[col] = int(d[col])
    d["causal"] = d["causal"] in (True, 1, "true", "True")  # typed by the reader; text in hand-made frames
    return d


def _groups(df) -> dict[tuple, list[dict]]:
    """Point key -> its rows as plain dicts, grouped in one pass: a DataFrame per point (boolean masks,
    iterrows) cost ~10 ms a point, 20 minutes for 100,000 points."""
    groups: dict[tuple, list[dict]] = {}
    cols = list(KEY_COLUMNS)
    for rec in records(df):
        groups.setdefault(tuple(rec[c] for c in cols), []).append(rec)
    return groups


def records(df) -> list[dict]:
    """df.to_dict("records") with the same plain Python values, ~5x faster: one tolist() per column
    (to_dict boxes cell by cell: 5 s of a 20,000-row compare)."""
    import pandas as pd

    def column(c):
        col = df[c]
        if isinstance(col.dtype, pd.api.extensions.ExtensionDtype) and col.hasnans:  # pd.NA -> None, as to_dict
            return [None if v is pd.NA else v for v in col.tolist()]
        return col.tolist()

    names = list(df.columns)
    return [dict(zip(names, vals)) for vals in zip(*(column(c) for c in names))]


def _records(rows) -> list[dict]:
    """A point's rows as dicts, from a DataFrame (tests, notebooks) or already as dicts (_groups)."""
    return records(rows) if hasattr(rows, "to_dict") else list(rows)


def _first_error(rows) -> str:
    errors = [str(r.get("error")) for r in rows if isinstance(r.get("error"), str) and r.get("error").strip()]
    return errors[0] if errors else "no message"


def check_options(*, threshold: float, alpha: float, statistic: str, normalize: str, fail_on) -> tuple[str, ...]:
    if not 0 < threshold < 1:
        raise CompareError(f"--threshold {threshold} out of range; allowed: 0 < threshold < 1 (0.05 = 5%)")
    if not 0 < alpha < 0.5:
        raise CompareError(f"--alpha {alpha} out of range; allowed: 0 < alpha < 0.5")
    if statistic not in values(Statistic):
        raise CompareError(f"--statistic {statistic!r} unknown; allowed: {allowed(Statistic)}")
    if normalize not in values(Normalize):
        raise CompareError(f"--normalize {normalize!r} unknown; allowed: {allowed(Normalize)}")
    fail = tuple(dict.fromkeys(str(f).strip() for f in fail_on))
    bad = [f for f in fail if f not in values(FailOn)]
    if bad or not fail:
        raise CompareError(f"--fail-on {','.join(fail)!r}: allowed a comma-separated list of {allowed(FailOn)}")
    return fail


def judge(base_rows, head_rows, res: PointResult, *, normalize: str, statistic: str, alpha: float,
          names: tuple[str, str], loaded=frozenset()) -> dict:
    """Fill res from one point's rows of both sides; returns the test's se/df (empty if untested)."""
    base_rows, head_rows = _records(base_rows), _records(head_rows)
    b_ok, h_ok = [r for r in base_rows if r["status"] == "ok"], [r for r in head_rows if r["status"] == "ok"]
    b_bad, h_bad = [r for r in base_rows if r["status"] != "ok"], [r for r in head_rows if r["status"] != "ok"]
    if len(h_bad) and not len(b_bad) or not h_ok and b_ok:
        res.verdict = Verdict.FAILED
        res.note = f"fails in {len(h_bad)} of {len(head_rows)} candidate runs: {_first_error(h_bad)}"
        return {}
    if not b_ok or not h_ok:
        res.note = ("fails on both sides" if not h_ok else "fails in the baseline, runs in the candidate") + \
            f": {_first_error(b_bad)}"
        return {}
    where = res.name()
    runs_b = run_statistics(b_ok, normalize=normalize, statistic=statistic, where=f"{names[0]}: {where}")
    runs_h = run_statistics(h_ok, normalize=normalize, statistic=statistic, where=f"{names[1]}: {where}")
    res.base_rounds, res.head_rounds = sum(map(len, runs_b.values())), sum(map(len, runs_h.values()))
    if len(b_bad) or len(h_bad):
        res.note = f"failed in {len(b_bad)} baseline and {len(h_bad)} candidate runs (left out): {_first_error(b_bad)}"
    runs_b, runs_h, callable_, why = split_by_load(runs_b, runs_h, loaded)
    res.load_mismatch = not callable_
    res.note = "; ".join(filter(None, [res.note, why]))
    return judge_runs(res, [run_value(r) for r in runs_b.values()], [run_value(r) for r in runs_h.values()],
                      alpha=alpha, names=names)


def judge_runs(res: PointResult, base: list[float], head: list[float], *, alpha: float,
               names: tuple[str, str] = ("baseline", "candidate")) -> dict:
    """Fill res from the run statistics of both sides; returns the test's se/df (empty if untested)."""
    res.base_runs, res.head_runs = len(base), len(head)
    (base, res.base_dropped), (head, res.head_dropped) = drop_slow_runs(base), drop_slow_runs(head)
    if res.base_dropped or res.head_dropped:
        left = " and ".join(f"{n} {side} run{'s' if n > 1 else ''}" for n, side in
                            ((res.base_dropped, "baseline"), (res.head_dropped, "candidate")) if n)
        res.note = "; ".join(filter(None, [res.note, f"left out {left} over {SLOW_RUN:.0%} slower than its side's "
                                                      "median run (a disturbed process)"]))
    res.base_value = math.exp(statistics.fmean(math.log(x) for x in base))
    res.head_value = math.exp(statistics.fmean(math.log(x) for x in head))
    test = t_test_runs(base, head, alpha=alpha)
    res.ratio = test["ratio"]
    if "p_value" not in test:
        side = names[0] if len(base) < MIN_RUNS else names[1]
        res.note = (f"1 run in {side}: how much one process differs from the next is unknown; "
                    f"needs >= {MIN_RUNS} runs a side (seqbench ab --runs)")
        return {}
    res.p_value, res.ci_low, res.ci_high = test["p_value"], test["ci_low"], test["ci_high"]
    return {"se": test["se"], "df": test["df"]}


def finish(results: list[PointResult], tests: list[dict], *, threshold: float, alpha: float) -> None:
    """Across the points: Benjamini-Hochberg q-values, each point's MDE, then its verdict."""
    tested = [i for i, t in enumerate(tests) if t]
    for i, q in zip(tested, benjamini_hochberg([results[i].p_value for i in tested])):
        res = results[i]
        res.q_value = q
        res.mde = min_detectable(tests[i]["se"], tests[i]["df"], threshold=threshold, alpha=alpha, tested=len(tested))
        res.verdict = decide(res, threshold=threshold, alpha=alpha)


def compare_frames(base, head, *, threshold: float = 0.05, alpha: float = 0.01, normalize: str = "none",
                   statistic: str = STATISTIC, fail_on=DEFAULT_FAIL_ON, allow_missing: bool = False,
                   base_name: str = "baseline", head_name: str = "candidate", loaded=frozenset()) -> Comparison:
    """Match points on KEY_COLUMNS, test each over runs, adjust across points, decide. loaded: the
    run_ids measured under load (split_by_load)."""
    fail = check_options(threshold=threshold, alpha=alpha, statistic=statistic, normalize=normalize, fail_on=fail_on)
    gb, gh = _groups(base), _groups(head)
    common = [k for k in gb if k in gh]
    if not common:
        raise CompareError(f"{base_name} and {head_name} have no point in common (matched on {', '.join(KEY_COLUMNS)})")
    results, tests = [], []
    for key in common:
        res = PointResult(key=_key_dict(key), verdict=Verdict.INCONCLUSIVE)
        tests.append(judge(gb[key], gh[key], res, normalize=normalize, statistic=statistic, alpha=alpha,
                           names=(base_name, head_name), loaded=loaded))
        results.append(res)
    finish(results, tests, threshold=threshold, alpha=alpha)
    comp = Comparison(results, [_key_dict(k) for k in gb if k not in gh], [_key_dict(k) for k in gh if k not in gb],
                      threshold, alpha, normalize, statistic, fail, allow_missing)
    shared = sorted(set(base["run_id"]) & set(head["run_id"])) if "run_id" in base and "run_id" in head else []
    if shared:  # one measurement on both sides: any verdict is an artefact (a file compared with itself?)
        same = set(base["run_id"]) == set(head["run_id"])
        comp.warnings.append(
            (f"both sides are the same runs ({len(shared)}: {', '.join(map(str, shared[:2]))}"
             f"{', ...' if len(shared) > 2 else ''}): a file compared with itself (or a copy) says nothing about a change"
             if same else f"{len(shared)} run(s) appear on both sides ({', '.join(map(str, shared[:2]))}): the sides "
             "are not independent measurements") + "; compare the baseline's runs with the candidate's")
    unmeasured = [p for p in results if not p.base_rounds or not p.head_rounds]
    if unmeasured and len(unmeasured) == len(results):
        comp.warnings.append(f"every point in common ({len(results)}) failed on at least one side, so nothing was "
                             "timed on both sides and nothing is compared; their errors are listed per point")
    few = [p for p in results if p.base_runs and p.head_runs and min(p.base_runs, p.head_runs) < MIN_RUNS]
    if few:
        comp.warnings.append(
            f"{len(few)} point(s) have a single run on a side, so no verdict can reach alpha {alpha:g}: rounds of one "
            f"process are not independent; run each side several times (seqbench ab --runs 4, or seqbench run --append)")
    return comp


def loaded_in_sidecar(csv_path: str | Path) -> set[str]:
    """run_ids of the runs whose own load record (the sidecar's "load", one per run appended: `seqbench
    run` watches the machine while it runs) says they shared their cores with other work."""
    from seqbench.measure.load import disturbances
    from seqbench.results.reader import read_metadata

    try:
        meta = read_metadata(csv_path)
    except ResultsError:  # an unreadable sidecar: no load record, nothing to leave out
        return set()
    runs = [*meta.get("previous_runs", []), meta]
    return {str(r["run_id"]) for r in runs if r.get("run_id") and r.get("load")
            and disturbances(r["load"], int((r.get("config") or {}).get("threads") or 1))}


def compare_files(base_path: str | Path, head_path: str | Path, *, allow_mismatch=(), loaded=(), **kw) -> Comparison:
    """compare_frames on two results CSVs, after checking that they were measured alike (mismatch).
    Runs measured under load (their sidecars' load records, and `loaded`: run_ids from ab's own record)
    are compared only with runs measured alike (split_by_load)."""
    from seqbench.analysis.mismatch import check_comparable
    from seqbench.results.reader import read_results

    base, head = read_results(base_path), read_results(head_path)
    accepted = check_comparable(base_path, head_path, base, head, allow=allow_mismatch)
    loaded = set(loaded) | loaded_in_sidecar(base_path) | loaded_in_sidecar(head_path)
    comp = compare_frames(base, head, base_name=str(base_path), head_name=str(head_path), loaded=loaded, **kw)
    comp.warnings[:0] = accepted
    return comp
