"""Small runs for the history tests: results CSVs whose points have known medians, one per commit, and a
throwaway PostgreSQL cluster (initdb + pg_ctl in a temp dir, unix socket only)."""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from synthetic_results import row, write_csv
from seqbench.results.schema import format_samples
from seqbench.results.writer import write_json_atomic

KERNELS = ("rnn_loop", "sdpa")
T = (64, 128)


def write_run(folder: Path, i: int, *, commit: str | None = None, scale: dict | None = None, machine: str = "m1",
              noise: float = 0.005, seed: int | None = None, time: str | None = None) -> Path:
    """Run number i: every point at its synthetic latency times scale[kernel] (default 1), 20 samples with
    relative noise `noise`; sidecar with commit c{i:04d}, a start time i minutes after 2026-12-01."""
    rng = np.random.default_rng(i if seed is None else seed)
    rows = []
    for k in KERNELS:
        for t in T:
            base = row(k, t, 4)
            m = base.median_s * (scale or {}).get(k, 1.0) * float(np.exp(rng.normal(0, noise)))
            samples = m * np.exp(rng.normal(0, noise / 2, 20))
            rows.append(dataclasses.replace(base, run_id=f"run-{machine}-{i}", median_s=float(np.median(samples)),
                                            repeats=20, samples_s=format_samples(samples)))
    path = folder / f"run-{machine}-{i:04d}.csv"
    write_csv(path, rows, sidecar=False)
    write_json_atomic(path.with_suffix(".json"), {
        "schema_version": 2, "run_id": f"run-{machine}-{i}", "machine": machine,
        "environment": {"git_commit": commit or f"c{i:04d}", "device": "cpu"},
        "started_at": time or f"2026-12-01T{i // 60:02d}:{i % 60:02d}:00+00:00"})
    return path


def pg_bin() -> Path | None:
    """The folder with initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/*/bin (newest)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name)
                  if Path(d).parent.name.isdigit() else 0)
    return Path(dirs[-1]) if dirs and (Path(dirs[-1]) / "pg_ctl").exists() else None


class PgCluster:
    """initdb + pg_ctl start in a temp dir; listens on a unix socket in that dir only (no TCP). As root,
    the server runs as the `postgres` user (initdb refuses root)."""

    def __init__(self, root: Path, port: int = 54329):
        self.bin = pg_bin()
        self.root, self.port = root, port
        self.data = root / "data"
        self.user = None
        if os.geteuid() == 0:
            import pwd

            try:
                pwd.getpwnam("postgres")
                self.user = "postgres"
            except KeyError:
                self.user = "nobody"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> str:
        if self.user:
            shutil.chown(self.root, self.user)
            os.chmod(self.root, 0o755)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "30", "-o",
                  f"-k {self.root} -p {self.port} -c listen_addresses='' -c fsync=off", "start")
        return f"postgresql://postgres@/postgres?host={self.root}&port={self.port}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
