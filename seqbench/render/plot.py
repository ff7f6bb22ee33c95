"""Results DataFrame -> matplotlib Figures: one function per chart, plus `render_all` for the CLI.

Figures are built without pyplot (no global state, headless Agg canvas), so the same functions
serve the CLI and a notebook. Failed points and calibration rows are never drawn as kernel lines.
Greyscale-safe: every kernel has its own marker, every family its own line style; colour only helps.
"""

from __future__ import annotations

import math

from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from seqbench.analysis import decode, fits, matchup, scaling
from seqbench.choices import ImageFormat, Mode, allowed, values
from seqbench.errors import SeqbenchError
from seqbench.results.ownership import check_not_input
from seqbench.results.reader import split_label
from seqbench.results.schema import sidecar_path
from seqbench.results.writer import refuse_existing
from seqbench.units import fmt_bytes, fmt_faster

# Fixed styles, so a kernel looks the same in every chart and every run.
KERNEL_ORDER = scaling.KERNEL_ORDER
# 24 colours (Okabe-Ito and Paired, then darker and lighter kin), 15 markers, and from the 25th kernel a
# second set of dashes: colour x marker x dash tells 20+ kernels apart (a plot of the built-ins beside
# eleven real blocks reused pink for rnn_fused and hf_rwkv with 12 colours).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#8C564B", "#777777",
           "#6A3D9A", "#B15928", "#1F78B4", "#33A02C", "#E31A1C", "#FF7F00", "#B2DF8A", "#FB9A99", "#CAB2D6",
           "#FDBF6F", "#A6CEE3", "#F0E442", "#17BECF", "#BCBD22", "#7F3C8D")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "h", "<", ">", "p", "d", "H", "8")
FAMILY_LINES = {"recurrent": "-", "attention": "--", "scan": "-."}
SECOND_LINES = {"recurrent": (0, (6, 1, 1, 1, 1, 1)), "attention": (0, (8, 3)), "scan": (0, (3, 1, 3, 3))}
SOURCE_FILLS = ("full", "none", "left", "bottom")  # several CSVs: same kernel, different marker fill


def _style_index(df) -> dict:
    """Styles fixed by the whole DataFrame, so every panel agrees: kernel -> palette index, and the sources.

    Known kernels keep fixed styles across runs; others follow them in name order (all rows, failed too).
    """
    others = sorted(set(df["kernel"]) - set(KERNEL_ORDER))
    kernels = {**{k: i for i, k in enumerate(KERNEL_ORDER)}, **{k: len(KERNEL_ORDER) + i for i, k in enumerate(others)}}
    return {"kernels": kernels, "sources": _sources(df)}


def _style(i: int, family: str, source_index: int = 0) -> dict:
    lines = FAMILY_LINES if (i // len(PALETTE)) % 2 == 0 else SECOND_LINES
    return dict(color=PALETTE[i % len(PALETTE)], marker=MARKERS[i % len(MARKERS)],
                linestyle=lines.get(family, ":"), fillstyle=SOURCE_FILLS[source_index % len(SOURCE_FILLS)],
                markersize=5, linewidth=1.4)


def _sources(df) -> list[str]:
    return list(dict.fromkeys(df["source"])) if "source" in df else [""]


def _series(df, styles: dict, x: str = "seq_len"):
    """(label suffix, line style, kernel, rows sorted by x) for every line to draw."""
    sources = styles["sources"]
    for si, src in enumerate(sources):
        part = df[df["source"] == src] if "source" in df else df
        for kernel in scaling.ordered_kernels(part["kernel"]):
            g = part[part["kernel"] == kernel].sort_values(x)
            if not g.empty:
                suffix = f" [{src}]" if len(sources) > 1 else ""
                yield suffix, _style(styles["kernels"][kernel], g["family"].iloc[0], si), kernel, g


def _context(df) -> str:
    """'cpu · float32 · d=256 · 4 heads · 2 threads': what every title must say."""
    if "kernel" in df:  # the calibration matmul records its own N x N shape, not the sweep's d
        kernels = ~scaling.is_calibration(df)
        df = df[kernels] if kernels.any() else df

    def vals(col):
        v = [str(x) for x in dict.fromkeys(df[col].dropna())] if col in df else []
        return "/".join(v) if v else "?"

    parts = [vals("device"), vals("dtype"), f"d={vals('hidden_size')}", f"heads={vals('num_heads')}"]
    if "threads" in df and (df["device"] == "cpu").any():
        parts.append(f"threads={vals('threads')}")
    if "causal" in df and df["causal"].fillna(False).any():
        parts.append("causal")
    return " · ".join(parts)


def _figure(n_panels: int, title: str, df, mode: str, *, panel_w=4.6, panel_h=3.7):
    ncols = n_panels if n_panels <= 3 else (2 if n_panels == 4 else 3)
    nrows = -(-n_panels // ncols)
    n_lines = df.loc[df["kernel"] != "calibration", "kernel"].nunique() * max(df["source"].nunique() if "source" in df else 1, 1)
    if n_lines > 6:  # room for the legend below each panel (see _legend)
        panel_h += 0.16 * -(-n_lines // 2)
    fig = Figure(figsize=(panel_w * ncols, panel_h * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(f"{title}, {mode}\n{_context(df)}", fontsize=11)
    return fig, axes[:n_panels]


def _footnote(fig, df, mode: str, extra: str = "") -> None:
    bad = scaling.failed_points(df)
    bad = bad[bad["mode"] == mode]
    notes = [extra] if extra else []
    if len(bad):
        counts = ", ".join(f"{n} {s}" for s, n in bad["status"].value_counts().sort_index().items())
        notes.append(f"not drawn: {counts} point(s) (see the report)")
    if notes:
        fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))  # keep the note clear of the x labels
        fig.text(0.005, 0.005, "; ".join(notes), fontsize=7, color="0.3")


MAX_PANELS = 6  # panels a chart draws when nobody picked them: a figure of dozens of panels is not read
MAX_CELL_TEXTS = 150  # cells of a heatmap panel that get their ratio and winner written in them
MAX_TICKS = 12  # labelled ticks on a log2 axis (more overlap and cost ~10 ms each to lay out)


def spread(values: list, k: int) -> list:
    """At most k of the sorted values, evenly spread by rank, the first and last always among them."""
    if len(values) <= k:
        return list(values)
    return [values[i] for i in sorted({round(i * (len(values) - 1) / (k - 1)) for i in range(k)})]


def spread_log(values: list, k: int) -> list:
    """At most k of the sorted positive values, evenly spread on a log axis (the nearest to k geometric
    steps from the first to the last), the first and last always among them."""
    if len(values) <= k:
        return list(values)
    lo, hi = math.log(values[0]), math.log(values[-1])
    logs = [math.log(v) for v in values]
    picked = {min(range(len(values)), key=lambda i: abs(logs[i] - (lo + (hi - lo) * j / (k - 1)))) for j in range(k)}
    return [values[i] for i in sorted(picked)]


def _log2_x(ax, values) -> None:
    ax.set_xscale("log", base=2)
    ticks = spread_log(sorted({int(v) for v in values}), MAX_TICKS)
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v)}" if v >= 1 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=8)


def _log_y(ax) -> None:
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _pick_mode(df, mode: str | None) -> str:
    modes = list(dict.fromkeys(df["mode"]))
    if mode is not None:
        return mode
    return "forward" if "forward" in modes or not modes else modes[0]


def _legend(fig, axes, shared: bool, title: str | None = None) -> None:
    """Per-panel legends when labels differ by panel (fitted k); otherwise one legend beside the panels."""
    if not shared:
        for ax in axes:
            handles = ax.get_legend_handles_labels()[0]
            if len(handles) > 6:  # many kernels: below the panel, so no line is hidden behind it
                ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
                          title=title, title_fontsize=7, frameon=False)
            elif handles:
                ax.legend(fontsize=7, loc="best", framealpha=0.85, title=title, title_fontsize=7)
        return
    seen = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside right upper", fontsize=8, title=title)


# Panel layouts: panels over `by`, x axis the other dimension.
PANELS = {"batch_size": ("batch size B = {}", "seq_len", "sequence length T (tokens)"),
          "seq_len": ("sequence length T = {}", "batch_size", "batch size B (sequences)")}
CONTEXT_LABELS = {"seq_len": ("context length T = {}", "context length T (tokens)")}  # decode: T is the context


def _panels(df, mode, by, values, title, ylabel, draw, *, shared_legend=True, legend_title=None):
    """Shared frame of the line charts: one panel per value of `by`, log2 x, log y, one line per (source, kernel)."""
    mode = _pick_mode(df, mode)
    ok = scaling.ok_points(df)
    ok = ok[ok["mode"] == mode]
    panel_title, x, xlabel = PANELS[by]
    if mode == Mode.DECODE:
        panel_title = CONTEXT_LABELS[by][0] if by in CONTEXT_LABELS else panel_title
        xlabel = CONTEXT_LABELS[x][1] if x in CONTEXT_LABELS else xlabel
    measured = sorted({int(v) for v in ok[by]})
    note = ""
    if values is None and len(measured) > MAX_PANELS:
        values = spread(measured, MAX_PANELS)
        note = (f"panels at {len(values)} of the {len(measured)} measured {by.replace('_', ' ')}s"
                + (" (--batch picks others)" if by == "batch_size" else ""))
    values = values(measured) if callable(values) else (measured if values is None else sorted(values))
    fig, axes = _figure(max(len(values), 1), title, df, mode)
    if not values:
        _empty(axes[0], "no successful points")
    for ax, v in zip(axes, values):
        part = ok[ok[by] == v]
        if part.empty:
            _empty(ax, "no successful points at " + panel_title.format(v))
            continue
        draw(ax, part, x)
        _log2_x(ax, part[x])
        _log_y(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title.format(v), fontsize=10)
    _legend(fig, axes, shared_legend, legend_title)
    _footnote(fig, df, mode, note)
    return fig


def latency_vs_seq_len(df, *, mode: str | None = None, batch_sizes=None, min_T: int | None = None):
    """Median latency vs T, log-log, IQR band, fitted exponent k (over T >= min_T) in the legend.

    min_T: by default FIT_MIN_T, and for decode steps 4d (analysis.decode.fit_min_T)."""
    styles = _style_index(df)
    if min_T is None:
        widths = decode.decode_points(df)["hidden_size"]  # the kernels' d, not the calibration matmul's N
        decoding = _pick_mode(df, mode) == Mode.DECODE and not widths.empty
        min_T = decode.fit_min_T(widths.max()) if decoding else scaling.FIT_MIN_T

    def draw(ax, part, x):
        for suffix, st, kernel, g in _series(part, styles, x):
            fit = fits.fit_exponent(g["seq_len"], g["median_s"], min_T=min_T)
            k = f", k={fit.k_text}" if fit else ""
            T = g["seq_len"].to_numpy(float)
            ax.plot(T, g["median_s"] * 1e3, label=f"{kernel}{k}{suffix}", **st)
            q = np.array([scaling.quartiles(s) for s in g["samples_s"]]) * 1e3
            ax.fill_between(T, q[:, 0], q[:, 1], color=st["color"], alpha=0.18, linewidth=0)

    title = "Step latency vs context" if _pick_mode(df, mode) == Mode.DECODE else "Latency vs sequence length"
    return _panels(df, mode, "batch_size", batch_sizes, title, "median latency per call (ms), band = IQR", draw,
                   shared_legend=False, legend_title=f"k = log-log slope over T ≥ {min_T}")


def _lines(styles, y):
    """draw() for the plain charts: y(rows) against the panel's x, one line per (source, kernel)."""

    def draw(ax, part, x):
        for suffix, st, kernel, g in _series(part, styles, x):
            ax.plot(g[x], y(g), label=f"{kernel}{suffix}", **st)

    return draw


def gflops_vs_seq_len(df, *, mode: str | None = None, batch_sizes=None):
    """Achieved GFLOP/s vs T, with the measured matmul peak (calibration rows) as a line when present."""
    lines = _lines(_style_index(df), lambda g: g["gflops_per_s"])
    peaks = scaling.matmul_peak(df)

    def draw(ax, part, x):
        lines(ax, part, x)
        kernels = scaling.ok_points(part)
        for i, (key, peak) in enumerate(sorted(peaks.items())):
            src = f" [{key[0]}]" if len(_sources(df)) > 1 else ""
            mine = kernels[kernels["source"] == key[0]] if "source" in kernels and len(peaks) > 1 else kernels
            above = int((mine["gflops_per_s"] > peak).sum())
            low = f"; measured low: {above} point(s) above it" if above else ""  # a busy machine (analysis.noise)
            ax.axhline(peak, color="0.2", linestyle=(0, (1, 1 + i)), linewidth=1.2,
                       label=f"matmul peak {peak:.3g} GFLOP/s{src}{low}")

    return _panels(df, mode, "batch_size", batch_sizes, "Achieved throughput in FLOP terms",
                   "GFLOP/s (multiply-add = 2 FLOPs)", draw)


def memory_vs_seq_len(df, *, mode: str | None = None, batch_sizes=None):
    """Peak memory vs T, log-log: naive attention's T x T score matrix shows as slope 2."""
    methods = "/".join(sorted(set(df.get("peak_mem_method", [])) - {""})) or "peak"
    draw = _lines(_style_index(df), lambda g: g["peak_mem_bytes"].astype(float) / 2**20)
    return _panels(df, mode, "batch_size", batch_sizes,
                   "Peak memory vs sequence length", f"peak memory (MiB, {methods})", draw)


def throughput_vs_batch(df, *, mode: str | None = None, seq_lens=None):
    """Tokens/s vs B at fixed T (shortest, middle, longest by default): an RNN loop gains only from the batch."""
    draw = _lines(_style_index(df), lambda g: g["tokens_per_s"])
    pick = seq_lens if seq_lens is not None else (lambda ts: sorted({ts[0], ts[len(ts) // 2], ts[-1]}) if ts else [])
    return _panels(df, mode, "seq_len", pick, "Throughput vs batch size", "throughput (tokens/s)", draw)


def speedup_heatmap(df, *, mode: str | None = None, baselines=None):
    """Time of the best recurrence (and of each textbook baseline) / time of the best softmax attention over
    (T, B): log2 diverging colours centred on 1x, the ratio and the winning kernels written in each cell."""
    mode = _pick_mode(df, mode)
    sides = matchup.challengers(df) if baselines is None else (
        [matchup.BEST_RECURRENCE] + [matchup.kernel_side(b) for b in baselines])
    panels = []
    for src in _sources(df):
        part = df[df["source"] == src] if "source" in df else df
        for side in sides:
            s = matchup.versus(part, side)
            panels.append((src, side, s[s["mode"] == mode]))
    n_t = max([s["seq_len"].nunique() for *_, s in panels] + [1])  # wide enough for kernel names in every cell
    fig, axes = _figure(max(len(panels), 1), "Who is faster, by how much: recurrent side vs best softmax attention",
                        df, mode, panel_w=max(5.2, 1.0 * min(n_t, MAX_TICKS)), panel_h=3.9)
    span = max([float(np.nanmax(np.abs(np.log2(s["speedup"])))) for *_, s in panels if len(s)] + [1.0])
    image, unwritten = None, False
    for ax, (src, side, s) in zip(axes, panels):
        title = f"{side.label} vs best attention" + (f" [{src}]" if len(_sources(df)) > 1 else "")
        ax.set_title(title, fontsize=10)
        if s.empty:
            _empty(ax, f"no successful {side.label} + softmax attention points")
            continue
        ts = sorted({int(t) for t in s["seq_len"]})
        bs = sorted({int(b) for b in s["batch_size"]})
        grid = np.full((len(bs), len(ts)), np.nan)
        names = {}
        row, col = {b: i for i, b in enumerate(bs)}, {t: j for j, t in enumerate(ts)}
        for r in s.itertuples():
            i, j = row[int(r.batch_size)], col[int(r.seq_len)]
            grid[i, j] = r.speedup  # recurrent-side time / attention time: > 1, attention is faster
            winner, loser = (r.right_kernel, r.left_kernel) if r.speedup > 1 else (r.left_kernel, r.right_kernel)
            names[i, j] = (winner, "" if side.kernel else f"\nvs {loser}")
        image = ax.imshow(np.log2(grid), cmap="RdBu", vmin=-span, vmax=span, origin="lower", aspect="auto")
        if len(names) > MAX_CELL_TEXTS:  # unreadable, and ~10 ms each to draw: the colours carry it
            names, unwritten = {}, True
        for (i, j), name in names.items():
            v = grid[i, j]
            dark = abs(np.log2(v)) > 0.6 * span
            ax.text(j, i, f"{name[0]}\n{fmt_faster(v, '', '').strip()}{name[1]}", ha="center", va="center",
                    fontsize=5.5 if name[1] else 6.5,
                    color="white" if dark else "black")
        for axis, values in ((ax.set_xticks, ts), (ax.set_yticks, bs)):
            at = spread(list(range(len(values))), MAX_TICKS)
            axis(at, [str(values[k]) for k in at], fontsize=8)
        ax.set_xlabel("sequence length T (tokens)")
        ax.set_ylabel("batch size B")
    if image is not None:
        cb = fig.colorbar(image, ax=list(axes), shrink=0.9)
        cb.set_label("who is faster (blue: attention, red: the recurrent side)")
        cb.formatter = FuncFormatter(lambda v, _: "equal" if abs(v) < 1e-9 else
                                     f"{'attention' if v > 0 else 'recurrent'} {2 ** abs(v):.2g}×")
        cb.update_ticks()
    _footnote(fig, df, mode, f"cells not labelled: over {MAX_CELL_TEXTS} in a panel (the report's tables have the figures)"
              if unwritten else "")
    return fig


# --- decode charts (mode decode: one token after a context of T tokens) --------------------------------


def decode_tokens_vs_context(df, *, batch_sizes=None):
    """Tokens/s (B / step time) vs context, one panel per B: flat for a fixed-size state, falling for a KV cache."""
    draw = _lines(_style_index(df), lambda g: g["tokens_per_s"])
    return _panels(df, Mode.DECODE, "batch_size", batch_sizes, "Throughput vs context",
                   "tokens/s (B / step time)", draw)


def _decode_panels(df, n: int, title: str):
    return _figure(n, title, df, Mode.DECODE, panel_w=4.6 if n > 1 else 7.5)


def _per_kernel(ax, styles, rows, y, label_suffix=""):
    for suffix, st, kernel, g in _series(rows, styles):
        ax.plot(g["seq_len"], y(g), label=f"{kernel}{suffix}{label_suffix}", **st)


def _context_axes(ax, values, ylabel: str) -> None:
    _log2_x(ax, values)
    _log_y(ax)
    ax.set_xlabel(CONTEXT_LABELS["seq_len"][1])
    ax.set_ylabel(ylabel)


def decode_state_vs_context(df):
    """Bytes of state per sequence vs context, log-log: a KV cache grows as T, a recurrent state does not."""
    fig, (ax,) = _decode_panels(df, 1, "State per sequence vs context")
    sizes = decode.state_sizes(df)
    if sizes.empty:
        _empty(ax, "no state_bytes recorded")
    else:
        _per_kernel(ax, _style_index(df), sizes, lambda g: g["state_bytes"])
        _context_axes(ax, sizes["seq_len"], "state bytes per sequence (KV cache or recurrent state)")
    _legend(fig, [ax], True)
    _footnote(fig, df, Mode.DECODE)
    return fig


def decode_capacity_vs_context(df):
    """The largest batch that fits the memory budget vs context, and the tokens/s measured at that batch."""
    cap = decode.capacity(df)
    budgets = "/".join(fmt_bytes(b) for b in sorted(set(cap["capacity_budget_bytes"].dropna()))) or "?"
    fig, axes = _decode_panels(df, 2, f"Capacity: largest batch within a {budgets} budget")
    fitting = cap[cap["capacity_batch"] > 0] if not cap.empty else cap
    if fitting.empty:
        for ax in axes:
            _empty(ax, "no capacity measured (seqbench run --capacity)")
    else:
        styles = _style_index(df)
        _per_kernel(axes[0], styles, fitting, lambda g: g["capacity_batch"])
        _context_axes(axes[0], fitting["seq_len"], "capacity batch (sequences)")
        _per_kernel(axes[1], styles, fitting, lambda g: g["capacity_tokens_per_s"])
        _context_axes(axes[1], fitting["seq_len"], "tokens/s at the capacity batch")
    _legend(fig, axes, True)
    _footnote(fig, df, Mode.DECODE)
    return fig


def decode_crossover_chart(df):
    """Best attention's step / best recurrence's step vs context, one line per B; above 1 the recurrence is faster."""
    best = decode.best_steps(df)
    fig, (ax,) = _decode_panels(df, 1, "Crossover: best attention step / best recurrence step time")
    if best.empty:
        _empty(ax, "needs a softmax-attention kernel and a recurrent or scan kernel")
    else:
        by = _by_source_and_batch(best)
        for i, (label, g) in enumerate(by):
            st = _style(i, "attention")
            ax.plot(g["seq_len"], g["right_s"] / g["left_s"], label=label, **st)
        for i, c in enumerate(decode.crossings(df)):
            for t in c.t_star:
                ax.axvline(t, color="0.4", linestyle=":", linewidth=1)
                ax.annotate(f"T*≈{t:.0f} (B={c.series['batch_size']})", (t, 1), xytext=(3, 4 + 11 * i),
                            textcoords="offset points", fontsize=7, color="0.25")
        ax.axhline(1.0, color="0.2", linewidth=1)
        _context_axes(ax, best["seq_len"], "time ratio (> 1: best recurrence faster)")
        ax.legend(fontsize=7, loc="best", title="batch size", title_fontsize=7)
    _footnote(fig, df, Mode.DECODE)
    return fig


def _by_source_and_batch(best):
    sources = list(dict.fromkeys(best["source"])) if "source" in best else [""]
    for src in sources:
        part = best[best["source"] == src] if "source" in best else best
        for b, g in part.groupby("batch_size", sort=True):
            yield (f"B={int(b)}" + (f" [{src}]" if len(sources) > 1 else "")), g.sort_values("seq_len")


DECODE_CHARTS = {
    "latency_vs_T": lambda df, mode, batch: latency_vs_seq_len(df, mode=mode, batch_sizes=batch),
    "tokens_vs_T": lambda df, mode, batch: decode_tokens_vs_context(df, batch_sizes=batch),
    "throughput_vs_B": lambda df, mode, batch: throughput_vs_batch(df, mode=mode),
    "crossover_vs_T": lambda df, mode, batch: decode_crossover_chart(df),
    "state_vs_T": lambda df, mode, batch: decode_state_vs_context(df),
    "capacity_vs_T": lambda df, mode, batch: decode_capacity_vs_context(df),
    "memory_vs_T": lambda df, mode, batch: memory_vs_seq_len(df, mode=mode, batch_sizes=batch),
}


def charts_for(df, mode: str) -> dict:
    """The charts of a mode: decode has its own set (capacity only when the run measured it)."""
    if mode != Mode.DECODE:
        return CHARTS
    has_capacity = not decode.capacity(df).empty
    return {k: v for k, v in DECODE_CHARTS.items() if k != "capacity_vs_T" or has_capacity}


CHARTS = {
    "latency_vs_T": lambda df, mode, batch: latency_vs_seq_len(df, mode=mode, batch_sizes=batch),
    "throughput_vs_B": lambda df, mode, batch: throughput_vs_batch(df, mode=mode),
    "speedup_heatmap": lambda df, mode, batch: speedup_heatmap(df, mode=mode),
    "gflops_vs_T": lambda df, mode, batch: gflops_vs_seq_len(df, mode=mode, batch_sizes=batch),
    "memory_vs_T": lambda df, mode, batch: memory_vs_seq_len(df, mode=mode, batch_sizes=batch),
}
CHART_NAMES = tuple(CHARTS)


def chart_paths(df, out_dir: str | Path, formats=("png",)) -> list[tuple[str, str, Path]]:
    """Deterministic (chart, mode, path) for every file render_all would write: NAME-MODE.FORMAT."""
    modes = list(dict.fromkeys(scaling.ok_points(df)["mode"])) or [_pick_mode(df, None)]
    return [(name, mode, Path(out_dir) / f"{name}-{mode}.{fmt}") for mode in modes for name in charts_for(df, mode)
            for fmt in formats]


# longer names (a 5,000-character kernel name) would squeeze the axes to nothing: legend entries,
# labels inside a panel (a heatmap's cells), any other line (titles, notes)
LEGEND_CHARS, CELL_CHARS, TEXT_CHARS = 32, 24, 100


def _shorten(text: str, limit: int) -> str:
    """text cut to `limit` characters per line, ending in '…' and a short hash (two long names that
    share a beginning stay told apart)."""
    import hashlib

    def cut(line: str) -> str:
        if len(line) <= limit:
            return line
        head, sep, tail = line.rpartition(", ")  # "NAME, k=1.00": keep what is said of the name
        if sep and len(tail) <= 20 and len(head) > limit - len(tail) - 2:
            line, limit_, tail = head, limit - len(tail) - 2, sep + tail
        else:
            limit_, tail = limit, ""
        return f"{line[:limit_ - 8]}…{hashlib.sha1(line.encode()).hexdigest()[:6]}{tail}"

    return "\n".join(cut(line) for line in text.split("\n"))


def fit_texts(fig) -> None:
    """Every text of a chart at a readable length: legend entries shorter, titles and notes per line."""
    from matplotlib.text import Text

    legends = [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
    in_legend = {id(t) for lg in legends for t in lg.get_texts()}
    in_cell = {id(t) for ax in fig.axes for t in ax.texts}
    for t in fig.findobj(Text):
        text = t.get_text()
        short = _shorten(text, LEGEND_CHARS if id(t) in in_legend else CELL_CHARS if id(t) in in_cell else TEXT_CHARS)
        if short != text:
            t.set_text(short)


def render_all(df, out_dir: str | Path, formats=("png",), *, batch_sizes=None, dpi: int = 150) -> list[Path]:
    """Render every chart for every mode into out_dir; returns the written paths in a fixed order."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written, figs = [], {}
    for name, mode, path in chart_paths(df, out_dir, formats):
        if (name, mode) not in figs:
            figs[name, mode] = charts_for(df, mode)[name](df, mode, batch_sizes)
            fit_texts(figs[name, mode])
        # svg: no date and a fixed id salt, so re-rendering the same CSV gives the same bytes.
        with rc_context({"svg.hashsalt": "seqbench"}):
            figs[name, mode].savefig(path, dpi=dpi, metadata={"Date": None} if path.suffix == ".svg" else None)
        written.append(path)
    return written


FORMATS = values(ImageFormat)


class PlotError(SeqbenchError):
    pass


def parse_formats(text: str) -> tuple[str, ...]:
    fmts = tuple(dict.fromkeys(s.strip().lower().lstrip(".") for s in str(text).split(",") if s.strip()))
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise PlotError(f"--image-format {text!r}: unknown format {bad[0] if bad else '(none)'!r}; "
                        f"allowed: {allowed(ImageFormat)}")
    return fmts


# Each chart folder belongs to one output: a report embeds its charts by path, so a later command that
# wrote other charts into the same folder would change what that report shows. The folder's
# owner is recorded in this file; another owner is refused even with --force.
OWNER_FILE = ".seqbench-charts.json"


def default_plot_dir(csv_path: str | Path) -> Path:
    """`seqbench plot`'s folder: CSTEM-charts/ beside the (first) CSV, one per input."""
    p = Path(csv_path)
    return p.parent / f"{p.stem}-charts"


def default_report_charts_dir(report_path: str | Path) -> Path:
    """`seqbench report`'s chart folder: RSTEM-report-charts/ beside the report (never plot's folder)."""
    p = Path(report_path)
    return p.parent / f"{p.stem}-report-charts"


def claim_chart_dir(out_dir: str | Path, owner: str, targets, force: bool, hint: str) -> None:
    """Refuse to write charts into a folder another output owns, or over existing charts without force;
    then record `owner` ("report results/mine.md", "plot results/mine.csv") as the folder's owner.

    A folder that predates the owner file is judged by its files alone (refuse_existing)."""
    import json

    from seqbench.results.writer import write_json_atomic

    out_dir = Path(out_dir)
    marker = out_dir / OWNER_FILE
    if marker.exists():
        try:
            holder = json.loads(marker.read_text()).get("owner")
        except (OSError, ValueError, AttributeError):
            holder = None
        if holder and holder != owner:
            raise PlotError(f"{out_dir} holds the charts of {holder}; writing {owner}'s there would change what "
                            f"that shows, even with --force; {hint}")
    for target in targets:
        refuse_existing(target, force, hint, kind="a chart")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, {"owner": owner, "written_by": "seqbench"})


def owner_of(kind: str, path: str | Path) -> str:
    """The owner name recorded for a chart folder: the command and its output (or first input)."""
    import os

    return f"{kind} {Path(os.path.abspath(path)).as_posix()}"


def check_chart_dir(out_dir: str | Path, flag: str = "--out-dir") -> None:
    """The charts' folder is a folder (or can become one): one line, not "File exists" from mkdir."""
    d = Path(out_dir)
    for part in (d, *d.parents):
        if part.exists():
            if not part.is_dir():
                raise PlotError(f"{flag} {d}: {'it' if part == d else part} is a file, not a folder; give a folder "
                                "for the charts")
            return


def plot_files(paths, out_dir: str | Path, formats=("png",), *, batch_sizes=None, force: bool = False,
               baselines=None, kernels=None, sides=None) -> list[Path]:
    """What `seqbench plot` does: read and check the CSVs, refuse to clobber, render every chart.
    kernels / sides: which kernels to draw, and which form each side of best-vs-best (analysis.load)."""
    from seqbench.analysis import load

    df = load(paths, baselines, kernels, sides)
    ok = scaling.ok_points(df)
    if ok.empty:
        raise PlotError(f"{', '.join(map(str, paths))}: no point succeeded ({len(df)} failed or skipped); "
                        "nothing to plot. `seqbench report` lists the failures")
    if batch_sizes:
        measured = sorted({int(b) for b in ok["batch_size"]})
        missing = [b for b in batch_sizes if b not in measured]
        if missing:
            raise PlotError(f"--batch {missing[0]} has no successful points; measured batch sizes: "
                            f"{', '.join(map(str, measured))}")
    check_chart_dir(out_dir)
    targets = [p for *_, p in chart_paths(df, out_dir, formats)]
    files = [split_label(p)[1] for p in paths]
    check_not_input(targets, [*files, *map(sidecar_path, files)], "chart")
    owner = owner_of("plot", files[0]) + (f" (+{len(files) - 1} more)" if len(files) > 1 else "")
    claim_chart_dir(out_dir, owner, targets, force, "choose another --out-dir")
    return render_all(df, out_dir, formats, batch_sizes=batch_sizes)


def plot_gradflow(norms, decay, path) -> None:
    """Gradient norm against distance T-t, log y: geometric mean over seeds, band = min..max over seeds."""
    rates = {f.layer: f.rate_per_step for f in decay}
    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for label, grp in norms.groupby("layer", sort=False):
        wide = grp.pivot(index="distance", columns="seed", values="grad_norm").sort_index()
        positive = wide.where(wide > 0)
        with np.errstate(divide="ignore"):
            geo = np.exp(np.log(positive).mean(axis=1))
        line, = ax.plot(wide.index, geo, label=f"{label}: rate {rates[label]:+.3g}/step")
        ax.fill_between(wide.index, positive.min(axis=1), positive.max(axis=1), color=line.get_color(), alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("distance T - t (tokens)")
    ax.set_ylabel("||u · dy_T/dx_t||  (geometric mean over seeds)")
    ax.set_title("Gradient path length: recurrence vs attention (random init, float64)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=120)
