import dataclasses
import math

import numpy as np
import pytest

from seqbench.analysis import fits, load, matchup, scaling as analysis
from seqbench.errors import ResultsError

from synthetic_results import LAWS, SEQ_LENS, row, standard_rows, write_csv

T = np.array([16, 32, 64, 128, 256, 512, 1024, 2048, 4096], dtype=float)


@pytest.mark.parametrize("k", [1.0, 2.0])
def test_fit_exponent_recovers_power_law(k):
    fit = fits.fit_exponent(T, 3e-7 * T**k)
    assert fit.k == pytest.approx(k, abs=0.01)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert fit.predict([100])[0] == pytest.approx(3e-7 * 100**k, rel=1e-9)


def test_fit_exponent_uses_only_long_sequences():
    # Linear (projection-bound) below 128, quadratic above: the fit over T >= 128 must see only the T² part.
    t = np.where(T < 128, 1e-5 * T, 1e-5 * 128 * (T / 128) ** 2)
    assert fits.fit_exponent(T, t, min_T=128).k == pytest.approx(2.0, abs=0.01)
    assert fits.fit_exponent(T, t).k < 1.9  # all points: bent curve, lower slope
    fit = fits.fit_exponent(T, t, min_T=128)
    assert (fit.n, fit.t_lo, fit.t_hi) == (6, 128, 4096)


def test_fit_exponent_r2_drops_with_scatter():
    rng = np.random.default_rng(0)
    noisy = 1e-6 * T * np.exp(rng.normal(0, 0.5, len(T)))
    assert fits.fit_exponent(T, noisy).r2 < 0.99


def test_fit_exponent_needs_two_lengths():
    assert fits.fit_exponent([128, 128], [1.0, 1.1]) is None
    assert fits.fit_exponent([64, 128], [1.0, 2.0], min_T=128) is None
    assert fits.fit_exponent([128, 256], [1.0, math.nan]) is None


def test_crossover_of_two_power_laws_is_algebraic():
    a, b = 2e-6 * T, 1e-8 * T**2  # equal at T = 2e-6 / 1e-8 = 200
    (t_star,) = fits.crossover(T, b, a)
    assert t_star == pytest.approx(200.0, rel=1e-9)
    # k=1.5 vs k=1 with a crossover between grid points: T* = (3e-6 / 1e-7)^(1/0.5) = 900
    (t_star,) = fits.crossover(T, 1e-7 * T**1.5, 3e-6 * T)
    assert t_star == pytest.approx(900.0, rel=1e-9)


def test_crossover_none_in_range_and_on_a_grid_point():
    assert fits.crossover(T, 1e-6 * T, 2e-6 * T) == []
    assert fits.crossover([64, 128, 256], [1.0, 2.0, 3.0], [2.0, 2.0, 2.0]) == [128.0]


def test_read_many_names_sources_and_rejects_header_only(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cuda").mkdir()
    a = write_csv(tmp_path / "cpu" / "run.csv", [row("rnn_loop", 64, 1)])
    b = write_csv(tmp_path / "cuda" / "run.csv", [row("rnn_loop", 64, 1, median=1e-5)])
    df = load([a, b])
    assert sorted(df["source"]) == ["cpu/run", "cuda/run"]
    empty = write_csv(tmp_path / "empty.csv", [])
    with pytest.raises(ResultsError, match="empty.csv: has a header but no rows"):
        load([empty])


def test_read_many_keeps_the_later_duplicate(tmp_path):
    # a CSV appended to twice (two runs): the later run's measurement of the point wins
    later = dataclasses.replace(row("rnn_loop", 64, 1, median=2.0), run_id="test-run-2")
    p = write_csv(tmp_path / "dup.csv", [row("rnn_loop", 64, 1, median=1.0), later])
    df = load([p])
    assert list(df["median_s"]) == [2.0] and df.attrs["duplicates_dropped"] == 1


def test_speedups_use_fastest_successful_attention_and_skip_calibration(tmp_path):
    df = load([write_csv(tmp_path / "r.csv", standard_rows())])
    s = matchup.versus(df, matchup.kernel_side("rnn_loop"))
    fwd = s[s["mode"] == "forward"]
    assert set(fwd["right_kernel"]) == {"sdpa"}  # naive is 2x slower by construction
    r = fwd[(fwd["batch_size"] == 1) & (fwd["seq_len"] == 512)].iloc[0]
    assert r["speedup"] == pytest.approx(2e-6 * 512 / (1e-8 * 512**2))
    assert "calibration" not in set(analysis.ok_points(df)["kernel"])
    assert analysis.matmul_peak(df) == {("r", "cpu", "float32"): 123.0}


def test_matmul_peak_absent_without_calibration(tmp_path):
    df = load([write_csv(tmp_path / "r.csv", standard_rows(calibration=False))])
    assert analysis.matmul_peak(df) == {}


def test_kernel_fits_match_the_laws(tmp_path):
    df = load([write_csv(tmp_path / "r.csv", standard_rows())])
    fits = {(f["kernel"], f["mode"], f["batch_size"]): f["fit"] for f in analysis.kernel_fits(df)}
    for kernel, (_, _, k) in LAWS.items():
        assert fits[kernel, "forward", 1].k == pytest.approx(k, abs=0.01)
    assert fits["rnn_loop", "train", 1] is None  # only T=64 and 128: one length >= 128
    assert fits["attention_naive", "forward", 4].n == len([t for t in SEQ_LENS if t >= 128]) - 1  # the oom point


def test_flat_series_prints_k_without_a_minus_sign():
    fit = fits.fit_exponent([128, 256, 512], [1.0, 1.0, 1.0 - 1e-6])  # k ≈ -7e-7
    assert -1e-6 < fit.k < 0 and f"{fit.k:.2f}" == "-0.00" and fit.k_text == "0.00"


def test_linear_attention_is_not_the_best_softmax_attention():
    """The crossover is O(T) recurrence vs O(T^2) attention: an O(T) linear attention must not stand in."""
    import pandas as pd

    from seqbench.kernels import get_kernel

    assert get_kernel("sdpa").quadratic and not get_kernel("linear_attention").quadratic
    assert not get_kernel("rnn_loop").quadratic
    df = pd.DataFrame({"kernel": ["sdpa", "linear_attention", "rnn_loop"], "family": ["attention", "attention", "recurrent"],
                       "mode": "forward", "device": "cpu", "dtype": "float32", "batch_size": 1, "seq_len": 2048, "status": "ok",
                       "median_s": [0.065, 0.027, 0.057]})
    assert list(matchup.best(df, matchup.BEST_ATTENTION)["kernel"]) == ["sdpa"]
    assert list(matchup.best(df, matchup.BEST_RECURRENCE)["kernel"]) == ["rnn_loop"]
    assert list(matchup.best(df, matchup.BEST_LINEAR_ATTENTION)["kernel"]) == ["linear_attention"]
