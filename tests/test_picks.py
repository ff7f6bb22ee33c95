"""report / plot --kernels (names or globs), --recurrence / --attention (which kernels form each side of
best recurrence vs best attention), and a palette that tells 20+ kernels apart."""

from __future__ import annotations

import pytest

from seqbench.analysis import load
from seqbench.analysis.matchup import BEST_ATTENTION, BEST_RECURRENCE, best
from seqbench.cli import main

from synthetic_results import standard_rows, write_csv


@pytest.fixture
def results(tmp_path):
    return write_csv(tmp_path / "r.csv", standard_rows())


def test_kernels_and_sides_pick_what_is_compared(results):
    def winners(df, side):
        return set(best(df[df["mode"] == "forward"], side)["kernel"])

    df = load([results])
    assert winners(df, BEST_RECURRENCE) == {"rnn_fused"} and winners(df, BEST_ATTENTION) == {"sdpa"}
    df = load([results], sides={"recurrence": ["rnn_l*"], "attention": ["attention_naive"]})
    assert winners(df, BEST_RECURRENCE) == {"rnn_loop"}
    assert winners(df, BEST_ATTENTION) == {"attention_naive"}  # sdpa (faster) is left out of the side
    only = load([results], kernels=["rnn_*", "sdpa"])
    assert set(only["kernel"]) == {"rnn_loop", "rnn_fused", "sdpa", "calibration"}


@pytest.mark.parametrize("flag, words", [
    ("--kernels=hf_*", "--kernels 'hf_*' matches no kernel in the results; measured kernels: attention_naive,"),
    ("--recurrence=mamba", "--recurrence 'mamba' matches no kernel in the results"),
])
def test_a_pick_that_matches_nothing_is_one_line_exit_2(results, tmp_path, capsys, flag, words):
    assert main(["report", str(results), flag, "-o", str(tmp_path / "r.md"), "--no-charts", "-q"]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_report_with_sides_names_the_chosen_kernels(results, tmp_path):
    out = tmp_path / "r.md"
    assert main(["report", str(results), "--recurrence", "rnn_loop", "--attention", "attention_naive", "-o", str(out),
                 "--no-charts", "-q"]) == 0
    text = out.read_text()
    assert "attention_naive" in text


def test_the_palette_tells_thirty_kernels_apart():
    from seqbench.render.plot import PALETTE, _style

    styles = [_style(i, "scan") for i in range(30)]
    assert len({(s["color"], s["marker"], str(s["linestyle"])) for s in styles}) == 30
    assert len({s["color"] for s in styles[:24]}) == 24 == len(PALETTE)  # no colour twice among 24
