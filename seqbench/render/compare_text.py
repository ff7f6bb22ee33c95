"""Text renderings of a Comparison: Markdown (CI step summary, PR comment), JSON, and the cell and
line texts that console.py's table uses too, so every format says exactly the same thing."""

from __future__ import annotations

import json
import math
from collections import Counter

from seqbench.analysis.compare import MIN_RUNS, POWER, SLOW_RUN
from seqbench.units import fmt_count
from seqbench.render.escape import md, term

MARK = {"regression": "🔴", "failed": "❌", "improvement": "🟢", "unchanged": "⚪", "inconclusive": "🟡"}
ORDER = ("regression", "failed", "improvement", "inconclusive", "unchanged")
KEY_FIELDS = (("mode", "{}"), ("device", "{}"), ("dtype", "{}"), ("batch_size", "B={}"), ("seq_len", "T={}"),
              ("hidden_size", "d={}"), ("num_heads", "h={}"), ("causal", "{}"))


def pct(x: float | None) -> str:
    """A ratio as a signed percentage change: 1.073 -> '+7.3%'."""
    if x is None or math.isnan(x):
        return "-"
    if math.isinf(x):
        return "∞"
    return f"{(x - 1) * 100:+.1f}%"


def ci_text(p) -> str:
    return "-" if p.ci_low is None else f"[{pct(p.ci_low)}, {pct(p.ci_high)}]"


def change_text(p) -> str:
    """The change and half the width of its CI, in percentage points of the baseline: '+10.6% ±2.8'."""
    if p.ratio is None:
        return "-"
    if p.ci_low is None:
        return pct(p.ratio)
    return f"{pct(p.ratio)} ±{(p.ci_high - p.ci_low) * 50:.1f}"


def mde_text(p) -> str:
    return "-" if p.mde is None else ("∞" if math.isinf(p.mde) else f"{p.mde * 100:.1f}%")


def q_text(p) -> str:
    return "-" if p.q_value is None else f"{p.q_value:.2g}"


def counted(comp) -> bool:
    """Instruction counts (analysis/instructions.py) rather than times."""
    return getattr(comp, "metric", "time") == "instructions"


def value_text(value, comp, fmt_time) -> str:
    if value is None:
        return "-"
    if counted(comp):
        return fmt_count(value)
    return f"{value:.4g}×ref" if comp.normalize != "none" else fmt_time(value)


def key_text(field: str, fmt: str, value) -> str:
    if field == "causal":
        return "causal" if value else "non-causal"
    return fmt.format(value)


def varying_fields(keys: list[dict]) -> list[str]:
    """The key fields (besides the kernel) that differ between points: the columns a table needs."""
    return [f for f, _ in KEY_FIELDS if len({k[f] for k in keys}) > 1]


def common_text(keys: list[dict]) -> str:
    """The key fields every point shares, once, instead of in every row: 'forward cpu float32 B=4 d=128 h=4'."""
    vary = set(varying_fields(keys))
    return " ".join(key_text(f, fmt, keys[0][f]) for f, fmt in KEY_FIELDS if f not in vary) if keys else ""


def point_label(key: dict, fields) -> str:
    return " ".join([key["kernel"], *(key_text(f, fmt, key[f]) for f, fmt in KEY_FIELDS if f in fields)])


def headline(comp) -> str:
    c = comp.counts()
    parts = [f"{c[v]} {v}" for v in ORDER if c[v]]
    if comp.missing:
        parts.append(f"{len(comp.missing)} missing")
    code = comp.exit_code
    verdict = f"exit 1 (fails on {', '.join(comp.failing())})" if code else "exit 0"
    return f"{', '.join(parts) or 'no points'} — {verdict}"


def _count(values: set[int], noun: str) -> str:
    text = "/".join(map(str, sorted(values))) or "0"
    return f"{text} {noun}{'' if values == {1} else 's'}"


def runs_text(comp) -> str:
    """'4 runs a side, 3 rounds each' (or '4 runs base, 2 head, ...' when the sides differ)."""
    rb, rh = comp.runs_per_side()
    rounds = {p.base_rounds // max(p.base_runs, 1) for p in comp.points if p.base_runs} | \
             {p.head_rounds // max(p.head_runs, 1) for p in comp.points if p.head_runs}
    runs = f"{_count(rb, 'run')} a side" if rb == rh else f"{_count(rb, 'run')} base, {_count(rh, 'run')} head"
    return runs + (f", {_count(rounds, 'round')} each" if rounds else "")


def count_method_lines(comp) -> list[str]:
    spreads = [x for p in comp.points for x in (p.base_spread, p.head_spread) if x is not None]
    worst = f"; the largest spread of a side's runs: {max(spreads):.4%}" if spreads else ""
    return [f"base/head: instructions per call under Callgrind, median over runs ({runs_text(comp)}){worst}.",
            f"change = head/base; range = [min head / max base, max head / min base]. A change of at least "
            f"{comp.threshold:.2%} (threshold) whose whole range lies beyond it is a regression or improvement. "
            "Counts do not see memory-bound effects, caches, threads or CUDA (docs/instructions.md)."]


def method_lines(comp) -> list[str]:
    if counted(comp):
        return count_method_lines(comp)
    if comp.method_lines:  # --runs auto says its own (analysis.autostop)
        return list(comp.method_lines)
    stat = comp.statistic + (" / reference" if comp.normalize != "none" else "")
    tested = sum(p.q_value is not None for p in comp.points)
    dropped = sum(p.base_dropped + p.head_dropped for p in comp.points)
    left_out = f"; {dropped} disturbed run(s) left out (over {SLOW_RUN:.0%} slower than their side's median run)"
    return [
        f"base/head {comp.statistic}: each run's fastest round, a round being the {stat} of its samples; "
        f"geometric mean over runs ({runs_text(comp)}){left_out if dropped else ''}.",
        f"change = head/base ± half its {100 * (1 - comp.alpha):g}% CI (t-test over runs); q = Benjamini-Hochberg "
        f"over {tested} points; MDE = the slowdown caught {POWER:.0%} of the time. Threshold {comp.threshold:.0%}, "
        f"alpha {comp.alpha:g}.",
    ]


def one_sided_lines(comp, fields) -> list[str]:
    """Points on one side only, summarised per kernel in one line each (the JSON lists every one)."""
    out = []
    for title, keys, counted in (("only in the baseline", comp.only_base, not comp.allow_missing),
                                 ("only in the candidate", comp.only_head, False)):
        if not keys:
            continue
        per_kernel = Counter(k["kernel"] for k in keys)
        kinds = ", ".join(f"{k} ×{n}" for k, n in per_kernel.most_common())
        how = ("counted as failed: the candidate lost them (--allow-missing accepts that)" if counted
               else "not compared")
        out.append(f"{len(keys)} point(s) {title}, {how}: {kinds} (every point in --format json)")
    return out


def advice_lines(comp) -> list[str]:
    """What to do next, in one or two sentences."""
    c = comp.counts()
    out = []
    inconclusive = [p for p in comp.points if p.verdict == "inconclusive"]
    unmeasured = [p for p in inconclusive if not p.base_rounds or not p.head_rounds]  # failed on a side
    if unmeasured:  # more runs of a point that fails cannot help
        both = sum(not p.base_rounds and not p.head_rounds for p in unmeasured)
        out.append(f"{len(unmeasured)} point(s) not compared because they failed"
                   + (f" ({both} on both sides)" if both else "") + ": fix what their errors say; adding runs will "
                   "not help")
        inconclusive = [p for p in inconclusive if p not in unmeasured]
    if inconclusive and counted(comp):
        out.append(f"{len(inconclusive)} point(s) inconclusive: a side's runs disagree by as much as the threshold "
                   f"({comp.threshold:.2%}), or a side has a single run. Run each side at least {MIN_RUNS} times; "
                   "counts that still disagree come from the code (e.g. a data-dependent path), not the machine")
    elif inconclusive:
        few = sum(min(p.base_runs, p.head_runs) < MIN_RUNS for p in inconclusive)
        mdes = sorted(p.mde for p in inconclusive if p.mde is not None and math.isfinite(p.mde))
        span = f"{mdes[0]:.0%}" if mdes and f"{mdes[0]:.0%}" == f"{mdes[-1]:.0%}" else \
            (f"{mdes[0]:.0%}-{mdes[-1]:.0%}" if mdes else "")
        blind = (f"the smallest change they could catch is {span}" if mdes else "they have too few runs to tell")
        single = f", {few} with a single run on a side" if few else ""
        out.append(f"{len(inconclusive)} point(s) inconclusive{single}: {blind}, against a threshold of "
                   f"{comp.threshold:.0%}. Add runs (`seqbench ab ... --append` adds runs to the same -o folder) "
                   "or raise --threshold"
                   + ("; `--fail-on inconclusive` makes this fail" if "inconclusive" not in comp.fail_on else ""))
    if c["regression"] or c["failed"] or comp.missing:
        names = [f"{p.key['kernel']} T={p.key['seq_len']} {pct(p.ratio) if p.verdict == 'regression' else 'failed'}"
                 for p in comp.points if p.verdict in ("regression", "failed")][:5]
        if names:
            out.append("look at: " + "; ".join(names))
    return out


def to_markdown(comp, fmt_time) -> str:
    keys = [p.key for p in comp.points]
    fields = varying_fields(keys + comp.only_base + comp.only_head)
    lines = [f"### seqbench compare: {headline(comp)}", ""]
    lines += [f"> ⚠️ {md(w)}" for w in comp.warnings] + ([""] if comp.warnings else [])
    lines += [f"All points: {common_text(keys)}. " + " ".join(method_lines(comp)), "",
              f"| point | base {comp.statistic} | head {comp.statistic} | change | "
              f"{'range' if counted(comp) else 'interval' if comp.method_lines else f'{100 * (1 - comp.alpha):g}% CI'} | q "
              "| MDE | runs | verdict |",
              "|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for p in comp.points:
        lines.append(
            f"| {md(point_label(p.key, fields), cell=True)} | {value_text(p.base_value, comp, fmt_time)} "
            f"| {value_text(p.head_value, comp, fmt_time)} | {pct(p.ratio)} | {ci_text(p)} | {q_text(p)} "
            f"| {mde_text(p)} | {p.base_runs}/{p.head_runs} | {MARK[p.verdict]} {p.verdict}"
            f"{' — ' + md(p.note, cell=True) if p.note else ''} |")
    extra = one_sided_lines(comp, fields) + advice_lines(comp)
    if extra:  # seqbench's own sentences (with `code`); the kernel names in them are validated identifiers
        lines += [""] + [f"- {term(x)}" for x in extra]
    return "\n".join(lines) + "\n"


def to_json_text(comp) -> str:
    return json.dumps(comp.to_json(), indent=2, allow_nan=False) + "\n"
