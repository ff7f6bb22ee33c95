"""Ctrl-C on a real `seqbench run`, then `--resume`: every point ends up in the CSV exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reliability_helpers import frozen_gc  # noqa: F401
from seqbench.cli import main
from seqbench.results.reader import read_results

ROOT = Path(__file__).resolve().parents[1]
TOML = """name = "interrupt"
kernels = ["rnn_loop"]
seq_lens = [4, 8, 16, 32]
batch_sizes = [1, 2]
hidden_size = 8
num_heads = 2
min_time = 0.02
max_warmup = 0.1
threads = 1
"""
TOTAL = 4 * 2


def _seqbench(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return [sys.executable, "-m", "seqbench", *args], env


def _rows(csv: Path) -> int:
    return max(0, len(csv.read_text().splitlines()) - 1) if csv.exists() else 0


@pytest.mark.slow
def test_sigint_mid_sweep_then_resume(tmp_path, monkeypatch):
    (tmp_path / "s.toml").write_text(TOML)
    out = tmp_path / "run.csv"
    cmd, env = _seqbench("run", "s.toml", "-o", str(out), "-q")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _rows(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.count("\n") == 1 and "interrupted" in err and "--resume" in err and "Traceback" not in err, err
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["status"] == "interrupted" and meta["interrupted_by"] == "SIGINT"
    done = read_results(out)  # every finished row is on disk and the file is valid
    assert 2 <= len(done) < TOTAL + 1 and meta["rows"] == len(done)  # + 1: the calibration row, first

    # the resumed run goes in-process (the real CLI entry point, without a second interpreter start-up)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--resume", "-o", str(out), "-q"]) == 0
    df = read_results(out)
    keys = list(zip(df.kernel, df.batch_size, df.seq_len))
    assert len(keys) == TOTAL + 1 and len(set(keys)) == TOTAL + 1  # the calibration is not measured twice
    assert keys[0][0] == "calibration" and df["pct_of_peak"].notna().all()
    assert set(df.run_id) == {meta["run_id"]} and set(df.status) == {"ok"}
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["status"] == "complete" and meta["rows"] == TOTAL + 1 and meta["resumed"][0]["rows_before"] == len(done)
