"""Reading results: the validating CSV reader, the JSON sidecar, and several files at once."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

from seqbench.choices import DType, Family, Metric, Mode, values
from seqbench.errors import ResultsError
from seqbench.results.schema import (upgrade_sidecar, BOOL_COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, KEY_COLUMNS, POSITIVE_COLUMNS,
                                     READABLE_VERSIONS, RENAMED, REQUIRED_COLUMNS, STATUSES, parse_samples,
                                     row_metric, sidecar_path)

# Python's csv module stops at fields over 128 KiB; a long run's samples_s cell is longer (10^6
# samples are ~12 MB). Raising the limit is process-wide, and only ever raises it.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
METRICS = values(Metric)
MODES, FAMILIES, DTYPES = values(Mode), values(Family), values(DType)


def read_header(path: str | Path) -> list[str]:
    """The column names on a CSV's first line ([] for an empty file)."""
    with Path(path).open("rb") as fh:
        return next(csv.reader([fh.readline().decode("utf-8", "replace")]), [])


def read_metadata(csv_path: str | Path) -> dict:
    """The JSON sidecar of a results CSV, or {} if there is none."""
    p = sidecar_path(csv_path)
    if not p.exists():
        return {}
    try:
        meta = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"{p}: not a seqbench sidecar (a JSON {type(meta).__name__}, expected an object)")
    return upgrade_sidecar(meta, str(p))


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
    if text.startswith("\ufeff"):  # the writer never adds one: the file was saved by another program
        raise ResultsError(f"{p}: starts with a byte-order mark, so another program (a spreadsheet?) saved it; "
                           "seqbench reads the CSV as it wrote it: use the original, or save it as plain UTF-8")
    # Records as the csv module sees them, not str.splitlines(): that also splits on \r, \x1c, \u2028...
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ResultsError(
            f"{p}: not a seqbench results CSV (missing column{'s' if len(missing) > 1 else ''} {', '.join(missing[:4])})"
        )
    if not text.endswith("\n"):
        raise ResultsError(f"{p}: line {text.count(chr(10)) + 1} is truncated (no line end); the run was cut off mid-write")
    records, linenos = [], []
    while True:
        lineno = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ResultsError(f"{p}: line {lineno}: not valid CSV ({exc})") from None
        if not fields:
            continue
        if len(fields) != len(header):
            raise ResultsError(f"{p}: line {lineno} has {len(fields)} fields, expected {len(header)} (truncated or corrupted)")
        records.append(validate_record(f"{p}: line {lineno}", dict(zip(header, fields))))
        linenos.append(lineno)
    versions = {r["schema_version"] for r in records}
    for old in versions:
        for before, after in RENAMED.get(old, {}).items():  # an older file: today's column names
            if before in header and after not in header:
                header = [after if c == before else c for c in header]
                for r in records:
                    r[after] = r.pop(before)
    if "state_bytes" in header and "state_retained_bytes" not in header and versions and max(versions) < 4:
        header = header + ["state_retained_bytes"]  # before version 4 state_bytes measured whole storages
        for r in records:
            r["state_retained_bytes"] = r.get("state_bytes")
    df = pd.DataFrame.from_records(records, columns=header)
    # rows before version 3 measured time; with the column filled, every reader can tell the two apart
    df["metric"] = [row_metric(m) for m in df["metric"]] if "metric" in df else Metric.TIME.value
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
    check_sidecar_runs(p, df, read_metadata(p), linenos)
    return df


def sidecar_runs(meta: dict) -> set[str]:
    """Every run id a sidecar describes: its own run, the runs appended before it, and a merged file's
    inputs' runs."""
    runs = {str(meta["run_id"])} if isinstance(meta, dict) and meta.get("run_id") else set()
    if not isinstance(meta, dict):
        return runs
    for old in meta.get("previous_runs") or []:
        if isinstance(old, dict):
            runs |= sidecar_runs(old)
    if isinstance(meta.get("machines"), dict):
        runs |= {str(r) for r in meta["machines"]}
    for part in meta.get("inputs") or []:
        if isinstance(part, dict) and isinstance(part.get("runs"), list):
            runs |= {str(r) for r in part["runs"]}
    return runs


def check_run_ids(path: Path, run_ids, meta: dict) -> None:
    """Refuse a CSV holding a run its sidecar does not know (a sidecar copied from another run)."""
    known = sidecar_runs(meta)
    strangers = [str(r) for r in dict.fromkeys(run_ids) if str(r) not in known] if known else []
    if strangers:
        raise ResultsError(
            f"{sidecar_path(path)} does not describe {path}: the CSV holds run {strangers[0]}, the sidecar "
            f"{'runs ' if len(known) > 1 else 'run '}{', '.join(sorted(known)[:3])} (copied from another run?); "
            f"put back the sidecar written with {path.name}, or move this one away")


def check_sidecar_runs(path: Path, df, meta: dict, linenos: Sequence[int] = ()) -> None:
    """A sidecar describes the runs in its CSV: one copied from another run (whose command, config and
    status would be shown as this file's) is refused, and so is a CSV one of whose runs it does not know.
    A run point measured twice by one run is refused too: a run measures each point once, so a second
    row is a copy (a file concatenated with itself), not a second round."""
    from seqbench.results.schema import KEY_COLUMNS

    if not df.empty:
        check_run_ids(path, df["run_id"], meta)
        dup = df.duplicated(subset=["run_id", *KEY_COLUMNS], keep=False)
        if dup.any():
            lines = [linenos[i] if i < len(linenos) else i + 2 for i in df.index[dup]]
            row = df.loc[df.index[dup][0]]
            raise ResultsError(
                f"{path}: lines {lines[0]} and {lines[1]}: run {row['run_id']} holds the point ({row['kernel']}, "
                f"{row['mode']}, B={row['batch_size']}, T={row['seq_len']}) twice; a run measures each point once "
                "(a copied row is not a second round): remove the copy")


_NUMERIC = tuple((c, c in INT_COLUMNS, c in POSITIVE_COLUMNS) for c in INT_COLUMNS + FLOAT_COLUMNS)


def validate_record(where: str, rec: dict[str, str]) -> dict[str, Any]:
    """One record's cells (strings) checked and typed; a ResultsError starting with `where` if the
    reader would refuse it. The writer runs the same check on every row before it writes it."""
    out: dict[str, Any] = dict(rec)
    try:
        version = int(rec["schema_version"])
    except ValueError:
        raise ResultsError(f"{where}: schema_version {rec['schema_version']!r} is not an integer") from None
    if version not in READABLE_VERSIONS:
        raise ResultsError(f"{where}: schema_version {version} is not supported (this seqbench reads "
                           f"{', '.join(map(str, READABLE_VERSIONS))})")
    out["schema_version"] = version
    _check_identity(where, rec)
    if rec["status"] not in STATUSES:
        raise ResultsError(f"{where}: status {rec['status']!r} unknown; allowed: {', '.join(STATUSES)}")
    ok = rec["status"] == "ok"
    metric = row_metric(rec.get("metric", ""))
    if metric not in METRICS:
        raise ResultsError(f"{where}: metric {metric!r} unknown; allowed: {', '.join(METRICS)}")
    counted = metric == Metric.INSTRUCTIONS
    needed = ("instructions", "repeats") if counted else ("median_s", "repeats")
    for col, integer, positive in _NUMERIC:
        raw = rec.get(col)
        if raw is None:
            continue
        raw = raw.strip()
        if raw == "":
            if ok and col in needed:
                raise ResultsError(f"{where}: status ok but {col} is empty")
            out[col] = None
            continue
        try:
            val = float(raw)
        except ValueError:
            raise ResultsError(f"{where}: {col} {raw!r} is not a number") from None
        if not math.isfinite(val):
            raise ResultsError(f"{where}: {col} is {raw} (must be finite)")
        if integer:
            if val != int(val):
                raise ResultsError(f"{where}: {col} {raw!r} is not an integer")
            val = int(val)
        if val < 0 or (val == 0 and positive):
            raise ResultsError(f"{where}: {col} is {raw}; it must be {'> 0' if positive else '>= 0'}")
        out[col] = val
    for col in BOOL_COLUMNS:
        if col in rec:
            raw = rec[col].strip().lower()
            if raw not in ("true", "false", ""):
                raise ResultsError(f"{where}: {col} {rec[col]!r} must be true or false")
            out[col] = None if raw == "" else raw == "true"
    if ok and counted:
        _check_counts(where, rec)
    elif ok:
        try:
            samples = parse_samples(rec["samples_s"])
        except ValueError:
            raise ResultsError(f"{where}: samples_s holds a value that is not a number") from None
        if not samples or not all(math.isfinite(s) and s > 0 for s in samples):
            raise ResultsError(f"{where}: samples_s must hold positive finite seconds for an ok row")
        _check_rounds(where, rec, len(samples), version)
    return out


def _check_counts(where: str, rec: dict[str, str]) -> None:
    """An ok instructions row: its counts per block, and no times (Valgrind-slowed times are not times)."""
    try:
        counts = parse_samples(rec.get("instructions_samples", ""))
    except ValueError:
        raise ResultsError(f"{where}: instructions_samples holds a value that is not a number") from None
    if not counts or not all(math.isfinite(c) and c > 0 for c in counts):
        raise ResultsError(f"{where}: instructions_samples must hold positive instruction counts for an ok "
                           "instructions row")
    timed = [c for c in ("median_s", "samples_s") if rec.get(c, "").strip()]
    if timed:
        raise ResultsError(f"{where}: an instructions row has {timed[0]} filled; its time columns must be empty")


_RUN_ID = re.compile(r"[A-Za-z0-9_.:+-]{1,100}")
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu)(:[0-9]{1,3})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
LABEL_MAX = 64


def _check_identity(where: str, rec: dict[str, str]) -> None:
    """The identity columns come from closed sets or narrow patterns: they name output files (plot's
    NAME-MODE.png), headings and table cells, so nothing else (a path, markup, an escape sequence) is
    read as one."""
    def bad(col: str, allowed: str) -> ResultsError:
        return ResultsError(f"{where}: {col} {rec[col][:60]!r} is not allowed; allowed: {allowed}")

    if not rec["kernel"].isidentifier():  # exactly what the registry accepts as a name
        raise bad("kernel", "a kernel name (an identifier: letters, digits and _, not starting with a digit)")
    for col, choices in (("mode", MODES), ("family", FAMILIES), ("dtype", DTYPES)):
        if rec[col] not in choices:
            raise bad(col, ", ".join(choices))
    if not _DEVICE.fullmatch(rec["device"]):
        raise bad("device", "cpu, cuda (or cuda:N)")
    if not _RUN_ID.fullmatch(rec["run_id"]):
        raise bad("run_id", "letters, digits and . _ : + - (up to 100)")
    for col in ("error", "sdpa_backend", "peak_mem_method", "regime"):  # free text: shown, never interpreted
        if col in rec and _CONTROL.search(rec[col]):
            rec[col] = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", rec[col])


def check_label(label, what: str, recorded: bool = False) -> str:
    """A machine label (--machine, LABEL=PATH, a sidecar's `machine`) is a short name for tables,
    legends and headings: printable, one line, 1-64 characters, no '='. One recorded in a sidecar may
    be a device's name (up to 128 characters, '=' allowed: it is never parsed)."""
    text = str(label).strip()
    longest = 2 * LABEL_MAX if recorded else LABEL_MAX
    if not text or len(text) > longest or ("=" in text and not recorded) or not text.isprintable():
        shown = text if len(text) <= 40 else f"{text[:40]}... ({len(text)} characters)"
        raise ResultsError(f"{what} {shown!r}: a machine label must be a short printable name "
                           f"(1-{longest} characters, one line{'' if recorded else ', no ='}), e.g. a100")
    return text


def _check_rounds(where: str, rec: dict[str, str], n_samples: int, version: int) -> None:
    """sample_rounds (a round number per sample) and ref_s (a positive time per round), which compare
    divides by: malformed, they are bad input here, not a crash or a wrong verdict later."""
    text = rec.get("sample_rounds", "").strip()
    rounds = [1] * n_samples
    if text:
        try:
            rounds = [int(r) for r in text.split()]
        except ValueError:
            raise ResultsError(f"{where}: sample_rounds {text[:40]!r} must be round numbers (1, 2, ...), one per sample") from None
        if len(rounds) != n_samples or min(rounds) < 1:
            raise ResultsError(f"{where}: sample_rounds must hold one round number >= 1 per sample "
                               f"({len(rounds)} numbers for {n_samples} samples)")
    ref_col = next((old for old, new in RENAMED.get(version, {}).items() if new == "ref_s" and old in rec), "ref_s")
    text = rec.get(ref_col, "").strip()
    if not text:
        return
    try:
        ref = parse_samples(text)
    except ValueError:
        ref = []
    if not ref or not all(math.isfinite(r) and r > 0 for r in ref):
        raise ResultsError(f"{where}: {ref_col} {text[:40]!r} must hold positive finite seconds, one per round")
    if len(ref) < max(rounds):
        raise ResultsError(f"{where}: {ref_col} has {len(ref)} times for {max(rounds)} rounds")




def split_label(arg: str | Path) -> tuple[str | None, Path]:
    """'a100=runs/a.csv' -> ('a100', runs/a.csv): a machine label given with a results file.

    A path that exists as written is a path, even with '=' in it; so is one whose part before '='
    holds a path separator."""
    text = str(arg)
    label, eq, rest = text.partition("=")
    if eq and not Path(text).exists() and not label.strip() and rest:
        raise ResultsError(f"{text}: a machine label is empty; write LABEL=PATH (e.g. a100={rest}) or the path alone")
    if not eq or Path(text).exists() or not label.strip() or "/" in label or "\\" in label or not rest:
        return None, Path(text)
    return check_label(label, "label"), Path(rest)


def run_machines(meta: dict) -> dict[str, str]:
    """run_id -> machine label, from a sidecar: a run's own `machine` (or, for runs recorded before
    there was one, the device named in its environment), every earlier run of an appended file, and
    a merged file's map of its inputs' runs."""
    from seqbench.measure.env import machine_label

    out: dict[str, str] = {}
    for old in meta.get("previous_runs") or []:
        if isinstance(old, dict):
            out.update(run_machines(old))
    if meta.get("run_id"):
        env = meta.get("environment") or {}
        out[str(meta["run_id"])] = str(meta.get("machine") or (machine_label(env) if env else "unknown"))
    out.update({str(k): str(v) for k, v in (meta.get("machines") or {}).items()})
    return {run: check_label(label, "sidecar: machine", recorded=True) if label != "unknown" else label for run, label in out.items()}


def read_many(paths: Sequence[str | Path]):
    """Read one or more results CSVs into one DataFrame with a `source` column (the file's stem) and a
    `machine` column (each row's run, labelled by the sidecar; `LABEL=PATH` labels a whole file)."""
    import pandas as pd

    if not paths:
        raise ResultsError("no results CSV given")
    labelled = [split_label(p) for p in paths]
    files = [path for _, path in labelled]
    names = source_names(files)
    frames = []
    for (label, path), name in zip(labelled, names):
        df = read_results(path)
        if df.empty:
            raise ResultsError(f"{path}: has a header but no rows; the run recorded no points")
        try:
            runs = run_machines(read_metadata(path))
        except ResultsError as exc:
            raise ResultsError(f"{sidecar_path(path)}: {exc}") from None
        machine = [label or runs.get(r, "unknown") for r in df["run_id"]]
        frames.append(df.assign(source=name, machine=machine))
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    # A CSV appended to twice can hold the same point twice: the later measurement wins (the report says
    # so). Not so for calibration rows: merged shards each keep their own machine's peak.
    own_run = out["run_id"].where(out["family"] == "calibration", "")
    dup = out.assign(_run=own_run).duplicated(subset=["source", "machine", *KEY_COLUMNS, "_run"], keep="last")
    unique = out[~dup].reset_index(drop=True)
    unique.attrs.update(paths=[str(p) for p in files], labels=[lb for lb, _ in labelled],
                        duplicates_dropped=int(dup.sum()))
    return unique


def source_names(paths: list[Path]) -> list[str]:
    """File stems, widened with the parent folder when two stems collide (results/cpu/x vs results/cuda/x)."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    named = [f"{p.parent.name}/{p.stem}" for p in paths]
    return named if len(set(named)) == len(named) else [f"{i}:{s}" for i, s in enumerate(stems, 1)]
