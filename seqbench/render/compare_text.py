"""Text renderings of a Comparison: Markdown (CI step summary, PR comment) and the shared cell texts
that console.py's rich table uses too, so both say exactly the same thing."""

from __future__ import annotations

import json
import math

VERDICT_MARK = {"regression": "🔴 regression", "improvement": "🟢 improvement", "unchanged": "unchanged",
                "inconclusive": "⚪ inconclusive", "failed": "🔴 failed"}


def pct(x: float | None) -> str:
    """A ratio as a signed percentage change: 1.073 -> '+7.3%'."""
    if x is None or math.isnan(x):
        return "-"
    if math.isinf(x):
        return "∞"
    return f"{(x - 1) * 100:+.1f}%"


def ci_text(p) -> str:
    if p.ci_low is None:
        return "-"
    if math.isinf(p.ci_high) or p.ci_low <= 0:
        return "unbounded"
    return f"[{pct(p.ci_low)}, {pct(p.ci_high)}]"


def floor_text(p) -> str:
    if p.noise_floor is None:
        return "-"
    return "∞" if math.isinf(p.noise_floor) else f"{p.noise_floor * 100:.1f}%"


def p_text(p) -> str:
    return "-" if p.p_value is None else f"{p.p_value:.3g}"


def headline(comp) -> str:
    c = comp.counts()
    parts = [f"{c[v]} {v}" for v in ("regression", "failed", "improvement", "unchanged", "inconclusive") if c[v]]
    return ", ".join(parts) or "no points"


def settings(comp) -> str:
    return (f"threshold {comp.threshold * 100:g}%, alpha {comp.alpha:g} (CI {100 * (1 - comp.alpha):g}%), "
            f"normalize: {comp.normalize}, slow rounds cut: {'off' if comp.slow_cut is None else f'{comp.slow_cut:.0%}'}; "
            f"ratio = head/base of per-round {comp.statistic}s (Hodges-Lehmann), p = Mann-Whitney U over rounds")


def point_label(key: dict) -> str:
    causal = " causal" if key.get("causal") else ""
    return (f"{key['kernel']} {key['mode']} {key['device']} {key['dtype']} "
            f"B={key['batch_size']} T={key['seq_len']} d={key['hidden_size']} h={key['num_heads']}{causal}")


def to_markdown(comp, fmt_time) -> str:
    lines = [f"### seqbench compare: {headline(comp)}", "", settings(comp), "",
             "| point | base | head | change | CI | p | noise floor | rounds (base/head) | verdict |",
             "|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for p in comp.points:
        lines.append(
            f"| {point_label(p.key)} | {fmt_time(p.base_median_s)} | {fmt_time(p.head_median_s)} | {pct(p.ratio)} "
            f"| {ci_text(p)} | {p_text(p)} | {floor_text(p)} | {p.base_rounds}/{p.head_rounds} "
            f"| {VERDICT_MARK[p.verdict]}{' — ' + p.note if p.note else ''} |"
        )
    for title, keys in (("Only in the baseline", comp.only_base), ("Only in the candidate", comp.only_head)):
        if keys:
            lines += ["", f"**{title}** (not compared): " + "; ".join(point_label(k) for k in keys)]
    return "\n".join(lines) + "\n"


def to_json_text(comp) -> str:
    return json.dumps(comp.to_json(), indent=2, allow_nan=False) + "\n"
