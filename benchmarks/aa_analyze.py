"""The figures of `make bench-ci` from the repetitions aa_collect.py collected (see its docstring).

    python benchmarks/aa_analyze.py --dir bench-ci-data --tune 4 --json results/ci/bench-ci.json

Every verdict here comes from seqbench.analysis.compare's own functions (run_statistics,
judge_runs, finish); the default variant is checked against compare_frames on every repetition,
so what is scored is what `seqbench compare` says. Variants (statistic per round, rule per run,
alpha) are scored on the tuning repetitions only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
from pathlib import Path

from lab import CONDITIONS, KERNEL, P10, SIDES

THRESHOLD = 0.05
RUN_RULES = {"min": min, "median": statistics.median, "mean": lambda xs: math.exp(statistics.fmean(map(math.log, xs)))}
DEFAULT = ("min", "min", 0.01)  # round statistic, run rule, alpha: what seqbench compare does


def load_rep(d: Path) -> dict:
    from lab import read_results

    info = json.loads((d / "done.json").read_text())
    info["frames"] = {s: read_results(d / f"{s}.csv") for s in SIDES if (d / f"{s}.csv").exists()}
    info["dir"] = d
    return info


def first_runs(df, k: int):
    keep = list(dict.fromkeys(df["run_id"]))[:k]
    return df[df["run_id"].isin(keep)]


def run_values(df, statistic: str, rule: str) -> dict[tuple, list[float]]:
    """(kernel, seq_len) -> one value per run, as compare computes them (ok rows only)."""
    from lab import run_statistics

    out = {}
    for (kernel, seq_len), g in df[df["status"] == "ok"].groupby(["kernel", "seq_len"]):
        runs = run_statistics(g, statistic=statistic)
        out[(kernel, int(seq_len))] = [RUN_RULES[rule](r) for r in runs.values()]
    return out


def verdicts(base: dict, head: dict, alpha: float) -> dict[tuple, object]:
    from lab import PointResult, finish, judge_runs

    results, tests = {}, []
    for point in base:
        res = PointResult(key={"kernel": point[0], "seq_len": point[1]}, verdict="inconclusive")
        tests.append(judge_runs(res, base[point], head[point], alpha=alpha))
        results[point] = res
    finish(list(results.values()), tests, threshold=THRESHOLD, alpha=alpha)
    return results


def check_against_compare(rep: dict) -> None:
    """The default variant must say exactly what compare_frames says on the same files."""
    from lab import compare_frames

    f = rep["frames"]
    for side in [s for s in ("copy", "p10", "small") if s in f]:
        comp = compare_frames(f["base"], f[side])
        ours = verdicts(run_values(f["base"], "min", "min"), run_values(f[side], "min", "min"), 0.01)
        theirs = {(p.key["kernel"], p.key["seq_len"]): p.verdict for p in comp.points}
        assert theirs == {k: v.verdict for k, v in ours.items()}, (rep["dir"], side)


def score_rep(rep: dict, runs: int, variant: tuple) -> dict:
    """What one repetition says under one variant: A/A (base vs copy) and the planted heads it has."""
    statistic, rule, alpha = variant
    vals = {s: run_values(first_runs(f, runs), statistic, rule) for s, f in rep["frames"].items()}
    out = {"realized": {}}
    aa = verdicts(vals["base"], vals["copy"], alpha)
    out["aa_regression"] = any(r.verdict == "regression" for r in aa.values())
    out["aa_improvement"] = any(r.verdict == "improvement" for r in aa.values())
    out["aa_verdicts"] = [str(r.verdict) for r in aa.values()]
    out["aa_mde"] = [r.mde for r in aa.values() if r.mde is not None]
    if "p10" in vals:
        planted = {(KERNEL, t) for t in P10}
        p10 = verdicts(vals["base"], vals["p10"], alpha)
        flagged = {k for k, r in p10.items() if r.verdict in ("regression", "improvement")}
        out["p10_exact"] = flagged == planted and all(p10[k].verdict == "regression" for k in planted)
        out["p10_hits"] = sum(p10[k].verdict == "regression" for k in planted)
        out["p10_false"] = len(flagged - planted)
        out["realized"].update({f"10% T={t}": p10[(KERNEL, t)].ratio for t in P10})
    if "small" in vals:
        small = verdicts(vals["base"], vals["small"], alpha)
        plant = {int(t): m for t, m in rep["small_plant"].items()}
        out["small"] = {str(m): small[(KERNEL, t)].verdict == "regression" for t, m in plant.items()}
        out["small_false"] = sum(r.verdict in ("regression", "improvement") for k, r in small.items() if k[0] != KERNEL)
        out["realized"].update({f"{m:.0%} T={t}": small[(KERNEL, t)].ratio for t, m in plant.items()})
    wall = [r["wall_s"] for r in rep["ab"]["runs"]]
    sides = [r["side"] for r in rep["ab"]["runs"]]
    per_side = {s: [w for w, n in zip(wall, sides) if n == s] for s in ("base", "copy")}
    out["recipe_wall_s"] = sum(per_side["base"][:runs]) + sum(per_side["copy"][:runs])
    return out


def summarize(scores: list[dict]) -> dict:
    n = len(scores)
    hits: dict[str, list[bool]] = {}
    for s in scores:
        for mag, hit in s.get("small", {}).items():
            hits.setdefault(mag, []).append(hit)
    p10 = [s for s in scores if "p10_exact" in s]
    if p10:
        hits["0.1"] = [h for s in p10 for h in (True,) * s["p10_hits"] + (False,) * (2 - s["p10_hits"])]
    rates = {mag: sum(h) / len(h) for mag, h in hits.items()}
    caught = sorted(float(m) for m, r in rates.items() if r >= 0.8)
    verdict_counts: dict[str, int] = {}
    for s in scores:
        for v in s["aa_verdicts"]:
            verdict_counts[v] = verdict_counts.get(v, 0) + 1
    mdes = [m for s in scores for m in s["aa_mde"] if math.isfinite(m)]
    walls = sorted(s["recipe_wall_s"] for s in scores)
    return {
        "reps": n,
        "aa_false_regression_reps": sum(s["aa_regression"] for s in scores),
        "aa_false_change_reps": sum(s["aa_regression"] or s["aa_improvement"] for s in scores),
        "aa_verdicts": verdict_counts,
        "aa_mde_median": statistics.median(mdes) if mdes else None,
        "p10_reps": len(p10),
        "p10_exact_reps": sum(s["p10_exact"] for s in p10),
        "false_flags_on_unplanted_points": sum(s.get("p10_false", 0) + s.get("small_false", 0) for s in scores),
        "detection_rate": dict(sorted(rates.items(), key=lambda kv: float(kv[0]))),
        "detection_trials": {m: len(h) for m, h in sorted(hits.items(), key=lambda kv: float(kv[0]))},
        "smallest_caught_80pct": caught[0] if caught else None,
        "recipe_wall_s_median": walls[n // 2] if n else None,
        "recipe_wall_s_max": walls[-1] if n else None,
    }


def realized(scores: list[dict]) -> dict:
    """Planted slowdown -> the change compare measured, pooled (geometric mean) over repetitions."""
    per: dict[str, list[float]] = {}
    for s in scores:
        for k, r in s["realized"].items():
            if r:
                per.setdefault(k, []).append(math.log(r))
    return {k: round(math.expm1(statistics.fmean(v)), 4) for k, v in sorted(per.items())}


def run_spread(reps: list[dict]) -> dict:
    """Per point: how much one process's value differs from the next (same code), median over repetitions."""
    per: dict[tuple, list[float]] = {}
    for rep in reps:
        for side in ("base", "copy"):
            for point, vals in run_values(rep["frames"][side], "min", "min").items():
                if len(vals) > 1:
                    per.setdefault(point, []).append(statistics.stdev(map(math.log, vals)))
    return {p: statistics.median(v) for p, v in sorted(per.items())}


def line(tag: str, s: dict) -> str:
    rates = " ".join(f"{float(m):.0%}:{r:.0%}" for m, r in s["detection_rate"].items())
    return (f"{tag:34s} n={s['reps']:2d} | A/A false regression {s['aa_false_regression_reps']:2d}, any false change "
            f"{s['aa_false_change_reps']:2d} | 10% exact {s['p10_exact_reps']:2d}/{s['p10_reps']} | caught {rates} | "
            f">=80%: {s['smallest_caught_80pct']} | MDE~{(s['aa_mde_median'] or 0):.1%} | "
            f"verdicts {s['aa_verdicts']} | wall {s['recipe_wall_s_median']:.0f}s")


def analyze(args) -> dict:
    d = Path(args.dir)
    reps = [load_rep(p) for p in sorted(d.glob("rep-*")) if (p / "done.json").exists()]
    if not reps:
        raise SystemExit(f"no finished repetitions under {d}; run `collect` first")
    for rep in reps:
        check_against_compare(rep)
    present = list(CONDITIONS) + sorted({r["condition"] for r in reps} - set(CONDITIONS))
    by_cond = {c: [r for r in reps if r["condition"] == c] for c in present}
    tuned = {c: args.tune if c in CONDITIONS else 0 for c in by_cond}  # the extra heavy set tunes nothing
    tune = {c: rs[: tuned[c]] for c, rs in by_cond.items()}
    held = {c: rs[tuned[c]:] for c, rs in by_cond.items()}
    out: dict = {"tuning_reps": {c: len(v) for c, v in tune.items()}, "held_out_reps": {c: len(v) for c, v in held.items()},
           "variants_on_tuning_reps": [], "held_out": {}, "all": {}}
    print(f"repetitions: {', '.join(f'{c} {len(v)}' for c, v in by_cond.items())}; tuning on the first {args.tune} of "
          "each, the rest held out")
    duty = [r["neighbour_duty"] for r in by_cond["load"] if r.get("neighbour_duty") is not None]  # per neighbour
    if duty:
        print(f"neighbour load: busy {statistics.median(duty):.0%} of the time (median over repetitions)")
        out["neighbour_duty_median"] = statistics.median(duty)
    for c, rs in by_cond.items():
        spread = run_spread(rs)
        if spread:
            out.setdefault("run_to_run_sd", {})[c] = {f"{k} T={t}": v for (k, t), v in spread.items()}
            print(f"{c}: run-to-run spread of each run's fastest round (sd of logs, median over sides and repetitions): "
                  + ", ".join(f"{k} T={t} {v:.1%}" for (k, t), v in spread.items()))
    print("-- variants (round statistic, run rule, alpha), tuning repetitions only --")
    for variant in itertools.product(("min", "median"), tuple(RUN_RULES), (0.01, 0.05)):
        for runs in (4, 2):
            for c in present:
                if not tune[c]:
                    continue
                s = summarize([score_rep(r, runs, variant) for r in tune[c]])
                out["variants_on_tuning_reps"].append({"variant": variant, "runs": runs, "condition": c, **s})
                print(line(f"{variant} runs={runs} {c}", s), flush=True)
    print(f"-- default {DEFAULT}: held-out repetitions --")
    for runs in (4, 2):
        for c in present:
            if held[c]:
                scores = [score_rep(r, runs, DEFAULT) for r in held[c]]
                s = summarize(scores)
                s["realized"] = realized(scores)
                out["held_out"][f"{c} runs={runs}"] = s
                print(line(f"held-out {c} runs={runs}", s))
                print(f"{'':34s} realized slowdowns (pooled): {s['realized']}")
    if args.fresh_from:  # repetitions collected after the last change to compare's rules: never seen when choosing them
        print(f"-- default {DEFAULT}: repetitions {args.fresh_from} and later only --")
        for runs in (4, 2):
            for c in present:
                fresh = [r for r in by_cond[c] if r["rep"] >= args.fresh_from]
                if fresh:
                    s = summarize([score_rep(r, runs, DEFAULT) for r in fresh])
                    out.setdefault("fresh", {})[f"{c} runs={runs}"] = s
                    print(line(f"fresh {c} runs={runs}", s))
    print(f"-- default {DEFAULT}: every repetition (tuning ones included) --")
    for runs in (4, 2):
        for c in present:
            out["all"][f"{c} runs={runs}"] = s = summarize([score_rep(r, runs, DEFAULT) for r in by_cond[c]])
            print(line(f"all {c} runs={runs}", s))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="bench-ci-data")
    ap.add_argument("--tune", type=int, default=4, help="the first N repetitions of each condition tune; the rest are held out")
    ap.add_argument("--fresh-from", type=int, help="also score repetitions numbered this or higher on their own "
                    "(those collected after the last change to compare's rules)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    analyze(ap.parse_args())


if __name__ == "__main__":
    main()
