"""Report sections for results of several machines (or several files) and for merged shards.

`source` in the analysed DataFrame names a series (analysis.load: the machine when the rows hold
several, else the file); these sections put the series side by side: which machine measured what,
and the key figures of each. Numbers come from seqbench.analysis, as in the single-run report.
"""

from __future__ import annotations

from seqbench.analysis import matchup, roles, scaling
from seqbench.render.markdown import table
from seqbench.units import fmt_num, fmt_time


def run_environments(meta: dict) -> dict[str, dict]:
    """run_id -> environment, from a run's sidecar, its earlier appended runs, or a merge's inputs."""
    out: dict[str, dict] = {}
    for old in meta.get("previous_runs") or []:
        out.update(run_environments(old))
    for part in meta.get("merged_from") or []:
        out.update(run_environments(part.get("metadata") or {}))
    if meta.get("run_id"):
        out[str(meta["run_id"])] = meta.get("environment") or {}
    return out


def merged_note(df, meta: dict) -> list[str]:
    """For a merged file: how many shards, whether any is missing, mixed machines, per-shard peaks."""
    shards = meta.get("shards")
    if not shards and not meta.get("merged_from"):
        return []
    lines = []
    if shards:
        n = shards.get("count")
        given = n - len(shards.get("missing") or [])
        text = f"Merged from {given} of {n} shards"
        if shards.get("missing") or shards.get("unfinished"):
            text += (f" (**partial**: missing {', '.join(map(str, shards.get('missing') or [])) or '-'}, "
                     f"unfinished {', '.join(map(str, shards.get('unfinished') or [])) or '-'})")
        lines.append(text + "; every shard measured its own matmul peak and its rows' % of peak use it.")
    else:
        lines.append(f"Merged from {len(meta['merged_from'])} files.")
    cal = df[scaling.is_calibration(df) & (df["status"] == "ok")]
    if len(cal) > 1:
        lines.append("Matmul peak per run: " + ", ".join(
            f"{fmt_num(r.gflops_per_s)} GFLOP/s ({r.machine if 'machine' in df else r.run_id})"
            for r in cal.itertuples()) + ".")
    for field, seen in (meta.get("mixed_environment") or {}).items():
        lines.append(f"**Mixed machines** ({field}): " + "; ".join(f"{v} ({k})" for k, v in seen.items()) + ".")
    return [" ".join(lines), ""]


def machines_table(df, metas: list[dict]) -> list[str]:
    """One row per series: what it ran on and what it measured."""
    from seqbench.measure.env import machine_label

    envs = {r: e for meta in metas for r, e in run_environments(meta).items()}
    rows = []
    for src, part in df.groupby("source", sort=False):
        runs = list(dict.fromkeys(part["run_id"]))
        devices = sorted({machine_label(envs[r]) for r in runs if envs.get(r)}) or ["?"]
        torch = sorted({str(envs[r].get("torch")) for r in runs if envs.get(r)}) or ["?"]
        kernels = part[~scaling.is_calibration(part)]
        ok = scaling.ok_points(part)
        cal = part[scaling.is_calibration(part) & (part["status"] == "ok")]["gflops_per_s"].dropna()
        peak = "-" if cal.empty else fmt_num(cal.iloc[0]) if len(cal) == 1 else \
            f"{fmt_num(cal.min())}–{fmt_num(cal.max())} ({len(cal)} runs)"
        files = ", ".join(dict.fromkeys(part["file"] if "file" in part else part["source"]))
        threads = "/".join(map(str, sorted({int(t) for t in kernels["threads"].dropna()}))) or "-"
        rows.append([src, files, len(runs), " / ".join(devices), " / ".join(torch),
                     "/".join(dict.fromkeys(kernels["dtype"])), threads, f"{len(ok)} / {len(kernels) - len(ok)}", peak])
    head = ["machine", "from", "runs", "device", "torch", "dtype", "threads", "points ok / failed",
            "matmul peak GFLOP/s"]
    return ["## Machines", ""] + table(head, rows, "llrlllrrr") + [""]


def key_figures_table(df, reps=None) -> list[str]:
    """Per series, mode and B: T* of the best recurrence and of the textbook baseline against the best
    attention, the exponents, and the fastest kernel at the longest T (matchup.py, as the single report)."""
    baselines = roles.baseline_kernels(df)
    base = baselines[0] if baselines else None
    fits = {(f["source"], f["kernel"], f["mode"], f["batch_size"]): f["fit"] for f in scaling.kernel_fits(df, reps=reps)}
    quadratic = set(df.loc[df["quadratic"].astype(bool), "kernel"]) if "quadratic" in df else set()
    rows = []
    for src, part in df.groupby("source", sort=False):
        sides = [matchup.BEST_RECURRENCE] + ([matchup.kernel_side(base)] if base else [])
        tstar = [{(c.series["mode"], c.series["batch_size"]): c for c in matchup.crossings(part, side, reps=reps)}
                 for side in sides]
        ok = scaling.ok_points(part)
        for (mode, b), g in ok.groupby(["mode", "batch_size"], sort=True):
            k_of = lambda kernel: fits.get((src, kernel, mode, b))  # noqa: E731
            base_k = _k(k_of(base)) if base and k_of(base) else "-"
            att = [f"{k} {_k(k_of(k))}" for k in scaling.ordered_kernels(g["kernel"]) if k in quadratic and k_of(k)]
            crossings = [_t(t.get((mode, b))) for t in tstar]
            longest = g[g["seq_len"] == g["seq_len"].max()].sort_values("median_s").iloc[0]
            rows.append([src, mode, int(b), *crossings, base_k, ", ".join(att) or "-",
                         f"{longest['kernel']} {fmt_time(longest['median_s'])} at T={int(longest['seq_len'])}"])
    head = ["machine", "mode", "B", "T* best recurrence", *([f"T* {base}"] if base else []),
            f"k of {base}" if base else "k (baseline)", "k of softmax attention", "fastest at the longest T"]
    intro = (f"T*: where the best recurrence (or {base or 'the baseline'}) and the best softmax attention take the "
             f"same time; k: log-log slope of latency over T ≥ {scaling.FIT_MIN_T}; brackets: 95% bootstrap "
             "intervals (see each machine's section).")
    return ["## Key figures per machine", "", intro, ""] + table(head, rows, "llr" + "l" * (len(head) - 3)) + [""]


def _k(fit) -> str:
    return fit.k_text + (f" {fit.ci.text()}" if fit.ci is not None else "")


def _t(c) -> str:
    if c is None:
        return "-"
    if not c.t_star:
        return c.note
    iv = f" {c.interval.text('{:.0f}')}" if c.interval is not None else ""
    return ", ".join(f"{t:.0f}" for t in c.t_star) + iv + ("" if c.key else " (not key)")
