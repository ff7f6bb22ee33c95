"""The history store's tables, defined once, and the migrations between their versions.

store schema_version history:
  1  runs, points, measurements (one per run and point: the pooled samples of the file's rows).
  2  `accepted`: changes a person marked as intended (`seqbench history accept`); a version-1 store
     gains the table on its first write.
"""

from __future__ import annotations

from sqlalchemy import (Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table,
                        Text)

STORE_VERSION = 2

metadata = MetaData()

# One row: the store's schema version (key "schema_version").
meta = Table("seqbench_meta", metadata,
             Column("key", String(64), primary_key=True),
             Column("value", Text, nullable=False))

# One row per added results file (one run, or several runs of one commit appended into one file).
runs = Table("runs", metadata,
             Column("id", Integer, primary_key=True, autoincrement=True),
             Column("run_key", String(64), nullable=False, unique=True),  # sha256 of machine + the file's run ids
             Column("digest", String(64), nullable=False),  # sha256 of the measurements: same key, other data = refused
             Column("machine", String(200), nullable=False),
             Column("commit_sha", String(80), nullable=False),
             Column("branch", String(200)),
             Column("time", String(32), nullable=False),  # ISO 8601, UTC: the run's start (orders the history)
             Column("run_ids", Text, nullable=False),  # space-separated seqbench run ids
             Column("source", Text),  # the file it came from
             Column("sidecar", Text),  # the JSON sidecar, as read
             Column("added_at", String(32), nullable=False))
Index("runs_machine_time", runs.c.machine, runs.c.time)

# One row per point (the results schema's KEY_COLUMNS); `key` is its readable label.
points = Table("points", metadata,
               Column("id", Integer, primary_key=True, autoincrement=True),
               Column("key", String(400), nullable=False, unique=True),
               Column("kernel", String(200), nullable=False),
               Column("mode", String(32), nullable=False),
               Column("device", String(32), nullable=False),
               Column("dtype", String(32), nullable=False),
               Column("batch_size", Integer, nullable=False),
               Column("seq_len", Integer, nullable=False),
               Column("hidden_size", Integer, nullable=False),
               Column("num_heads", Integer, nullable=False),
               Column("causal", Boolean, nullable=False))

# One row per run and point: the value a history draws (median of the pooled samples, seconds) with a
# 95% distribution-free interval, the samples themselves (float64, zlib) and the CSV rows (JSON).
measurements = Table("measurements", metadata,
                     Column("run", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
                     Column("point", Integer, ForeignKey("points.id"), primary_key=True),
                     Column("status", String(16), nullable=False),
                     Column("median_s", Float),
                     Column("lo_s", Float),
                     Column("hi_s", Float),
                     Column("n_samples", Integer, nullable=False),
                     Column("samples", LargeBinary),
                     Column("rows", Text, nullable=False))
Index("measurements_point", measurements.c.point)

# Version 2: a change that was intended. commit: the first commit of the new level (a prefix will do);
# point / machine: fnmatch patterns ("*": all).
accepted = Table("accepted", metadata,
                 Column("id", Integer, primary_key=True, autoincrement=True),
                 Column("commit_sha", String(80), nullable=False),
                 Column("point", String(400), nullable=False),
                 Column("machine", String(200), nullable=False),
                 Column("note", Text, nullable=False),
                 Column("added_at", String(32), nullable=False))

TABLES_OF_VERSION = {1: (meta, runs, points, measurements), 2: (meta, runs, points, measurements, accepted)}


def _to_2(conn) -> None:
    accepted.create(conn, checkfirst=True)


MIGRATIONS = {2: _to_2}  # version -> upgrade from the version before it, inside the writer's transaction
