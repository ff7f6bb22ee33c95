"""Results CSV -> Markdown report: environment, tables per batch size, scaling fits, crossover, failures, charts.

Every number comes from seqbench.analysis (the same code the charts use); nothing is estimated
that the CSV does not hold. A CSV whose points all failed still gets a report that says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from seqbench.analysis import fits, roles, scaling
from seqbench.choices import Family
from seqbench.units import fmt_bytes, fmt_num, fmt_time

POOR_FIT_R2 = 0.9  # below this a single exponent misdescribes the series; the key figures say so


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" * len(header)
    sep = ["---:" if a == "r" else "---" for a in align]
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(map(cell, r)) + " |" for r in [header, sep, *rows]]


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
    return lines + _table(["key", "value"], [[k, _short(v)] for k, v in rows]) + [""]


def _short(v) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def crossovers(df, baseline: str) -> list[dict]:
    """T* per (mode, B) where the best quadratic attention kernel and `baseline` take the same time, with a note."""
    out = []
    s = scaling.speedups(df, baseline)
    for (mode, b), g in s.groupby(["mode", "batch_size"], sort=True):
        g = g.sort_values("seq_len")
        ts = fits.crossover(g["seq_len"], g["attention_s"], g["baseline_s"])
        lo, hi = int(g["seq_len"].min()), int(g["seq_len"].max())
        if ts:
            above = "the last T*" if len(ts) > 1 else "T*"
            note = f"{baseline if g['speedup'].iloc[-1] < 1 else 'attention'} faster above {above}"
            if len(ts) > 1:
                note += f"; the curves cross {len(ts)} times (noisy or flat ratio)"
        elif len(g) < 2:
            note = "one length measured: no crossover can be located"
        else:
            faster = "attention" if (g["speedup"] > 1).all() else baseline
            note = f"none in range: {faster} faster at every measured T ({lo}–{hi})"
        out.append({"mode": mode, "batch_size": int(b), "t_star": ts, "note": note, "range": (lo, hi)})
    return out


def _fmt_tstar(ts: list[float]) -> str:
    return ", ".join(f"{t:.0f}" for t in ts) if ts else "none in range"


def fits_section(df) -> list[str]:
    series = scaling.kernel_fits(df)
    lines = ["## Scaling exponents", "",
             f"k is the slope of log(median latency) vs log(T), least squares over the points with "
             f"T ≥ {scaling.FIT_MIN_T}; an RNN should give k ≈ 1 and attention tends to k ≈ 2 once its "
             "T² term dominates. With 2 points R² is 1 by construction.", ""]
    rows = []
    for f in series:
        fit = f["fit"]
        if fit is None:
            rows.append([f["kernel"], f["family"], f["mode"], f["batch_size"], "-", "-", 0, f"needs 2 lengths ≥ {scaling.FIT_MIN_T}"])
        else:
            rows.append([f["kernel"], f["family"], f["mode"], f["batch_size"], fit.k_text, fit.r2_text, fit.n,
                         f"{fit.t_lo}–{fit.t_hi}"])
    return lines + _table(["kernel", "family", "mode", "B", "k", "R²", "points", "T range"], rows, "lllrrrrl") + [""]


def crossover_section(df) -> list[str]:
    lines = ["## Crossover length T*", "",
             "T* is where the best softmax-attention kernel (the fastest kernel registered as O(T²) at each point; "
             "linear attention is O(T) and left out) and the baseline take the same time, "
             "interpolated linearly in log T vs log(time ratio) between the two measured lengths that bracket it. "
             "Baselines: `report --baseline KERNEL`, the config's `baselines`, else the kernels registered as baselines "
             "(rnn_loop, rnn_fused).", ""]
    rows = []
    for base in roles.baseline_kernels(df):
        for c in crossovers(df, base):
            rows.append([base, c["mode"], c["batch_size"], _fmt_tstar(c["t_star"]), c["note"]])
    if not rows:
        return lines + ["No crossover can be computed: the run needs a baseline kernel and an O(T²) attention kernel.", ""]
    return lines + _table(["baseline", "mode", "B", "T*", "note"], rows, "llrrl") + [""]


def results_sections(df) -> list[str]:
    ok = scaling.ok_points(df)
    lines = []
    peaks = scaling.matmul_peak(df)
    for (mode, b), part in ok.groupby(["mode", "batch_size"], sort=True):
        rows = []
        for kernel in scaling.ordered_kernels(part["kernel"]):
            for r in part[part["kernel"] == kernel].sort_values("seq_len").itertuples():
                gf = fmt_num(r.gflops_per_s)
                peak = max((v for k, v in peaks.items() if k[-2:] == (r.device, r.dtype)), default=None)
                if peak and r.gflops_per_s == r.gflops_per_s:
                    gf += f" ({100 * r.gflops_per_s / peak:.0f}%)"
                backend = getattr(r, "sdpa_backend", "")  # recorded by runs that know which SDPA path ran
                name = f"{kernel} ({backend})" if isinstance(backend, str) and backend else kernel
                rows.append([name, int(r.seq_len), f"{fmt_time(r.median_s)} ± {fmt_time(r.iqr_s)}",
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


def key_figures(df) -> list[str]:
    ok, bad = scaling.ok_points(df), scaling.failed_points(df)
    n = len(ok) + len(bad)
    lines = ["## Key figures", ""]
    if ok.empty:
        return lines + [f"**No point succeeded** ({len(bad)} of {n} failed): there are no timings, fits, crossover "
                        "or charts. The failures and their errors are listed below.", ""]
    lines.append(f"- {len(ok)} points measured, {len(bad)} failed or skipped.")
    if df.attrs.get("duplicates_dropped"):
        lines.append(f"- {df.attrs['duplicates_dropped']} row(s) repeat a point already in the file (e.g. after "
                     "`--append`): the later row is used.")
    for key, peak in sorted(scaling.matmul_peak(df).items()):
        lines.append(f"- Measured matmul peak ({', '.join(map(str, key[-2:]))}): {peak:.3g} GFLOP/s.")
    baselines = roles.baseline_kernels(df)
    whole = df[df["mode"] != "decode"]  # decode's exponents and crossover follow, by their own rules
    whole.attrs.update(df.attrs)
    for f in scaling.kernel_fits(whole):
        fit = f["fit"]
        if fit is not None and (f["kernel"] in baselines[:1] or f["family"] == Family.ATTENTION):
            poor = "; poor fit: noisy points or not a power law" if fit.r2 < POOR_FIT_R2 else ""
            lines.append(f"- Exponent k of {f['kernel']} ({f['mode']}, B={f['batch_size']}): {fit.k_text} "
                         f"(R² {fit.r2_text} over T {fit.t_lo}–{fit.t_hi}{poor}).")
    for c in crossovers(whole, baselines[0]) if baselines else []:
        said = f"T* ≈ {_fmt_tstar(c['t_star'])} ({c['note']})" if c["t_star"] else c["note"]
        lines.append(f"- Crossover, best softmax attention vs {baselines[0]} ({c['mode']}, B={c['batch_size']}): {said}.")
    return lines + decode_key_figures(df) + [""]


def decode_key_figures(df) -> list[str]:
    from seqbench.analysis import decode

    lines = []
    for c in decode.decode_crossovers(df):
        said = f"T* ≈ {_fmt_tstar(c['t_star'])} ({c['note']})" if c["t_star"] else c["note"]
        lines.append(f"- Decode crossover, best fixed-state step vs best softmax-attention step (B={c['batch_size']}): "
                     f"{said}.")
    for c in decode.kernel_crossovers(df):
        if c["t_star"]:
            lines.append(f"- Decode crossover of {c['kernel']} vs the best softmax-attention step (B={c['batch_size']}): "
                         f"T* ≈ {_fmt_tstar(c['t_star'])} ({c['note']}).")
    cap = decode.capacity(df)
    for kernel, g in cap.groupby("kernel", sort=False):
        g = g.sort_values("seq_len")
        lo, hi = g.iloc[0], g.iloc[-1]
        lines.append(f"- Capacity of {kernel} within {fmt_bytes(hi.capacity_budget_bytes)}: B = {int(lo.capacity_batch)} "
                     f"at T={int(lo.seq_len)}, B = {int(hi.capacity_batch)} at T={int(hi.seq_len)} "
                     f"({fmt_num(hi.capacity_tokens_per_s)} tokens/s).")
    return lines


def decode_section(df) -> list[str]:
    """Decode mode: step latency against context with fitted exponents, the decode crossover per B,
    state bytes per sequence, and the capacity batch when the run searched for it."""
    from seqbench.analysis import decode

    dec = decode.decode_points(df)
    if dec.empty:
        return []
    lines = ["## Decode: one token after a context of T tokens", "",
             "Each row times one step (B new tokens, one per sequence) after an untimed prefill of T tokens; the "
             "step's new state is dropped, so every repeat decodes the same token from the same context. "
             "tokens/s = B / step time. Sides are read off the kernels' registry attributes: softmax attention "
             f"(`quadratic`, a KV cache) against every kernel with a {decode.RECURRENT_SIDE}.", ""]
    rows = []
    for f in decode.decode_fits(df):
        fit = f["fit"]
        side = "KV cache" if f["quadratic"] else "fixed state"
        rows.append([f["kernel"], side, f["batch_size"], *( [fit.k_text, fit.r2_text, fit.n, f"{fit.t_lo}–{fit.t_hi}"]
                     if fit else ["-", "-", 0, f"needs 2 contexts ≥ {f['min_T']}"])])
    lines += ["### Step latency vs context", "",
              "k: least-squares slope of log(step time) vs log(T) over T ≥ 4d (there a KV cache's read, 4·T·d "
              "FLOPs, is at least twice the projections' 8·d²): ≈ 0 for a fixed-size state, → 1 for a KV cache.", ""]
    lines += _table(["kernel", "state", "B", "k", "R²", "points", "T range"], rows, "llrrrrl") + [""]
    lines += ["### Decode crossover", "",
              "The context beyond which the fastest fixed-state step beats the fastest softmax-attention step, per B "
              "(interpolated in log T vs log(time ratio) between the bracketing contexts).", ""]
    cross = [[c["batch_size"], _fmt_tstar(c["t_star"]), ", ".join(c["recurrent_kernels"]),
              ", ".join(c["attention_kernels"]), c["note"]] for c in decode.decode_crossovers(df)]
    lines += (_table(["B", "T*", "fastest fixed state", "fastest attention", "note"], cross, "lrlll") if cross else
              ["No crossover: the run needs a softmax-attention kernel and a fixed-state kernel."]) + [""]
    per_kernel = [[c["kernel"], c["batch_size"], _fmt_tstar(c["t_star"]), c["note"]] for c in decode.kernel_crossovers(df)]
    if per_kernel:
        lines += ["Each fixed-state kernel against the fastest softmax-attention step at each context:", ""]
        lines += _table(["fixed-state kernel", "B", "T*", "note"], per_kernel, "lrrl") + [""]
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
             f"({len(df)} rows, schema_version {int(df['schema_version'].iloc[0])}).", ""]
    lines += key_figures(df) + environment_section(meta, df)
    whole = df[df["mode"] != "decode"]  # decode rows have sections of their own (context, not sequence, length)
    whole.attrs.update(df.attrs)
    if not scaling.ok_points(whole).empty:
        lines += fits_section(whole) + crossover_section(whole)
    if not scaling.ok_points(df).empty:
        lines += decode_section(df) + results_sections(df)
    lines += failures_section(df) + charts_section(list(chart_files), report_path)
    return "\n".join(lines).rstrip() + "\n"


def write_report(csv_path: str | Path, report_path: str | Path, *, charts_dir: str | Path | None,
                 formats=("png",), force: bool = False, baselines=None) -> tuple[Path, list[Path]]:
    """Read the CSV (+ sidecar), render charts into charts_dir (None: no charts), write the Markdown."""
    from seqbench.analysis import load
    from seqbench.errors import ResultsError
    from seqbench.render import plot
    from seqbench.results.reader import read_metadata
    from seqbench.results.schema import sidecar_path
    from seqbench.results.writer import refuse_existing

    report_path = Path(report_path)
    if report_path.resolve() in (Path(csv_path).resolve(), sidecar_path(csv_path).resolve()):
        raise ResultsError(f"-o {report_path} is the results file itself; write the report to another file")
    df = load([csv_path], baselines)
    meta = read_metadata(csv_path)
    has_points = not scaling.ok_points(df).empty
    planned = [p for *_, p in plot.chart_paths(df, charts_dir, formats)] if charts_dir is not None and has_points else []
    for p in [report_path, *planned]:
        refuse_existing(p, force, "choose another -o / --charts-dir")
    charts = plot.render_all(df, charts_dir, formats) if planned else []
    # Embed one raster format per chart: Markdown viewers show PNG everywhere.
    embed = [p for p in charts if p.suffix == (".png" if "png" in formats else f".{formats[0]}")]
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(build_report(df, meta, csv_path=csv_path, report_path=report_path, chart_files=embed))
    return report_path, charts
