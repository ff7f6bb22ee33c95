"""gradflow: the tanh RNN's gradient decays/grows exponentially with distance; attention's does not."""

import math

import numpy as np
import pytest

from seqbench.cli import main
from seqbench.analysis.fits import decay_fits, fit_decay
from seqbench.measure.gradflow import run_gradflow


def test_fit_recovers_a_known_rate():
    g = 3.0 * np.exp(-0.2 * np.arange(40))
    f = fit_decay("x", g)
    assert f.rate_per_step == pytest.approx(0.2)
    assert f.factor_per_step == pytest.approx(math.exp(-0.2))
    assert f.r2 == pytest.approx(1.0)


@pytest.fixture(scope="module")
def fits():
    norms = run_gradflow(layers=("rnn_loop", "sdpa"), seq_len=40, hidden_size=16, num_heads=2, seeds=2,
                         spectral_radii=(0.5, 3.0))
    return {f.layer: f for f in decay_fits(norms)}


def test_tanh_rnn_decays_exponentially_at_radius_half(fits):
    f = fits["rnn_loop (rho=0.5)"]
    # |tanh'| <= 1 and rho(U) = 0.5: at least a factor ~2 per step on average, on a straight line in log y
    assert f.rate_per_step > math.log(1.5)
    assert f.r2 > 0.95


def test_tanh_rnn_grows_at_large_radius(fits):
    assert fits["rnn_loop (rho=3)"].rate_per_step < 0


def test_attention_has_no_trend_with_distance(fits):
    f = fits["sdpa"]
    assert abs(f.rate_per_step) < 0.02
    assert f.max_over_min < 10


def test_gradflow_cli_writes_outputs_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "g.csv"
    args = ["gradflow", "--seq-len", "8", "--hidden-size", "8", "--heads", "2", "--seeds", "1",
            "--layers", "rnn_loop,sdpa", "--spectral-radius", "0.5", "-o", str(out)]
    assert main(args) == 0
    assert out.exists() and out.with_suffix(".png").exists() and out.with_suffix(".json").exists()
    assert main(args) == 2  # exists, no --force


@pytest.mark.parametrize("bad", [["--spectral-radius", "abc"], ["--spectral-radius", "-1"], ["--layers", "nope"],
                                 ["--seq-len", "2"]])
def test_gradflow_bad_input_exits_2(tmp_path, capsys, bad):
    assert main(["gradflow", "-o", str(tmp_path / "g.csv"), *bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqbench: error:") and len(err.strip().splitlines()) == 1
