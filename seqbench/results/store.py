"""The history store: every added run's rows and samples, keyed by machine, commit, time and point.

One SQLite file by default (`.seqbench/history.db`); `--store` / SEQBENCH_STORE take a file path or a
database URL (postgresql://... through psycopg 3, for runners that write at once). Every write is one
transaction: a run is in the store whole or not at all. Writers are serialised (SQLite: BEGIN
IMMEDIATE; PostgreSQL: an advisory lock held to the end of the transaction), so two runners adding at
once both land, and the same run added twice lands once.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from seqbench.errors import ResultsError
from seqbench.results.history_entry import RunEntry

DEFAULT_STORE = ".seqbench/history.db"
STORE_ENV = "SEQBENCH_STORE"
_PG_LOCK = 0x5E9B_0022  # pg_advisory_xact_lock key: one writer at a time


def _sqlalchemy():
    try:
        import sqlalchemy
    except ImportError:
        raise ResultsError("the history store needs SQLAlchemy: pip install 'seqbench[history]'") from None
    return sqlalchemy


def store_location(location: str | os.PathLike | None = None) -> str:
    """--store, else SEQBENCH_STORE, else the default file, as given (a path or a URL)."""
    return str(location or os.environ.get(STORE_ENV) or DEFAULT_STORE)


def to_url(location: str) -> tuple[str, Path | None]:
    """A store location -> (SQLAlchemy URL, the SQLite file or None). postgresql:// means psycopg 3."""
    if "://" not in location:
        path = Path(location).expanduser().absolute()
        return f"sqlite:///{path}", path
    scheme, _, rest = location.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}", None
    if scheme == "sqlite":
        file = Path(rest[1:]) if rest.startswith("/") and rest[1:] not in ("", ":memory:") else None
        if file is None:
            raise ResultsError(f"--store {location!r}: a SQLite store is a file: sqlite:///PATH")
        return f"sqlite:///{file.expanduser().absolute()}", file.expanduser().absolute()
    if scheme.startswith(("postgresql+", "sqlite+")):
        return location, None
    raise ResultsError(f"--store {location!r}: unknown database; allowed: a file path, sqlite:///PATH or "
                       "postgresql://USER@HOST/DB")


@dataclass(frozen=True)
class Added:
    added: bool  # False: this run was in the store already (a no-op)
    run: int  # its id in the store
    points: int
    note: str = ""


class Store:
    """A history store at a path or URL. Nothing touches the database until the first read or write."""

    def __init__(self, location: str | os.PathLike | None = None):
        self.location = store_location(location)
        self.url, self.file = to_url(self.location)
        self._engine = None

    # --- connections ---------------------------------------------------------------------------------
    @property
    def engine(self):
        if self._engine is None:
            sa = _sqlalchemy()
            if self.url.startswith("sqlite"):
                self._engine = sa.create_engine(self.url, connect_args={"timeout": 120})
                _sqlite_transactions(self._engine)
            else:
                try:
                    self._engine = sa.create_engine(self.url, pool_pre_ping=False)
                except (ImportError, sa.exc.NoSuchModuleError) as exc:
                    raise ResultsError(f"store {self.where}: {exc}; pip install 'seqbench[history]'") from None
        return self._engine

    @property
    def where(self) -> str:
        return str(self.file) if self.file else _hide_password(self.location)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def _transaction(self, write: bool):
        """One transaction; every database error becomes one line naming the store."""
        sa = _sqlalchemy()
        if self.file is not None:
            if write:
                try:
                    self.file.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ResultsError(f"store {self.file}: cannot create its folder ({exc.strerror})") from None
            elif not self.file.is_file():
                raise ResultsError(f"store {self.file}: no such store (`seqbench history add` creates it)")
        try:
            with self.engine.begin() as conn:
                if write and conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
                version = self._check_schema(conn, write)
                yield conn, version
        except ResultsError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            raise ResultsError(f"store {self.where}: {_db_message(exc)}") from None

    def _check_schema(self, conn, write: bool) -> int:
        from seqbench.results import store_schema as sch

        sa = _sqlalchemy()
        names = set(sa.inspect(conn).get_table_names())
        if sch.meta.name not in names:
            if names - {"sqlite_sequence"}:
                raise ResultsError(f"store {self.where}: not a seqbench history store (it has tables "
                                   f"{', '.join(sorted(names)[:4])} but no {sch.meta.name})")
            if not write:
                raise ResultsError(f"store {self.where}: empty; `seqbench history add` puts runs in it")
            sch.metadata.create_all(conn)
            conn.execute(sch.meta.insert().values(key="schema_version", value=str(sch.STORE_VERSION)))
            return sch.STORE_VERSION
        raw = conn.execute(sa.select(sch.meta.c.value).where(sch.meta.c.key == "schema_version")).scalar()
        try:
            version = int(raw)
        except (TypeError, ValueError):
            raise ResultsError(f"store {self.where}: damaged (schema_version {raw!r} is not a number)") from None
        if version > sch.STORE_VERSION:
            raise ResultsError(f"store {self.where}: written by a newer seqbench (store schema {version}; this "
                               f"one reads up to {sch.STORE_VERSION}); upgrade seqbench")
        if version < 1:
            raise ResultsError(f"store {self.where}: damaged (schema_version {version})")
        missing = [t.name for t in sch.TABLES_OF_VERSION[version] if t.name not in names]
        if missing:
            raise ResultsError(f"store {self.where}: damaged (table {', '.join(missing)} missing)")
        if write and version < sch.STORE_VERSION:
            for v in range(version + 1, sch.STORE_VERSION + 1):
                sch.MIGRATIONS[v](conn)
            conn.execute(sch.meta.update().where(sch.meta.c.key == "schema_version").values(value=str(sch.STORE_VERSION)))
            version = sch.STORE_VERSION
        return version

    # --- writing -------------------------------------------------------------------------------------
    def add(self, entry: RunEntry) -> Added:
        """Put one run in the store, whole, in one transaction. The same run again is a no-op; the same
        run ids with other measurements are refused."""
        from seqbench.results import store_schema as sch

        sa = _sqlalchemy()
        with self._transaction(write=True) as (conn, _):
            old = conn.execute(sa.select(sch.runs.c.id, sch.runs.c.digest, sch.runs.c.added_at, sch.runs.c.commit_sha)
                               .where(sch.runs.c.run_key == entry.run_key)).first()
            if old is not None:
                if old.digest != entry.digest:
                    raise ResultsError(f"{entry.source}: its runs ({entry.run_ids_text}) are in the store already "
                                       f"with other measurements (added {old.added_at}); refusing to keep two versions")
                return Added(False, old.id, len(entry.points),
                             f"already in the store (commit {old.commit_sha[:12]}, added {old.added_at}): nothing added")
            run = conn.execute(sch.runs.insert().values(
                run_key=entry.run_key, digest=entry.digest, machine=entry.machine, commit_sha=entry.commit,
                branch=entry.branch, time=entry.time, run_ids=entry.run_ids_text, source=entry.source,
                sidecar=json.dumps(entry.sidecar, sort_keys=True), added_at=_now())).inserted_primary_key[0]
            ids = self._point_ids(conn, entry)
            conn.execute(sch.measurements.insert(), [
                {"run": run, "point": ids[m.key], "status": m.status, "median_s": m.median_s, "lo_s": m.lo_s,
                 "hi_s": m.hi_s, "n_samples": m.n_samples, "samples": m.samples_blob, "rows": m.rows_json}
                for m in entry.points])
            return Added(True, run, len(entry.points))

    def _point_ids(self, conn, entry: RunEntry) -> dict[str, int]:
        from seqbench.results import store_schema as sch

        sa = _sqlalchemy()
        keys = [m.key for m in entry.points]
        known = dict(conn.execute(sa.select(sch.points.c.key, sch.points.c.id).where(sch.points.c.key.in_(keys))).all())
        new = [m.point_columns() for m in entry.points if m.key not in known]
        if new:
            conn.execute(sch.points.insert(), new)
            known = dict(conn.execute(sa.select(sch.points.c.key, sch.points.c.id)
                                      .where(sch.points.c.key.in_(keys))).all())
        return known

    def accept(self, commit: str, point: str = "*", machine: str = "*", note: str = "") -> None:
        """Record that the change first seen at COMMIT (matching points and machines) was intended."""
        from seqbench.results import store_schema as sch

        sa = _sqlalchemy()
        r = sch.runs
        with self._transaction(write=True) as (conn, _):
            known = sorted({c for (c,) in conn.execute(sa.select(r.c.commit_sha).distinct()).all()
                            if c.startswith(commit)})
            if len(known) != 1:  # a typo would silence nothing and say it did; a short prefix, the wrong change
                latest = [c for (c,) in conn.execute(sa.select(r.c.commit_sha).order_by(r.c.time.desc())).all()]
                shown = ", ".join(list(dict.fromkeys(c[:12] for c in latest))[:5])
                raise ResultsError(f"commit {commit!r} " + (f"matches {len(known)} commits in the store "
                                   f"({', '.join(c[:12] for c in known[:5])}); give more of it" if known else
                                   f"is not a commit of any run in the store {self.where}; latest: {shown or 'none'}"))
            conn.execute(sch.accepted.insert().values(commit_sha=commit, point=point, machine=machine, note=note,
                                                      added_at=_now()))

    # --- reading -------------------------------------------------------------------------------------
    def measurements(self, machine: str | None = None):
        """Every ok measurement with its run's machine, commit and time -> DataFrame, oldest first."""
        import pandas as pd

        from seqbench.results import store_schema as sch

        sa = _sqlalchemy()
        r, p, m = sch.runs, sch.points, sch.measurements
        q = (sa.select(r.c.id.label("run"), r.c.machine, r.c.commit_sha.label("commit"), r.c.branch, r.c.time,
                       p.c.key.label("point"), p.c.kernel, p.c.mode, p.c.batch_size, p.c.seq_len,
                       m.c.median_s, m.c.lo_s, m.c.hi_s, m.c.n_samples)
             .select_from(m.join(r, m.c.run == r.c.id).join(p, m.c.point == p.c.id))
             .where(m.c.status == "ok"))
        if machine:
            q = q.where(r.c.machine == machine)
        with self._transaction(write=False) as (conn, _):
            rows = conn.execute(q).all()
        cols = ["run", "machine", "commit", "branch", "time", "point", "kernel", "mode", "batch_size", "seq_len",
                "median_s", "lo_s", "hi_s", "n_samples"]
        return pd.DataFrame.from_records(rows, columns=cols).sort_values(["time", "run"], kind="stable",
                                                                            ignore_index=True)

    def runs(self, sidecars: bool = False):
        """One row per stored run (no measurements; with sidecars: its JSON sidecar) -> DataFrame, oldest first."""
        import pandas as pd

        from seqbench.results import store_schema as sch

        sa = _sqlalchemy()
        r = sch.runs
        with self._transaction(write=False) as (conn, _):
            cols = [r.c.id, r.c.machine, r.c.commit_sha, r.c.branch, r.c.time, r.c.run_ids, r.c.source, r.c.added_at]
            rows = conn.execute(sa.select(*cols, *([r.c.sidecar] if sidecars else [])).order_by(r.c.time, r.c.id)).all()
        return pd.DataFrame.from_records(rows, columns=["run", "machine", "commit", "branch", "time", "run_ids",
                                                        "source", "added_at", *(["sidecar"] if sidecars else [])])

    def run_rows(self, run: int) -> list[dict]:
        """The CSV rows of one stored run (samples_s restored), as the run wrote them."""
        from seqbench.results import store_schema as sch
        from seqbench.results.history_entry import unpack_samples
        from seqbench.results.schema import format_samples

        sa = _sqlalchemy()
        m = sch.measurements
        with self._transaction(write=False) as (conn, _):
            found = conn.execute(sa.select(m.c.rows, m.c.samples).where(m.c.run == run)).all()
        out = []
        for rows_json, blob in found:
            rows = json.loads(rows_json)
            samples = unpack_samples(blob)
            for row in rows:  # pooled samples go back to their rows in order
                n = int(row.pop("_n_samples", 0))
                row["samples_s"], samples = format_samples(samples[:n]), samples[n:]
                out.append(row)
        return out

    def accepted(self) -> list[dict]:
        from seqbench.results import store_schema as sch

        sa = _sqlalchemy()
        with self._transaction(write=False) as (conn, version):
            if version < 2:
                return []
            a = sch.accepted
            return [dict(r._mapping) for r in conn.execute(sa.select(a).order_by(a.c.id)).all()]


def _sqlite_transactions(engine) -> None:
    """pysqlite's own transaction handling starts transactions late; BEGIN IMMEDIATE takes the write
    lock at the start, so two writers queue (busy timeout) instead of failing mid-way."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _db_message(exc) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    if "file is not a database" in text or "malformed" in text:
        return f"damaged or not a SQLite database ({text})"
    return text[:300]


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    cred, at, host = rest.rpartition("@")
    if at and ":" in cred:
        cred = cred.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{cred}{at}{host}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
