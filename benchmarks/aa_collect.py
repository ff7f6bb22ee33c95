"""How far `seqbench ab` can be trusted: A/A false alarms, quiet and under a neighbour load, and
planted slowdowns in a user's layer (`make bench-ci`).

    python benchmarks/aa_collect.py collect --dir bench-ci-data --reps 44     # hours; resumable
    python benchmarks/aa_analyze.py --dir bench-ci-data --tune 4 --json results/ci/bench-ci.json

collect: writes the sides once (benchmarks/ci_layer.py): `base` and `copy` (the same user package
in two checkouts), `p10` (its layer planted 10% slower at T=64 and T=128) and `small-0..2` (planted
5%, 7% and 15%, rotated over T=32/64/128), plus the sweep config (seqbench's own ci.toml points and
the user's layer, loaded as a plugin from each side). Then 2 x REPS repetitions, quiet and under
load alternately. Each repetition is the `seqbench ab` schedule (seqbench.orchestration.ab.run_ab, what
the command runs) over three sides at once: base, copy and a planted head (p10 in every other pair
of repetitions, a small-* head in the others), RUNS runs each in ABBA passes, every run its own
`seqbench run --rounds ROUNDS` process. Repetitions run under the exclusive CPU lock
(/tmp/seqbench-cpu.lock), --per-lock of them per acquisition (a few minutes), so other users of the
machine run between them, never during one. Under load, a neighbour process started inside the
lock burns one core in random on/off bursts (0.05-1 s each) of memory-heavy work. seqbench itself
runs from a snapshot taken at the first `collect`, so editing the tree does not change a
collection half-way. A repetition interrupted half-way is redone.

aa_analyze.py: compare (seqbench.analysis.compare, as `seqbench compare` runs it) on each repetition:
base vs copy (A/A), base vs p10, base vs small; also with only the first 2 runs a side (the first
ABBA block: what a 2-run recipe would have measured). Variants of the statistics are scored on the
first --tune repetitions of each condition only; the figures are reported for the others.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import ci_layer  # writes the sides' checkouts (benchmarks/ is on the import path of a script run from it)
from lab import CONDITIONS, HEAVY, P10, SEQ_LENS, SMALL

ROOT = Path(__file__).resolve().parent.parent
LOCK = "/tmp/seqbench-cpu.lock"


def small_plant(rotation: int) -> dict[int, float]:
    return {t: SMALL[(i + rotation) % len(SMALL)] for i, t in enumerate(SEQ_LENS)}


def head_of(rep: int) -> tuple[str, int]:
    """The planted head of a repetition: p10 in pairs 1, 3, 5, ...; small-0/1/2 in turn in pairs 2, 4, 6, ..."""
    pair = (rep - 1) // 2
    return ("p10", 0) if pair % 2 == 0 else ("small", (pair // 2) % len(SMALL))


def setup(d: Path, *, min_time: float, max_warmup: float) -> None:
    sides = d / "sides"
    if (sides / "done").exists():
        return
    ci_layer.write_checkout(sides / "base")
    ci_layer.write_checkout(sides / "copy")
    ci_layer.write_checkout(sides / "p10", P10)
    for r in range(len(SMALL)):
        ci_layer.write_checkout(sides / f"small-{r}", small_plant(r))
    ci_layer.write_config(sides / "ci-layer.toml", min_time=min_time, max_warmup=max_warmup)
    snap = d / "snapshot"
    if snap.exists():
        shutil.rmtree(snap)
    shutil.copytree(ROOT / "seqbench", snap / "seqbench", ignore=shutil.ignore_patterns("__pycache__"))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    (sides / "done").write_text(json.dumps({"seqbench_commit": commit, "min_time": min_time, "max_warmup": max_warmup}) + "\n")


def condition_of(i: int, condition: str | None = None) -> str:
    return condition or CONDITIONS[(i - 1) % 2]


def rep_dir(d: Path, i: int, condition: str | None = None) -> Path:
    return d / f"rep-{i:03d}-{condition_of(i, condition)}"


def collect(args) -> None:
    d = Path(args.dir).resolve()
    setup(d, min_time=args.min_time, max_warmup=args.max_warmup)
    env = dict(os.environ, PYTHONPATH=str(d / "snapshot"))
    total = args.reps if args.condition else 2 * args.reps
    todo = [i for i in range(1, total + 1) if not (rep_dir(d, i, args.condition) / "done.json").exists()]
    for k in range(0, len(todo), args.per_lock):
        chunk = todo[k:k + args.per_lock]
        cmd = ["flock", "-x", LOCK, sys.executable, str(Path(__file__).resolve()), "rep", "--dir", str(d),
               "--rep", ",".join(map(str, chunk)), "--runs", str(args.runs), "--rounds", str(args.rounds),
               *(["--condition", args.condition] if args.condition else [])]
        t0 = time.time()
        proc = subprocess.run(cmd, env=env)
        print(f"{time.strftime('%H:%M:%S')} reps {chunk}: exit {proc.returncode}, "
              f"{time.time() - t0:.0f} s with the wait for the lock", flush=True)
        if proc.returncode != 0:
            raise SystemExit(proc.returncode)


NEIGHBOUR = r'''
import random, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # started from a background job, SIGINT would be ignored
import numpy as np
rng = random.Random(int(sys.argv[1]))
buf = np.ones(4 << 20)  # 32 MiB: every burst also sweeps the shared cache
busy = 0.0
t_start = time.perf_counter()
try:
    while True:
        on, off = rng.uniform(0.05, 1.0), rng.uniform(0.05, 1.0)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < on:
            buf.sum()
        busy += time.perf_counter() - t0
        time.sleep(off)
except KeyboardInterrupt:
    pass
finally:
    with open(sys.argv[2], "w") as fh:
        fh.write(f"{busy / (time.perf_counter() - t_start):.3f}\n")
'''


def reps(args) -> None:
    """Some repetitions, run while holding the exclusive CPU lock."""
    for rep in map(int, str(args.rep).split(",")):
        one_rep(args, rep)


def one_rep(args, rep: int) -> None:
    from lab import resolve_side, run_ab  # here: seqbench is the snapshot on this process's PYTHONPATH

    d = Path(args.dir).resolve()
    condition = condition_of(rep, getattr(args, "condition", None))
    out = rep_dir(d, rep, condition)
    head, rotation = head_of(rep)
    sides = d / "sides"
    chosen = [resolve_side("base", str(sides / "base")), resolve_side("copy", str(sides / "copy")),
              resolve_side(head, str(sides / ("p10" if head == "p10" else f"small-{rotation}")))]
    if rep % 4 in (3, 0):  # every other pair of repetitions starts the passes from the other end
        chosen.reverse()
    duty_file = out / "neighbour_duty"
    out.mkdir(parents=True, exist_ok=True)
    count = {"load": 1, HEAVY: 2}.get(condition, 0)
    neighbours = [subprocess.Popen([sys.executable, "-c", NEIGHBOUR, str(rep if k == 0 else rep * 10 + k), f"{duty_file}{'' if k == 0 else k}"])
                  for k in range(count)]
    t0 = time.perf_counter()
    try:
        res = run_ab(sides / "ci-layer.toml", chosen, out, runs=args.runs, rounds=args.rounds, force=True)
    finally:
        for neighbour in neighbours:
            neighbour.send_signal(signal.SIGINT)
            try:
                neighbour.wait(timeout=30)
            except subprocess.TimeoutExpired:  # never leave a core burning behind the experiment
                neighbour.kill()
                raise
    info = {"rep": rep, "condition": condition, "head": head,
            "small_plant": small_plant(rotation) if head == "small" else None, "runs": args.runs,
            "rounds": args.rounds, "order": [s.name for s in chosen], "wall_s": round(time.perf_counter() - t0, 1),
            "ab": res.to_json(), "load": os.getloadavg(),
            "neighbour_duty": float(duty_file.read_text()) if duty_file.exists() else None}
    (out / "done.json").write_text(json.dumps(info, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="run the repetitions (resumable)")
    c.add_argument("--dir", default="bench-ci-data")
    c.add_argument("--reps", type=int, default=40, help="repetitions per condition (quiet, load)")
    c.add_argument("--runs", type=int, default=4, help="runs (processes) per side")
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--min-time", type=float, default=0.15)
    c.add_argument("--max-warmup", type=float, default=0.3)
    c.add_argument("--per-lock", type=int, default=3, help="repetitions per acquisition of the CPU lock")
    c.add_argument("--condition", choices=[HEAVY], help="instead of quiet/load: REPS repetitions of this set")
    r = sub.add_parser("rep", help="repetitions (collect runs them under the lock)")
    r.add_argument("--dir", required=True)
    r.add_argument("--rep", required=True, help="comma-separated repetition numbers")
    r.add_argument("--condition", choices=[HEAVY])
    r.add_argument("--runs", type=int, default=4)
    r.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.cmd == "collect":
        collect(args)
    else:
        reps(args)


if __name__ == "__main__":
    main()
