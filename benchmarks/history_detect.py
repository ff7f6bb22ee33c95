"""How well `seqbench history check` finds steps, against asv's step detection, ruptures' PELT and the plain
"latest vs median of the last 10" rule, on histories built from real seqbench runs.

A history of one point: each commit gets a run drawn at random (with replacement) from the real runs in
RUNS_DIR (separate processes of benchmarks/configs/history.toml), and that run's samples of the point
resampled with replacement (same count); the commit's value is their median, times 1 + step from the
step's commit on. So commit-to-commit noise is the real between-process noise plus the within-run noise
of the real samples. Planted steps +3%, +5%, +10% in the middle (commit 40 of 60) and late (3 commits
before the end, as a nightly job first sees it); flat histories of 100 commits for false change points.

    flock /work/.cpu.lock .venv/bin/python benchmarks/history_detect.py results/history/runs -o results/history

needs the history-bench extra (asv, ruptures). Writes detection.json, detection.md, detection.png.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from seqbench.analysis.changepoints import e_divisive
from seqbench.results.history_entry import point_key
from seqbench.results.reader import read_results
from seqbench.results.schema import parse_samples

SIZES = (0.03, 0.05, 0.10)
N_STEP, MID, LATE_AFTER, N_FLAT = 60, 40, 3, 100
TOLERANCE = 5  # a change point within this many commits of the true one counts as found
GATE = 0.05


def real_runs(folder: Path) -> dict[str, list[np.ndarray]]:
    """point -> [samples of that point in one run] over every run (process) in the folder's CSVs."""
    out: dict[str, list[np.ndarray]] = {}
    for csv in sorted(folder.glob("*.csv")) if folder.is_dir() else [folder]:
        df = read_results(csv)
        for rec in df[df["status"] == "ok"].to_dict("records"):
            if rec["family"] == "calibration":
                continue
            out.setdefault(point_key(rec), []).append(np.asarray(parse_samples(rec["samples_s"])))
    return out


def history(rng, runs: list[np.ndarray], n: int, step_at: int | None, size: float) -> np.ndarray:
    vals = np.empty(n)
    for c in range(n):
        s = runs[rng.integers(len(runs))]
        vals[c] = np.median(s[rng.integers(0, len(s), len(s))])
    if step_at is not None:
        vals[step_at:] *= 1 + size
    return vals


# --- detectors: values -> indices of the first commit of each new level -------------------------------------
def edivisive_t(v):
    return [i for i, _ in e_divisive(v, test="ttest")]


def edivisive_perm(v):
    return [i for i, _ in e_divisive(v, test="permutation")]


def asv_steps(v):
    from asv.step_detect import detect_steps

    return [left for left, *_ in detect_steps(list(v))[1:]]


def ruptures_pelt(v):
    import ruptures as rpt

    y = np.log(v)
    sigma = 1.4826 * np.median(np.abs(np.diff(y) - np.median(np.diff(y)))) / math.sqrt(2)  # MAD of differences
    pen = 2 * math.log(len(y)) * max(sigma, 1e-12) ** 2 * 2  # BIC-like: 2 parameters a change
    return rpt.Pelt(model="l2", min_size=3, jump=1).fit(y).predict(pen=pen)[:-1]


def latest_vs_median(v, threshold=GATE, window=10):
    """The plain rule: flag commit c when it is slower than the median of the 10 before it by >= threshold."""
    return [c for c in range(window, len(v)) if v[c] >= np.median(v[c - window:c]) * (1 + threshold)]


def latest_vs_median_2(v):
    return latest_vs_median(v, threshold=0.02)


DETECTORS = {"E-divisive, t-test (Hunter)": edivisive_t, "E-divisive, permutation (seqbench)": edivisive_perm,
             "asv step detection": asv_steps, "ruptures PELT (l2, BIC)": ruptures_pelt,
             "latest vs median of 10, 5%": latest_vs_median, "latest vs median of 10, 2%": latest_vs_median_2}


def gate_e(v):
    """What `history check` fails on at the 5% threshold: E-divisive regressions of >= 5%."""
    from seqbench.analysis.changepoints import step_size

    cps = [i for i, _ in e_divisive(v, test="permutation")]
    idx = [0, *cps, len(v)]
    return [i for k, i in enumerate(cps, 1) if step_size(v[idx[k - 1]:i], v[i:idx[k + 1]]).size >= GATE]


def gate_asv(v):
    from asv.step_detect import detect_regressions, detect_steps

    _, _, regs = detect_regressions(detect_steps(list(v)), threshold=GATE)
    return [j for _, j, *_ in (regs or [])]


GATES = {"history check (E-divisive permutation, >= 5%)": gate_e, "asv regressions (>= 5%)": gate_asv,
         "latest vs median of 10, 5%": latest_vs_median}


def evaluate(runs, reps: int, seed: int, only: str | None = None, old: dict | None = None) -> dict:
    rng = np.random.default_rng(seed)
    points = sorted(runs)
    res: dict = {"points": points, "runs_per_point": {p: len(runs[p]) for p in points}, "reps": reps,
                 "detectors": {}, "gates": {}, "seconds": {}}
    cases = [(size, pos) for size in SIZES for pos in ("mid", "late")]
    plan = []
    for p in points:
        for _ in range(reps):
            for size, pos in cases:
                at = MID if pos == "mid" else N_STEP - LATE_AFTER
                plan.append(("step", p, size, pos, at, history(rng, runs[p], N_STEP, at, size)))
            plan.append(("flat", p, 0.0, "", None, history(rng, runs[p], N_FLAT, None, 0.0)))
    for name, fn in {**DETECTORS, **{f"gate: {k}": g for k, g in GATES.items()}}.items():
        key = "gates" if name.startswith("gate: ") else "detectors"
        if only and only not in name:
            res[key][name.removeprefix("gate: ")] = old[key][name.removeprefix("gate: ")]
            res["seconds"][name] = old["seconds"][name]
            continue
        t0 = time.perf_counter()
        found = {(size, pos): [] for size, pos in cases}
        extra, flat_cps, flat_commits, step_commits = 0, 0, 0, 0
        for kind, p, size, pos, at, v in plan:
            cps = fn(v)
            if kind == "flat":
                flat_cps += len(cps)
                flat_commits += len(v)
                continue
            near = [c for c in cps if abs(c - at) <= TOLERANCE]
            found[(size, pos)].append(min((abs(c - at) for c in near), default=None))
            extra += len([c for c in cps if abs(c - at) > TOLERANCE])
            step_commits += len(v)
        out = {f"{int(size * 100)}% {pos}": {
            "detected": sum(d is not None for d in ds) / len(ds),
            "median_distance": float(np.median([d for d in ds if d is not None])) if any(d is not None for d in ds) else None,
            "n": len(ds)} for (size, pos), ds in found.items()}
        out["false_per_100_flat"] = 100 * flat_cps / flat_commits
        out["false_per_100_in_step_histories"] = 100 * extra / step_commits
        res[key][name.removeprefix("gate: ")] = out
        res["seconds"][name] = time.perf_counter() - t0
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return res


def markdown(res: dict) -> str:
    cols = [f"{int(s * 100)}% {pos}" for s in SIZES for pos in ("mid", "late")]
    lines = [f"Histories from {len(res['points'])} points x {res['reps']} repetitions each; real runs per point: "
             f"{sorted(set(res['runs_per_point'].values()))}. Step histories: {N_STEP} commits, the step at commit "
             f"{MID} (mid) or {N_STEP - LATE_AFTER} (late: {LATE_AFTER} commits after it); flat: {N_FLAT} commits. "
             f"Found: a change point within {TOLERANCE} commits of the step; cells: detection rate (median distance "
             "in commits).", ""]
    for key, title in (("detectors", "Change points (any size, either direction)"),
                       ("gates", f"What fails a gate at {GATE * 100:g}% (regressions only)")):
        lines += [f"### {title}", "", "| method | " + " | ".join(cols) + " | false / 100 commits, flat | "
                  "extra / 100 commits, step histories |", "|---" * (len(cols) + 3) + "|"]
        for name, r in res[key].items():
            cells = [f"{r[c]['detected'] * 100:.0f}% ({r[c]['median_distance']:.0f})" if r[c]["median_distance"] is not None
                     else f"{r[c]['detected'] * 100:.0f}%" for c in cols]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['false_per_100_flat']:.2f} | "
                         f"{r['false_per_100_in_step_histories']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def chart(res: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for ax, pos in zip(axes[:2], ("mid", "late")):
        for name, r in res["detectors"].items():
            ax.plot([s * 100 for s in SIZES], [r[f"{int(s * 100)}% {pos}"]["detected"] * 100 for s in SIZES],
                    marker="o", label=name)
        ax.set_title(f"step {'at commit 40 of 60' if pos == 'mid' else '3 commits before the end'}")
        ax.set_xlabel("planted step (%)")
        ax.set_ylabel("found within 5 commits (%)")
        ax.set_ylim(-3, 103)
    names = list(res["detectors"])
    fp = [res["detectors"][n]["false_per_100_flat"] for n in names]
    axes[2].barh(range(len(names)), fp)
    for i, v in enumerate(fp):
        axes[2].text(max(v, 0.003), i, f" {v:.2g}", va="center", fontsize=7)
    axes[2].set_xscale("symlog", linthresh=0.01)
    axes[2].set_yticks(range(len(names)), [n.replace(", ", "\n", 1) for n in names], fontsize=7)
    axes[2].set_xlabel("false change points / 100 commits, flat")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs_dir", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=Path("results/history"))
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", help="rerun only the methods whose name holds this; the rest from OUT/detection.json")
    ap.add_argument("--replot", action="store_true", help="redraw OUT/detection.md and .png from its .json")
    args = ap.parse_args(argv)
    if args.replot:
        res = json.loads((args.out / "detection.json").read_text())
        (args.out / "detection.md").write_text(markdown(res))
        chart(res, args.out / "detection.png")
        return 0
    runs = real_runs(args.runs_dir)
    old = json.loads((args.out / "detection.json").read_text()) if args.only else None
    res = evaluate(runs, args.reps, args.seed, args.only, old)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detection.json").write_text(json.dumps(res, indent=1))
    (args.out / "detection.md").write_text(markdown(res))
    chart(res, args.out / "detection.png")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
