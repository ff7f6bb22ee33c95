"""The history store at scale: 1,000 runs x 300 points, each point's samples as many as the real runs
hold, added one run at a time through `seqbench history add` (in-process), then `history check` and
`history publish` over all of it. Reports the store's size and the times.

Each synthetic run is built from the real runs in RUNS_DIR (benchmarks/configs/history.toml): point j
is real point j % 8 with hidden_size 128 + j // 8 (so the 300 keys differ), its samples resampled with
replacement from a randomly drawn real run of that point. Resumable: it adds only the runs the store
lacks, and stops after --minutes (keep each chunk under the machine lock short):

    flock /work/.cpu.lock .venv/bin/python benchmarks/history_scale.py results/history/runs --store /tmp/scale.db
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from seqbench.results.reader import read_metadata
from seqbench.results.schema import sidecar_path


def templates(folder: Path):
    """Real rows (as CSV dicts) per point and the header and one sidecar."""
    rows: dict[tuple, list[dict]] = {}
    header, meta = None, None
    for p in sorted(folder.glob("*.csv")) if folder.is_dir() else [folder]:
        with p.open(newline="") as fh:
            r = csv.DictReader(fh)
            header = r.fieldnames
            for rec in r:
                if rec["status"] == "ok" and rec["family"] != "calibration":
                    rows.setdefault((rec["kernel"], rec["seq_len"]), []).append(rec)
        meta = meta or read_metadata(p)
    return header, [rows[k] for k in sorted(rows)], meta


def write_run(out: Path, i: int, n_points: int, header, real, meta, rng) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    for j in range(n_points):
        src = real[j % len(real)][rng.integers(len(real[j % len(real)]))]
        s = np.array(src["samples_s"].split(), dtype=float)
        s = s[rng.integers(0, len(s), len(s))]
        rec = dict(src, run_id=f"scale-{i:05d}", hidden_size=str(128 + j // len(real)), median_s=f"{np.median(s):.9g}",
                   samples_s=" ".join(f"{x:.9g}" for x in s), sample_rounds="", ref_s="")
        w.writerow(rec)
    path = out / f"scale-{i:05d}.csv"
    path.write_text(buf.getvalue())
    side = dict(meta, run_id=f"scale-{i:05d}", previous_runs=[], started_at=f"2026-01-01T00:00:00+00:00")
    side["environment"] = dict(meta.get("environment") or {}, git_commit=f"{i:040x}")
    side["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(1_767_225_600 + 3600 * i))
    sidecar_path(path).write_text(json.dumps(side))
    return path


def main(argv=None) -> int:
    from seqbench.cli import main as cli
    from seqbench.results.store import Store

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs_dir", type=Path)
    ap.add_argument("--store", required=True)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--points", type=int, default=300)
    ap.add_argument("--minutes", type=float, default=9.0)
    ap.add_argument("--log", type=Path, default=Path("results/history/scale.json"))
    args = ap.parse_args(argv)
    header, real, meta = templates(args.runs_dir)
    log = json.loads(args.log.read_text()) if args.log.exists() else {"add_s": [], "csv_bytes": []}
    st = Store(args.store)
    have = len(st.runs()) if st.file is None or st.file.exists() else 0
    st.close()
    rng = np.random.default_rng(have)
    t_end = time.monotonic() + 60 * args.minutes
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(have, args.runs):
            if time.monotonic() > t_end:
                break
            path = write_run(Path(tmp), i, args.points, header, real, meta, rng)
            t0 = time.perf_counter()
            assert cli(["history", "add", str(path), "--store", args.store, "-q"]) == 0
            log["add_s"].append(time.perf_counter() - t0)
            log["csv_bytes"].append(path.stat().st_size)
            path.unlink()
    st = Store(args.store)
    n = len(st.runs())
    st.close()
    log.update(runs=n, points=args.points, samples_per_point=sorted({len(r["samples_s"].split()) for rs in real for r in rs}))
    if n >= args.runs:
        import contextlib

        for name, argv2 in (("check_s", ["history", "check", "--store", args.store, "--format", "json"]),
                            ("publish_s", ["history", "publish", "-o", f"{tempfile.gettempdir()}/scale-site",
                                           "--store", args.store, "--force"])):
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()) as out:
                rc = cli(argv2)
            log[name] = time.perf_counter() - t0
            if name == "check_s":
                res = json.loads(out.getvalue())
                log["check_exit"] = rc
                log["check_changes"] = len(res["changes"])
        if st.file is not None:
            log["store_bytes"] = st.file.stat().st_size
    args.log.parent.mkdir(parents=True, exist_ok=True)
    args.log.write_text(json.dumps(log))
    a = np.array(log["add_s"])
    print(f"{n} runs in the store; add: median {np.median(a):.3f} s, p95 {np.quantile(a, 0.95):.3f} s; "
          f"CSV median {np.median(log['csv_bytes']) / 1e6:.2f} MB"
          + (f"; store {log['store_bytes'] / 1e6:.1f} MB" if "store_bytes" in log else "")
          + (f"; check {log['check_s']:.1f} s, publish {log['publish_s']:.1f} s" if "check_s" in log else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
