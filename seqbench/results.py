"""The results schema, defined once: Row, COLUMNS, the append-safe CSV writer and the validating reader.

schema_version history:
  1  first release (columns below).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from seqbench import SeqbenchError

SCHEMA_VERSION = 1
STATUSES = ("ok", "oom", "skipped", "error", "timeout")


class ResultsError(SeqbenchError):
    pass


@dataclass
class Row:
    # --- required columns, in the order of the design notes ---
    schema_version: int
    run_id: str
    kernel: str
    family: str
    mode: str
    device: str
    dtype: str
    batch_size: int
    seq_len: int
    hidden_size: int
    num_heads: int
    causal: bool
    threads: int
    status: str
    repeats: int | None = None
    median_s: float | None = None
    iqr_s: float | None = None
    min_s: float | None = None
    mean_s: float | None = None
    tokens_per_s: float | None = None
    gflop: float | None = None
    gflops_per_s: float | None = None
    peak_mem_bytes: int | None = None
    samples_s: str = ""
    error: str = ""
    # --- extra columns ---
    peak_mem_method: str = ""  # cuda_allocator | cpu_profiler | analytic
    number: int | None = None  # calls per sample (block)
    warmup_s: float | None = None
    warmup_settled: bool | None = None
    sdpa_backend: str = ""  # flash | efficient | cudnn | math | native_mha, as seen by the profiler
    pct_of_peak: float | None = None  # 100 * gflops_per_s / this run's `calibration` row (seqbench/peak.py)
    sample_rounds: str = ""  # round index (1..R) of each entry of samples_s, space-separated
    calib_s: str = ""  # per round: seconds per call of the calibration kernel timed just before the point

    def as_csv(self) -> dict[str, str]:
        return {k: _fmt(v) for k, v in dataclasses.asdict(self).items()}


COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Row))
REQUIRED_COLUMNS: tuple[str, ...] = COLUMNS[: COLUMNS.index("error") + 1]
KEY_COLUMNS = ("kernel", "mode", "device", "dtype", "batch_size", "seq_len", "hidden_size", "num_heads", "causal")
INT_COLUMNS = ("schema_version", "batch_size", "seq_len", "hidden_size", "num_heads", "threads", "repeats", "peak_mem_bytes", "number")
FLOAT_COLUMNS = ("median_s", "iqr_s", "min_s", "mean_s", "tokens_per_s", "gflop", "gflops_per_s", "warmup_s", "pct_of_peak")
BOOL_COLUMNS = ("causal", "warmup_settled")
_POSITIVE_COLUMNS = ("batch_size", "seq_len", "hidden_size", "num_heads", "median_s")  # sizes, and a time of 0 is no measurement


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.9g}"
    return str(v)


def format_samples(samples: Iterable[float]) -> str:
    return " ".join(f"{s:.9g}" for s in samples)


def parse_samples(text: str) -> list[float]:
    return [float(s) for s in str(text).split()] if isinstance(text, str) and text.strip() else []


class CsvSink:
    """Appends rows to a CSV, flushing each one to disk so an interrupted run leaves a valid file."""

    def __init__(self, path: str | Path, *, append: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not (append and self.path.exists() and self.path.stat().st_size > 0)
        if not new:
            check_appendable(self.path)
        self._fh = self.path.open("w" if new else "a", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames=COLUMNS)
        if new:
            self._writer.writeheader()
            self._sync()

    def write(self, row: Row) -> None:
        self._writer.writerow(row.as_csv())
        self._sync()

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_appendable(path: Path) -> None:
    """Appending is safe only to a file with exactly this version's columns, ending on a full line."""
    with path.open("rb") as fh:
        header = next(csv.reader([fh.readline().decode("utf-8", "replace")]), [])
        fh.seek(-1, os.SEEK_END)
        ends_clean = fh.read(1) == b"\n"
    if tuple(header) != COLUMNS:
        raise ResultsError(
            f"cannot append to {path}: its columns differ from this seqbench's (written by another version?); "
            "write to a new file and use `seqbench merge` or `seqbench compare` on both"
        )
    if not ends_clean:
        raise ResultsError(f"cannot append to {path}: its last line is truncated")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON via a temp file + rename, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sidecar_path(csv_path: str | Path) -> Path:
    return Path(csv_path).with_suffix(".json")


def read_metadata(csv_path: str | Path) -> dict:
    """The JSON sidecar of a results CSV, or {} if there is none."""
    p = sidecar_path(csv_path)
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{p}: not valid JSON ({exc})") from None


def read_results(path: str | Path):
    """Read and validate a results CSV -> pandas DataFrame (one row per point, typed columns)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise ResultsError(f"{p}: no such results file")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{p}: cannot be read ({exc})") from None
    if not text.strip():
        raise ResultsError(f"{p}: file is empty; expected a seqbench results CSV")
    lines = text.splitlines()
    header = next(csv.reader([lines[0]]))
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ResultsError(
            f"{p}: not a seqbench results CSV (missing column{'s' if len(missing) > 1 else ''} {', '.join(missing[:4])})"
        )
    if not text.endswith("\n"):
        raise ResultsError(f"{p}: line {len(lines)} is truncated (no line end); the run was cut off mid-write")
    records = []
    for lineno, fields in enumerate(csv.reader(lines[1:]), start=2):
        if not fields:
            continue
        if len(fields) != len(header):
            raise ResultsError(f"{p}: line {lineno} has {len(fields)} fields, expected {len(header)} (truncated or corrupted)")
        records.append(_validate_record(p, lineno, dict(zip(header, fields))))
    df = pd.DataFrame.from_records(records, columns=header)
    for col in INT_COLUMNS:
        if col in df:
            df[col] = pd.array(df[col], dtype="Int64")
    for col in FLOAT_COLUMNS:
        if col in df:
            df[col] = df[col].astype(float)
    for col in BOOL_COLUMNS:
        if col in df:
            df[col] = df[col].astype("boolean")
    df.attrs["path"] = str(p)
    return df


def _validate_record(p: Path, lineno: int, rec: dict[str, str]) -> dict[str, Any]:
    where = f"{p}: line {lineno}"
    out: dict[str, Any] = dict(rec)
    try:
        version = int(rec["schema_version"])
    except ValueError:
        raise ResultsError(f"{where}: schema_version {rec['schema_version']!r} is not an integer") from None
    if version != SCHEMA_VERSION:
        raise ResultsError(f"{where}: schema_version {version} is not supported (this seqbench reads {SCHEMA_VERSION})")
    if rec["status"] not in STATUSES:
        raise ResultsError(f"{where}: status {rec['status']!r} unknown; allowed: {', '.join(STATUSES)}")
    ok = rec["status"] == "ok"
    for col in INT_COLUMNS + FLOAT_COLUMNS:
        if col not in rec:
            continue
        raw = rec[col].strip()
        if raw == "":
            if ok and col in ("median_s", "repeats"):
                raise ResultsError(f"{where}: status ok but {col} is empty")
            out[col] = None
            continue
        try:
            val = float(raw)
        except ValueError:
            raise ResultsError(f"{where}: {col} {raw!r} is not a number") from None
        if not math.isfinite(val):
            raise ResultsError(f"{where}: {col} is {raw} (must be finite)")
        if col in INT_COLUMNS:
            if val != int(val):
                raise ResultsError(f"{where}: {col} {raw!r} is not an integer")
            val = int(val)
        if val < 0 or (val == 0 and col in _POSITIVE_COLUMNS):
            raise ResultsError(f"{where}: {col} is {raw}; it must be {'> 0' if col in _POSITIVE_COLUMNS else '>= 0'}")
        out[col] = val
    for col in BOOL_COLUMNS:
        if col in rec:
            raw = rec[col].strip().lower()
            if raw not in ("true", "false", ""):
                raise ResultsError(f"{where}: {col} {rec[col]!r} must be true or false")
            out[col] = None if raw == "" else raw == "true"
    if ok:
        try:
            samples = parse_samples(rec["samples_s"])
        except ValueError:
            raise ResultsError(f"{where}: samples_s holds a value that is not a number") from None
        if not samples or not all(math.isfinite(s) and s > 0 for s in samples):
            raise ResultsError(f"{where}: samples_s must hold positive finite seconds for an ok row")
    return out


def check_output(path: str | Path, *, force: bool, append: bool = False) -> Path:
    """Refuse to clobber an existing result (CSV or its JSON sidecar) unless force is given.

    With append, an existing CSV is fine if rows of this version can be appended to it.
    """
    p = Path(path)
    if p.suffix != ".csv":
        raise ResultsError(f"--out {str(p)!r} must end in .csv (the JSON sidecar is written beside it)")
    if append:
        if p.exists() and p.stat().st_size > 0:
            check_appendable(p)
        return p
    for existing in (p, sidecar_path(p)):
        if existing.exists() and not force:
            raise ResultsError(f"{existing} already exists; pass --force to overwrite it, or choose another --out")
    return p
