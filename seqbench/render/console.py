"""The only module that prints.

stdout carries the data a command was asked for (`list`, `env`, `compare`, `calibrate`'s figure, the
output path under -q), so it can be piped; progress bars, notes, the run's summary tables and errors
go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from seqbench.units import fmt_bytes, fmt_count, fmt_faster, fmt_num, fmt_pct, fmt_time


def _width(stream) -> int | None:
    # Piped output (CI logs, files) gets 140 columns rather than rich's 80, so tables do not fold;
    # a terminal keeps its own width, and COLUMNS still wins.
    return None if stream.isatty() or os.environ.get("COLUMNS") else 140


err = Console(stderr=True, highlight=False, width=_width(sys.stderr))  # people: progress, notes, summaries
out = Console(highlight=False, width=_width(sys.stdout))  # data: what the command was asked to show
VERBOSITY = {"level": 1}  # 0 quiet, 1 normal, 2 verbose


def set_verbosity(quiet: bool = False, verbose: bool = False) -> None:
    if quiet and verbose:
        from seqbench.errors import ConfigError

        raise ConfigError("-q/--quiet and -v/--verbose contradict each other; give one of them")
    VERBOSITY["level"] = 0 if quiet else (2 if verbose else 1)


def error(message: str) -> None:
    """One plain line on stderr (no markup, no wrapping): what is wrong and what is allowed."""
    from seqbench.render.escape import term

    sys.stderr.write(f"seqbench: error: {term(' '.join(str(message).split()))}\n")
    sys.stderr.flush()


def traceback(exc: BaseException) -> None:
    """The full traceback of an internal error, on stderr (only when asked for: SEQBENCH_TRACEBACK=1 or -v)."""
    import traceback as tb

    sys.stderr.write("".join(tb.format_exception(exc)))
    sys.stderr.flush()


def info(message: str) -> None:
    if VERBOSITY["level"] >= 1:
        err.print(message)


def detail(message: str) -> None:
    if VERBOSITY["level"] >= 2:
        err.print(message)


@contextmanager
def sweep_progress(total: int, label: str):
    """Yields on_row(row): advances a rich progress bar (or prints rows when verbose)."""
    if VERBOSITY["level"] == 0 or not err.is_terminal and VERBOSITY["level"] < 2:
        def on_row(row):
            if row.status != "ok" and VERBOSITY["level"] >= 1:
                err.print(f"  {_point_name(row)}: {row.status} ({row.error})")
        yield on_row
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
        console=err, transient=False,
        # under Callgrind (--metric instructions) a refresh thread would be counted with the calls
        auto_refresh=not os.environ.get("SEQBENCH_CALLGRIND_DIR"),
    )
    with progress:
        task = progress.add_task(label, total=total, last="")

        def on_row(row):
            status = _measured(row) if row.status == "ok" else f"[red]{row.status}[/]"
            progress.update(task, advance=1, last=f"{_point_name(row)}: {status}")
            if VERBOSITY["level"] >= 2 or row.status != "ok":
                progress.console.print(f"  {_point_name(row)}: {status} {row.error}")

        yield on_row


def _measured(row) -> str:
    """A row's measurement: its median time, or its instructions per call (--metric instructions)."""
    return fmt_count(row.instructions) if row.metric == "instructions" else fmt_time(row.median_s)


def count_table(rows) -> None:
    """--metric instructions: instructions per call and their spread over blocks (no times: none were taken)."""
    from seqbench.results.schema import parse_samples

    table = Table(title="seqbench results: instructions per call (Callgrind)", show_lines=False)
    for col, just in (("kernel", "left"), ("mode", "left"), ("B", "right"), ("T", "right"), ("instructions", "right"),
                      ("spread", "right"), ("status", "left")):
        table.add_column(col, justify=just)
    for r in rows:
        counts = parse_samples(r.instructions_samples)
        spread = f"{(max(counts) - min(counts)) / r.instructions * 100:.2g}%" if counts and r.instructions else "-"
        table.add_row(r.kernel, r.mode, str(r.batch_size), str(r.seq_len), fmt_count(r.instructions), spread,
                      r.status if r.status == "ok" else f"[red]{r.status}[/]")
    err.print(table)


def _point_name(row) -> str:
    return f"{row.kernel} {row.mode} B={row.batch_size} T={row.seq_len}"


def shard_note(meta: dict | None) -> str | None:
    """For a shard's rows (`run --shard K/N`): they are part of a sweep, so no "best" is named from them."""
    shard = ((meta or {}).get("schedule") or {}).get("shard")
    if not shard:
        return None
    k, n = shard
    return (f"shard {k}/{n}: these rows cover part of the sweep (whole curves dealt to this shard), so no best "
            "recurrence or best attention is named from them (the best at a point may have run in another shard); "
            f"join all {n} shards with `seqbench merge` and read the merged run's report")


def summary_table(rows, partial: str | None = None) -> None:
    """Kernel x T x B medians, throughput, GFLOP/s, then best recurrence vs best attention (fight_summary),
    unless the rows are `partial` (a shard): then that note instead of the comparison."""
    if VERBOSITY["level"] == 0 or not rows:
        return
    if any(r.metric == "instructions" for r in rows):
        return count_table(rows)
    table = Table(title="seqbench results", show_lines=False)
    for col, just in (("kernel", "left"), ("mode", "left"), ("B", "right"), ("T", "right"), ("median", "right"),
                      ("± IQR", "right"), ("tokens/s", "right"), ("GFLOP/s", "right"), ("% peak", "right"), ("peak mem", "right"), ("status", "left")):
        table.add_column(col, justify=just)
    for r in rows:
        table.add_row(r.kernel, r.mode, str(r.batch_size), str(r.seq_len), fmt_time(r.median_s), fmt_time(r.iqr_s),
                      fmt_num(r.tokens_per_s), fmt_num(r.gflops_per_s), fmt_pct(getattr(r, "pct_of_peak", None)),
                      fmt_bytes(r.peak_mem_bytes),
                      r.status if r.status == "ok" else f"[red]{r.status}[/]")
    err.print(table)
    if partial:
        err.print(f"[bold]part of a sweep:[/] {escape(partial)}")
    else:
        fight_summary(rows)


def fight_summary(rows) -> None:
    """Best recurrence vs best softmax attention at every point, with the seed's loop as the textbook case."""
    import dataclasses

    import pandas as pd

    from seqbench.analysis.matchup import challengers, fight_table
    from seqbench.analysis.roles import annotate

    ok = [dataclasses.asdict(r) for r in rows if r.status == "ok"]
    if not ok:
        return
    df = annotate(pd.DataFrame(ok))
    table_df = fight_table(df)
    if table_df.empty:
        return
    textbook = [s.kernel for s in challengers(df)[1:]]
    linear = bool(table_df["linear_s"].notna().any())
    threads = "/".join(str(t) for t in sorted(set(df["threads"])))
    from rich import box

    modes = list(dict.fromkeys(table_df["mode"]))
    t2 = Table(title=f"best recurrence vs best softmax attention, {'/'.join(modes)}, {threads} thread(s): "
               "who is faster, by how much", box=box.SIMPLE_HEAD, pad_edge=False, padding=0,
               show_edge=False)
    # Headers broken by hand and cells never wrapped: a kernel and its time stay on one line (80 columns)
    cols = (["mode"] if len(modes) > 1 else []) + ["B", "T", "best\nrecurrence", "best\nattention",
                                                   "faster\n(best vs best)"]
    cols += [c for k in textbook for c in (k, f"faster\n({k} vs best)")]
    cols += ["best linear\nattention"] if linear else []
    for col in cols:
        t2.add_column(col, justify="right" if col in ("B", "T") or col in textbook else "left", no_wrap=True)
    faster = lambda ratio, left: fmt_faster(ratio, left, "attention").removesuffix(" faster")  # noqa: E731
    for r in table_df.to_dict("records"):
        cells = ([r["mode"]] if len(modes) > 1 else []) + [
            str(r["batch_size"]), str(r["seq_len"]), f"{r['recurrence_kernel']} {fmt_time(r['recurrence_s'])}",
            f"{r['attention_kernel']} {fmt_time(r['attention_s'])}", faster(r["speedup"], "recurrence")]
        cells += [c for k in textbook for c in (fmt_time(r[f"{k}_s"]), faster(r[f"{k}_speedup"], k))]
        if linear:
            cells.append(f"{r['linear_kernel']} {fmt_time(r['linear_s'])}" if r["linear_s"] == r["linear_s"] else "-")
        t2.add_row(*cells)
    err.print(t2)


def kernel_table(specs, fmt: str = "table") -> None:
    """`seqbench list`: every registered kernel, with what the analysis knows of it and where it came from."""
    specs = list(specs)
    if fmt == "json":
        return raw(json.dumps({s.name: {**s.info(), "train": s.supports_train} for s in specs}, indent=2) + "\n")
    head = ["name", "family", "forward FLOPs", "decode FLOPs (T: context)", "train", "causal", "role", "from",
            "description"]
    rows = []
    for s in specs:
        role = ", ".join(r for r, on in (("O(T²)", s.quadratic), ("baseline", s.baseline)) if on) or "-"
        rows.append([s.name, s.family, s.formula, s.decode_formula or "-", "3× forward" if s.supports_train else "-",
                     str(s.causal), role, "built-in" if s.builtin else str(s.source), " ".join(str(s.description).split())])
    if fmt == "markdown":
        from seqbench.render.markdown import code, plain, table as md_table

        cells = [[code(r[0]), r[1], code(r[2]), code(r[3]), *r[4:7], plain(r[7]), plain(r[8])] for r in rows]
        return raw("\n".join(md_table(head, cells)) + "\n")
    if not out.is_terminal:
        # A pipe or a file: one line per kernel, nothing cut or wrapped, so `grep` and `cut` see whole fields.
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
        lines = ["  ".join([c.ljust(w) for c, w in zip(r, widths)] + [r[-1]]).rstrip() for r in [head, *rows]]
        return raw("\n".join(lines) + "\n")
    table = Table(title="kernels")
    for col in head:  # a name is never cut; the other columns fold at a narrow terminal
        table.add_column(col, no_wrap=col == "name", min_width=max(len(r[0]) for r in rows) if col == "name" else None,
                         overflow="fold")
    for r in rows:
        table.add_row(*(escape(c) for c in r))
    out.print(table)


def mapping_table(title: str, mapping: dict, fmt: str = "table") -> None:
    if fmt == "json":
        return raw(json.dumps(mapping, indent=2, default=str) + "\n")
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
    if VERBOSITY["level"] == 0:
        return raw(f"{row.gflops_per_s:.3f}\n")
    out.print(f"calibration ({row.device}, {row.dtype}, {row.threads} threads, {row.hidden_size}x{row.hidden_size} "
              f"matmul): {row.gflops_per_s:.1f} GFLOP/s (IQR {lo:.1f}-{hi:.1f}, {row.repeats} samples)")


def gradflow_table(fits) -> None:
    if VERBOSITY["level"] == 0:
        return
    table = Table(title="gradient norm vs distance T-t: fit ||grad|| ~ exp(-rate * distance), distances >= 1")
    for col in ("layer", "rate/step", "factor/step", "R²", "max/min"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for f in fits:
        table.add_row(f.layer, f"{f.rate_per_step:+.4f}", f"{f.factor_per_step:.4f}", f"{f.r2:.3f}", f"{f.max_over_min:.3g}")
    err.print(table)


def raw(text: str) -> None:
    """Machine-readable output (Markdown, JSON) on stdout, exactly as given: no markup, no wrapping."""
    sys.stdout.write(text)
    sys.stdout.flush()


def comparison_table(comp) -> None:
    """compare's verdict per point as a table that stays readable at 80 columns: the key fields all
    points share go in one line above it, kernel names are never cut, notes go below it."""
    from rich import box
    from rich.markup import escape

    from seqbench.render import compare_text as ct

    colour = {"regression": "red", "failed": "red", "improvement": "green", "unchanged": "", "inconclusive": "yellow"}
    keys = [p.key for p in comp.points]
    fields = [f for f in ct.varying_fields(keys) if f != "seq_len"]
    out.print(f"[bold]seqbench compare:[/] {escape(ct.headline(comp))}")
    for w in comp.warnings:  # messages quote paths and errors: never markup
        out.print(f"[bold yellow]warning:[/] {escape(w)}")
    out.print(f"all points: {ct.common_text(keys)}", markup=False)
    for line in ct.method_lines(comp):
        out.print(line, style="dim", markup=False)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0), show_edge=False)
    table.add_column("kernel", no_wrap=True, min_width=max(len(k["kernel"]) for k in keys))
    for f in fields:
        table.add_column({"batch_size": "B", "hidden_size": "d", "num_heads": "h"}.get(f, f), justify="right")
    table.add_column("T", justify="right")
    for col in (f"base {comp.statistic}", f"head {comp.statistic}", "change", "MDE"):
        table.add_column(col, justify="right")
    table.add_column("verdict", no_wrap=True)
    # One footnote per distinct note: single runs gave 40 copies of the same sentence, one per point
    numbers: dict[str, int] = {}
    labelled: dict[str, list[str]] = {}
    for p in comp.points:
        if p.note:
            numbers.setdefault(p.note, len(numbers) + 1)
            labelled.setdefault(p.note, []).append(ct.point_label(p.key, fields + ['seq_len']))
    notes = [f"[{n}] {labelled[note][0] if len(labelled[note]) == 1 else f'{len(labelled[note])} points'}: {note}"
             for note, n in numbers.items()]
    for p in comp.points:
        verdict = p.verdict + (f" [{numbers[p.note]}]" if p.note else "")
        style = colour[p.verdict]
        table.add_row(p.key["kernel"], *(ct.key_text(f, "{}", p.key[f]) for f in fields), str(p.key["seq_len"]),
                      ct.value_text(p.base_value, comp, fmt_time), ct.value_text(p.head_value, comp, fmt_time),
                      ct.change_text(p), ct.mde_text(p), f"[{style}]{verdict}[/]" if style else verdict)
    out.print(table)
    for line in notes + ct.one_sided_lines(comp, fields) + ct.advice_lines(comp):
        out.print(line, markup=False)


def comparison(comp, fmt: str = "table") -> None:
    """compare's output on stdout: a rich table, Markdown (CI step summary, PR comment) or JSON."""
    from seqbench.render.compare_text import to_json_text, to_markdown

    if fmt == "markdown":
        raw(to_markdown(comp, fmt_time))
    elif fmt == "json":
        raw(to_json_text(comp))
    else:
        comparison_table(comp)
    if fmt != "table":  # the data went to a file or a pipe: the warnings also go where people look
        from rich.markup import escape

        for w in comp.warnings:
            err.print(f"[bold yellow]warning:[/] {escape(w)}")


def noise_lines(rows, meta: dict | None) -> list[str]:
    """analysis.noise's warnings for a run's rows (Row objects) and its sidecar."""
    import dataclasses

    if not rows or all(r.metric == "instructions" for r in rows):
        return []  # a count does not depend on the machine's load or on time-slicing (and pandas under Valgrind: ~4 s)
    import pandas as pd

    from seqbench.analysis.noise import warnings

    return warnings(pd.DataFrame([dataclasses.asdict(r) for r in rows]), meta)


def run_estimate(points: int, rounds: int, seconds: float | None) -> None:
    """Before a run: how long it may take, when that is long enough to plan around (a minute or more)."""
    if seconds is None or seconds < 60:
        return
    info(f"{points} points x {rounds} round(s): roughly {fmt_time(seconds) if seconds < 120 else f'{seconds / 60:.0f} min'} "
         "(a cost model at nominal speeds; real runs took 0.6-2x it here; Ctrl-C keeps the finished points, "
         "--resume continues)")


def run_summary(rows, out_path, meta: dict | None = None) -> None:
    """After a run: the summary tables, warnings when the run was disturbed, and where the rows went
    (stderr); under -q only the path (stdout) and the warnings."""
    summary_table(rows, partial=shard_note(meta))
    for line in noise_lines(rows, meta):
        err.print(f"[bold yellow]warning:[/] {escape(line)}")
    failed = sum(r.status != "ok" for r in rows)
    info(f"wrote {len(rows)} rows ({failed} failed) to {out_path} and {out_path.with_suffix('.json')}")
    if VERBOSITY["level"] == 0:
        raw(f"{out_path}\n")


def ab_progress(rec, i: int, total: int) -> None:
    """`seqbench ab`: one line per finished run (stderr)."""
    load = f" (under load: {rec.loaded})" if rec.loaded else ""
    info(f"run {i}/{total or '?'}: {rec.side} #{rec.index} in {rec.wall_s:.1f} s{load}")


def merge_summary(summary, out_path) -> None:
    """After `seqbench merge`: what was joined, and anything partial or mixed about it."""
    what = f"{summary.files} files"
    if summary.shards:
        what = f"{summary.files} of {summary.shards} shards"
    info(f"merged {what}, {summary.rows} rows -> {out_path}")
    if len(summary.machines) > 1:
        info(f"machines: {', '.join(summary.machines)} (report and plot show them side by side)")
    if summary.missing or summary.incomplete:
        info(f"partial: missing shards {summary.missing or '-'}, unfinished {summary.incomplete or '-'} "
             "(recorded in the sidecar)")
    for field, seen in summary.mixed.items():
        info(f"mixed environment: {field} = " + ", ".join(f"{v} ({k})" for k, v in seen.items()))


def launch_event(kind: str, info_: dict) -> None:
    """Progress of `seqbench launch`, one line per event (stderr)."""
    n = info_.get("n") or info_.get("shards")
    if kind == "plan":
        kept = info_["kept"]
        info(f"shards in {info_['folder']}: {len(kept)} of {n} finished earlier"
             + (f" ({', '.join(map(str, kept))}), kept" if kept else "") + f"; to run: {len(info_['todo'])}")
    elif kind == "submitted":
        how = "resuming" if info_["resume"] else "running"
        info(f"shard {info_['shard']}/{n}: job {info_['job_id']} submitted ({how})")
    elif kind == "finished":
        o = info_["outcome"]
        if o.state == "failed":
            err.print(f"shard {o.k}/{n}: job {o.job_id} [red]failed[/] after {fmt_time(o.wall_s)}: {escape(o.error)}")
        else:
            info(f"shard {o.k}/{n}: job {o.job_id} done in {fmt_time(o.wall_s)}, {o.rows} rows")


def launch_summary(result, command: list[str]) -> None:
    """After `seqbench launch`: one line per shard, the failed ones with their logs and how to rerun them."""
    table = Table(title=f"shards ({result.cluster})")
    for col in ("shard", "job", "state", "rows", "wall", "log / error"):
        table.add_column(col, justify="right" if col in ("rows", "wall") else "left")
    n = len(result.outcomes)
    for o in result.outcomes:
        table.add_row(f"{o.k}/{n}", o.job_id or "-", o.state, "-" if o.rows is None else str(o.rows),
                      "-" if o.wall_s is None else fmt_time(o.wall_s),
                      escape(f"{o.error} ({o.log})" if o.error else str(o.path)))
    if VERBOSITY["level"] >= 1:
        err.print(table)
    for o in result.failed:
        error(f"shard {o.k}/{n} failed (job {o.job_id}): {o.error}; log: {o.log}")
    if result.failed:
        info("rerun only the failed shards: " + " ".join(command))
    if result.merged:
        merge_summary(result.summary, result.merged)
        if VERBOSITY["level"] == 0:
            raw(f"{result.merged}\n")
