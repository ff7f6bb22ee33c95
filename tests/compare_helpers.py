"""Synthetic result tables for the compare and ab tests: runs of rounds of samples, as `seqbench run
--rounds R --append` writes them."""

from __future__ import annotations

import random

import pandas as pd

from seqbench.results.schema import COLUMNS, SCHEMA_VERSION, Row, format_samples


def make_table(points: dict, *, side: str, kernel="rnn_loop", status=None):
    """Rows of one side: points = {seq_len: [[round samples, ...] per run, ...]}."""
    rows = []
    for seq_len, runs in points.items():
        for i, rounds in enumerate(runs):
            rows.append(make_row(kernel, seq_len, rounds, run_id=f"{side}{i}", status=(status or {}).get((seq_len, i), "ok")))
    return pd.DataFrame([r.as_csv() for r in rows], columns=COLUMNS)


KEY = dict(mode="forward", device="cpu", dtype="float32", batch_size=8, hidden_size=64, num_heads=4, causal=False)


def make_row(kernel, seq_len, rounds, *, run_id="r1", status="ok", ref=None, threads=1, error="RuntimeError: boom"):
    samples = [s for r in rounds for s in r]
    row = Row(schema_version=SCHEMA_VERSION, run_id=run_id, kernel=kernel, family="recurrent", seq_len=seq_len, threads=threads,
              status=status, **KEY)
    if status == "ok":
        row.repeats, row.median_s = len(samples), sorted(samples)[len(samples) // 2]
        row.samples_s = format_samples(samples)
        row.sample_rounds = " ".join(str(i) for i, r in enumerate(rounds, 1) for _ in r)
        row.ref_s = format_samples(ref) if ref else ""
    else:
        row.error = error
    return row


def make_runs(center, n=4, seed=0, rounds=3):
    rng = random.Random(seed)
    return [[[center * (1 + rng.gauss(0, 0.003)) for _ in range(3)] for _ in range(rounds)] for _ in range(n)]


