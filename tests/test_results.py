"""The CSV schema: column order, round trips, append-and-flush, and the validating reader."""

import pytest

from seqbench.results.schema import COLUMNS, REQUIRED_COLUMNS, SCHEMA_VERSION, Row, format_samples, parse_samples
from seqbench.results.writer import CsvSink, check_output
from seqbench.errors import ResultsError
from seqbench.results.reader import read_results

DESIGN_COLUMNS = (
    "schema_version, run_id, kernel, family, mode, device, dtype, batch_size, seq_len, hidden_size, "
    "num_heads, causal, threads, status, repeats, median_s, iqr_s, min_s, mean_s, tokens_per_s, "
    "gflop, gflops_per_s, peak_mem_bytes, samples_s, error"
).split(", ")


def make_row(**kw):
    base = dict(schema_version=SCHEMA_VERSION, run_id="r1", kernel="sdpa", family="attention", mode="forward",
                device="cpu", dtype="float32", batch_size=8, seq_len=64, hidden_size=256, num_heads=4,
                causal=False, threads=2, status="ok", repeats=3, median_s=0.002, iqr_s=0.0001,
                min_s=0.0019, mean_s=0.00201, tokens_per_s=256000.0, gflop=0.1, gflops_per_s=50.0,
                peak_mem_bytes=1024, samples_s=format_samples([0.0019, 0.002, 0.0021]))
    base.update(kw)
    return Row(**base)


def test_required_columns_follow_the_design_notes_in_order():
    assert list(REQUIRED_COLUMNS) == DESIGN_COLUMNS
    assert list(COLUMNS[: len(DESIGN_COLUMNS)]) == DESIGN_COLUMNS


def test_round_trip(tmp_path):
    path = tmp_path / "r.csv"
    with CsvSink(path) as sink:
        sink.write(make_row())
        sink.write(make_row(kernel="rnn_loop", family="recurrent", status="error", repeats=None,
                            median_s=None, samples_s="", error="RuntimeError: boom, with a comma"))
    df = read_results(path)
    assert list(df.columns) == list(COLUMNS)
    assert df.loc[0, "median_s"] == 0.002 and df.loc[0, "batch_size"] == 8
    assert parse_samples(df.loc[0, "samples_s"]) == [0.0019, 0.002, 0.0021]
    assert df.loc[1, "error"] == "RuntimeError: boom, with a comma"
    assert df.loc[0, "causal"] == False  # noqa: E712 (pandas boolean)


def test_each_row_is_on_disk_as_soon_as_it_is_written(tmp_path):
    path = tmp_path / "r.csv"
    sink = CsvSink(path)
    sink.write(make_row())
    assert len(read_results(path)) == 1  # readable before the sink is closed
    sink.close()


def test_append_keeps_one_header(tmp_path):
    path = tmp_path / "r.csv"
    with CsvSink(path) as s:
        s.write(make_row())
    with CsvSink(path, append=True) as s:
        s.write(make_row(seq_len=128))
    assert list(read_results(path)["seq_len"]) == [64, 128]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: "", "file is empty"),
        (lambda t: t[:-15], "truncated"),
        (lambda t: "a,b,c\n1,2,3\n", "not a seqbench results CSV"),
        (lambda t: t.replace(f"\n{SCHEMA_VERSION},r1", "\n99,r1", 1), "schema_version 99 is not supported"),
        (lambda t: t.replace(",0.002,", ",fast,", 1), "median_s 'fast' is not a number"),
        (lambda t: t.replace(",0.002,", ",nan,", 1), "median_s is nan"),
        (lambda t: t.replace(",ok,", ",great,", 1), "status 'great' unknown"),
    ],
)
def test_reader_rejects_bad_files_with_one_clear_message(tmp_path, mutate, message):
    path = tmp_path / "r.csv"
    with CsvSink(path) as s:
        s.write(make_row())
    path.write_text(mutate(path.read_text()))
    with pytest.raises(ResultsError, match=message) as exc:
        read_results(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="no such results file"):
        read_results(tmp_path / "none.csv")


def test_check_output_never_clobbers_without_force(tmp_path):
    path = tmp_path / "r.csv"
    assert check_output(path, force=False) == path
    path.write_text("x")
    with pytest.raises(ResultsError, match="already exists; pass --force"):
        check_output(path, force=False)
    assert check_output(path, force=True) == path
    with pytest.raises(ResultsError, match="must end in .csv"):
        check_output(tmp_path / "r.txt", force=False)
