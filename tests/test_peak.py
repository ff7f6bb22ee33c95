"""% of peak: the calibration row comes first and every row's pct_of_peak is relative to it."""

import pytest

from seqbench.sweep.runner import Harness
from seqbench.cli import main
from seqbench.sweep.config import build_config
from seqbench.kernels import Shape, get_kernel
from seqbench.results.writer import CsvSink
from seqbench.results.reader import read_results
from seqbench.sweep.runner import run_sweep


def fixed_timer(fn, number):  # every call "takes" 10 ms
    return 0.01 * number


def test_run_sweep_with_peak_puts_calibration_first_and_fills_pct(tmp_path):
    cfg = build_config({"name": "t", "kernels": ["rnn_loop", "sdpa"], "seq_lens": [16], "batch_sizes": [2], "hidden_size": 32,
                        "num_heads": 2, "min_time": 0.05})
    path = tmp_path / "r.csv"
    with CsvSink(path) as sink:
        rows = run_sweep(cfg, sink, run_id="t", harness=Harness.scripted(fixed_timer), peak=True)
    assert [r.kernel for r in rows] == ["calibration", "rnn_loop", "sdpa"]
    assert rows[0].pct_of_peak == pytest.approx(100.0)
    peak = rows[0].gflops_per_s
    assert peak == pytest.approx(2 * 1024 ** 3 / 0.01 / 1e9)
    for r in rows[1:]:
        flops = get_kernel(r.kernel).flops(Shape(2, 16, 32, 2))
        assert r.pct_of_peak == pytest.approx(100 * flops / 0.01 / 1e9 / peak)
    df = read_results(path)
    assert df["pct_of_peak"].tolist() == pytest.approx([r.pct_of_peak for r in rows])


def test_run_sweep_without_peak_leaves_pct_empty(tmp_path):
    cfg = build_config({"name": "t", "kernels": ["rnn_loop"], "seq_lens": [8], "batch_sizes": [1], "hidden_size": 8, "num_heads": 1})
    with CsvSink(tmp_path / "r.csv") as sink:
        rows = run_sweep(cfg, sink, run_id="t", harness=Harness.scripted(fixed_timer))
    assert [r.kernel for r in rows] == ["rnn_loop"] and rows[0].pct_of_peak is None


def test_calibrate_measures_a_positive_rate(capsys):
    assert main(["calibrate", "--device", "cpu", "--min-time", "0.05", "-q"]) == 0
    gflops = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert gflops > 0.1  # a real matmul rate: any CPU does far more than 0.1 GFLOP/s


def test_calibrate_bad_dtype_exits_2(capsys):
    assert main(["calibrate", "--device", "cpu", "--dtype", "int8"]) == 2
    assert "dtype" in capsys.readouterr().err
