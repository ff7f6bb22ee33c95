"""What a sharded launch costs against one run of the same sweep, on this machine.

Alternates (ABAB...) `seqbench run CONFIG` and `seqbench launch CONFIG --shards N --cluster local`,
each a fresh process, and reports their wall times (process start to exit) and the shards' own wall
times from their sidecars. Run it under the exclusive CPU lock: both sides time real kernels.

    python benchmarks/launch_cost.py benchmarks/configs/quick.toml --shards 2 --reps 3 --dir /tmp/launch-cost
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SEQBENCH = [sys.executable, "-m", "seqbench"]


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=None, help="launch --parallel (default: launch's, 1 locally)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/seqbench-launch-cost")
    args = ap.parse_args()
    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = []
    for rep in range(1, args.reps + 1):
        one = timed([*SEQBENCH, "run", args.config, "-q", "-o", str(work / f"run-{rep}.csv")])
        launch = [*SEQBENCH, "launch", args.config, "--shards", str(args.shards), "--cluster", "local", "-q",
                  "-o", str(work / f"launch-{rep}.csv")]
        if args.parallel:
            launch += ["--parallel", str(args.parallel)]
        sharded = timed(launch)
        run_wall = json.loads((work / f"run-{rep}.json").read_text())["wall_s"]
        shard_walls = [json.loads(p.read_text())["wall_s"]
                       for p in sorted((work / f"launch-{rep}.shards").glob("shard-*-of-*.json"))]
        rows.append({"rep": rep, "run_s": one, "launch_s": sharded, "ratio": sharded / one,
                     "run_sweep_s": run_wall, "shards_sweep_s": shard_walls})
        print(f"rep {rep}: run {one:.1f} s (sweep {run_wall:.1f} s)  launch {sharded:.1f} s "
              f"(shards' sweeps {' + '.join(f'{w:.1f}' for w in shard_walls)} s)  launch/run {sharded / one:.2f}",
              flush=True)
    med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
    print(f"median over {len(rows)}: run {med('run_s'):.1f} s, launch {med('launch_s'):.1f} s, "
          f"launch/run {med('ratio'):.2f}, launch - run {med('launch_s') - med('run_s'):+.1f} s")
    (work / "summary.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
