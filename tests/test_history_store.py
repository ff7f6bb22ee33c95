"""The history store: runs in whole, once, from two writers at once; damaged stores are one line, exit 2;
an older store is migrated; the same tests against a real PostgreSQL server started in a temp dir."""

from __future__ import annotations

import itertools
import shutil
import sqlite3
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from history_helpers import PgCluster, pg_bin, write_run
from seqbench.cli import main
from seqbench.errors import ResultsError
from seqbench.results import store_schema
from seqbench.results.history_entry import entry_from_file, median_interval
from seqbench.results.reader import read_results
from seqbench.results.schema import parse_samples
from seqbench.results.store import Store

_db_names = itertools.count(1)


@pytest.fixture(scope="module")
def pg_cluster():
    if pg_bin() is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin")
    # not under pytest's tmp_path: as root the server runs as `postgres`, which cannot enter root's 0700 dirs
    root = Path(tempfile.mkdtemp(prefix="seqbench-pg-"))
    cluster = PgCluster(root)
    try:
        url = cluster.start()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL cluster: {exc.stderr.decode(errors='replace').strip()[:200]}")
    yield url
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty store: a SQLite file, or a new database in the session's PostgreSQL cluster."""
    if request.param == "sqlite":
        return str(tmp_path / "h" / "history.db")
    import sqlalchemy as sa

    base = request.getfixturevalue("pg_cluster")
    name = f"t{next(_db_names)}"
    eng = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    eng.dispose()
    return base.replace("/postgres?", f"/{name}?")


def test_add_keeps_rows_and_samples(tmp_path, store_url):
    csv = write_run(tmp_path, 1)
    assert main(["history", "add", str(csv), "--store", store_url, "--branch", "main"]) == 0
    st = Store(store_url)
    runs = st.runs()
    assert list(runs["commit"]) == ["c0001"] and list(runs["machine"]) == ["m1"] and list(runs["branch"]) == ["main"]
    assert runs["time"][0] == "2026-12-01T00:01:00+00:00"
    m = st.measurements()
    df = read_results(csv)
    assert len(m) == len(df) == 4
    rows = {(r["kernel"], r["seq_len"]): r for r in st.run_rows(int(runs["run"][0]))}
    for rec in df.to_dict("records"):
        back = rows[(rec["kernel"], rec["seq_len"])]
        assert parse_samples(back["samples_s"]) == parse_samples(rec["samples_s"])  # float64: exact
        assert back["median_s"] == rec["median_s"]
        stored = m[(m["kernel"] == rec["kernel"]) & (m["seq_len"] == rec["seq_len"])].iloc[0]
        med, lo, hi = median_interval(__import__("numpy").array(parse_samples(rec["samples_s"])))
        assert (stored["median_s"], stored["lo_s"], stored["hi_s"]) == (med, lo, hi)
        assert lo < med < hi
    st.close()


def test_same_run_twice_is_a_no_op_and_changed_data_is_refused(tmp_path, store_url, capsys):
    csv = write_run(tmp_path, 1)
    assert main(["history", "add", str(csv), "--store", store_url]) == 0
    assert main(["history", "add", str(csv), "--store", store_url]) == 0
    assert "already in the store" in capsys.readouterr().err
    st = Store(store_url)
    assert len(st.runs()) == 1 and len(st.measurements()) == 4
    write_run(tmp_path, 1, seed=99)  # same run id, other samples
    assert main(["history", "add", str(csv), "--store", store_url]) == 2
    err = capsys.readouterr().err
    assert "with other measurements" in err and err.count("\n") == 1
    assert len(st.runs()) == 1
    st.close()


def test_add_is_atomic(tmp_path, store_url):
    st = Store(store_url)
    st.add(entry_from_file(write_run(tmp_path, 1)))
    entry = entry_from_file(write_run(tmp_path, 2))
    entry.points.append(entry.points[0])  # the same point twice: the measurements insert fails half-way
    with pytest.raises(ResultsError, match="store"):
        st.add(entry)
    assert list(st.runs()["commit"]) == ["c0001"]  # the run row inserted before the failure was rolled back
    assert len(st.measurements()) == 4
    st.close()


def test_two_writers_at_once(tmp_path, store_url):
    """Two runners add 6 runs each, one of them the same run: 11 runs, each whole, the shared one once."""
    paths = [write_run(tmp_path, i) for i in range(11)]
    shared = paths[0]
    lots = [[shared, *paths[1:6]], [shared, *paths[6:11]]]
    errors = []
    start = threading.Barrier(2)

    def writer(files):
        st = Store(store_url)
        try:
            start.wait()
            for p in files:
                st.add(entry_from_file(p))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            st.close()

    threads = [threading.Thread(target=writer, args=(lot,)) for lot in lots]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    st = Store(store_url)
    runs = st.runs()
    assert sorted(runs["commit"]) == [f"c{i:04d}" for i in range(11)]
    assert st.measurements().groupby("run").size().eq(4).all()
    st.close()


def test_damaged_stores_are_one_line_exit_2(tmp_path, capsys):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE invoices (id INTEGER)")
    newer = tmp_path / "newer.db"
    Store(newer).add(entry_from_file(write_run(tmp_path, 1)))
    with sqlite3.connect(newer) as c:
        c.execute("UPDATE seqbench_meta SET value = '99'")
    broken = tmp_path / "broken.db"
    Store(broken).add(entry_from_file(write_run(tmp_path, 1)))
    with sqlite3.connect(broken) as c:
        c.execute("DROP TABLE measurements")
    truncated = tmp_path / "truncated.db"
    st = Store(truncated)
    for i in range(1, 4):
        st.add(entry_from_file(write_run(tmp_path, i)))
    st.close()
    with truncated.open("r+b") as fh:  # a copy cut off half-way (a full disk, an interrupted upload)
        fh.truncate(truncated.stat().st_size // 2)
    cases = {garbage: "not a SQLite database", truncated: "malformed", other: "not a seqbench history store", newer: "newer seqbench",
             broken: "table measurements missing", tmp_path / "absent.db": "no such store"}
    for path, words in cases.items():
        for argv in (["history", "check", "--store", str(path)],
                     ["history", "add", str(write_run(tmp_path, 5)), "--store", str(path)]):
            if path.name == "absent.db" and argv[1] == "add":
                continue  # add creates a store
            assert main(argv) == 2, (path, argv)
            err = capsys.readouterr().err
            assert words in err and err.count("\n") == 1 and "Traceback" not in err, (path, err)


def test_version_1_store_is_migrated_on_write(tmp_path):
    import sqlalchemy as sa

    path = tmp_path / "v1.db"
    eng = sa.create_engine(f"sqlite:///{path}")
    with eng.begin() as c:
        for t in store_schema.TABLES_OF_VERSION[1]:
            t.create(c)
        c.execute(store_schema.meta.insert().values(key="schema_version", value="1"))
    eng.dispose()
    st = Store(path)
    st.add(entry_from_file(write_run(tmp_path, 1)))
    assert st.accepted() == []  # read before the write would have said the same: v1 has no accepted table
    st.accept("c0001", note="planned")
    assert [a["note"] for a in st.accepted()] == ["planned"]
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT value FROM seqbench_meta").fetchone()[0] == str(store_schema.STORE_VERSION)
    st.close()


def test_store_location_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQBENCH_STORE", str(tmp_path / "env.db"))
    assert main(["history", "add", str(write_run(tmp_path, 1))]) == 0
    assert (tmp_path / "env.db").is_file()
    assert main(["history", "add", str(write_run(tmp_path, 2)), "--store", "mysql://x/y"]) == 2
