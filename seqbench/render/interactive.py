"""Interactive charts for the browser: plotly.js figures (plain JSON: data + layout) and the pages that
hold them. plotly.js itself comes from the `plotly` package (the `html` extra) and is bundled with the
page, never fetched from a CDN: the pages work offline, from a folder or file://.

Glue only: a page lists its figures as JSON, and a few lines of script draw them and make a clicked
point with a `url` in its customdata open that page.
"""

from __future__ import annotations

import html
import json

from seqbench.errors import SeqbenchError

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#8C564B", "#777777",
           "#6A3D9A", "#B15928", "#1F78B4")
DASH = {"recurrent": "solid", "attention": "dash", "scan": "dashdot"}
CONFIG = {"displaylogo": False, "responsive": True}

_GLUE = """
for (const f of FIGURES) {
  const el = document.getElementById(f.id);
  Plotly.newPlot(el, f.data, f.layout, %s);
  el.on('plotly_click', (ev) => {
    const cd = ev.points && ev.points[0] && ev.points[0].customdata;
    const url = Array.isArray(cd) ? cd[cd.length - 1] : null;
    if (typeof url === 'string' && url.endsWith('.html')) { window.location.href = url; }
  });
}
""" % json.dumps(CONFIG)

STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
.chart{width:100%;height:420px;margin-bottom:1.5em}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}td:first-child,th:first-child{text-align:left}
code{font-size:.9em}.regression{color:#b00}.improvement{color:#070}.note{color:#555;font-size:.9em}"""


def plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise SeqbenchError("interactive charts need plotly (it ships plotly.js): pip install 'seqbench[html]'") from None
    return get_plotlyjs()


def page(title: str, body: str, figures: list[dict], *, script_src: str | None = None) -> str:
    """A whole HTML page. script_src: where plotly.min.js lies (a site); None: plotly.js inlined (one file)."""
    js = f'<script src="{html.escape(script_src)}"></script>' if script_src else f"<script>{plotly_js()}</script>"
    data = json.dumps(figures, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n{js}</head>\n<body>\n{body}\n"
            f"<script>const FIGURES = {data};\n{_GLUE}</script>\n</body></html>\n")


def chart_div(fig: dict) -> str:
    return f'<div class="chart" id="{html.escape(fig["id"])}"></div>'


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def scaling_figures(df, prefix: str = "scaling") -> list[dict]:
    """Latency vs T, log-log, one chart per mode and batch size, one trace per kernel (click the legend to
    hide or show a kernel; double-click to show it alone). df: results rows (ok rows of kernels drawn)."""
    from seqbench.analysis import scaling

    ok = scaling.ok_points(df) if "family" in df else df[df["status"] == "ok"]
    figs = []
    kernels = scaling.ordered_kernels(ok["kernel"])
    color = {k: _color(i) for i, k in enumerate(kernels)}
    sources = list(dict.fromkeys(ok["source"])) if "source" in ok else [None]
    for (mode, b), part in ok.groupby(["mode", "batch_size"], sort=True):
        data = []
        for si, src in enumerate(sources):
            part_s = part if src is None else part[part["source"] == src]
            for k in scaling.ordered_kernels(part_s["kernel"]):
                g = part_s[part_s["kernel"] == k].sort_values("seq_len")
                name = k if len(sources) < 2 else f"{k} [{src}]"
                ms = (g["median_s"].astype(float) * 1e3).round(6).tolist()
                fam = str(g["family"].iloc[0]) if "family" in g else ""
                data.append({"type": "scatter", "mode": "lines+markers", "name": name,
                             "x": [int(t) for t in g["seq_len"]], "y": ms,
                             "line": {"color": color[k], "dash": DASH.get(fam, "dot")},
                             "marker": {"symbol": ["circle", "square", "diamond", "cross"][si % 4]},
                             "hovertemplate": f"{name}<br>T=%{{x}}<br>%{{y:.4g}} ms<extra></extra>"})
        ts = sorted({int(t) for t in part["seq_len"]})
        figs.append({"id": f"{prefix}-{mode}-B{int(b)}", "data": data, "layout": {
            "title": {"text": f"latency vs T: {mode}, B={int(b)}"}, "hovermode": "closest",
            "xaxis": {"type": "log", "title": {"text": "sequence length T"}, "tickvals": ts, "ticktext": [str(t) for t in ts]},
            "yaxis": {"type": "log", "title": {"text": "median time per call (ms)"}},
            "legend": {"title": {"text": "kernel (click to hide)"}}, "margin": {"t": 50}}})
    return figs


def trend_figure(fig_id: str, title: str, commits: list[str], traces: list[dict], changes: list[dict]) -> dict:
    """One chart of a machine's history: x = its commits in run order (categories), a trace per point
    (value in ms with its 95% interval as error bars; hover: commit, time, value; click: that run's page),
    change points as markers at the first commit of the new level.

    traces: {name, commits, times, ms, lo_ms, hi_ms, urls}; changes: {trace, commit, ms, text}."""
    data = []
    for i, t in enumerate(traces):
        custom = [[c, tm, lo, hi, u] for c, tm, lo, hi, u in zip(t["commits"], t["times"], t["lo_ms"], t["hi_ms"], t["urls"])]
        data.append({"type": "scatter", "mode": "lines+markers", "name": t["name"], "x": [c[:10] for c in t["commits"]],
                     "y": t["ms"], "customdata": custom, "line": {"color": _color(i)},
                     "error_y": {"type": "data", "symmetric": False,
                                 "array": [round(h - m, 9) for h, m in zip(t["hi_ms"], t["ms"])],
                                 "arrayminus": [round(m - lo, 9) for lo, m in zip(t["lo_ms"], t["ms"])],
                                 "thickness": 1, "width": 2},
                     "hovertemplate": "commit %{customdata[0]}<br>%{customdata[1]}<br>%{y:.4g} ms "
                                      "[%{customdata[2]:.4g}, %{customdata[3]:.4g}]<extra>%{fullData.name}</extra>"})
    if changes:
        data.append({"type": "scatter", "mode": "markers", "name": "change points",
                     "x": [c["commit"][:10] for c in changes], "y": [c["ms"] for c in changes],
                     "text": [c["text"] for c in changes], "hovertemplate": "%{text}<extra>change point</extra>",
                     "marker": {"symbol": "triangle-up", "size": 13, "color": "#c00",
                                "line": {"color": "#000", "width": 1}}})
    return {"id": fig_id, "data": data, "layout": {
        "title": {"text": title}, "hovermode": "closest",
        "xaxis": {"type": "category", "categoryorder": "array", "categoryarray": [c[:10] for c in commits],
                  "title": {"text": f"commit ({len(commits)}, in run order)"}},
        "yaxis": {"type": "log", "title": {"text": "median time per call (ms)"}},
        "legend": {"title": {"text": "point (click to hide)"}}, "margin": {"t": 50}}}
