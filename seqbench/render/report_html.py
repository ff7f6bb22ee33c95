"""`seqbench report --html`: the Markdown report as one self-contained HTML page whose scaling charts are
interactive (plotly.js inlined: click a kernel in the legend to hide it, double-click to see it alone)."""

from __future__ import annotations

from pathlib import Path

from seqbench.render import interactive


def write_html_report(inputs, out: str | Path, *, force: bool = False, baselines=None) -> Path:
    from markdown_it import MarkdownIt

    from seqbench.analysis import load
    from seqbench.render.report import build_report, build_side_by_side
    from seqbench.results.ownership import check_not_input
    from seqbench.results.reader import read_metadata, split_label
    from seqbench.results.schema import sidecar_path
    from seqbench.results.writer import refuse_existing

    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    files = [split_label(p)[1] for p in inputs]
    out = Path(out)
    check_not_input([out], [q for f in files for q in (f, sidecar_path(f))], "-o")
    refuse_existing(out, force, "choose another -o")
    df = load(inputs, baselines)
    metas = [read_metadata(f) for f in files]
    if df["source"].nunique() > 1:
        text = build_side_by_side(df, metas, csv_paths=files, report_path=out)
    else:
        text = build_report(df, metas[0], csv_path=files[0], report_path=out)
    figures = interactive.scaling_figures(df)
    body = MarkdownIt("commonmark").enable("table").render(text)
    body += "<h2>Interactive scaling charts</h2>\n<p class=note>Click a kernel in a legend to hide it, double-click " \
            "to show it alone; hover for values.</p>\n" + "\n".join(interactive.chart_div(f) for f in figures)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = text.splitlines()[0].lstrip("# ").strip() if text else "seqbench report"
    out.write_text(interactive.page(title, body, figures))
    return out
