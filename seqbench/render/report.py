"""Results CSV -> Markdown report: environment, tables per batch size, scaling fits, crossover, failures, charts.

Every number comes from seqbench.analysis (the same code the charts use); nothing is estimated
that the CSV does not hold. A CSV whose points all failed still gets a report that says so.
"""

from __future__ import annotations

import os
from collections import namedtuple
from pathlib import Path

from seqbench.analysis import bootstrap, decode, fits, matchup, scaling
from seqbench.analysis.figures import Figures
from seqbench.render import machines
from seqbench.render.markdown import plain, table as _table
from seqbench.units import fmt_bytes, fmt_num, fmt_spread, fmt_time

POOR_FIT_R2 = 0.9  # below this a single exponent misdescribes the series: not a key figure, whatever its interval


def unfinished_section(meta: dict, csv_path) -> list[str]:
    """Before any figure: a run that did not complete says so, and how to continue it."""
    from seqbench.results.ownership import unfinished

    why = unfinished(csv_path, meta)
    if why is None:
        return []
    rows = meta.get("rows")
    return [f"> **This run did not finish:** {plain(why)}." + (f" {rows} row{'' if rows == 1 else 's'} recorded." if rows else "")
            + f" Every figure below is of the points it measured; `seqbench run --resume -o {Path(csv_path).name}` "
            "measures the rest.", ""]


def environment_section(meta: dict, df) -> list[str]:
    env = dict(meta.get("environment", {}))
    cfg = meta.get("config", {})
    rows = [[k, v] for k, v in env.items()]
    for key in ("dtype", "hidden_size", "num_heads", "causal", "threads", "min_time", "modes"):
        if key in cfg:
            rows.append([f"config.{key}", cfg[key]])
    if not rows:  # no JSON sidecar: say what the CSV itself records
        first = df.iloc[0]
        rows = [[c, first[c]] for c in ("device", "dtype", "hidden_size", "num_heads", "threads") if c in df]
        rows.append(["note", "no JSON sidecar found; environment taken from the CSV columns"])
    lines = ["## Environment", ""]
    if meta.get("command"):
        lines += ["Command: `" + " ".join(map(str, meta["command"])) + "`", ""]
    span = [meta.get(k) for k in ("started_at", "finished_at") if meta.get(k)]
    if span:
        lines += [f"Run {meta.get('run_id', '?')}: {' → '.join(span)}, status {meta.get('status', '?')}.", ""]
    earlier = meta.get("previous_runs") or []
    if earlier:  # --append: one file, several runs (e.g. the shards of one sweep, run one after another)
        runs = "; ".join(f"{r.get('run_id', '?')} (`{' '.join(map(str, r.get('command', [])))}`, "
                         f"{r.get('started_at', '?')} → {r.get('finished_at', '?')}, status {r.get('status', '?')})"
                         for r in earlier)
        lines += [f"Appended after {len(earlier)} earlier run(s) into the same file: {runs}.", ""]
    return lines + _table(["key", "value"], [[k, _short(v)] for k, v in rows]) + [""]


def _short(v) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def _fmt_t_star(c: matchup.Crossing) -> str:
    """'688 [612, 760]', '1874, 752 [700, 801]' (interval of the last) or 'none in range'."""
    if not c.t_star:
        return "none in range"
    text = ", ".join(f"{t:.0f}" for t in c.t_star)
    return text + (f" {c.interval.text('{:.0f}')}" if c.interval is not None else "")


def _k_cell(fit) -> str:
    if fit is None:
        return "-"
    return fit.k_text + (f" {fit.ci.text()}" if fit.ci is not None else "")


def _fit_note(fit) -> str:
    """Why an exponent is not a key figure ('' when it is one)."""
    notes = []
    if fit.r2 < POOR_FIT_R2:
        notes.append(f"poor fit (R² < {POOR_FIT_R2}): noisy points or not a power law")
    if fit.ci is not None and fit.ci.wide:
        notes.append(f"wide interval: spans {fit.ci.hi - fit.ci.lo:.2f} (> {fits.K_WIDE})")
    return "; ".join(notes)


def fits_section(fig: Figures) -> list[str]:
    series = fig.fits()
    lines = ["## Scaling exponents", "",
             f"k is the slope of log(median latency) vs log(T), least squares over the points with "
             f"T ≥ {scaling.FIT_MIN_T}; an RNN should give k ≈ 1 and attention tends to k ≈ 2 once its "
             "T² term dominates. The interval is the 95% bootstrap interval (each point's rounds and samples "
             "redrawn, the line refitted); it covers measurement noise, not a curve that is no power law "
             "(R² says that). With 2 points R² is 1 by construction.", ""]
    rows = []
    for f in series:
        fit = f["fit"]
        if fit is None:
            rows.append([f["kernel"], f["family"], f["mode"], f["batch_size"], "-", "-", "-", 0,
                         f"needs 2 lengths ≥ {scaling.FIT_MIN_T}", ""])
        else:
            ci = fit.ci.text() if fit.ci is not None else "-"
            rows.append([f["kernel"], f["family"], f["mode"], f["batch_size"], fit.k_text, ci, fit.r2_text, fit.n,
                         f"{fit.t_lo}–{fit.t_hi}", _fit_note(fit)])
    head = ["kernel", "family", "mode", "B", "k", "95% interval", "R²", "points", "T range", "note"]
    return lines + _table(head, rows, "lllrrrrrll") + [""]


def crossover_section(fig: Figures) -> list[str]:
    lines = ["## Crossover length T*", "",
             "T* is where two sides take the same time, interpolated linearly in log T vs log(time ratio) between "
             "the two measured lengths that bracket it. *Best attention* is the fastest softmax-attention kernel "
             "(registered O(T²)) at each point; *best recurrence* the fastest recurrent or scan kernel; *best linear "
             "attention* (O(T), not a softmax) has its own line. The named kernels are the textbook references "
             "(`report --baseline KERNEL`, the config's `baselines`, else the registered ones: the seed's rnn_loop). "
             "The interval (95% bootstrap) is of the last crossing; with no crossing, the share of resamples "
             "in which the curves do cross says how sure the \"none\" is.", ""]
    rows = crossing_rows([c for side in matchup.challengers(fig.df) + [matchup.BEST_LINEAR_ATTENTION]
                          for c in fig.crossings(side)])
    if not rows:
        return lines + ["No crossover can be computed: the run needs an O(T²) attention kernel and a recurrent, "
                        "scan or baseline kernel.", ""]
    return lines + _table(["vs best attention", "mode", "B", "T* [95% interval]", "note"], rows, "llrrl") + [""]


def crossing_rows(crossings, mode: bool = True) -> list[list]:
    """One table row per crossing: the side, (mode,) B, T* with its interval, and what the note must say."""
    rows = []
    for c in crossings:
        note = c.note
        if c.crossing_share is not None and c.crossing_share > 0:
            note += f"; they cross in {100 * c.crossing_share:.0f}% of resamples"
        if len(c.t_star) == 1 and not c.key:
            note += f"; not key: {_why_wide(c)}"
        rows.append([c.left, *([c.series["mode"]] if mode else []), c.series["batch_size"], _fmt_t_star(c), note])
    return rows


def results_sections(df) -> list[str]:
    ok = scaling.ok_points(df)
    lines = []
    peaks = scaling.matmul_peak(df)
    # one pass over the rows, grouped in Python: itertuples on a frame per (mode, B, kernel) cost ~30 ms
    # each (every column of a wide frame), minutes for 100,000 rows
    wanted = ["mode", "batch_size", "kernel", "seq_len", "median_s", "iqr_s", "tokens_per_s", "gflops_per_s",
              "pct_of_peak", "sdpa_backend", "peak_mem_bytes", "device", "dtype"]
    slim = ok[[c for c in wanted if c in ok]].sort_values("seq_len", kind="stable")
    Rec = namedtuple("Rec", slim.columns)  # rows from column lists: itertuples reads extension arrays cell by cell
    by: dict = {}
    for r in map(Rec._make, zip(*(slim[c].tolist() for c in slim.columns))):
        by.setdefault((r.mode, r.batch_size), {}).setdefault(r.kernel, []).append(r)
    for (mode, b) in sorted(by):
        part, rows = by[mode, b], []
        for kernel in scaling.ordered_kernels(part):
            for r in part[kernel]:
                gf = fmt_num(r.gflops_per_s)
                own = getattr(r, "pct_of_peak", None)  # against its own run's calibration (merged shards: its machine's)
                peak = max((v for k, v in peaks.items() if k[-2:] == (r.device, r.dtype)), default=None)
                if own is not None and own == own:
                    gf += f" ({own:.0f}%)"
                elif peak and r.gflops_per_s == r.gflops_per_s:
                    gf += f" ({100 * r.gflops_per_s / peak:.0f}%)"
                backend = getattr(r, "sdpa_backend", "")  # recorded by runs that know which SDPA path ran
                name = f"{kernel} ({backend})" if isinstance(backend, str) and backend else kernel
                rows.append([name, int(r.seq_len), fmt_spread(r.median_s, r.iqr_s),
                             fmt_num(r.tokens_per_s), gf, fmt_bytes(r.peak_mem_bytes)])
        lines += [f"## Results: B = {int(b)}, {mode}", ""]
        head = ["kernel", "T", "median ± IQR", "tokens/s", "GFLOP/s" + (" (% of matmul peak)" if peaks else ""), "peak memory"]
        lines += _table(head, rows, "lrrrrr") + [""]
    return lines


def failures_section(df) -> list[str]:
    bad = scaling.failed_points(df)
    lines = ["## Failed points", ""]
    if bad.empty:
        return lines + ["None: every point succeeded.", ""]
    rows = [[r.kernel, r.mode, int(r.batch_size), int(r.seq_len), r.status, r.error or "-"]
            for r in bad.sort_values(["kernel", "mode", "batch_size", "seq_len"]).itertuples()]
    return lines + _table(["kernel", "mode", "B", "T", "status", "error"], rows, "llrrll") + [""]


def _why_wide(c: matchup.Crossing) -> str:
    if len(c.t_star) > 1:
        return f"the curves cross {len(c.t_star)} times"
    iv = c.interval
    if iv is None:
        return "no interval"
    if iv.missing > fits.MISSING_WIDE:
        return f"no crossing in {100 * iv.missing:.0f}% of resamples"
    return f"interval spans {iv.hi / iv.lo:.1f}x"


def _tstar_cell(c: matchup.Crossing | None) -> str:
    if c is None:
        return "-"
    lo, hi = c.t_range
    if c.key:
        if c.t_star:
            return f"{_fmt_t_star(c)}; above: {c.faster_at_longest}"
        return f"none in {lo}–{hi}: {c.faster_at_longest} faster"
    if c.t_star:
        return f"not key ({_why_wide(c)}): {_fmt_t_star(c)}"
    if c.crossing_share is not None:
        return f"not key: none in {lo}–{hi}, but they cross in {100 * c.crossing_share:.0f}% of resamples"
    return f"not key: {c.note}"


def _fit_cell(fit, kernel: str = "") -> str:
    name = f"{kernel} " if kernel else ""
    if fit is None:
        return f"{name}-"
    if _fit_note(fit):
        why = "interval wide" if fit.ci is not None and fit.ci.wide else f"R² {fit.r2_text}"
        return f"{name}not key ({why}): {_k_cell(fit)}"
    return f"{name}{_k_cell(fit)}"


def key_table(fig: Figures) -> list[str]:
    """Per series: who wins (T* best recurrence = best attention, and the textbook loop) and how each grows."""
    df = fig.df
    sides = matchup.challengers(df)
    textbook = [s for s in sides if s.kernel]
    cross = {s.label: {tuple(c.series.values()): c for c in fig.crossings(s)} for s in sides}
    fitted = {(f.get("source"), f["kernel"], f["device"], f["dtype"], f["mode"], f["batch_size"]): f["fit"]
              for f in fig.fits()}
    skeys = matchup.series_keys(df)
    varying = [k for k in ("source", "device", "dtype") if k in df and df[k].nunique() > 1]
    head = [*varying, "mode", "B", "T*: best recurrence = best attention",
            *(f"T*: {s.label} = best attention" for s in textbook), *(f"k {s.label}" for s in textbook),
            "k best recurrence", "k best attention"]
    pkeys = matchup.point_keys(df)
    best_at = [{tuple(p): k for p, k in zip(b[pkeys].itertuples(index=False), b["kernel"])}  # point -> its best kernel
               for b in (matchup.best(df, s) for s in (matchup.BEST_RECURRENCE, matchup.BEST_ATTENTION))]
    rows = []
    for key, longest in scaling.ok_points(df).groupby(skeys, sort=True)["seq_len"].max().items():
        key = key if isinstance(key, tuple) else (key,)
        series = dict(zip(skeys, key))
        c = cross[matchup.BEST_RECURRENCE.label].get(key)
        if c is None:
            continue
        fit_of = lambda kernel: fitted.get((series.get("source"), kernel, series["device"], series["dtype"],  # noqa: E731
                                            series["mode"], series["batch_size"]))
        leaders = [best.get((*key, longest)) for best in best_at]  # the side's fastest at the series' longest T
        rows.append([*(str(series[k]) for k in varying), series["mode"], series["batch_size"], _tstar_cell(c),
                     *(_tstar_cell(cross[s.label].get(key)) for s in textbook),
                     *(_fit_cell(fit_of(s.kernel)) for s in textbook),
                     *(_fit_cell(fit_of(k), k) if k else "-" for k in leaders)])
    return _table(head, rows) + [""] if rows else []


def shard_section(meta: dict | None) -> list[str]:
    """A shard's report says first that it shows part of a sweep: its "best" kernels are this shard's best."""
    shard = ((meta or {}).get("schedule") or {}).get("shard")
    if not shard:
        return []
    k, n = shard
    return [f"> **Part of a sweep: shard {k}/{n}.** These rows are the curves dealt to this shard, so every *best "
            "recurrence* and *best attention* below is the best among this shard's kernels only (the best at a point "
            f"may have run in another shard). Join all {n} shards with `seqbench merge` for the sweep's figures.", ""]


def noise_section(df, meta: dict | None) -> list[str]:
    """A warning block when the run was disturbed (analysis.noise): before any figure, so nobody reads
    a number without it."""
    from seqbench.analysis.noise import warnings

    found = warnings(df, meta)
    if not found:
        return []
    return ["> **Warning: this run was disturbed.**", ">"] + [f"> - {plain(w)}" for w in found] + [""]


def key_figures(df, fig: Figures) -> list[str]:
    """fig: the crossings and fits of df's modes other than decode, and df's bootstrap replicates."""
    ok, bad = scaling.ok_points(df), scaling.failed_points(df)
    n = len(ok) + len(bad)
    lines = ["## Key figures", ""]
    if ok.empty:
        return lines + [f"**No point succeeded** ({len(bad)} of {n} failed): there are no timings, fits, crossover "
                        "or charts. The failures and their errors are listed below.", ""]
    threads = ", ".join(str(t) for t in sorted(set(ok["threads"].dropna().astype(int)))) if "threads" in ok else "?"
    lines.append(f"- {len(ok)} points measured, {len(bad)} failed or skipped; torch threads: {threads}.")
    if df.attrs.get("duplicates_dropped"):
        lines.append(f"- {df.attrs['duplicates_dropped']} row(s) repeat a point already in the file (e.g. after "
                     "`--append`): the later row is used.")
    for key, peak in sorted(scaling.matmul_peak(df).items()):
        lines.append(f"- Measured matmul peak ({', '.join(map(str, key[-2:]))}): {peak:.3g} GFLOP/s.")
    table = key_table(fig)  # decode's figures follow, by their own rules
    if table:
        lines += ["", "Best recurrence (the fastest recurrent or scan kernel at each point) against best attention "
                  "(the fastest softmax-attention kernel), the seed's loop as the textbook case, and exponents k "
                  f"(T ≥ {scaling.FIT_MIN_T}) of the kernels that are fastest at the longest T. Brackets: 95% bootstrap "
                  "intervals. A figure whose interval is wide (k: wider than "
                  f"{fits.K_WIDE}; T*: more than a {fits.T_STAR_WIDE:g}x span, or the curves cross in only some "
                  "resamples) is marked *not key*.", ""] + table
        if any("not key" in ln for ln in table):
            from seqbench.analysis.noise import rerun_advice

            lines += [f"Figures marked *not key* are too uncertain to quote: {rerun_advice(df)}.", ""]
    elif not scaling.ok_points(fig.df).empty:
        lines.append("- No best-recurrence vs best-attention comparison: the run needs a recurrent or scan kernel "
                     "and an O(T²) attention kernel.")
    return lines + decode_key_figures(df, fig.reps) + [""]


def decode_key_figures(df, reps=None) -> list[str]:
    lines = []
    for c in decode.crossings(df, reps):
        lines.append(f"- Decode crossover, best recurrence vs best attention (B={c.series['batch_size']}): "
                     f"{_tstar_cell(c)}.")
    for c in decode.kernel_crossings(df, reps):
        if c.t_star:
            lines.append(f"- Decode crossover, {c.left} vs best attention (B={c.series['batch_size']}): {_tstar_cell(c)}.")
    for kernel, g in decode.capacity(df).groupby("kernel", sort=False):
        lo, hi = g.iloc[0], g.iloc[-1]
        lines.append(f"- Capacity of {kernel} within {fmt_bytes(hi.capacity_budget_bytes)}: B = {int(lo.capacity_batch)} "
                     f"at T={int(lo.seq_len)}, B = {int(hi.capacity_batch)} at T={int(hi.seq_len)} "
                     f"({fmt_num(hi.capacity_tokens_per_s)} tokens/s).")
    return lines


def decode_section(df, reps=None) -> list[str]:
    """Decode mode: step latency against context with fitted exponents, the decode crossovers per B,
    state bytes per sequence, and the capacity batch when the run searched for it."""
    if decode.decode_points(df).empty:
        return []
    lines = ["## Decode: one token after a context of T tokens", "",
             "Each row times one step (B new tokens, one per sequence) after an untimed prefill of T tokens; the "
             "step's new state is dropped, so every repeat decodes the same token from the same context. "
             "tokens/s = B / step time. A softmax-attention kernel (registered O(T²)) reads a KV cache; every other "
             "kernel, linear attention included, carries a fixed-size state.", ""]
    rows = []
    for f in decode.decode_fits(df, reps):
        fit = f["fit"]
        state = "KV cache" if f["quadratic"] else "fixed state"
        if fit is None:
            rows.append([f["kernel"], state, f["batch_size"], "-", "-", "-", 0, f"needs 2 contexts ≥ {f['min_T']}"])
        else:
            rows.append([f["kernel"], state, f["batch_size"], fit.k_text, fit.ci.text() if fit.ci is not None else "-",
                         fit.r2_text, fit.n, f"{fit.t_lo}–{fit.t_hi}"])
    lines += ["### Step latency vs context", "",
              "k: least-squares slope of log(step time) vs log(T) over T ≥ 4d (there a KV cache's read, 4·T·d FLOPs, "
              "is at least twice the projections' 8·d²): ≈ 0 for a fixed-size state, → 1 for a KV cache. Interval: "
              "95% bootstrap, as for the forward exponents; a flat series has a low R² (there is no trend to explain).", ""]
    lines += _table(["kernel", "state", "B", "k", "95% interval", "R²", "points", "T range"], rows, "llrrrrrl") + [""]
    lines += ["### Decode crossover", "",
              "The context beyond which a fixed-state step beats the best attention's step (the fastest softmax-attention "
              "kernel at each context), interpolated in log T vs log(time ratio) between the bracketing contexts: "
              "first the best recurrence (the fastest recurrent or scan kernel), then every fixed-state kernel on its own.", ""]
    cross = crossing_rows(decode.crossings(df, reps) + decode.kernel_crossings(df, reps), mode=False)
    lines += (_table(["vs best attention", "B", "T* [95% interval]", "note"], cross, "lrrl") if cross else
              ["No crossover: the run needs a softmax-attention kernel and a fixed-state kernel."]) + [""]
    sizes = decode.state_sizes(df)
    if not sizes.empty:
        wide = sizes.pivot_table(index="kernel", columns="seq_len", values="state_bytes", aggfunc="first")
        lines += ["### State per sequence (bytes after the context: KV cache or recurrent state)", ""]
        lines += _table(["kernel", *[f"T={int(t)}" for t in wide.columns]],
                        [[k, *[fmt_bytes(v) for v in wide.loc[k]]] for k in scaling.ordered_kernels(wide.index)],
                        "l" + "r" * len(wide.columns)) + [""]
    cap = decode.capacity(df)
    if not cap.empty:
        budgets = ", ".join(fmt_bytes(b) for b in sorted(set(cap["capacity_budget_bytes"].dropna())))
        lines += ["### Capacity", "",
                  f"The largest batch whose weights + state + new token + one step's activations fit the budget "
                  f"({budgets}), each candidate allocated and stepped (measured, not computed), and the tokens/s "
                  "timed at that batch.", ""]
        crow = [[r.kernel, int(r.seq_len), int(r.capacity_batch), fmt_bytes(r.capacity_peak_bytes),
                 fmt_time(r.capacity_step_s), fmt_num(r.capacity_tokens_per_s)] for r in cap.itertuples()]
        lines += _table(["kernel", "T", "capacity batch", "measured bytes", "step", "tokens/s"], crow, "lrrrrr") + [""]
    return lines


def charts_section(chart_files: list[Path], report_path: Path) -> list[str]:
    if not chart_files:
        return []
    lines = ["## Charts", ""]
    for p in chart_files:
        rel = Path(os.path.relpath(p, report_path.parent)).as_posix()
        lines += [f"![{p.stem}]({rel})", ""]
    return lines


def build_report(df, meta: dict, *, csv_path: str | Path, report_path: str | Path, chart_files=()) -> str:
    report_path = Path(report_path)
    name = meta.get("config", {}).get("name") or Path(csv_path).stem
    lines = [f"# seqbench report: {name}", "",
             f"From `{Path(os.path.relpath(csv_path, report_path.parent)).as_posix()}` "
             f"({len(df)} row{'' if len(df) == 1 else 's'}, schema_version {int(df['schema_version'].iloc[0])}).", ""]
    ok = scaling.ok_points(df)
    reps = bootstrap.replicate_medians(ok) if not ok.empty else None
    fig = Figures(decode.other_modes(df), reps)  # decode rows have sections of their own (T is a context)
    lines += (machines.merged_note(df, meta) + unfinished_section(meta, csv_path) + shard_section(meta)
              + noise_section(df, meta)
              + key_figures(df, fig) + environment_section(meta, df))
    if not scaling.ok_points(fig.df).empty:
        lines += crossover_section(fig) + fits_section(fig)
    if not ok.empty:
        lines += decode_section(df, reps) + results_sections(df)
    lines += failures_section(df) + charts_section(list(chart_files), report_path)
    return "\n".join(lines).rstrip() + "\n"


def write_report(csv_path, report_path: str | Path, *, charts_dir: str | Path | None,
                 formats=("png",), force: bool = False, baselines=None, kernels=None,
                 sides=None) -> tuple[Path, list[Path]]:
    """Read the CSV(s) (+ sidecars), render charts into charts_dir (None: no charts), write the Markdown.

    csv_path: one CSV or several (LABEL=PATH names a file's machine); rows of several machines (or
    files) get the side-by-side report of render/machines.py.
    """
    from seqbench.analysis import load
    from seqbench.errors import ResultsError
    from seqbench.render import plot
    from seqbench.results.reader import read_metadata, split_label
    from seqbench.results.schema import sidecar_path
    from seqbench.results.ownership import check_not_input
    from seqbench.results.writer import atomic_write, refuse_existing

    inputs = [csv_path] if isinstance(csv_path, (str, Path)) else list(csv_path)
    files = [split_label(p)[1] for p in inputs]
    report_path = Path(report_path)
    if report_path.suffix.lower() == ".csv":  # a results file's name: Markdown there destroys (or poses as) results
        raise ResultsError(f"-o {report_path}: a report is Markdown; give a name ending in .md, not .csv")
    check_not_input([report_path], [q for f in files for q in (f, sidecar_path(f))], "-o")  # also through links
    if charts_dir is not None:
        plot.check_chart_dir(charts_dir, "--charts-dir")
    df = load(inputs, baselines, kernels, sides)
    metas = [read_metadata(f) for f in files]
    has_points = not scaling.ok_points(df).empty
    planned = [p for *_, p in plot.chart_paths(df, charts_dir, formats)] if charts_dir is not None and has_points else []
    refuse_existing(report_path, force, "choose another -o", kind="a Markdown report")
    if planned:
        plot.claim_chart_dir(charts_dir, plot.owner_of("report", report_path), planned, force,
                             "choose another -o / --charts-dir")
    charts = plot.render_all(df, charts_dir, formats) if planned else []
    # Embed one raster format per chart: Markdown viewers show PNG everywhere.
    embed = [p for p in charts if p.suffix == (".png" if "png" in formats else f".{formats[0]}")]
    report_path.parent.mkdir(parents=True, exist_ok=True)
    df, metas = escaped_for_markdown(df, metas)  # labels, errors, commands: literal text, never markup
    if df["source"].nunique() > 1:
        text = build_side_by_side(df, metas, csv_paths=files, report_path=report_path, chart_files=embed)
    else:
        text = build_report(df, metas[0], csv_path=files[0], report_path=report_path, chart_files=embed)
    atomic_write(report_path, lambda fh: fh.write(text))  # refuses a file a live run owns, even now
    return report_path, charts


def escaped_for_markdown(df, metas: list[dict]):
    """The free text of the results (error messages, machine labels, file names) and of the sidecars
    (commands, CPU names, labels) as literal Markdown (render.escape.md): a label such as
    `[click](javascript:..)`, `<script>` or one with newlines cannot become a link, HTML or a heading."""
    from seqbench.render.escape import md, md_deep

    df = df.copy()
    for col in ("error", "machine", "source"):
        if col in df and df[col].dtype == object:
            df[col] = df[col].map(lambda v: md(v) if isinstance(v, str) else v)
    return df, [md_deep(m) for m in metas]


def build_side_by_side(df, metas: list[dict], *, csv_paths, report_path: str | Path, chart_files=()) -> str:
    """Several machines (or files): who measured what and their key figures side by side, each
    machine's own sections after that, the overlaid charts last."""
    report_path = Path(report_path)
    names = dict.fromkeys((m.get("config") or {}).get("name") for m in metas)
    rel = [f"`{Path(os.path.relpath(p, report_path.parent)).as_posix()}`" for p in csv_paths]
    lines = [f"# seqbench report: {' / '.join(n for n in names if n) or 'results'}, "
             f"{df['source'].nunique()} machines side by side", "",
             f"From {', '.join(rel)} ({len(df)} rows, schema_version {int(df['schema_version'].iloc[0])}).", ""]
    for meta in metas:
        lines += machines.merged_note(df, meta)
    ok = scaling.ok_points(df)
    reps = bootstrap.replicate_medians(ok) if not ok.empty else None  # indexed like df: serves every part
    lines += machines.machines_table(df, metas) + machines.key_figures_table(decode.other_modes(df), reps)
    for src, part in df.groupby("source", sort=False):
        part = part.copy()
        part.attrs.update(df.attrs)
        sections = failures_section(part)
        whole = decode.other_modes(part)
        if not scaling.ok_points(part).empty:
            fig = Figures(whole, reps)
            sections = ((crossover_section(fig) + fits_section(fig) if not scaling.ok_points(whole).empty else [])
                        + decode_section(part, reps) + results_sections(part) + sections)
        meta = next((m for m in metas if m.get("machine") == src), {}) if len(metas) > 1 else metas[0]
        sections = noise_section(part, meta) + sections
        lines += [f"## Machine: {src}", ""] + ["#" + ln if ln.startswith("## ") else ln for ln in sections]
    lines += charts_section(list(chart_files), report_path)
    return "\n".join(lines).rstrip() + "\n"
