"""Every damaged results file is refused with one line naming the file, the line and the problem."""

from __future__ import annotations

import csv
import io

import pytest

from reliability_helpers import FakeClock, frozen_gc, tiny_config  # noqa: F401
from seqbench.sweep.runner import Harness
from seqbench.cli import main
from seqbench.results.schema import COLUMNS
from seqbench.errors import ResultsError
from seqbench.results.reader import read_results
from seqbench.orchestration.run import run_to_files


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A real two-row results CSV (and its sidecar) written by run_to_files."""
    out = tmp_path_factory.mktemp("good") / "run.csv"
    run_to_files(tiny_config(seq_lens=[8, 16]), out, command=["test"], harness=Harness.scripted(FakeClock()))
    return out.read_text(), out.with_suffix(".json").read_text()


def _edit(text, line, column, value):
    rows = list(csv.reader(io.StringIO(text)))
    rows[line - 1][COLUMNS.index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _drop_column(text, column):
    rows = list(csv.reader(io.StringIO(text)))
    i = COLUMNS.index(column)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([r[:i] + r[i + 1:] for r in rows])
    return buf.getvalue()


def _replace_line(text, line, fn):
    lines = text.splitlines(keepends=True)
    lines[line - 1] = fn(lines[line - 1])
    return "".join(lines)


CASES = [  # id, corrupt(text) -> text or bytes, line named in the message (None: whole file), words expected
    ("empty", lambda t: "", None, "file is empty"),
    ("blank-lines", lambda t: "\n\n", None, "file is empty"),
    ("truncated-last-line", lambda t: t[:-12], 3, "truncated"),
    ("not-a-results-csv", lambda t: "a,b,c\n1,2,3\n", None, "missing columns"),
    ("missing-column", lambda t: _drop_column(t, "median_s"), None, "missing column median_s"),
    ("extra-field", lambda t: _replace_line(t, 2, lambda ln: ln.rstrip("\n") + ",surprise\n"), 2, "fields, expected"),
    ("short-row", lambda t: _replace_line(t, 3, lambda ln: ln.rsplit(",", 3)[0] + "\n"), 3, "fields, expected"),
    ("schema-version-9", lambda t: _edit(t, 2, "schema_version", "9"), 2, "schema_version 9 is not supported"),
    ("schema-version-text", lambda t: _edit(t, 3, "schema_version", "one"), 3, "not an integer"),
    ("median-not-a-number", lambda t: _edit(t, 2, "median_s", "fast"), 2, "median_s 'fast' is not a number"),
    ("median-nan", lambda t: _edit(t, 2, "median_s", "nan"), 2, "median_s is nan (must be finite)"),
    ("tokens-inf", lambda t: _edit(t, 3, "tokens_per_s", "inf"), 3, "tokens_per_s is inf"),
    ("negative-time", lambda t: _edit(t, 2, "min_s", "-0.001"), 2, "min_s is -0.001; it must be >= 0"),
    ("zero-seq-len", lambda t: _edit(t, 2, "seq_len", "0"), 2, "seq_len is 0; it must be > 0"),
    ("fractional-batch", lambda t: _edit(t, 2, "batch_size", "1.5"), 2, "batch_size '1.5' is not an integer"),
    ("unknown-status", lambda t: _edit(t, 3, "status", "great"), 3, "status 'great' unknown"),
    ("ok-without-median", lambda t: _edit(t, 2, "median_s", ""), 2, "status ok but median_s is empty"),
    ("samples-not-numbers", lambda t: _edit(t, 2, "samples_s", "0.1 abc"), 2, "samples_s"),
    ("samples-nan", lambda t: _edit(t, 3, "samples_s", "nan 0.1"), 3, "samples_s must hold positive finite"),
    ("bad-bool", lambda t: _edit(t, 2, "causal", "maybe"), 2, "causal 'maybe' must be true or false"),
    ("binary-garbage", lambda t: b"\xff\xfe\x00\x81garbage", None, "cannot be read"),
    ("sample-rounds-text", lambda t: _edit(t, 2, "sample_rounds", "a b c"), 2, "sample_rounds 'a b c' must be round numbers"),
    ("sample-rounds-short", lambda t: _edit(t, 3, "sample_rounds", "1"), 3, "one round number >= 1 per sample"),
    ("ref-s-zero", lambda t: _edit(t, 2, "ref_s", "0"), 2, "ref_s '0' must hold positive finite seconds"),
    ("ref-s-text", lambda t: _edit(t, 2, "ref_s", "fast"), 2, "ref_s 'fast' must hold positive finite seconds"),
]


@pytest.mark.parametrize("corrupt, line, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_reader_names_file_line_and_problem(tmp_path, good, corrupt, line, words):
    p = tmp_path / "bad.csv"
    data = corrupt(good[0])
    p.write_bytes(data) if isinstance(data, bytes) else p.write_text(data)
    with pytest.raises(ResultsError) as err:
        read_results(p)
    msg = str(err.value)
    assert str(p) in msg and words in msg and "\n" not in msg
    if line:
        assert f"line {line}" in msg


def test_missing_file_and_header_only(tmp_path, good):
    with pytest.raises(ResultsError, match="no such results file"):
        read_results(tmp_path / "nope.csv")
    p = tmp_path / "header.csv"
    p.write_text(good[0].splitlines(keepends=True)[0])  # a run stopped before its first point
    assert len(read_results(p)) == 0
    assert len(read_results(_write(tmp_path, good[0]))) == 2  # the undamaged file reads


def _write(tmp_path, text, sidecar=None, name="run.csv"):
    p = tmp_path / name
    p.write_text(text)
    if sidecar is not None:
        p.with_suffix(".json").write_text(sidecar)
    return p


RESUME_CASES = [c for c in CASES if c[0] in ("schema-version-9", "median-nan", "median-not-a-number", "missing-column", "extra-field", "unknown-status")]


@pytest.mark.parametrize("corrupt, line, words", [c[1:] for c in RESUME_CASES], ids=[c[0] for c in RESUME_CASES])
def test_resume_refuses_a_damaged_csv(tmp_path, capfd, good, corrupt, line, words):
    p = _write(tmp_path, corrupt(good[0]), good[1])
    before = p.read_text()
    assert main(["run", "--resume", "-o", str(p), "-q"]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seqbench: error:") and str(p) in err and "Traceback" not in err
    assert f"line {line or 1}" in err
    assert p.read_text() == before  # nothing appended to a file we could not read


@pytest.mark.parametrize(
    "sidecar, words",
    [(None, "missing; --resume needs the JSON sidecar"), ("{", "not valid JSON"), ('{"run_id": "x"}', "has no 'config'")],
    ids=["no-sidecar", "sidecar-not-json", "sidecar-without-config"],
)
def test_resume_refuses_a_bad_sidecar(tmp_path, capfd, good, sidecar, words):
    p = _write(tmp_path, good[0], sidecar)
    assert main(["run", "--resume", "-o", str(p), "-q"]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err
