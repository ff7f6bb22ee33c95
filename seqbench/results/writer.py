"""Writing results: the append-safe CSV sink, atomic writes, sidecars, and never clobbering a user's file."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from seqbench.errors import ResultsError
from seqbench.results.reader import read_header
from seqbench.results.schema import COLUMNS, Row, sidecar_path


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


def _file_mode() -> int:
    """What open() would give a new file here (0666 less the umask): tempfile's 0600 is not that."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[Any], None], *, newline: str | None = None) -> None:
    """Write a file via a temp file + rename, so a reader never sees half of it; write(fh) fills it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline=newline) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, obj: Any) -> None:
    def write(fh):
        json.dump(obj, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")

    atomic_write(path, write)


def refuse_existing(path: str | Path, force: bool, hint: str = "choose another --out") -> None:
    """The one refusal to overwrite a user's file: exit 2 unless --force."""
    if Path(path).exists() and not force:
        raise ResultsError(f"{path} already exists; pass --force to overwrite it, or {hint}")


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
        refuse_existing(existing, force)
    return p
