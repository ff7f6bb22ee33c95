"""Report sections for results of several machines (or several files) and for merged shards.

`source` in the analysed DataFrame names a series (analysis.load: the machine when the rows hold
several, else the file); these sections put the series side by side: which machine measured what,
and the key figures of each. Numbers come from seqbench.analysis, as in the single-run report.
"""

from __future__ import annotations

from seqbench.analysis import roles, scaling
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


def key_figures_table(df) -> list[str]:
    """Per series, mode and B: the scaling exponents, the crossover T* and the fastest kernel at the longest T."""
    baselines = roles.baseline_kernels(df)
    base = baselines[0] if baselines else None
    fits = {(f["source"], f["kernel"], f["mode"], f["batch_size"]): f["fit"] for f in scaling.kernel_fits(df)}
    quadratic = set(df.loc[df["quadratic"].astype(bool), "kernel"]) if "quadratic" in df else set()
    rows = []
    for src, part in df.groupby("source", sort=False):
        tstar = {(c["mode"], c["batch_size"]): c for c in (scaling.crossovers(part, base) if base else [])}
        ok = scaling.ok_points(part)
        for (mode, b), g in ok.groupby(["mode", "batch_size"], sort=True):
            k_of = lambda kernel: fits.get((src, kernel, mode, b))  # noqa: E731
            base_k = k_of(base).k_text if base and k_of(base) else "-"
            att = [f"{k} {k_of(k).k_text}" for k in scaling.ordered_kernels(g["kernel"]) if k in quadratic and k_of(k)]
            c = tstar.get((mode, int(b)))
            ts = ", ".join(f"{t:.0f}" for t in c["t_star"]) if c and c["t_star"] else (c["note"] if c else "-")
            longest = g[g["seq_len"] == g["seq_len"].max()].sort_values("median_s").iloc[0]
            rows.append([src, mode, int(b), base_k, ", ".join(att) or "-", ts,
                         f"{longest['kernel']} {fmt_time(longest['median_s'])} at T={int(longest['seq_len'])}"])
    head = ["machine", "mode", "B", f"k of {base}" if base else "k (baseline)", "k of softmax attention",
            f"T* vs {base}" if base else "T*", "fastest at the longest T"]
    intro = (f"k: log-log slope of latency over T ≥ {scaling.FIT_MIN_T}; T*: where the best softmax-attention kernel "
             f"and {base or 'the baseline'} take the same time (see each machine's section).")
    return ["## Key figures per machine", "", intro, ""] + table(head, rows, "llrrlll") + [""]
