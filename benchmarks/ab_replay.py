"""Replays of `seqbench ab --runs auto` (and of the fixed 4-run recipe) on a pool of REAL runs.

    python benchmarks/ab_replay.py --dir POOL [--json results/ci/auto-replay.json]

The pool (benchmarks/ab_pool.py) holds runs of identical code, in the order they ran. A replay takes a
stretch of consecutive runs (every start offset, wrapping around at the end of the pool: "ordered")
or runs drawn at random ("shuffled"), labels them with the ABBA schedule (base, head, head, base,
...), and feeds them to the same decision code as `ab --runs auto` (autostop.judge_point): an A/A
comparison. A planted change multiplies the head's round statistics of the planted points by a
factor (1.05, 1.10): the user layer's 3 points (cilab_glr T=32/64/128), the other 9 unplanted. The
load records are the pool's (a run is loaded when measure.load said so before or after it).

Wall time is modelled, not measured: a run costs its recorded wall time scaled to the share of
points it measures, (OVERHEAD + (wall - OVERHEAD) x points / all points), OVERHEAD being the fixed
cost of a run (process start, torch import); the real end-to-end repetitions measure it for real.
These are replays: the runs are real, the schedule and the planted factors are not.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
from pathlib import Path


PLANTED = "cilab_glr"
OVERHEAD = 5.0  # s: a run of one point (process start, imports, env); measured in the end-to-end reps


def load_pool(d: Path) -> list[dict]:
    from lab import load, read_results, run_statistics

    meta = json.loads((d / "pool.json").read_text())
    runs = []
    for rec in meta["runs"]:
        df = read_results(d / rec["csv"])
        df = df[df["status"] == "ok"]
        values = {}
        for (kernel, t), g in df.groupby(["kernel", "seq_len"]):
            values[(kernel, int(t))] = next(iter(run_statistics(g).values()))
        if "others_cores" in rec:  # other processes' CPU over the whole run, as ab's LoadMeter measures it
            loaded = bool(load.loaded({"busy_cores": rec["others_cores"], "cores": rec["load_before"]["cores"]}, 1))
        else:  # the first pool: 0.2 s samples before and after the run only
            loaded = any(load.loaded(rec.get(k), 1) for k in ("load_before", "load_after"))
        runs.append({"values": values, "wall_s": rec["wall_s"], "loaded": loaded})
    return runs


def replay(pool: list[dict], order: list[int], *, factor: float = 1.0, auto: bool = True, fixed_runs: int = 4,
           max_runs: int = 12, alpha: float = 0.01, beta: float | None = None, looks=None) -> dict:
    """One comparison on pool runs taken in `order` (ABBA labels), the head's planted points x factor."""
    from lab import PointResult, finish, judge_point, judge_runs, run_value, split_by_load
    from lab import sequential as seq

    points = sorted(pool[0]["values"])
    design = seq.Design(alpha=alpha, points=len(points), max_runs=max_runs, looks=looks,
                        **({"beta": beta} if beta is not None else {}))
    runs = {p: ({}, {}) for p in points}
    loaded, decided, wall, k = set(), {}, 0.0, 0
    limit = max_runs if auto else fixed_runs
    n = 0
    for n in range(1, limit + 1):
        for side in (("base", "head") if n % 2 else ("head", "base")):
            run = pool[order[k % len(order)]]
            k += 1
            rid = f"{side}{n}"
            if run["loaded"]:
                loaded.add(rid)
            open_points = [p for p in points if p not in decided]
            wall += OVERHEAD + (run["wall_s"] - OVERHEAD) * len(open_points) / len(points)
            for p in open_points:
                f = factor if side == "head" and p[0] == PLANTED else 1.0
                runs[p][0 if side == "base" else 1][rid] = [v * f for v in run["values"][p]]
        if not auto:
            continue
        for p in points:
            if p not in decided:
                lk = judge_point(PointResult(key={}, verdict="inconclusive"), runs[p][0], runs[p][1], loaded, design)
                if lk.verdict or seq.hopeless(lk, design):
                    decided[p] = str(lk.verdict or "inconclusive")
        if len(decided) == len(points):
            break
    if not auto:  # the fixed recipe: compare's test (BH over the points) on `fixed_runs` runs a side
        results, tests = [], []
        for p in points:
            rb, rh, ok, _ = split_by_load(runs[p][0], runs[p][1], loaded)
            r = PointResult(key={}, verdict="inconclusive")
            r.load_mismatch = not ok
            tests.append(judge_runs(r, [run_value(x) for x in rb.values()], [run_value(x) for x in rh.values()],
                                    alpha=alpha))
            results.append(r)
        finish(results, tests, threshold=0.05, alpha=alpha)
        decided = {p: str(r.verdict) for p, r in zip(points, results)}
    verdicts = {p: decided.get(p, "inconclusive") for p in points}
    return {"verdicts": verdicts, "runs_a_side": n, "wall_s": wall}


def score(results: list[dict], planted: bool) -> dict:
    changed = ("regression", "improvement")
    out = {"n": len(results), "median_wall_s": round(statistics.median(r["wall_s"] for r in results), 1),
           "median_runs_a_side": statistics.median(r["runs_a_side"] for r in results)}
    unplanted = [v for r in results for p, v in r["verdicts"].items() if not planted or p[0] != PLANTED]
    out["comparisons_with_a_false_change"] = sum(
        any(v in changed for p, v in r["verdicts"].items() if not planted or p[0] != PLANTED) for r in results)
    out["unplanted_points_unchanged"] = round(sum(v == "unchanged" for v in unplanted) / max(1, len(unplanted)), 3)
    if planted:
        hits = [v == "regression" for r in results for p, v in r["verdicts"].items() if p[0] == PLANTED]
        out["planted_points_caught"] = round(sum(hits) / len(hits), 3)
        out["planted_points"] = len(hits)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="the pool (ab_pool.py --dir)")
    ap.add_argument("--shuffles", type=int, default=200, help="random draws per condition and change")
    ap.add_argument("--beta", type=float)
    ap.add_argument("--json")
    args = ap.parse_args()
    figures = {}
    print(f"# REPLAYS of real runs in {args.dir} (benchmarks/ab_replay.py): real runs, replayed schedules and planted "
          "factors; 'quiet' = no controlled neighbour (the machine was shared all the same), 'load' = aa_collect.py's "
          "neighbour; ordered = every start offset of the pool in run order; shuffled = random draws", flush=True)
    for cond in ("quiet", "load"):
        d = Path(args.dir) / cond
        if not (d / "pool.json").exists():
            continue
        pool = load_pool(d)
        rng = random.Random(0)
        orders = {"ordered": [list(range(s, len(pool))) + list(range(s)) for s in range(len(pool))],
                  "shuffled": [rng.sample(range(len(pool)), len(pool)) for _ in range(args.shuffles)]}
        for how, os_ in orders.items():
            for factor in (1.0, 1.05, 1.10):
                for auto in (True, False):
                    res = [replay(pool, o, factor=factor, auto=auto, beta=args.beta) for o in os_]
                    s = score(res, planted=factor != 1.0)
                    name = f"{cond} {how} {'auto' if auto else 'fixed-4'} {'A/A' if factor == 1 else f'+{factor - 1:.0%}'}"
                    figures[name] = s
                    print(f"{name:34s} {json.dumps(s)}", flush=True)
        figures[f"{cond} pool"] = {"runs": len(pool), "loaded_runs": sum(r["loaded"] for r in pool),
                                   "median_wall_s": statistics.median(r["wall_s"] for r in pool)}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
