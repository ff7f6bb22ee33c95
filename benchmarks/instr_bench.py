"""`make bench-ci-instructions`: how far `--metric instructions` can be trusted as a CI gate.

    python benchmarks/instr_bench.py collect --dir D --procs 8 --condition quiet
    python benchmarks/instr_bench.py collect --dir D --procs 8 --condition load
    python benchmarks/instr_bench.py ab --dir D          # wall time of `seqbench ab --metric instructions`
    python benchmarks/instr_bench.py analyze --dir D --json results/ci/instructions.json

Each collected PROCESS is one `seqbench run --metric instructions` (one Valgrind process) of
benchmarks/configs/ci.toml's points plus a user's layer from a throwaway plugin package, in three
versions side by side: the layer (`ilab_base`), and the layer with a planted change of +1% and +0.5%
of its work (`ilab_p1`, `ilab_p05`): extra elementwise ops per call, as many as make that share of
the layer's own instruction count (calibrated once by the first process, `calibrate`). Under `load`
a neighbour process keeps the other core busy with matmuls for the whole run.

analyze scores comparisons drawn from the processes, as `seqbench compare` makes them (2 runs a side,
each run a different process): A/A pairs (base vs base, every point: any regression or improvement is
a false alarm) and planted pairs (ilab_base of two processes vs ilab_p1 / ilab_p05 of two others, at
the default 1% threshold and at half the planted change). Counts are near-deterministic, so the
draws share processes: the figure that carries the argument is the spread of each point's count
over ALL processes, which analyze prints beside the rates.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import seqbench

ROOT = Path(__file__).resolve().parents[1]
CI_TOML = ROOT / "benchmarks" / "configs" / "ci.toml"
SEQ_LENS = (32, 64, 128)
PLANTS = {"ilab_p1": 0.01, "ilab_p05": 0.005}
UNIT_OPS = 200  # extra ops of the calibration kernel

LAYER = '''\
import torch
from torch import nn

EXTRA = {extra!r}  # kernel name -> {{seq_len: extra elementwise ops per call}}: the planted change


class GLR(nn.Module):
    """h_t = a_t * h_(t-1) + (1 - a_t) * v_t; a, v from x; output h W_o. `extra` planted ops per call."""

    def __init__(self, d, extra):
        super().__init__()
        self.gate, self.value, self.out = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.extra = extra

    def forward(self, x):
        a = torch.sigmoid(self.gate(x))
        b = (1 - a) * self.value(x)
        h, outs = x.new_zeros(x.shape[0], x.shape[2]), []
        for t in range(x.shape[1]):
            h = torch.addcmul(b[:, t], a[:, t], h)
            outs.append(h)
        for _ in range(self.extra.get(x.shape[1], 0)):
            h = h * 1.0  # one more elementwise op on a (B, d) tensor: work, and nothing else
        return self.out(torch.stack(outs, 1)) + 0 * h[:, None]
'''

BENCH = '''\
import seqbench

from ilab.glr import EXTRA, GLR

for _name in ("ilab_base", "ilab_unit", *EXTRA):
    _extra = EXTRA.get(_name) or ({{t: {unit} for t in {seq_lens!r}}} if _name == "ilab_unit" else {{}})
    seqbench.register_kernel(_name, family="scan", flops="6*B*T*d^2", description="ilab's layer",
                             factory=lambda shape, e=_extra: GLR(shape.hidden_size, e))
'''

CONFIG = '''\
name = "instr-bench"
plugins = ["ilab.bench_kernels"]
kernels = {kernels!r}
seq_lens = [32, 64, 128]
batch_sizes = [4]
hidden_size = 128
num_heads = 4
threads = 1
metric = "instructions"
'''


def write_package(root: Path, extra: dict) -> Path:
    pkg = root / "ilab"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "glr.py").write_text(LAYER.format(extra=extra))
    (pkg / "bench_kernels.py").write_text(BENCH.format(unit=UNIT_OPS, seq_lens=SEQ_LENS))
    return root


def seqbench_run(pkg_root: Path, kernels: list[str], out: Path, seed: int | None = None) -> float:
    """One `seqbench run --metric instructions` process (hash seed 0 unless given); returns its wall seconds."""
    config = out.with_suffix(".toml")
    config.write_text(CONFIG.format(kernels=kernels))
    path = os.pathsep.join(filter(None, [str(pkg_root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "SEQBENCH_LOAD_WINDOW": "off"}
    env.pop("PYTHONHASHSEED", None)
    if seed is not None:
        env["PYTHONHASHSEED"] = str(seed)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "seqbench", "run", str(config), "-q", "--force", "-o", str(out)],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def calibrate(d: Path) -> dict:
    """Counts of the layer and of the layer + UNIT_OPS ops -> planted ops per kernel and T."""
    cal = d / "calibration.json"
    if cal.exists():
        return json.loads(cal.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        root = write_package(Path(tmp), {})
        wall = seqbench_run(root, ["ilab_base", "ilab_unit"], d / "calibration.csv")
    df = pd.read_csv(d / "calibration.csv").set_index(["kernel", "seq_len"])
    extra, share = {}, {}
    for name, frac in PLANTS.items():
        extra[name], share[name] = {}, {}
        for t in SEQ_LENS:
            base = df.loc[("ilab_base", t), "instructions"]
            per_op = (df.loc[("ilab_unit", t), "instructions"] - base) / UNIT_OPS
            extra[name][t] = max(1, round(frac * base / per_op))
            share[name][t] = extra[name][t] * per_op / base
    out = {"extra_ops": extra, "planted_share": share, "wall_s": round(wall, 1)}
    cal.write_text(json.dumps(out, indent=2, default=str))
    return out


def neighbour() -> subprocess.Popen:
    """The other core busy with one-thread matmuls until killed."""
    code = "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True:\n    a @ a\n"
    return subprocess.Popen([sys.executable, "-c", code])


def collect(d: Path, procs: int, condition: str) -> None:
    """quiet: one process at a time; load: beside a neighbour; seeds: each process its own hash seed
    (1, 2, ...), two at a time (a count does not depend on the load: quiet vs load shows it)."""
    d.mkdir(parents=True, exist_ok=True)
    cal = calibrate(d)
    extra = {k: {int(t): n for t, n in v.items()} for k, v in cal["extra_ops"].items()}
    kernels = ["rnn_loop", "rnn_fused", "sdpa", "ilab_base", *PLANTS]
    folder = d / condition
    folder.mkdir(exist_ok=True)
    width = 2 if condition == "seeds" else 1
    with tempfile.TemporaryDirectory() as tmp:
        root = write_package(Path(tmp), extra)
        while (done := len(list(folder.glob("run-*.csv")))) < procs:
            batch = [folder / f"run-{done + k + 1:02d}.csv" for k in range(min(width, procs - done))]
            load = neighbour() if condition == "load" else None
            try:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(len(batch)) as pool:
                    walls = list(pool.map(lambda o: seqbench_run(root, kernels, o, seed=int(o.stem[4:]) if
                                                                 condition == "seeds" else None), batch))
            finally:
                if load is not None:
                    load.send_signal(signal.SIGTERM)
                    load.wait()
            for out, wall in zip(batch, walls):
                with (folder / "walls.jsonl").open("a") as fh:
                    fh.write(json.dumps({"run": out.name, "wall_s": round(wall, 1), "side_by_side": len(batch),
                                         "loadavg": os.getloadavg()[0]}) + "\n")
                print(f"{condition} {out.name}: {wall:.1f} s", flush=True)


def ab(d: Path) -> None:
    """Wall time of `seqbench ab benchmarks/configs/ci.toml --metric instructions` (an A/A pair of this checkout)."""
    out = d / "ab"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "seqbench", "ab", str(CI_TOML), "--base", str(ROOT), "--head",
                           str(ROOT), "--metric", "instructions", "--force", "-o", str(out), "--format", "json"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (d / "ab.json").write_text(json.dumps({"wall_s": round(wall, 1), "returncode": proc.returncode,
                                           "loadavg": os.getloadavg()[0]}, indent=2))
    print(f"ab --metric instructions: {wall:.1f} s, exit {proc.returncode}")


# --- analysis ----------------------------------------------------------------------------------


def load_runs(folder: Path) -> list[pd.DataFrame]:
    return [pd.read_csv(p) for p in sorted(folder.glob("run-*.csv"))]


def side_csv(frames: list[pd.DataFrame], kernel_from: str | None, kernel_as: str | None, path: Path) -> Path:
    """The rows of some processes as one results file (kernel_from renamed kernel_as, for planted pairs)."""
    rows = pd.concat(frames, ignore_index=True)
    if kernel_from:
        rows = rows[rows["kernel"] == kernel_from].assign(kernel=kernel_as)
    else:
        rows = rows[~rows["kernel"].isin(list(PLANTS))]
    rows.to_csv(path, index=False)
    return path


def verdicts(base_frames, head_frames, tmp: Path, *, plant: str | None = None, threshold: float | None = None) -> dict:
    b = side_csv(base_frames, "ilab_base" if plant else None, "ilab_base", tmp / "base.csv")
    h = side_csv(head_frames, plant, "ilab_base", tmp / "head.csv")
    opts = {} if threshold is None else {"threshold": threshold}
    comp = seqbench.compare(b, h, **opts)
    return {f"{p.key['kernel']} T={p.key['seq_len']}": p.verdict for p in comp.points}


def spreads(frames: list[pd.DataFrame]) -> dict:
    """Per point: min, max and (max - min) / median of its count over every process."""
    rows = pd.concat(frames, ignore_index=True)
    out = {}
    for (k, t), g in rows.groupby(["kernel", "seq_len"]):
        c = g["instructions"]
        out[f"{k} T={t}"] = {"min": float(c.min()), "max": float(c.max()), "median": float(c.median()),
                             "spread": float((c.max() - c.min()) / c.median()), "processes": int(len(c))}
    return out


def draws(n: int, reps: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """reps draws of two disjoint pairs of processes (as many distinct ones as there are)."""
    combos = [(list(a), list(b)) for a in itertools.combinations(range(n), 2)
              for b in itertools.combinations(range(n), 2) if not set(a) & set(b)]
    rng = random.Random(seed)
    rng.shuffle(combos)
    return combos[:reps]


def analyze(d: Path, reps: int, json_path: Path | None) -> None:
    cal = json.loads((d / "calibration.json").read_text())
    report = {"calibration": cal, "conditions": {}}
    lines = []
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        for condition in ("quiet", "load", "quiet+load", "seeds"):
            # quiet+load: the processes of both, one pool (a count should not care which it ran beside)
            frames = [f for c in condition.split("+") for f in load_runs(d / c)]
            if len(frames) < 4:
                continue  # (two disjoint pairs of processes are needed)
            pairs = draws(len(frames), reps, seed=1 if condition == "quiet" else 2)
            res = {"processes": len(frames), "draws": len(pairs), "spread": spreads(frames)}
            walls = [json.loads(x) for c in condition.split("+") for x in (d / c / "walls.jsonl").read_text().splitlines()]
            res["run_wall_s"] = [w["wall_s"] for w in walls]
            aa = [verdicts([frames[i] for i in a], [frames[i] for i in b], tmp) for a, b in pairs]
            res["aa"] = {"comparisons": len(aa), "points": len(aa[0]),
                         "false_alarms": sum(any(v in ("regression", "improvement") for v in x.values()) for x in aa),
                         "inconclusive": sum(any(v == "inconclusive" for v in x.values()) for x in aa)}
            aa_half = [verdicts([frames[i] for i in a], [frames[i] for i in b], tmp, threshold=0.005) for a, b in pairs]
            res["aa_threshold_0.5%"] = {
                "false_alarms": sum(any(v in ("regression", "improvement") for v in x.values()) for x in aa_half),
                "inconclusive": sum(any(v == "inconclusive" for v in x.values()) for x in aa_half)}
            res["planted"] = {}
            for plant, frac in PLANTS.items():
                for thr in (None, frac / 2):
                    got = [verdicts([frames[i] for i in a], [frames[i] for i in b], tmp, plant=plant, threshold=thr)
                           for a, b in pairs]
                    per_t = {t: sum(x[f"ilab_base T={t}"] == "regression" for x in got) for t in SEQ_LENS}
                    res["planted"][f"{plant} threshold {'1% (default)' if thr is None else f'{thr:.2%}'}"] = per_t
            report["conditions"][condition] = res
            worst = max(res["spread"].items(), key=lambda kv: kv[1]["spread"])
            lines += [f"{condition}: {len(frames)} processes, {len(pairs)} comparisons drawn (2 runs a side); run wall "
                      f"{min(res['run_wall_s']):.0f}-{max(res['run_wall_s']):.0f} s",
                      f"  A/A: {res['aa']['false_alarms']}/{len(aa)} comparisons with a false alarm "
                      f"({res['aa']['points']} points each), {res['aa']['inconclusive']} with an inconclusive point; "
                      f"at threshold 0.5%: {res['aa_threshold_0.5%']['false_alarms']}/{len(aa)} false alarms, "
                      f"{res['aa_threshold_0.5%']['inconclusive']} with an inconclusive point",
                      f"  largest spread of a point's count over all {len(frames)} processes: {worst[1]['spread']:.2e} "
                      f"({worst[0]}: {worst[1]['min']:.0f}-{worst[1]['max']:.0f})"]
            for name, per_t in res["planted"].items():
                lines.append(f"  {name}: caught " + ", ".join(f"T={t} {n}/{len(pairs)}" for t, n in per_t.items()))
    share = cal["planted_share"]
    lines.append("planted shares (instructions): " + "; ".join(
        f"{k} " + ", ".join(f"T={t} {v:.3%}" for t, v in s.items()) for k, s in share.items()))
    if (d / "ab.json").exists():
        report["ab"] = json.loads((d / "ab.json").read_text())
        lines.append(f"seqbench ab benchmarks/configs/ci.toml --metric instructions (2 runs a side): "
                     f"{report['ab']['wall_s']:.0f} s wall, exit {report['ab']['returncode']}")
    print("\n".join(lines))
    if json_path:
        json_path.write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("collect", "ab", "analyze"))
    ap.add_argument("--dir", type=Path, default=Path("bench-ci-instr-data"))
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--condition", choices=("quiet", "load", "seeds"), default="quiet")
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: sudo apt-get install valgrind")
    if args.what == "collect":
        collect(args.dir, args.procs, args.condition)
    elif args.what == "ab":
        args.dir.mkdir(parents=True, exist_ok=True)
        ab(args.dir)
    else:
        analyze(args.dir, args.reps, args.json)


if __name__ == "__main__":
    main()
