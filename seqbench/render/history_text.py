"""Text of `seqbench history check` and `history show`: a table for people, Markdown for a job summary or
an issue, JSON for programs. Pure functions returning strings; console prints them."""

from __future__ import annotations

import json

SPARK = "▁▂▃▄▅▆▇█"


def pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def interval(lo: float, hi: float) -> str:
    return f"[{lo * 100:+.1f}, {hi * 100:+.1f}]"


def sparkline(values) -> str:
    vals = [float(v) for v in values]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi <= lo:
        return SPARK[3] * len(vals)
    return "".join(SPARK[min(int((v - lo) / (hi - lo) * len(SPARK)), len(SPARK) - 1)] for v in vals)


def _verdict(c) -> str:
    if c.accepted is not None:
        return f"accepted ({c.accepted})"
    if not c.in_window:
        return "before the checked commits"
    if not c.beyond:
        return "within the threshold"
    return "FAILS" if c.direction == "regression" else "improvement"


def check_lines(chk) -> list[str]:
    """The check as plain lines (table format)."""
    machines = ", ".join(f"{m} ({n} commits)" for m, n in chk.commits.items()) or "none"
    out = [f"history check: {chk.series} series on {machines}; checked {chk.window}; threshold {chk.threshold * 100:g}%",
           f"method: {chk.method}; size = median after / median before - 1 (time: + is slower), 95% bootstrap interval"]
    if not chk.changes:
        out.append("no change points")
    for c in chk.changes:
        out.append(f"  {_verdict(c):<28} {c.direction:<11} {pct(c.size):>7} {interval(c.lo, c.hi):<17} "
                   f"{c.before[:10]}..{c.after[:10]}  {c.machine} | {c.point}")
    creeps = [c for c in chk.creeps if c.beyond]
    for c in creeps:
        out.append(f"  creep{' (FAILS)' if chk.fail_on_creep else '':<23} slower      {pct(c.total):>7} over the last "
                   f"{c.commits} commits ({pct(c.per_commit)} a commit {interval(c.lo, c.hi)}), no single step  "
                   f"{c.first[:10]}..{c.last[:10]}  {c.machine} | {c.point}")
    n_fail = len(chk.failing)
    out.append(f"{n_fail} unaccepted regression{'s' if n_fail != 1 else ''} beyond {chk.threshold * 100:g}%"
               + (f"; {len(creeps)} slow creep{'s' if len(creeps) != 1 else ''}" if creeps else "")
               + f": exit {int(chk.exit_code)}")
    return out


def check_markdown(chk) -> str:
    lines = [f"### seqbench history check: {'regression' if chk.exit_code else 'no unaccepted regression'}", "",
             f"{chk.series} series; checked {chk.window}; threshold {chk.threshold * 100:g}%; {chk.method}.", ""]
    if chk.changes:
        lines += ["| verdict | direction | size [95% CI] | commits | machine | point |", "|---|---|---|---|---|---|"]
        for c in chk.changes:
            lines.append(f"| {_verdict(c)} | {c.direction} | {pct(c.size)} {interval(c.lo, c.hi)} | "
                         f"`{c.before[:10]}..{c.after[:10]}` | {c.machine} | `{c.point}` |")
    else:
        lines.append("No change points.")
    creeps = [c for c in chk.creeps if c.beyond]
    if creeps:
        lines += ["", "Slow creep (no single step):", ""]
        lines += [f"- `{c.point}` on {c.machine}: {pct(c.total)} over the last {c.commits} commits "
                  f"({pct(c.per_commit)} a commit {interval(c.lo, c.hi)}), `{c.first[:10]}..{c.last[:10]}`" for c in creeps]
    return "\n".join(lines) + "\n"


def check_json(chk) -> str:
    return json.dumps(chk.as_dict(), indent=2)


def show_lines(rows: list[dict], width: int = 40) -> list[str]:
    """`history show`: one line per series, largest latest change first, with a sparkline of its values."""
    if not rows:
        return ["the store holds no series"]
    out = []
    for r in rows:
        change = (f"{pct(r['size'])} {interval(r['lo'], r['hi'])} at {r['after'][:10]}" if r["size"] is not None
                  else "no change point")
        out.append(f"{sparkline(r['values'][-width:]):<{width}}  {r['latest_s'] * 1e3:9.4g} ms  {change:<42} "
                   f"{r['machine']} | {r['point']}")
    return out
