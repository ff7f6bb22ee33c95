"""The decode section of the report and the decode charts, on results with known answers:
  rnn_fused         t = 2e-4 * B           (k = 0: a fixed-size state)
  linear_attention  t = 3e-4 * B           (k = 0, never the fastest fixed state)
  sdpa              t = 1e-5 * B * T       (k = 1: a KV cache read), so sdpa / rnn_fused = T / 20: T* = 20 at both B,
                                           and sdpa / linear_attention = T / 30: T* = 30
"""

import dataclasses
import re

import pytest

from seqbench.analysis import decode
from seqbench.cli import main
from seqbench.results.schema import SCHEMA_VERSION, Row, format_samples
from seqbench.render import plot

from synthetic_results import write_csv

CONTEXTS = (8, 16, 32, 64, 128)
LAWS = {"rnn_fused": ("recurrent", lambda T: 2e-4), "linear_attention": ("attention", lambda T: 3e-4),
        "sdpa": ("attention", lambda T: 1e-5 * T)}
STATE = {"rnn_fused": lambda T: 16, "linear_attention": lambda T: 80, "sdpa": lambda T: 32 * (T + 1)}
BUDGET = 1 << 20


def decode_row(kernel, T, B, capacity=True):
    fam, law = LAWS[kernel]
    m = B * law(T)
    samples = [m * 0.99, m, m * 1.01]
    cap = 1000 if kernel != "sdpa" else 8000 // T
    return Row(schema_version=SCHEMA_VERSION, run_id="r", kernel=kernel, family=fam, mode="decode", device="cpu",
               dtype="float32", batch_size=B, seq_len=T, hidden_size=4, num_heads=2, causal=True, threads=1,
               status="ok", repeats=3, median_s=m, iqr_s=0.01 * m, min_s=samples[0], mean_s=m, tokens_per_s=B / m,
               gflop=1e-6, gflops_per_s=1e-6 / m, peak_mem_bytes=1000 + B * STATE[kernel](T), samples_s=format_samples(samples),
               peak_mem_method="analytic", number=1, regime="eager", state_bytes=STATE[kernel](T),
               **(dict(capacity_batch=cap, capacity_step_s=2 * m, capacity_tokens_per_s=cap / (2 * m),
                       capacity_peak_bytes=900 * 1024, capacity_budget_bytes=BUDGET) if capacity else {}))


def rows(capacity=True):
    out = [decode_row(k, T, B, capacity) for k in LAWS for B in (1, 4) for T in CONTEXTS]
    # the matmul peak's row records its N x N matmul as hidden_size = N: not a width to fit decode by
    cal = decode_row("rnn_fused", 1024, 1, capacity=False)
    return out + [dataclasses.replace(cal, kernel="calibration", family="calibration", mode="forward", hidden_size=1024,
                                      state_bytes=None)]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    d = tmp_path_factory.mktemp("decode-report")
    csv = write_csv(d / "decode.csv", rows())
    out = d / "out" / "report.md"
    assert main(["report", str(csv), "-o", str(out), "-q"]) == 0
    return out, out.read_text()


def test_decode_fits_crossover_and_capacity_match_the_algebra(rendered):
    _, md = rendered
    # fitted over T >= 4d = 16: four contexts; intervals from the 1% spread of each point's samples
    assert re.search(r"\| sdpa \| KV cache \| 1 \| 1\.00 \| \[0\.9\d, 1\.0\d\] \| 1\.000 \| 4 \| 16–128 \|", md)
    assert re.search(r"\| rnn_fused \| fixed state \| 4 \| 0\.00 \| \[-0\.0\d, 0\.0\d\] \| 1\.000 \| 4 \| 16–128 \|", md)
    assert re.search(r"\| best recurrence \| 1 \| 20 \[20, 20\] \| best recurrence \(rnn_fused\) faster above T\* \|", md)
    assert re.search(r"\| best recurrence \| 4 \| 20 \[20, 20\] \|", md)
    # per fixed-state kernel: linear_attention (3e-4) meets sdpa (1e-5 T) at T* = 30
    assert re.search(r"\| linear_attention \| 4 \| 30 \[29, 31\] \| linear_attention faster above T\* \|", md)
    assert "- Decode crossover, best recurrence vs best attention (B=1): 20 [20, 20]; above: best recurrence (rnn_fused)." in md
    assert "| sdpa | 128 | 62 | 900 KiB |" in md  # capacity 8000 // 128, its measured bytes
    assert "- Capacity of sdpa within 1 MiB: B = 1000 at T=8, B = 62 at T=128" in md
    assert "No best-recurrence vs best-attention comparison" not in md  # a decode-only run has no forward figures


def test_decode_rows_stay_out_of_the_sequence_length_sections(rendered):
    _, md = rendered
    assert "## Scaling exponents" not in md and "## Crossover length T*" not in md
    assert "## Decode: one token after a context of T tokens" in md and "## Results: B = 1, decode" in md
    assert "| sdpa | 33 KiB | 1.03 KiB" not in md
    assert re.search(r"\| sdpa \| 288 B \| 544 B \| 1\.03 KiB \| 2\.03 KiB \| 4\.03 KiB \|", md)  # 32 (T + 1) bytes


def test_decode_crossover_analysis_directly():
    import pandas as pd

    df = pd.DataFrame([r.as_csv() for r in rows()]).astype({"batch_size": int, "seq_len": int, "median_s": float,
                                                            "hidden_size": int})
    (b1, b4) = decode.crossings(df)
    assert b1.t_star == [pytest.approx(20.0)] and b4.t_star == [pytest.approx(20.0)]
    assert [(c.left, c.t_star) for c in decode.kernel_crossings(df) if c.series["batch_size"] == 1] == [
        ("rnn_fused", [pytest.approx(20.0)]), ("linear_attention", [pytest.approx(30.0)])]
    best = decode.best_steps(df)
    assert set(best["left_kernel"]) == {"rnn_fused"} and set(best["right_kernel"]) == {"sdpa"}


def test_decode_charts_are_written_and_capacity_only_when_measured(tmp_path):
    with_cap = write_csv(tmp_path / "a.csv", rows())
    written = plot.plot_files([with_cap], tmp_path / "a")
    names = sorted(p.name for p in written)
    from seqbench.analysis import load

    fig = plot.latency_vs_seq_len(load([with_cap]), mode="decode")
    assert {ax.get_legend().get_title().get_text() for ax in fig.axes} == {"k = log-log slope over T ≥ 16"}  # 4d
    assert names == sorted(f"{c}-decode.png" for c in plot.DECODE_CHARTS)
    assert all(p.stat().st_size > 1000 for p in written)
    from seqbench.analysis import load

    without = load([write_csv(tmp_path / "b.csv", rows(capacity=False))])
    names = [p.name for *_, p in plot.chart_paths(without, tmp_path / "b")]
    assert "capacity_vs_T-decode.png" not in names and "crossover_vs_T-decode.png" in names
