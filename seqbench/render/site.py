"""`seqbench history publish`: a static site from the store (no server: GitHub Pages or any folder).

  index.html        per machine: the change points found, every point's trend over commits (a chart per
                    kernel and mode, a trace per shape; hover: commit, time, value with its interval;
                    change points marked; click a point: that run's page), the latest run's scaling charts
  runs/<id>.html    one run: machine, commit, time, environment, every point's value, its scaling charts
  plotly.min.js     plotly.js, bundled from the plotly package (the pages never reach the network)
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from seqbench.analysis.history import check_history, commit_series, machine_commits
from seqbench.render import interactive as ia
from seqbench.render.history_text import interval, pct


def _esc(x) -> str:
    return html.escape(str(x))


def publish(store, out_dir: str | Path, *, threshold: float = 0.05, force: bool = False) -> list[Path]:
    """Write the site into out_dir from a Store; returns the files written."""
    import pandas as pd

    from seqbench.errors import ResultsError

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "index.html").exists():
        raise ResultsError(f"{out}: not empty and not a seqbench site; choose an empty folder")
    if (out / "index.html").exists() and not force:
        raise ResultsError(f"{out}/index.html exists; --force replaces the site")
    runs = store.runs(sidecars=True)
    if runs.empty:
        raise ResultsError(f"store {store.where}: holds no runs; nothing to publish")
    df = store.measurements()
    chk = check_history(df, threshold=threshold, accepted=store.accepted())
    (out / "runs").mkdir(parents=True, exist_ok=True)
    written = [out / "plotly.min.js"]
    written[0].write_text(ia.plotly_js())
    body, figures = [f"<h1>seqbench history</h1><p class=note>{len(runs)} runs on {runs['machine'].nunique()} "
                     f"machine(s), {df['point'].nunique()} points; change points by {_esc(chk.method)}; threshold "
                     f"{threshold * 100:g}%. Click a legend entry to hide a series, a point to open its run.</p>"], []
    per_machine = machine_commits(df)
    series = commit_series(df)
    for mi, machine in enumerate(sorted(per_machine)):
        commits = [c for c, _ in per_machine[machine]]
        mrows = df[df["machine"] == machine]
        body.append(f"<h2>Machine: {_esc(machine)}</h2><p>{len(commits)} commits, {mrows['run'].nunique()} runs, "
                    f"latest {_esc(commits[-1][:12])}.</p>")
        body.append(_changes_table([c for c in chk.changes if c.machine == machine]))
        groups = mrows.groupby(["kernel", "mode"], sort=True)
        for gi, ((kernel, mode), g) in enumerate(groups):
            traces, marks = [], []
            for point, pg in g.groupby("point", sort=True):
                pg = pg.sort_values(["time", "run"])
                traces.append({"name": _short_name(point, kernel, mode), "commits": list(pg["commit"]),
                               "times": list(pg["time"]), "ms": _ms(pg["median_s"]), "lo_ms": _ms(pg["lo_s"]),
                               "hi_ms": _ms(pg["hi_s"]), "urls": [f"runs/{int(r)}.html" for r in pg["run"]]})
                level = series[(series["machine"] == machine) & (series["point"] == point)].set_index("commit")["value"]
                for c in chk.changes:
                    if c.machine == machine and c.point == point:
                        marks.append({"commit": c.after, "ms": float(level[c.after]) * 1e3,
                                      "text": f"{c.direction} {pct(c.size)} {interval(c.lo, c.hi)}<br>"
                                              f"{c.before[:10]}..{c.after[:10]}<br>{_esc(traces[-1]['name'])}"})
            fig = ia.trend_figure(f"trend-{mi}-{gi}", f"{kernel}, {mode}", commits, traces, marks)
            figures.append(fig)
            body.append(ia.chart_div(fig))
        latest = int(runs[runs["machine"] == machine]["run"].iloc[-1])
        rows = pd.DataFrame(store.run_rows(latest))
        scal = ia.scaling_figures(rows, prefix=f"latest-{mi}")
        body.append(f"<h3>Latest run's scaling charts (<a href=\"runs/{latest}.html\">run {latest}</a>, commit "
                    f"{_esc(runs[runs['run'] == latest]['commit'].iloc[0][:12])})</h3>")
        body += [ia.chart_div(f) for f in scal]
        figures += scal
    written.append(out / "index.html")
    written[-1].write_text(ia.page("seqbench history", "\n".join(body), figures, script_src="plotly.min.js"))
    for rec in runs.to_dict("records"):
        p = out / "runs" / f"{int(rec['run'])}.html"
        p.write_text(_run_page(store, rec))
        written.append(p)
    return written


def _ms_text(v) -> str:
    return "" if v is None or v != v else f"{float(v) * 1e3:.4g}"


def _ms(s) -> list[float]:
    return [round(float(v) * 1e3, 9) for v in s]


def _short_name(point: str, kernel: str, mode: str) -> str:
    rest = point.split(" ")
    return " ".join(w for w in rest if w not in (kernel, mode))


def _changes_table(changes) -> str:
    if not changes:
        return "<p>No change points.</p>"
    rows = "".join(
        f"<tr><td><code>{_esc(c.point)}</code></td><td class={c.direction}>{c.direction}</td><td>{pct(c.size)} "
        f"{interval(c.lo, c.hi)}</td><td><code>{_esc(c.before[:10])}..{_esc(c.after[:10])}</code></td>"
        f"<td>{_esc(c.accepted or ('beyond the threshold' if c.beyond else 'within the threshold'))}</td></tr>"
        for c in changes)
    return ("<table><tr><th>point</th><th>direction</th><th>size [95% CI]</th><th>commits</th><th>status</th></tr>"
            f"{rows}</table>")


def _run_page(store, rec: dict) -> str:
    import pandas as pd

    rows = pd.DataFrame(store.run_rows(int(rec["run"])))
    figs = ia.scaling_figures(rows, prefix="run")
    sidecar = json.loads(rec.get("sidecar") or "{}")
    env = sidecar.get("environment")
    table = "".join(
        f"<tr><td><code>{_esc(r['kernel'])}</code></td><td>{_esc(r['mode'])}</td><td>{r['batch_size']}</td>"
        f"<td>{r['seq_len']}</td><td>{_esc(r['status'])}</td>"
        f"<td>{_ms_text(r.get('median_s'))}</td>"
        f"<td>{len(str(r.get('samples_s') or '').split())}</td></tr>" for r in rows.to_dict("records"))
    body = (f"<p><a href=\"../index.html\">&larr; history</a></p><h1>Run {int(rec['run'])}</h1>"
            f"<p>machine {_esc(rec['machine'])} &middot; commit <code>{_esc(rec['commit'])}</code> &middot; "
            f"{_esc(rec['time'])}{' &middot; branch ' + _esc(rec['branch']) if rec.get('branch') else ''} &middot; "
            f"seqbench runs {_esc(rec['run_ids'])} &middot; from <code>{_esc(os.path.basename(str(rec['source'])))}</code></p>"
            "<table><tr><th>kernel</th><th>mode</th><th>B</th><th>T</th><th>status</th><th>median (ms)</th>"
            f"<th>samples</th></tr>{table}</table>" + "".join(ia.chart_div(f) for f in figs)
            + "<h2>Environment</h2><table>" + "".join(
                f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in (env or {}).items()) + "</table>"
            + f"<details><summary>sidecar</summary><pre>{_esc(json.dumps(sidecar, indent=1, default=str))}</pre></details>")
    return ia.page(f"run {int(rec['run'])}", body, figs, script_src="../plotly.min.js")
