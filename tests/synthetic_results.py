"""Small results CSVs with known answers, for the plot / report / analysis tests.

Latencies follow exact power laws, so fitted exponents and crossovers have algebraic answers:
  rnn_loop   t = 2e-6 · T        (k = 1)
  rnn_fused  t = 5e-7 · T        (k = 1)
  sdpa       t = 1e-8 · T²       (k = 2)   crosses rnn_loop at T* = 2e-6 / 1e-8 = 200
  attention_naive t = 2e-8 · T²  (always slower than sdpa: never the "best attention")
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from seqbench.results.schema import SCHEMA_VERSION, Row, format_samples
from seqbench.results.writer import CsvSink, write_json_atomic

SEQ_LENS = (32, 64, 128, 256, 512, 1024)
BATCHES = (1, 4)
LAWS = {  # kernel -> (family, prefactor, exponent)
    "rnn_loop": ("recurrent", 2e-6, 1),
    "rnn_fused": ("recurrent", 5e-7, 1),
    "sdpa": ("attention", 1e-8, 2),
    "attention_naive": ("attention", 2e-8, 2),
}
T_STAR_SDPA_VS_LOOP = 200.0
CALIBRATION_GFLOPS = 123.0


def latency(kernel: str, T: int) -> float:
    _, a, k = LAWS[kernel]
    return a * T**k


def row(kernel: str, T: int, B: int, *, mode: str = "forward", status: str = "ok", family: str | None = None,
        median: float | None = None, error: str = "", gflops: float | None = None) -> Row:
    fam = family or LAWS[kernel][0]
    base = dict(schema_version=SCHEMA_VERSION, run_id="test-run", kernel=kernel, family=fam, mode=mode, device="cpu",
                dtype="float32", batch_size=B, seq_len=T, hidden_size=64, num_heads=2, causal=False, threads=1,
                status=status, error=error)
    if status != "ok":
        return Row(**base)
    m = latency(kernel, T) if median is None else median
    samples = [m * 0.98, m * 0.99, m, m * 1.01, m * 1.02]
    flop = 1e3 * B * T
    return Row(**base, repeats=5, median_s=m, iqr_s=0.02 * m, min_s=min(samples), mean_s=m,
               tokens_per_s=B * T / m, gflop=flop / 1e9, gflops_per_s=gflops if gflops is not None else flop / m / 1e9,
               peak_mem_bytes=1024 * B * T * (T if fam == "attention" else 1), samples_s=format_samples(samples),
               peak_mem_method="analytic", number=1)


def write_csv(path: Path, rows: list[Row], *, sidecar: bool = True) -> Path:
    with CsvSink(path, validate=False) as sink:  # some tests write what the reader must refuse
        for r in rows:
            sink.write(r)
    if sidecar:
        runs = list(dict.fromkeys(r.run_id for r in rows)) or ["test-run"]  # a sidecar describes its CSV's runs
        meta = {
            "schema_version": SCHEMA_VERSION, "run_id": runs[-1], "command": ["seqbench", "run", "synthetic"],
            "config": {"name": "synthetic", "dtype": "float32", "hidden_size": 64, "num_heads": 2},
            "environment": {"cpu": "Test CPU 9000", "torch": "0.0-test", "device": "cpu"},
            "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:00+00:00", "status": "complete",
        }
        if len(runs) > 1:  # an appended file: the earlier runs, as `run --append` records them
            meta = {"previous_runs": [{**meta, "run_id": r} for r in runs[:-1]], **meta}
        write_json_atomic(path.with_suffix(".json"), meta)
    return path


def standard_rows(*, calibration: bool = True) -> list[Row]:
    rows = [row(k, T, B) for k in LAWS for B in BATCHES for T in SEQ_LENS]
    # A failed point: present in the CSV, absent from every chart, listed in the report.
    rows = [r for r in rows if not (r.kernel == "attention_naive" and r.batch_size == 4 and r.seq_len == 1024)]
    rows.append(row("attention_naive", 1024, 4, status="oom", error="RuntimeError: not enough memory: 64 GiB"))
    rows.append(row("rnn_loop", 64, 1, mode="train", median=1e-3))
    rows.append(row("rnn_loop", 128, 1, mode="train", median=2e-3))
    if calibration:
        # The matmul calibration point another part of seqbench may record: a reference line, not a kernel.
        cal = row("rnn_loop", 512, 1, median=1e-3, gflops=CALIBRATION_GFLOPS)
        rows.append(dataclasses.replace(cal, kernel="calibration", family="calibration"))
    return rows
