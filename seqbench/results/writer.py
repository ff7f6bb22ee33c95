"""Writing results: the append-safe CSV sink, atomic writes, sidecars, and never clobbering a user's file."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from seqbench.errors import ResultsError
from seqbench.results.ownership import Output, is_locked, make_parents, output_error, own, owner_of, refuse_owned
from seqbench.results.reader import read_header, validate_record
from seqbench.results.schema import COLUMNS, KEY_COLUMNS, SCHEMA_VERSION, Row, sidecar_path


class CsvSink:
    """Appends rows to a CSV this process owns (ownership.own), each one on disk before the next.

    Before every append it checks that the file is still the one it opened, at the size it left it
    (deleted, replaced, truncated or written to by someone else: a ResultsError, never a silent
    success). A write that fails (disk full, I/O error) is cut back to the last full row, so the
    rows already written stay valid, and raises a one-line ResultsError.
    """

    def __init__(self, path: str | Path | None = None, *, append: bool = False, output: Output | None = None,
                 validate: bool = True):
        self.validate = validate  # off only for tests that write broken files on purpose
        self._own = output is None  # release on close only the ownership taken here
        self.output = output or own(path, "append" if append else "replace")
        self.path = self.output.path
        try:
            self.size = os.fstat(self.output.fd).st_size
            if self.size and not append:  # replacing: empty it only now that it is ours
                os.ftruncate(self.output.fd, 0)
                self.size = 0
        except OSError as exc:
            self.close()
            raise output_error(self.path, exc) from None
        if self.size:
            try:
                check_appendable(self.path)
            except BaseException:
                self.close()
                raise
        else:
            self._append(_encode(dict(zip(COLUMNS, COLUMNS))))

    def write(self, row: Row) -> None:
        """Append one row; a row the reader would refuse is never written (vetted() makes it an error row first)."""
        record = row.as_csv()
        if self.validate:
            validate_record(f"{self.path}: row for {row.kernel} B={row.batch_size} T={row.seq_len}", record)
        self._append(_encode(record))

    def verify(self) -> None:
        """Raise if the file at self.path is no longer what this sink wrote (see the class doc)."""
        try:
            mine = os.fstat(self.output.fd)
            there = os.stat(self.path)
        except FileNotFoundError:
            raise ResultsError(f"{self.path} was deleted while this run was writing it; stopped "
                               "(start again, or --resume from a copy)") from None
        except OSError as exc:
            raise output_error(self.path, exc, "check") from None
        if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
            raise ResultsError(f"{self.path} was replaced by another file while this run was writing it; "
                               "stopped: this run's rows are not in it")
        if mine.st_size != self.size:
            what = "truncated" if mine.st_size < self.size else "written to by something else"
            raise ResultsError(f"{self.path} was {what} while this run was writing it ({mine.st_size} bytes, "
                               f"this run left {self.size}); stopped; check it, then continue with --resume")

    def _append(self, data: bytes) -> None:
        self.verify()
        fd, view, done = self.output.fd, memoryview(data), 0
        try:
            while done < len(data):  # pwrite at our own end: nothing lands past a truncation
                done += os.pwrite(fd, view[done:], self.size + done)
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self.size)  # drop the partial row: shrinking needs no space
                os.fsync(fd)
            raise ResultsError(f"cannot write {self.path}: {exc.strerror or exc}; stopped; the rows "
                               "before this one are intact") from None
        self.size += len(data)

    def close(self) -> None:
        if self._own:
            self.output.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def vetted(row: Row) -> Row:
    """The row as every reader will accept it. A value the reader refuses (a plugin's FLOP function
    giving NaN, a negative byte count) would cost the whole file to report, compare, merge and
    --resume; instead the point becomes an `error` row saying which value was wrong."""
    try:
        validate_record(f"kernel {row.kernel!r}", row.as_csv())
        return row
    except ResultsError as exc:
        keep = {f: getattr(row, f) for f in ("schema_version", "run_id", "family", "threads", *KEY_COLUMNS)}
        bad = Row(**keep, status="error", error=f"not recorded: {exc}"[:300])
        bad.regime = row.regime
        return bad


def _encode(record: dict[str, str]) -> bytes:
    """One CSV record (the csv module's excel dialect: quoted as needed, CRLF line end) as bytes."""
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=COLUMNS).writerow(record)
    return buf.getvalue().encode("utf-8")


def check_appendable(path: Path) -> None:
    """Appending is safe only to a file with exactly this version's columns, ending on a full line."""
    header = read_header(path)
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        ends_clean = fh.read(1) == b"\n"
    if tuple(header) != COLUMNS:
        raise ResultsError(
            f"cannot append to {path}: its columns differ from this seqbench's (written by another version?); "
            "write to a new file and use `seqbench merge` or `seqbench compare` on both"
        )
    if not ends_clean:
        raise ResultsError(f"cannot append to {path}: its last line is truncated")


def check_same_version(path: Path) -> None:
    """--append adds a run of this seqbench to a file of this seqbench: runs of another version (an
    older schema, other kernels, other rules) are compared or merged as separate files. The file
    itself must read back (rows valid, its sidecar its own) before anything is added to it."""
    from seqbench.results.reader import read_metadata, read_results
    from seqbench.version import __version__

    read_results(path)
    meta = read_metadata(path)
    runs = [*(meta.get("previous_runs") or []), meta] if meta else []
    for run in runs:
        env = run.get("environment") if isinstance(run, dict) else None
        version = env.get("seqbench") if isinstance(env, dict) else None
        if version and str(version) != __version__:
            raise ResultsError(f"cannot append to {path}: run {run.get('run_id', '?')} in it was written by seqbench "
                               f"{version}, this is {__version__}; write to a new file and compare (or merge) the two")
        if isinstance(run, dict) and run.get("schema_version") not in (None, SCHEMA_VERSION):
            raise ResultsError(f"cannot append to {path}: its sidecar is of schema {run.get('schema_version')}, this "
                               f"seqbench writes {SCHEMA_VERSION}; write to a new file")


def _file_mode() -> int:
    """What open() would give a new file here (0666 less the umask): tempfile's 0600 is not that."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[Any], None], *, newline: str | None = None,
                 replace: bool = True) -> None:
    """Write a file via a temp file + rename, so a reader never sees half of it; write(fh) fills it.

    replace=False never clobbers: the file must not exist when it appears (a hard link, which fails
    if something took the name meanwhile). replace=True refuses a file a live seqbench run owns.
    An OSError (read-only, disk full, not a directory) is a one-line ResultsError.
    """
    path = Path(path)
    if replace and is_locked(path):
        raise ResultsError(f"{path} is being written by another seqbench process{owner_of(path)}; "
                           "wait for it to finish, or choose another output")
    make_parents(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", newline=newline) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        raise ResultsError(f"{path} already exists (created meanwhile by another process?); pass --force "
                           "to overwrite it") from None
    except OSError as exc:
        raise output_error(path, exc) from None
    finally:
        if tmp is not None:  # after a rename it is gone; after a link (or a failure) it is a spare name
            Path(tmp).unlink(missing_ok=True)


def _json_text(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(obj, indent=indent, sort_keys=False, default=str) + "\n"


def write_json_atomic(path: str | Path, obj: Any, *, replace: bool = True) -> None:
    atomic_write(path, lambda fh: fh.write(_json_text(obj)), replace=replace)


def write_json_last(path: str | Path, obj: Any) -> None:
    """A sidecar's last words (how the run ended), even on a full disk.

    The atomic write needs room for a second copy; when that fails, the file is rewritten in
    place, compactly: the indented version it replaces is longer, so on an ordinary filesystem
    this needs no new blocks. Raises ResultsError if neither works.
    """
    try:
        write_json_atomic(path, obj)
        return
    except ResultsError as exc:
        first = exc
    data = _json_text(obj, indent=None).encode()
    try:
        with open(path, "r+b") as fh:
            if len(data) > os.fstat(fh.fileno()).st_size:
                raise first  # would need new blocks: leave the valid older version alone
            fh.write(data)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        raise first from None


def is_results_csv(path: str | Path) -> bool:
    """Does the file start with a seqbench results header (whatever its name)?"""
    from seqbench.results.schema import REQUIRED_COLUMNS

    try:
        head = read_header(path)
    except (OSError, ValueError):
        return False
    return tuple(head[:2]) == REQUIRED_COLUMNS[:2] and set(REQUIRED_COLUMNS) <= set(head)


def refuse_existing(path: str | Path, force: bool, hint: str = "choose another --out", *, kind: str = "") -> None:
    """The one refusal to overwrite a user's file: exit 2 unless --force. Never, even with --force,
    a file a live run owns (or its sidecar), nor a results CSV overwritten by something else (kind:
    what would be written instead, e.g. "a Markdown report")."""
    p = Path(path)
    if not p.exists():
        return
    if not (p.is_file() or p.is_dir()):  # opening a FIFO blocks; a device is nobody's output
        raise ResultsError(f"{path} exists and is not a regular file (a FIFO, socket or device); "
                           f"seqbench writes only regular files: {hint}")
    refuse_owned(p, f"overwriting {p.name}")
    if not force:
        raise ResultsError(f"{path} already exists; pass --force to overwrite it, or {hint}")
    if kind and p.is_file() and is_results_csv(p):
        raise ResultsError(f"{path} is a seqbench results CSV; writing {kind} over it would destroy its rows "
                           f"(--force does not cover that); {hint}")
    if kind and p.suffix.lower() == ".json" and p.with_suffix(".csv").is_file() and is_results_csv(p.with_suffix(".csv")):
        raise ResultsError(f"{path} is the sidecar of the results CSV {p.with_suffix('.csv').name}; writing {kind} "
                           f"over it would lose the record of that run (--force does not cover that); {hint}")


def check_output(path: str | Path, *, force: bool, append: bool = False) -> Path:
    """Refuse to clobber an existing result (CSV or its JSON sidecar) unless force is given.

    With append, an existing CSV is fine if rows of this version can be appended to it.
    """
    p = Path(path)
    if p.suffix != ".csv":
        raise ResultsError(f"--out {str(p)!r} must end in .csv (the JSON sidecar is written beside it)")
    if p.is_dir():
        raise ResultsError(f"--out {p} is a directory; give a file name ending in .csv")
    if append:
        if p.exists() and p.stat().st_size > 0:
            check_appendable(p)
            check_same_version(p)
        return p
    for existing in (p, sidecar_path(p)):
        refuse_existing(existing, force)
    return p
