"""Baseline vs candidate: a verdict per point, robust to the noise of shared machines.

The unit of evidence is the ROUND, not the sample. Samples inside one round are not independent: the
machine's slow phases last whole blocks of samples (../shared/reference/noise), so a test over raw
samples would call a slow phase a regression. Each round of each point (one `--rounds` slice of one
run; runs appended with `--append` add rounds) is reduced to the minimum (default) or the median
of its samples, optionally divided by the reference matmul timed just before it
(`--normalize reference`); rounds disturbed by other load are dropped (drop_disturbed). Then:

- ratio: the Hodges-Lehmann estimate of head/base, the median of all head-round / base-round ratios
  (a robust statistic: one wild round cannot move it much);
- p: two-sided Mann-Whitney U test on the round statistics (exact null distribution, as asv and
  google-benchmark's compare.py use the U test); rank-based, so no normality is assumed;
- CI: the distribution-free confidence interval of that ratio that goes with the U test (Lehmann);
  with too few rounds it is unbounded, and the verdict says so;
- noise floor: the spread between rounds of the same side, the larger of the two (1.4826 * MAD of
  the log round statistics: a robust coefficient of variation). No change smaller than one round's
  typical wobble is called a regression or an improvement, however significant the test says it
  is: the test assumes rounds are independent, and rounds of one process are not quite.

Verdicts, for threshold t and effective threshold e = max(t, noise floor):
  regression    p < alpha and ratio > 1 + e
  improvement   p < alpha and ratio < 1 / (1 + e)
  unchanged     otherwise, when the CI lies inside [1/(1+t), 1+t]: any change is below the threshold
  inconclusive  otherwise: the noise is too large to decide at this threshold (more rounds help)
  failed        the baseline ran the point but the candidate has no successful row for it
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from seqbench.choices import Normalize, Statistic, Verdict, allowed, values
from seqbench.errors import CompareError
from seqbench.results.schema import KEY_COLUMNS, parse_samples

VERDICTS = values(Verdict)
NORMALIZE = values(Normalize)
STATISTICS = values(Statistic)  # of each round's samples
STATISTIC = "min"  # default: the minimum resists time-slicing by other processes (benchmarks/aa_test.py)
EXACT_MAX_PAIRS = 2500  # exact U distribution up to n*m pairs; normal approximation beyond
MAD_TO_SD = 1.4826
SLOW_CUT = 0.15  # see drop_disturbed; chosen with benchmarks/aa_test.py


@dataclass
class PointResult:
    key: dict
    verdict: str
    ratio: float | None = None  # head / base (> 1: head slower)
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    noise_floor: float | None = None  # relative, e.g. 0.03 = 3%
    base_median_s: float | None = None  # median of all pooled samples, not normalized
    head_median_s: float | None = None
    base_rounds: int = 0  # rounds used, after dropping disturbed ones
    head_rounds: int = 0
    dropped_rounds: int = 0  # both sides together
    note: str = ""

    def name(self) -> str:
        k = self.key
        return f"{k['kernel']} {k['mode']} B={k['batch_size']} T={k['seq_len']}"

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("ratio", "ci_low", "ci_high", "p_value", "noise_floor"):
            if d[k] is not None and (not math.isfinite(d[k]) or (k == "ci_low" and d[k] <= 0)):
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
    slow_cut: float | None = SLOW_CUT
    statistic: str = STATISTIC

    def counts(self) -> dict[str, int]:
        return {v: sum(p.verdict == v for p in self.points) for v in VERDICTS}

    @property
    def exit_code(self) -> int:
        """1 if any point regressed or broke in the candidate, else 0."""
        return 1 if any(p.verdict in (Verdict.REGRESSION, Verdict.FAILED) for p in self.points) else 0

    def to_json(self) -> dict:
        return {
            "threshold": self.threshold,
            "alpha": self.alpha,
            "normalize": self.normalize,
            "slow_cut": self.slow_cut,
            "statistic": self.statistic,
            "counts": self.counts(),
            "exit_code": self.exit_code,
            "points": [p.to_json() for p in self.points],
            "only_in_baseline": self.only_base,
            "only_in_candidate": self.only_head,
        }


# --- statistics on round statistics (pure functions) -------------------------------------------


@lru_cache(maxsize=256)
def u_null_counts(n: int, m: int) -> tuple[int, ...]:
    """Number of arrangements giving U = 0..n*m under H0 (no ties): coefficients of the Gaussian
    binomial [n+m choose n]_q = prod_{i=1..n} (1 - q^(m+i)) / (1 - q^i), built one factor at a time
    (each partial product is itself a polynomial, so the division by (1 - q^i) is exact)."""
    poly = [1]
    for i in range(1, n + 1):
        deg = i * m
        prod = poly + [0] * (deg + 1 - len(poly))
        for k in range(len(poly) - 1, -1, -1):  # multiply by (1 - q^(m+i)), truncated at deg
            if k + m + i <= deg:
                prod[k + m + i] -= poly[k]
        for k in range(i, deg + 1):  # divide by (1 - q^i)
            prod[k] += prod[k - i]
        poly = prod
    return tuple(poly)


def _u_cdf(n: int, m: int):
    """P(U <= u) as a function, exact for small samples, normal (continuity-corrected) otherwise."""
    if n * m <= EXACT_MAX_PAIRS:
        counts = u_null_counts(n, m)
        total = sum(counts)
        cum, acc = [], 0
        for c in counts:
            acc += c
            cum.append(acc / total)

        def cdf(u: float) -> float:
            k = math.floor(u + 1e-9)
            return 0.0 if k < 0 else cum[min(k, n * m)]

        return cdf
    mean, sd = n * m / 2, math.sqrt(n * m * (n + m + 1) / 12)
    dist = statistics.NormalDist()
    return lambda u: dist.cdf((math.floor(u + 1e-9) + 0.5 - mean) / sd)


def mann_whitney(a: list[float], b: list[float]) -> tuple[float, float]:
    """(U, two-sided p) for b vs a; U counts pairs with b > a (ties count one half)."""
    n, m = len(a), len(b)
    u = sum((y > x) + 0.5 * (y == x) for x in a for y in b)
    cdf = _u_cdf(n, m)
    low = cdf(math.ceil(u))  # P(U <= u), rounded up where ties make u a half-integer: conservative
    high = 1.0 - cdf(math.floor(u) - 1)  # P(U >= u), by symmetry of the null
    return u, min(1.0, 2 * min(low, high))


def shift_interval(a: list[float], b: list[float], alpha: float) -> tuple[float, float, float]:
    """Hodges-Lehmann shift of b over a and its 1-alpha distribution-free interval (Lehmann):
    the k-th smallest and k-th largest of the n*m differences b_j - a_i, with k from the U null."""
    diffs = sorted(y - x for x in a for y in b)
    est = statistics.median(diffs)
    n, m = len(a), len(b)
    cdf = _u_cdf(n, m)
    k = 0  # largest k with P(U <= k - 1) <= alpha / 2
    while k < n * m and cdf(k) <= alpha / 2:
        k += 1
    if k == 0:
        return est, -math.inf, math.inf
    return est, diffs[k - 1], diffs[n * m - k]


def robust_spread(logs: list[float]) -> float:
    """1.4826 * MAD: the standard deviation of a normal sample, unmoved by one wild round."""
    if len(logs) < 2:
        return math.inf
    med = statistics.median(logs)
    return MAD_TO_SD * statistics.median(abs(x - med) for x in logs)


def drop_disturbed(stats: list[float], cut: float | None) -> list[float]:
    """Rounds slower than (1 + cut) x the side's second-fastest round, dropped as disturbed.

    On a shared machine noise is one-sided: another process sharing the core makes a whole round
    slower (here often exactly 2x), never faster. Such rounds say nothing about the code, and if
    they hit one side more often than the other they fake a shift. The reference is a fast round
    because more than half the rounds can be disturbed (measured: up to ~50% on a busy 2-core
    machine); the second-fastest, not the fastest, so one lucky round cannot set it. It is the
    side's own, so a real slowdown of the candidate moves its reference too and is not dropped.
    """
    limit = disturbed_limit(stats, cut)
    return [x for x in stats if x <= limit]


def disturbed_limit(stats: list[float], cut: float | None) -> float:
    """The slowest round statistic drop_disturbed keeps."""
    if cut is None or len(stats) < 2:
        return math.inf
    return sorted(stats)[1 if len(stats) >= 4 else 0] * (1 + cut)


def verdict_for(base: list[float], head: list[float], *, threshold: float, alpha: float) -> dict:
    """Everything compare says about one point from its per-round statistics (seconds, > 0)."""
    a, b = [math.log(x) for x in base], [math.log(x) for x in head]
    _, p = mann_whitney(a, b)
    shift, lo, hi = shift_interval(a, b, alpha)
    floor = math.expm1(max(robust_spread(a), robust_spread(b)))
    ratio = math.exp(shift)
    eff = max(threshold, floor)
    if p < alpha and ratio > 1 + eff:
        verdict = Verdict.REGRESSION
    elif p < alpha and ratio < 1 / (1 + eff):
        verdict = Verdict.IMPROVEMENT
    elif math.exp(lo) >= 1 / (1 + threshold) and math.exp(hi) <= 1 + threshold:
        verdict = Verdict.UNCHANGED
    else:
        verdict = Verdict.INCONCLUSIVE
    return {
        "verdict": verdict,
        "ratio": ratio,
        "ci_low": math.exp(lo),
        "ci_high": math.exp(hi),
        "p_value": p,
        "noise_floor": floor,
    }


def judge_point(base: list[tuple[str, float]], head: list[tuple[str, float]], *, threshold: float, alpha: float,
                slow_cut: float | None) -> dict:
    """Verdict for one point from its (run_id, round statistic) pairs: drop disturbed rounds, test.

    When a side ran in several runs (processes) but its undisturbed rounds all come from one of
    them, its evidence says nothing about how much a process differs from the next, which can be
    as large as the changes we look for; such a point is inconclusive, whatever the test says.
    """
    out: dict = {"note": ""}
    kept = {}
    for side, rounds in (("baseline", base), ("candidate", head)):
        limit = disturbed_limit([x for _, x in rounds], slow_cut)
        kept[side] = [(run, x) for run, x in rounds if x <= limit]
    out["dropped_rounds"] = len(base) + len(head) - len(kept["baseline"]) - len(kept["candidate"])
    out["base_rounds"], out["head_rounds"] = len(kept["baseline"]), len(kept["candidate"])
    out.update(verdict_for([x for _, x in kept["baseline"]], [x for _, x in kept["candidate"]], threshold=threshold, alpha=alpha))
    single = [side for side, rounds in (("baseline", base), ("candidate", head))
              if len({r for r, _ in rounds}) > 1 and len({r for r, _ in kept[side]}) == 1]
    if single:
        out["verdict"] = Verdict.INCONCLUSIVE
        out["note"] = f"the undisturbed rounds of the {single[0]} all come from one run; more runs needed"
    elif out["verdict"] == Verdict.INCONCLUSIVE and min(out["base_rounds"], out["head_rounds"]) < 4:
        out["note"] = "too few undisturbed rounds to be significant; use more --rounds / --append runs (>= 4 each)"
    elif len({r for r, _ in base}) == 1 or len({r for r, _ in head}) == 1:
        out["note"] = "one run on a side: noise between processes is not sampled"
    return out


# --- from result tables to round statistics ------------------------------------------------------


def round_statistics(rows, *, normalize: str = "none", statistic: str = STATISTIC, where: str = "") -> list[float]:
    """One statistic per round of a point's ok rows: min (or median) of the round's samples (/ reference)."""
    return [stat for _, stat in rounds_by_run(rows, normalize=normalize, statistic=statistic, where=where)]


def rounds_by_run(rows, *, normalize: str = "none", statistic: str = STATISTIC, where: str = "") -> list[tuple[str, float]]:
    """(run_id, statistic) for every round of a point's ok rows."""
    reduce = statistics.median if statistic == "median" else min
    stats = []
    for _, row in rows.iterrows():
        samples = parse_samples(row["samples_s"])
        rounds_text = row.get("sample_rounds", "")
        idx = [int(r) for r in str(rounds_text).split()] if isinstance(rounds_text, str) and rounds_text.strip() else [1] * len(samples)
        if len(idx) != len(samples):
            raise CompareError(f"{where}: sample_rounds has {len(idx)} entries but samples_s has {len(samples)}")
        ref = []
        if normalize == Normalize.REFERENCE:
            ref = parse_samples(row.get("ref_s", "")) if isinstance(row.get("ref_s", ""), str) else []
            if not ref:
                raise CompareError(
                    f"{where}: --normalize reference needs reference times (column ref_s); "
                    "record both runs with `seqbench run --reference`, or drop --normalize"
                )
        for r in sorted(set(idx)):
            med = reduce([s for s, i in zip(samples, idx) if i == r])
            if ref:
                if not 1 <= r <= len(ref):
                    raise CompareError(f"{where}: round {r} has no reference time in ref_s")
                med /= ref[r - 1]
            stats.append((row["run_id"], med))
    return stats


def _key_dict(key: tuple) -> dict:
    d = dict(zip(KEY_COLUMNS, key))
    for col in ("batch_size", "seq_len", "hidden_size", "num_heads"):
        d[col] = int(d[col])
    d["causal"] = bool(d["causal"])
    return d


def _groups(df) -> dict[tuple, object]:
    return {tuple(k): g for k, g in df.groupby(list(KEY_COLUMNS), sort=False, dropna=False)}


def compare_frames(base, head, *, threshold: float = 0.05, alpha: float = 0.01, normalize: str = "none",
                   slow_cut: float | None = SLOW_CUT, statistic: str = STATISTIC,
                   base_name: str = "baseline", head_name: str = "candidate") -> Comparison:
    """Match points on KEY_COLUMNS and judge each; points on one side only are listed, not dropped."""
    if not 0 < threshold < 1:
        raise CompareError(f"--threshold {threshold} out of range; allowed: 0 < threshold < 1 (0.05 = 5%)")
    if not 0 < alpha < 0.5:
        raise CompareError(f"--alpha {alpha} out of range; allowed: 0 < alpha < 0.5")
    if slow_cut is not None and not slow_cut > 0:
        raise CompareError(f"--slow-cut {slow_cut} out of range; allowed: a positive fraction (0.15 = 15%), or off")
    if statistic not in STATISTICS:
        raise CompareError(f"--statistic {statistic!r} unknown; allowed: {allowed(Statistic)}")
    if normalize not in NORMALIZE:
        raise CompareError(f"--normalize {normalize!r} unknown; allowed: {allowed(Normalize)}")
    gb, gh = _groups(base), _groups(head)
    common = [k for k in gb if k in gh]
    if not common:
        raise CompareError(f"{base_name} and {head_name} have no point in common (matched on {', '.join(KEY_COLUMNS)})")
    results = []
    for key in common:
        kd = _key_dict(key)
        res = PointResult(key=kd, verdict=Verdict.INCONCLUSIVE)
        b_ok = gb[key][gb[key]["status"] == "ok"]
        h_ok = gh[key][gh[key]["status"] == "ok"]
        if b_ok.empty or h_ok.empty:
            res.verdict = Verdict.FAILED if h_ok.empty and not b_ok.empty else Verdict.INCONCLUSIVE
            side = "either file" if h_ok.empty and b_ok.empty else (head_name if h_ok.empty else base_name)
            res.note = f"no successful run in {side}"
            results.append(res)
            continue
        name = res.name()
        base_rounds = rounds_by_run(b_ok, normalize=normalize, statistic=statistic, where=f"{base_name}: {name}")
        head_rounds = rounds_by_run(h_ok, normalize=normalize, statistic=statistic, where=f"{head_name}: {name}")
        res.base_median_s = statistics.median(s for t in b_ok["samples_s"] for s in parse_samples(t))
        res.head_median_s = statistics.median(s for t in h_ok["samples_s"] for s in parse_samples(t))
        for k, val in judge_point(base_rounds, head_rounds, threshold=threshold, alpha=alpha, slow_cut=slow_cut).items():
            setattr(res, k, val)
        results.append(res)
    only_b = [_key_dict(k) for k in gb if k not in gh]
    only_h = [_key_dict(k) for k in gh if k not in gb]
    return Comparison(results, only_b, only_h, threshold, alpha, normalize, slow_cut, statistic)


def compare_files(base_path: str | Path, head_path: str | Path, **kw) -> Comparison:
    from seqbench.results.reader import read_results

    base, head = read_results(base_path), read_results(head_path)
    return compare_frames(base, head, base_name=str(base_path), head_name=str(head_path), **kw)
