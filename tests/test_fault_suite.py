"""The fault-injection suite (tests/fault_cases.py, the README's Reliability table): every case ends
with its documented exit code and at most one line on stderr, prints no traceback, loses no finished
row and writes none twice."""

from __future__ import annotations

import pytest

from fault_cases import CASES
from reliability_helpers import frozen_gc  # noqa: F401


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_fault_case(case, tmp_path):
    out = case.run(tmp_path)
    if out.rc is None and out.note.startswith("skipped"):
        pytest.skip(out.note)
    assert not out.traceback, out.err
    assert out.problems == [], f"{out.problems}\nstderr: {out.err}"
    assert out.rc == case.rc, f"exit {out.rc}, expected {case.rc}: {out.err}"
    if case.rc == 0:  # a success reports no error (it may print its summary)
        assert "seqbench: error:" not in out.err, out.err
    else:  # a refusal or an interruption: one line
        assert out.lines == 1, out.err
    assert out.lost == 0 and out.duplicates == 0, f"{out.rows_found} of {out.rows_expected} rows, {out.duplicates} twice"


def test_the_trust_model_names_only_cases_of_the_suite():
    """docs/trust.md says which fault cases hold each of its rows: every name there is a case here, and
    every row of its table names at least one."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "trust.md").read_text()
    ids = {c.id for c in CASES}
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| input")]
    assert rows and all(re.findall(r"`([a-z0-9-]+)`", ln.rsplit("|", 2)[-2]) for ln in rows), rows
    named = set(re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`", text))
    assert named and named <= ids, sorted(named - ids)
