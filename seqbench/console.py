"""The only module that prints: rich progress, tables, and one-line errors on stderr."""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

# Piped output (CI logs, files) gets 140 columns rather than rich's 80, so tables do not fold;
# a terminal keeps its own width, and COLUMNS still wins.
out = Console(highlight=False, width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140)
VERBOSITY = {"level": 1}  # 0 quiet, 1 normal, 2 verbose


def set_verbosity(quiet: bool = False, verbose: bool = False) -> None:
    VERBOSITY["level"] = 0 if quiet else (2 if verbose else 1)


def error(message: str) -> None:
    """One plain line on stderr (no markup, no wrapping): what is wrong and what is allowed."""
    sys.stderr.write(f"seqbench: error: {' '.join(str(message).split())}\n")
    sys.stderr.flush()


def info(message: str) -> None:
    if VERBOSITY["level"] >= 1:
        out.print(message)


def detail(message: str) -> None:
    if VERBOSITY["level"] >= 2:
        out.print(message)


def fmt_time(seconds) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_num(x, unit: str = "") -> str:
    if x is None or x != x:
        return "-"
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def fmt_pct(x) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:.0f}%" if x >= 10 else f"{x:.2g}%"


def fmt_bytes(n) -> str:
    if n is None or n != n:
        return "-"
    for suffix, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {suffix}"
    return f"{int(n)} B"


@contextmanager
def sweep_progress(total: int, label: str):
    """Yields on_row(row): advances a rich progress bar (or prints rows when verbose)."""
    if VERBOSITY["level"] == 0 or not out.is_terminal and VERBOSITY["level"] < 2:
        def on_row(row):
            if row.status != "ok" and VERBOSITY["level"] >= 1:
                out.print(f"  {_point_name(row)}: {row.status} ({row.error})")
        yield on_row
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
        console=out, transient=False,
    )
    with progress:
        task = progress.add_task(label, total=total, last="")

        def on_row(row):
            status = fmt_time(row.median_s) if row.status == "ok" else f"[red]{row.status}[/]"
            progress.update(task, advance=1, last=f"{_point_name(row)}: {status}")
            if VERBOSITY["level"] >= 2 or row.status != "ok":
                progress.console.print(f"  {_point_name(row)}: {status} {row.error}")

        yield on_row


def _point_name(row) -> str:
    return f"{row.kernel} {row.mode} B={row.batch_size} T={row.seq_len}"


def summary_table(rows) -> None:
    """Kernel x T x B medians, throughput, GFLOP/s and the best attention kernel vs the seed's loop."""
    if VERBOSITY["level"] == 0 or not rows:
        return
    table = Table(title="seqbench results", show_lines=False)
    for col, just in (("kernel", "left"), ("mode", "left"), ("B", "right"), ("T", "right"), ("median", "right"),
                      ("± IQR", "right"), ("tokens/s", "right"), ("GFLOP/s", "right"), ("% peak", "right"), ("peak mem", "right"), ("status", "left")):
        table.add_column(col, justify=just)
    for r in rows:
        table.add_row(r.kernel, r.mode, str(r.batch_size), str(r.seq_len), fmt_time(r.median_s), fmt_time(r.iqr_s),
                      fmt_num(r.tokens_per_s), fmt_num(r.gflops_per_s), fmt_pct(getattr(r, "pct_of_peak", None)),
                      fmt_bytes(r.peak_mem_bytes),
                      r.status if r.status == "ok" else f"[red]{r.status}[/]")
    out.print(table)
    speedups = best_attention_vs_loop(rows)
    if speedups:
        t2 = Table(title="best softmax-attention kernel vs the seed's rnn_loop (speedup > 1: attention faster)")
        for col in ("mode", "B", "T", "rnn_loop", "best attention", "median", "speedup"):
            t2.add_column(col, justify="left" if col in ("mode", "best attention") else "right")
        for (mode, b, t), (loop, best) in sorted(speedups.items()):
            t2.add_row(mode, str(b), str(t), fmt_time(loop.median_s), best.kernel, fmt_time(best.median_s),
                       f"{loop.median_s / best.median_s:.2f}×")
        out.print(t2)


def best_attention_vs_loop(rows) -> dict:
    from seqbench.analysis import is_softmax_attention

    groups = defaultdict(list)
    for r in rows:
        if r.status == "ok":
            groups[(r.mode, r.batch_size, r.seq_len)].append(r)
    result = {}
    for key, rs in groups.items():
        loop = next((r for r in rs if r.kernel == "rnn_loop"), None)
        att = [r for r in rs if is_softmax_attention(r.kernel, r.family)]
        if loop and att:
            result[key] = (loop, min(att, key=lambda r: r.median_s))
    return result


def kernel_table(specs) -> None:
    table = Table(title="kernels")
    for col in ("name", "family", "forward FLOPs", "train", "description"):
        table.add_column(col)
    for s in specs:
        table.add_row(s.name, s.family, s.formula, "3× forward" if s.supports_train else "-", s.description)
    out.print(table)


def mapping_table(title: str, mapping: dict) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for k, v in mapping.items():
        table.add_row(str(k), str(v))
    out.print(table)


def calibration_result(row) -> None:
    """`seqbench calibrate`: the measured matmul rate, with its spread."""
    lo = row.gflop / (row.median_s + row.iqr_s / 2)
    hi = row.gflop / max(row.median_s - row.iqr_s / 2, 1e-12)
    info(f"calibration ({row.device}, {row.dtype}, {row.threads} threads, {row.hidden_size}x{row.hidden_size} matmul): "
         f"{row.gflops_per_s:.1f} GFLOP/s (IQR {lo:.1f}-{hi:.1f}, {row.repeats} samples)")
    if VERBOSITY["level"] == 0:
        print(f"{row.gflops_per_s:.3f}")


def gradflow_table(fits) -> None:
    table = Table(title="gradient norm vs distance T-t: fit ||grad|| ~ exp(-rate * distance), distances >= 1")
    for col in ("layer", "rate/step", "factor/step", "R²", "max/min"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for f in fits:
        table.add_row(f.layer, f"{f.rate_per_step:+.4f}", f"{f.factor_per_step:.4f}", f"{f.r2:.3f}", f"{f.max_over_min:.3g}")
    out.print(table)


def raw(text: str) -> None:
    """Machine-readable output (Markdown, JSON) on stdout, exactly as given: no markup, no wrapping."""
    sys.stdout.write(text)
    sys.stdout.flush()


def comparison_table(comp) -> None:
    """compare's verdict per point as a rich table, then the points found on one side only."""
    from seqbench.compare_format import VERDICT_MARK, ci_text, floor_text, headline, p_text, pct, settings

    colour = {"regression": "red", "failed": "red", "improvement": "green", "unchanged": "", "inconclusive": "yellow"}
    table = Table(title=f"seqbench compare: {headline(comp)}", caption=settings(comp))
    for col in ("kernel", "mode", "B", "T", "base", "head", "change", "CI", "p", "noise", "rounds", "verdict"):
        table.add_column(col, justify="left" if col in ("kernel", "mode", "CI", "verdict") else "right")
    for p in comp.points:
        k = p.key
        verdict = VERDICT_MARK[p.verdict] + (f" ({p.note})" if p.note else "")
        style = colour[p.verdict]
        table.add_row(k["kernel"], k["mode"], str(k["batch_size"]), str(k["seq_len"]), fmt_time(p.base_median_s),
                      fmt_time(p.head_median_s), pct(p.ratio), ci_text(p), p_text(p), floor_text(p),
                      f"{p.base_rounds}/{p.head_rounds}", f"[{style}]{verdict}[/]" if style else verdict)
    out.print(table)
    for title, keys in (("only in the baseline (not compared)", comp.only_base), ("only in the candidate (not compared)", comp.only_head)):
        for key in keys:
            out.print(f"  {title}: {key['kernel']} {key['mode']} B={key['batch_size']} T={key['seq_len']} "
                      f"d={key['hidden_size']} {key['device']} {key['dtype']}")
