"""A pool of real runs of the bench-ci sweep, for replaying `seqbench ab --runs auto` many times.

    python benchmarks/ab_pool.py collect --dir POOL --runs 30 --condition quiet   # ~10 s a run
    python benchmarks/ab_pool.py collect --dir POOL --runs 30 --condition load    # with the neighbour

Each run is one `seqbench run ci-layer.toml --rounds 3 --no-peak` process (the config and user layer of
`make bench-ci`, benchmarks/ci_layer.py), alternately from two checkouts of the SAME code (base, copy),
in ABBA order, each into its own CSV (POOL/<condition>/run-NNN.csv), with the machine's load sampled
before and after it (POOL/<condition>/pool.json). All runs time identical code, so any stretch of the
pool, labelled with an ABBA schedule, is a real A/A sequence; a planted change is a factor on the
head's samples (benchmarks/ab_replay.py). Runs are appended in time order, so a replay that takes
consecutive runs keeps the machine's drift and busy stretches as they happened.

The load condition starts aa_collect.py's neighbour (one core in random on/off bursts of memory-heavy
work) for the whole chunk. Run under the shared CPU lock: `flock /work/.cpu.lock python ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def setup(d: Path) -> None:
    import ci_layer

    if (d / "sides" / "done").exists():
        return
    ci_layer.write_checkout(d / "sides" / "base")
    ci_layer.write_checkout(d / "sides" / "copy")
    ci_layer.write_config(d / "sides" / "ci-layer.toml", min_time=0.15, max_warmup=0.3)
    snap = d / "snapshot"
    if snap.exists():
        shutil.rmtree(snap)
    shutil.copytree(ROOT / "seqbench", snap / "seqbench", ignore=shutil.ignore_patterns("__pycache__"))
    (d / "sides" / "done").write_text("\n")


def busy_seconds() -> float:
    """Non-idle CPU seconds of the machine (/proc/stat), for others' CPU over a whole run."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]] + [0] * 8
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / os.sysconf("SC_CLK_TCK")


def load_now() -> dict:
    from lab import load

    return load.sample(0.2).as_dict()


def collect(args) -> None:
    import aa_collect

    d = Path(args.dir).resolve()
    setup(d)
    out = d / args.condition
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "pool.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"condition": args.condition, "runs": []}
    neighbour = None
    if args.condition == "load":
        neighbour = subprocess.Popen([sys.executable, "-c", aa_collect.NEIGHBOUR, str(len(meta["runs"])),
                                      str(out / f"duty-{len(meta['runs']):03d}")])
    try:
        for _ in range(args.runs):
            i = len(meta["runs"]) + 1
            side = "base" if (i - 1) % 4 in (0, 3) else "copy"  # A B B A
            csv = out / f"run-{i:03d}.csv"
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(d / "sides" / side), str(d / "snapshot")]))
            before = load_now()
            busy0, own0 = busy_seconds(), sum(os.times()[2:4])
            t0 = time.time()
            proc = subprocess.run([sys.executable, "-m", "seqbench", "run", str(d / "sides" / "ci-layer.toml"),
                                   "--rounds", str(args.rounds), "--no-peak", "-q", "-o", str(csv)],
                                  cwd=d / "sides" / side, env=env, capture_output=True, text=True)
            wall = time.time() - t0
            others = max(0.0, (busy_seconds() - busy0) - (sum(os.times()[2:4]) - own0)) / wall
            if proc.returncode != 0:
                raise SystemExit(f"run {i} failed: {proc.stderr[-500:]}")
            meta["runs"].append({"index": i, "side": side, "csv": csv.name, "start": t0, "wall_s": round(wall, 2), "others_cores": round(others, 2),
                                 "load_before": before, "load_after": load_now()})
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
            print(f"{time.strftime('%H:%M:%S')} {args.condition} run {i} {side} {wall:.1f} s "
                  f"load {before.get('loadavg_1m')} others over the run {others:.2f} cores", flush=True)
    finally:
        if neighbour is not None:
            neighbour.send_signal(signal.SIGINT)
            try:
                neighbour.wait(timeout=30)
            except subprocess.TimeoutExpired:
                neighbour.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--dir", required=True)
    c.add_argument("--runs", type=int, default=30)
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--condition", choices=["quiet", "load"], required=True)
    args = ap.parse_args()
    collect(args)


if __name__ == "__main__":
    main()
