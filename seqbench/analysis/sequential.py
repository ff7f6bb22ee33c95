"""When `seqbench ab --runs auto` may stop: a group-sequential test over runs, false alarms held at alpha.

`ab --runs auto` adds one run a side per pass (ABBA order) and looks at every undecided point after
each pass. With n runs a side, the change d = mean log(head run) - mean log(base run), its standard
error se (two-sample t, pooled, df = runs - 2: the run is the unit, as in compare) and t quantiles give:

  unchanged    the 1 - 2*beta interval of the change lies within [1/(1+t), 1+t]   (from 2 runs a side)
  regression   the 1 - alpha_look interval lies above 1, and the point is not unchanged  (from 3 runs)
  improvement  likewise below 1
A decided point is final and is not measured again; a point still open after --max-runs (or when the
--budget is spent) is inconclusive.

Why stopping on the data does not inflate false alarms. Peeking at a fixed-sample test after every
pass and stopping at the first "significant" look inflates its error several times over. Here each
(point, look) test gets an equal share of alpha, alpha_look = alpha / (points x looks that may call a
change), and a false alarm anywhere needs at least one of those tests to err, so by the union bound
P(any false regression or improvement, over every point and every look) <= alpha, whatever the data
make the procedure do (alpha spending with a Bonferroni bound over a fixed list of looks: the
looks are fixed before any data, and stopping early only leaves some unused). Exact group-sequential
boundaries (Pocock, O'Brien-Fleming) are less conservative, but they assume a normal statistic with
known information; with 2-12 runs a side the t distribution's own tails dominate and the union
bound's cost is small (log(looks) in the tail). An always-valid alternative was rejected for this
reason: the scale-invariant t-test e-value (a Bayes factor with a right-Haar prior on the variance,
Perez-Ortiz, Lardy, de Heide & Grunwald 2022) is capped at (1 + n g)^(df/2), which with 3-4 runs a
side cannot reach 1/alpha_point at all, so it would need twice the runs for the same changes.
"Unchanged" is a futility boundary: stopping there can only remove false alarms, so it spends no
alpha; beta bounds, at each look, the chance that a change of exactly the threshold is called
unchanged (the power actually reached is measured, benchmarks/ab_replay.py and bench-ci).
With alpha = 0.01, 12 points and the 5 calling looks of max_runs 12 (after 3, 4, 6, 8, 12 runs a side:
call_looks): alpha_look = 1.7e-4, so a regression needs the change to exceed ~4-5 standard errors;
that is the price of looking, paid back by stopping early. "Unchanged" is looked for after every pass.

Variance components (Kalibera & Jones, "Rigorous benchmarking in reasonable time", 2013). A run's
rounds are not independent of each other (they share the process's offset), but they are not
worthless: their spread measures the within-run noise. Per point, from the log round statistics:
sd_within (rounds of one run, disturbed rounds left out) and sd_between (what runs add on top):
the variance of a side's mean over n runs of m rounds is sd_between^2/n + sd_within^2/(n m). The
test's unit stays the run (its run-to-run variance holds both components, with honest df); the
components choose what to take next: rounds_advice says whether more rounds would help at all, and
runs_needed projects how many runs a side a point needs, so a point that cannot be decided within
--max-runs stops early as inconclusive instead of being measured for nothing.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from seqbench.analysis.stats import t_ppf
from seqbench.choices import Verdict

FIRST_LOOK = 2  # runs a side before "unchanged" may be called (one run says nothing of run-to-run noise)
FIRST_CALL = 3  # runs a side before a change may be called (df 4: below it no alpha_look is reachable)
DEFAULT_MAX_RUNS = 12
BETA = 0.05
HOPELESS_AFTER = 4  # runs a side before a point may be given up on (the sd of 3 runs is too rough to judge by)


def call_looks(max_runs: int) -> tuple[int, ...]:
    """Runs a side after which a change may be called: FIRST_CALL, then ~1.5x each time, and max_runs
    (3, 4, 6, 8, 12 for the default 12). Every look that may call a change takes its share of alpha, and
    neighbouring looks (8 runs, then 9) test nearly the same data, so looking at every pass spends alpha
    for little: on the pool of real runs, calls at 5 looks instead of 10 caught more (docs/ci.md)."""
    at, n = [], FIRST_CALL
    while n < max_runs:
        at.append(n)
        n = n + 1 if n < 4 else 2 * round(0.75 * n)  # ~1.5x, even
    return tuple(at + [max_runs]) if max_runs >= FIRST_CALL else (FIRST_CALL,)


@dataclass(frozen=True)
class Design:
    """The stopping rule of one `ab --runs auto`: fixed before any data."""

    threshold: float = 0.05
    alpha: float = 0.01  # P(any false regression/improvement, over all points and looks) <= alpha
    beta: float = BETA  # per look: P(a change of exactly threshold called unchanged) <= beta
    max_runs: int = DEFAULT_MAX_RUNS
    points: int = 1
    looks: tuple[int, ...] | None = None  # runs a side after which a change may be called (None: call_looks)

    @property
    def call_at(self) -> tuple[int, ...]:
        return tuple(self.looks) if self.looks is not None else call_looks(self.max_runs)

    @property
    def calling_looks(self) -> int:
        """Looks at which a change may be called (call_at): alpha is shared by these only."""
        return max(1, len(self.call_at))

    @property
    def alpha_look(self) -> float:
        """Two-sided level of each (point, look) test: alpha shared equally (union bound)."""
        return self.alpha / (max(1, self.points) * self.calling_looks)

    def describe(self) -> str:
        return (f"sequential: a look after every pass, up to {self.max_runs} runs a side, changes called after "
                f"{', '.join(map(str, self.call_at))} runs a side; each of {self.points} "
                f"points x {self.calling_looks} looks spends alpha/{self.points * self.calling_looks} = "
                f"{self.alpha_look:.2g} (union bound: P(any false change) <= {self.alpha:g}); unchanged when the "
                f"{1 - 2 * self.beta:.0%} interval lies within ±{self.threshold:.0%}")


@dataclass
class Look:
    """One point at one look: the change (head/base), its intervals and what they decide."""

    n_base: int
    n_head: int
    ratio: float
    verdict: str | None = None  # regression | improvement | unchanged, or None: undecided
    ci_low: float | None = None  # the 1 - alpha_look interval (what a call needs)
    ci_high: float | None = None
    eq_low: float | None = None  # the 1 - 2 beta interval (what "unchanged" needs)
    eq_high: float | None = None
    se: float | None = None  # of the log change
    df: int = 0


def blocked(base: list[tuple[int, float]], head: list[tuple[int, float]]) -> tuple[float, float, int]:
    """(d, se, df) of the log change from (block, run value) pairs of both sides: least squares on
    log value = block + side (additive two-way model). A block is one ABBA quartet (two passes), so
    the machine's drift from one block to the next (busy stretches of a minute or two, seen in the
    pool of real runs) leaves the error; within a block ABBA cancels a linear drift. With one block
    this is the two-sample t-test with pooled variance. se = nan when the residual has no df."""
    groups: dict[int, tuple[list[float], list[float]]] = {}
    for side, pairs in ((0, base), (1, head)):
        for blk, v in pairs:
            groups.setdefault(blk, ([], []))[side].append(math.log(v))
    ss, df, num, den = 0.0, -1, 0.0, 0.0
    diffs = []
    for a, b in groups.values():  # plain sums: the null-rate test calls this ~50,000 times
        means = []
        for xs in (a, b):
            if xs:
                m = sum(xs) / len(xs)
                ss += sum((x - m) * (x - m) for x in xs)
                df += len(xs) - 1
                means.append(m)
        if a and b:
            w = len(a) * len(b) / (len(a) + len(b))
            diffs.append((w, means[1] - means[0]))
            num, den, df = num + w * diffs[-1][1], den + w, df + 1
    if not den:
        return math.nan, math.nan, 0
    d = num / den
    ss += sum(w * (x - d) ** 2 for w, x in diffs)
    if df < 1:
        return d, math.nan, max(df, 0)
    return d, math.sqrt(ss / df / den), df


BLOCK = 2  # passes per block: ABBA (base, head, head, base) is a block of the blocked model


def look(base, head, design: Design, *, can_call: bool = True, at: int | None = None) -> Look:
    """Decide one point from its run values (seconds) of both sides: plain values (one block: the
    two-sample t-test) or (block, value) pairs (blocked). can_call=False withholds a
    regression/improvement (a load mismatch between the sides): only "unchanged" may be decided.
    at: the runs a side taken so far (before any run was left out; default: the values given); a
    change is called only at design.call_at, the looks alpha was shared by."""
    base = [x if isinstance(x, tuple) else (0, x) for x in base]
    head = [x if isinstance(x, tuple) else (0, x) for x in head]
    d, se, df = blocked(base, head)
    out = Look(len(base), len(head), math.exp(d), se=se, df=df)
    n = min(len(base), len(head))
    if n < FIRST_LOOK or not math.isfinite(se):
        return out
    edge = math.log1p(design.threshold)
    eq = t_ppf(1 - design.beta, df) * se
    call = t_ppf(1 - design.alpha_look / 2, df) * se
    out.eq_low, out.eq_high = _exp(d - eq), _exp(d + eq)
    out.ci_low, out.ci_high = _exp(d - call), _exp(d + call)
    can_call = can_call and n >= FIRST_CALL and (n if at is None else at) in design.call_at
    if -edge < d - eq and d + eq < edge:
        out.verdict = Verdict.UNCHANGED
    elif can_call and d - call > 0:
        out.verdict = Verdict.REGRESSION
    elif can_call and d + call < 0:
        out.verdict = Verdict.IMPROVEMENT
    return out


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf


def runs_needed(d: float, sd: float, design: Design, cap: int = 100) -> int | None:
    """Runs a side after which this point would be decided if its change d (log) and run-to-run sd
    (log) held: the first n where either interval clears its boundary; None beyond cap."""
    edge = math.log1p(design.threshold)
    for n in range(max(FIRST_LOOK, 2), cap + 1):
        df = 2 * n - math.ceil(n / BLOCK) - 1  # the blocked model's
        se = sd * math.sqrt(2 / n)
        if abs(d) + t_ppf(1 - design.beta, df) * se < edge:
            return n
        callable_n = n in design.call_at or n > design.max_runs  # beyond max_runs: a projection only
        if n >= FIRST_CALL and callable_n and t_ppf(1 - design.alpha_look / 2, df) * se < abs(d):
            return n
    return None


def hopeless(lk: Look, design: Design) -> bool:
    """An open point that, at its current change and spread, would need over twice --max-runs."""
    if lk.verdict or min(lk.n_base, lk.n_head) < HOPELESS_AFTER or not lk.se or not math.isfinite(lk.se):
        return False
    sd = lk.se / math.sqrt(1 / lk.n_base + 1 / lk.n_head)
    need = runs_needed(math.log(lk.ratio), sd, design, cap=2 * design.max_runs)
    return need is None


# --- variance components (Kalibera & Jones) ---------------------------------------------------------


@dataclass
class Components:
    """A point's noise split by level (sds of logs, i.e. relative): what rounds and runs each add."""

    sd_within: float  # between rounds of one run
    sd_between: float  # between runs, on top of sd_within / sqrt(rounds)
    rounds: int  # rounds per run (the median over runs)
    runs: int
    dropped_rounds: int = 0  # rounds left out as disturbed (over SLOW_ROUND above their run's median round)

    def advice(self) -> str:
        """Where the next minute is best spent (K&J: rounds per run ~ sqrt(c_run/c_round x var_w/var_b))."""
        within = self.sd_within / math.sqrt(max(1, self.rounds))
        if self.sd_between >= within:
            return "more runs (runs differ more than rounds)"
        return "more rounds per run would help (rounds differ more than runs)"

    def to_json(self) -> dict:
        return {"sd_within": round(self.sd_within, 5), "sd_between": round(self.sd_between, 5),
                "rounds": self.rounds, "runs": self.runs, "dropped_rounds": self.dropped_rounds,
                "advice": self.advice()}


SLOW_ROUND = 0.10  # a round this much slower than its run's median round was disturbed (counted, not used)


def components(runs: list[list[float]]) -> Components | None:
    """The two levels of one point's noise from the log round statistics of its runs (one side, or
    both sides' runs when they time the same code), robustly: load makes some rounds 10-50% slow, and
    a variance would be all theirs. sd_within from the median absolute difference between two rounds
    of one run (|x - y| of two normal rounds has median 0.954 sd); sd_between from the median absolute
    deviation of the runs' median rounds (1.4826 MAD), less what sd_within / sqrt(rounds) explains."""
    diffs, centers, dropped, sizes = [], [], 0, []
    for rounds in runs:
        logs = [math.log(r) for r in rounds]
        mid = statistics.median(logs)
        dropped += sum(x > mid + math.log1p(SLOW_ROUND) for x in logs)
        diffs += [abs(x - y) for i, x in enumerate(logs) for y in logs[i + 1:]]
        centers.append(mid)
        sizes.append(len(logs))
    if len(centers) < 3 or not diffs:
        return None
    sd_w = statistics.median(diffs) / 0.954
    m = statistics.median(sizes)
    c = statistics.median(centers)
    sd_runs = 1.4826 * statistics.median(abs(x - c) for x in centers)
    sd_b = math.sqrt(max(0.0, sd_runs ** 2 - sd_w ** 2 / m))
    return Components(sd_w, sd_b, int(m), len(centers), dropped)
