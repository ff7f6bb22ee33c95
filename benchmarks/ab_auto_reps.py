"""Real end-to-end repetitions of `seqbench ab --runs auto` on the bench-ci sweep, with the neighbour.

    flock /work/.cpu.lock python benchmarks/ab_auto_reps.py --dir POOL --minutes 9 [--neighbour] [--with-fixed]
    make bench-ci-auto                                   # the same for an hour, beside the neighbour

Uses the checkouts ab_pool.py wrote (POOL/sides: base, copy) plus planted heads written here (p10: the
user's layer 10% slower at T=64 and 128, as in make bench-ci; p5: 5% slower at T=32/64/128). Repetition
k compares base with copy (A/A), p10 and p5 in turn, each a full `seqbench ab --runs auto` (the API the
command runs: seqbench.api.ab), and records its verdicts, runs a side and wall time in
POOL/auto-reps/rep-NNN.json. With --with-fixed a cycle is A/A, p10, A/A, p5 with --runs auto, then the
fixed recipe (--runs 4) on the copy, p10 and p5 in turn: the wall time --runs auto is held against,
measured beside it, and twice as many A/A comparisons as heads (the false-alarm goal is 1 in 40). It starts repetitions only while --minutes allows another of ~3 min, so a
chunk stays under the lock's 10-minute etiquette; run it again to add more.

    python benchmarks/ab_auto_reps.py --dir POOL --summary   # the figures of the repetitions so far
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import ci_layer

HEADS = {"copy": None, "p10": {64: 0.10, 128: 0.10}, "p5": {32: 0.05, 64: 0.05, 128: 0.05}}
EXPECT_S = 200  # a repetition's wall time to plan a chunk by


def summary(out: Path) -> dict:
    """Per head: repetitions, points with a false change, planted points caught (as a regression) and
    their share, and the median runs a side and wall time."""
    import statistics

    reps = [json.loads(p.read_text()) for p in sorted(out.glob("rep-*.json"))]
    table = {}
    for (head, plant), mode in ((h, m) for h in HEADS.items() for m in ("auto", "fixed")):
        mine = [r for r in reps if r["head"] == head and r.get("mode", "auto") == mode]
        if not mine:
            continue
        planted = [(r, p) for r in mine for p, v in r["verdicts"].items()
                   if plant and p.startswith("cilab_glr ") and int(p.split()[1]) in plant]
        others = [(r, p) for r in mine for p, v in r["verdicts"].items() if (r, p) not in planted]
        table[head if mode == "auto" else f"{head} fixed 4"] = {
            "repetitions": len(mine), "neighbour": sorted({r["neighbour"] for r in mine}),
            "comparisons_with_a_false_change": sum(any(r["verdicts"][p] in ("regression", "improvement")
                                                       for rr, p in others if rr is r) for r in mine),
            "false_changes": sum(r["verdicts"][p] in ("regression", "improvement") for r, p in others),
            "other_points": len(others),
            "planted_caught": sum(r["verdicts"][p] == "regression" for r, p in planted),
            "planted_points": len(planted),
            "median_runs_a_side": statistics.median(r["runs_a_side"] for r in mine),
            "median_wall_s": statistics.median(r["wall_s"] for r in mine),
            "max_wall_s": max(r["wall_s"] for r in mine),
        }
    for mode in ("auto", "fixed"):
        walls = [r["wall_s"] for r in reps if r.get("mode", "auto") == mode]
        if walls:
            table[f"all {mode}"] = {"comparisons": len(walls), "median_wall_s": statistics.median(walls)}
    return table


def schedule(k: int, with_fixed: bool) -> tuple[str, str]:
    """(head, mode) of repetition k (from 1)."""
    if not with_fixed:
        return list(HEADS)[(k - 1) % len(HEADS)], "auto"
    cycle, i = divmod(k - 1, 5)
    return (["copy", "p10", "copy", "p5"][i], "auto") if i < 4 else (list(HEADS)[cycle % len(HEADS)], "fixed")


def main() -> None:
    import aa_collect
    import seqbench

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--minutes", type=float, default=9.0)
    ap.add_argument("--neighbour", action="store_true", help="run aa_collect.py's neighbour during the chunk")
    ap.add_argument("--max-runs", type=int, default=12)
    ap.add_argument("--with-fixed", action="store_true", help="cycles of 4 --runs auto comparisons (2 A/A) and one --runs 4")
    ap.add_argument("--summary", action="store_true", help="print the figures of the repetitions so far and stop")
    args = ap.parse_args()
    d = Path(args.dir).resolve()
    if args.summary:
        # a pool (its auto-reps folder) or a folder of repetitions, as committed in results/ci/auto-reps-*
        print(json.dumps(summary(d / "auto-reps" if (d / "auto-reps").is_dir() else d), indent=1))
        return
    sides = d / "sides"
    if not (sides / "done").exists():  # the base, its copy and the config, as ab_pool.py writes them
        import ab_pool

        d.mkdir(parents=True, exist_ok=True)
        ab_pool.setup(d)
    for name, plant in HEADS.items():
        if plant and not (sides / name).exists():
            ci_layer.write_checkout(sides / name, plant)
    out = d / "auto-reps"
    out.mkdir(exist_ok=True)
    t_chunk = time.time()
    neighbour = None
    if args.neighbour:
        neighbour = subprocess.Popen([sys.executable, "-c", aa_collect.NEIGHBOUR, str(int(t_chunk)),
                                      str(out / f"duty-{int(t_chunk)}")])
    try:
        while time.time() - t_chunk + EXPECT_S < args.minutes * 60:
            k = len(list(out.glob("rep-*.json"))) + 1
            head, mode = schedule(k, args.with_fixed)
            t0 = time.time()
            result, comp = seqbench.ab(sides / "ci-layer.toml", str(sides / "base"), str(sides / head),
                                           out=out / f"rep-{k:03d}", runs="auto" if mode == "auto" else 4,
                                           max_runs=args.max_runs if mode == "auto" else None, rounds=3, force=True)
            rec = {"rep": k, "head": head, "mode": mode, "plant": HEADS[head], "neighbour": args.neighbour,
                   "wall_s": round(time.time() - t0, 1), "stopped": result.stopped,
                   "runs_a_side": sum(r.side == "base" for r in result.runs),
                   "loaded_runs": sum(bool(r.loaded) for r in result.runs),
                   "verdicts": {f"{p.key['kernel']} {p.key['seq_len']}": str(p.verdict) for p in comp.points},
                   "ratios": {f"{p.key['kernel']} {p.key['seq_len']}": p.ratio for p in comp.points}}
            (out / f"rep-{k:03d}.json").write_text(json.dumps(rec, indent=1) + "\n")
            print(f"{time.strftime('%H:%M:%S')} rep {k} {head} {mode}: {rec['wall_s']} s, {rec['runs_a_side']} runs a side, "
                  f"{rec['stopped']}; {sorted(rec['verdicts'].items())}", flush=True)
    finally:
        if neighbour is not None:
            neighbour.send_signal(signal.SIGINT)
            try:
                neighbour.wait(timeout=30)
            except subprocess.TimeoutExpired:
                neighbour.kill()


if __name__ == "__main__":
    main()
