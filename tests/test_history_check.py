"""history check: a planted step is found at its commit with its size, a flat history gives nothing,
accept / --last / --since narrow what fails, a creep is reported, and the exit codes CI reads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from history_helpers import write_run
from seqbench.analysis.changepoints import e_divisive, step_size, trend
from seqbench.analysis.history import check_history
from seqbench.cli import main
from seqbench.render.history_text import check_lines


def _frame(values: dict[str, list[float]], machine: str = "m1") -> pd.DataFrame:
    """Store.measurements()-shaped: one run per commit, commits c0000.. in time order."""
    recs = []
    for point, vals in values.items():
        for i, v in enumerate(vals):
            recs.append({"run": i, "machine": machine, "commit": f"c{i:04d}", "branch": None,
                         "time": f"2026-12-01T{i // 60:02d}:{i % 60:02d}:00+00:00", "point": point, "median_s": v})
    return pd.DataFrame.from_records(recs)


def _noisy(n: int, seed: int, sd: float = 0.01) -> np.ndarray:
    return 1e-3 * np.exp(np.random.default_rng(seed).normal(0, sd, n))


@pytest.mark.parametrize("test", ["ttest", "permutation"])
def test_edivisive_finds_a_planted_step_and_nothing_on_flat(test):
    x = _noisy(60, 1)
    assert e_divisive(x, test=test) == []
    x[40:] *= 1.05
    found = e_divisive(x, test=test)
    assert [i for i, _ in found] == [40]
    assert found[0][1] < 0.01


def test_step_size_and_trend_intervals():
    a, b = _noisy(30, 2), _noisy(30, 3) * 1.10
    st = step_size(a, b)
    assert st.lo < 0.10 < st.hi and abs(st.size - 0.10) < 0.02 and st.hi - st.lo < 0.03
    ramp = 1e-3 * np.exp(np.arange(20) * np.log(1.005)) * np.exp(np.random.default_rng(4).normal(0, 0.002, 20))
    tr = trend(ramp)
    assert tr.lo < 0.005 < tr.hi and tr.lo > 0
    assert abs(tr.total - (1.005 ** 19 - 1)) < 0.03
    assert trend(_noisy(4, 5)) is None


def test_check_reports_range_size_direction_and_fails_on_regression():
    slow, fast = _noisy(40, 6), _noisy(40, 7)
    slow[25:] *= 1.10
    fast[30:] /= 1.2
    chk = check_history(_frame({"a": list(slow), "b": list(fast), "flat": list(_noisy(40, 8))}), threshold=0.05)
    by_point = {c.point: c for c in chk.changes}
    assert set(by_point) == {"a", "b"}
    a, b = by_point["a"], by_point["b"]
    assert (a.before, a.after, a.direction) == ("c0024", "c0025", "regression")
    assert a.lo < 0.10 < a.hi and a.fails
    assert (b.after, b.direction) == ("c0030", "improvement") and b.size < -0.1 and not b.fails
    assert chk.exit_code == 1 and chk.failing == [a]


def test_threshold_accept_last_and_since_narrow_what_fails():
    x = _noisy(40, 9)
    x[25:] *= 1.04
    df = _frame({"a": list(x)})
    assert check_history(df, threshold=0.05).exit_code == 0  # found, but within 5%
    assert check_history(df, threshold=0.03).exit_code == 1
    assert check_history(df, threshold=0.03, last=10).exit_code == 0  # c0025 is not among the last 10
    assert check_history(df, threshold=0.03, last=15).exit_code == 1
    assert check_history(df, threshold=0.03, since="c0025").exit_code == 0  # only changes after c0025
    assert check_history(df, threshold=0.03, since="c0024").exit_code == 1
    assert check_history(df, threshold=0.03, since="2026-12-01T00:30:00Z").exit_code == 0
    acc = [{"commit_sha": "c0025", "point": "*", "machine": "*", "note": "planned", "added_at": "x"}]
    chk = check_history(df, threshold=0.03, accepted=acc)
    assert chk.exit_code == 0 and chk.changes[0].accepted == "planned"
    other = [{"commit_sha": "c0025", "point": "b*", "machine": "*", "note": "", "added_at": "x"}]
    assert check_history(df, threshold=0.03, accepted=other).exit_code == 1


def test_slow_creep_is_never_silent():
    """+0.4% a commit over the last 20 of 40 commits (~8%): either a step beyond 5% fails, or, where the
    steps it was cut into are each within 5%, the creep is reported (and fails with --fail-on-creep)."""
    by_creep = 0
    for seed in (10, 11, 12, 13):
        x = _noisy(40, seed, sd=0.003)
        x[20:] *= np.exp(np.arange(20) * np.log(1.004))
        chk = check_history(_frame({"a": list(x)}), threshold=0.05, fail_on_creep=True)
        creep = chk.creeps[0]
        assert creep.lo > 0 and 0.002 < creep.per_commit < 0.006 and 0.06 < creep.total < 0.10
        assert chk.exit_code == 1
        if creep.beyond:
            by_creep += 1
            assert all(not c.beyond for c in chk.changes)
            assert check_history(_frame({"a": list(x)}), threshold=0.05).exit_code == 0  # reported, fails if asked
            assert "no single step" in "\n".join(check_lines(chk))
    assert by_creep >= 2
    flat = check_history(_frame({"a": list(_noisy(40, 14, sd=0.003))}), threshold=0.05, fail_on_creep=True)
    assert not any(c.beyond for c in flat.creeps) and flat.exit_code == 0


def test_cli_end_to_end(tmp_path, capsys):
    """30 runs through `history add`; sdpa 10% slower from c0020: check finds it, exit 1; accept; json."""
    store = str(tmp_path / "h.db")
    paths = [write_run(tmp_path, i, scale={"sdpa": 1.10} if i >= 20 else None) for i in range(30)]
    assert main(["history", "add", *map(str, paths), "--store", store]) == 0
    capsys.readouterr()
    assert main(["history", "check", "--store", store]) == 1
    out = capsys.readouterr().out
    assert "FAILS" in out and "c0019..c0020" in out and "sdpa forward" in out and "exit 1" in out
    assert main(["history", "check", "--store", store, "--format", "json", "--last", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    sdpa = [c for c in data["changes"] if c["point"].startswith("sdpa")]
    assert len(sdpa) == 2 and all(c["after"] == "c0020" and not c["in_window"] for c in sdpa)
    assert all(0.08 < c["size"] < 0.12 and c["lo"] < c["size"] < c["hi"] for c in sdpa)
    assert not [c for c in data["changes"] if c["point"].startswith("rnn_loop")]
    assert main(["history", "accept", "c0020", "--point", "sdpa *", "--note", "exact softmax", "--store", store]) == 0
    assert main(["history", "check", "--store", store, "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "accepted (exact softmax)" in md and md.startswith("### seqbench history check: no unaccepted regression")
    assert main(["history", "show", "--store", store, "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("sdpa" in ln and ("+10" in ln or "+9." in ln) for ln in lines)


def test_cli_bad_input(tmp_path, capsys):
    store = str(tmp_path / "h.db")
    main(["history", "add", str(write_run(tmp_path, 1)), "--store", store])
    for argv, words in ((["check", "--threshold", "abc"], "--threshold"), (["check", "--since", "nope"], "--since"),
                        (["check", "--last", "0"], "--last"), (["accept", "ab"], "4 characters")):
        capsys.readouterr()
        assert main(["history", *argv, "--store", store]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
