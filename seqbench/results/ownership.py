"""One owner per output file: created exclusively, locked for as long as its writer lives.

A results CSV is written by one process at a time. The writer holds an exclusive `flock` on the
CSV's open file for the whole run (including `--resume` and `--append`), so a second writer is
refused with one line, and the lock dies with its process however that process ends: a run killed
with SIGKILL, or inside a container or PID namespace whose process ids mean nothing here, is always
resumable. No process id is trusted; the one in the sidecar only names the owner in messages.

Also here: the check that no output of a command is one of its inputs (followed through symlinks
and hard links), and OSErrors on an output turned into one-line ResultsErrors.
"""

from __future__ import annotations

import errno
import os
import weakref
from pathlib import Path
from typing import Iterable, Literal

from seqbench.errors import ResultsError

try:  # POSIX; elsewhere outputs are still created exclusively, but not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

How = Literal["new", "replace", "append", "resume"]
# the filesystem cannot lock (some network mounts): write unlocked rather than refuse to run
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def output_error(path: str | Path, exc: OSError, doing: str = "write") -> ResultsError:
    """An OSError on an output as one line: which file, what failed, why (no traceback)."""
    why = exc.strerror or str(exc)
    if isinstance(exc, IsADirectoryError) or exc.errno == errno.EISDIR:
        why = "it is a directory; give a file name"
    elif isinstance(exc, NotADirectoryError) or exc.errno == errno.ENOTDIR:
        why = "a part of its path is a file, not a directory"
    return ResultsError(f"cannot {doing} {path}: {why}")


def owner_of(path: str | Path) -> str:
    """' (pid N on HOST)' from the output's sidecar, for messages; '' when unknown."""
    import json

    try:
        meta = json.loads(Path(path).with_suffix(".json").read_text())
        return f" (pid {int(meta['pid'])} on {meta['host']})" if isinstance(meta, dict) else ""
    except (OSError, ValueError, KeyError, TypeError):
        return ""


class Output:
    """An output file this process owns: its open descriptor and the exclusive lock on it.

    The lock is released when release() is called, when the object is garbage-collected, or when
    the process dies (the kernel drops it with the descriptor).
    """

    def __init__(self, path: Path, fd: int, created: bool):
        self.path, self.fd, self.created = path, fd, created
        self._close = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        self._close()

    @property
    def released(self) -> bool:
        return not self._close.alive

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def make_parents(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:  # a parent is a file
        raise output_error(path, NotADirectoryError(errno.ENOTDIR, exc.strerror), "create") from None
    except OSError as exc:
        raise output_error(path, exc, "create") from None


def _lock(fd: int, path: Path) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ResultsError(f"{path} is being written by another seqbench process{owner_of(path)}; wait for it to "
                           "finish or stop it, or choose another --out") from None
    except OSError as exc:
        if exc.errno not in _NO_LOCKS:
            raise output_error(path, exc, "lock") from None


def own(path: str | Path, how: How) -> Output:
    """Take ownership of an output CSV, or raise a one-line ResultsError.

    new: create it; it must not exist (O_EXCL: of two runs started at once, exactly one gets it).
    replace (--force): create it or take an existing one, which is emptied only once it is ours.
    append / resume: take the existing file (append also creates a missing one), contents kept.
    """
    path = Path(path)
    make_parents(path)
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    if how == "new":
        flags |= os.O_CREAT | os.O_EXCL
    elif how in ("replace", "append"):
        flags |= os.O_CREAT
    existed = path.exists()
    try:
        fd = os.open(path, flags, 0o666)
    except FileExistsError:
        raise ResultsError(f"{path} already exists (another run created it just now?); pass --force to "
                           "overwrite it, or choose another --out") from None
    except FileNotFoundError:
        raise ResultsError(f"{path}: nothing to resume (no such file)") from None
    except OSError as exc:
        raise output_error(path, exc, "create" if not existed else "open") from None
    out = Output(path, fd, created=not existed)
    try:
        _lock(fd, path)
    except BaseException:
        out.release()
        raise
    return out


def is_locked(path: str | Path) -> bool:
    """Does a live process own this file (holds its lock)? For writers that replace a file whole."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)


def abandoned(csv_path: str | Path, meta: dict) -> bool:
    """A sidecar that still says running while no process holds the CSV's lock: the run was killed
    (SIGKILL, the out-of-memory killer) or crashed (a segfault in a kernel) before it recorded its end."""
    return isinstance(meta, dict) and meta.get("status") == "running" and not is_locked(csv_path)


def unfinished(csv_path: str | Path, meta: dict) -> str | None:
    """How the run of csv_path ended if it did not complete, in words (None: complete, or no record)."""
    status = meta.get("status") if isinstance(meta, dict) else None
    if status in (None, "complete"):
        return None
    if abandoned(csv_path, meta):
        return ("ended without recording how: the process was killed (SIGKILL, the out-of-memory killer) or "
                "crashed (a segfault in a kernel)")
    if status == "running":
        return "still running: another process is writing it now"
    if status == "interrupted":
        return f"interrupted by {meta.get('interrupted_by') or 'a signal'}"
    return f"{status}" + (f": {meta['error']}" if meta.get("error") else "")


def refuse_owned(path: str | Path, what: str = "it") -> None:
    """Refuse to replace or delete a file a live seqbench run owns (its CSV holds the lock), or the
    sidecar of such a CSV: --force never overrides a running writer."""
    path = Path(path)
    csv_path = path.with_suffix(".csv") if path.suffix == ".json" else path
    if is_locked(csv_path):
        raise ResultsError(f"{path} belongs to a seqbench run still writing {csv_path.name}{owner_of(csv_path)}; "
                           f"{what} would destroy its rows (--force does not override a running writer); wait for "
                           "it to finish or stop it, or choose another output")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_not_input(outputs: Iterable[str | Path], inputs: Iterable[str | Path], what: str = "output") -> None:
    """Refuse an output that is one of the command's inputs (same path, symlink or hard link):
    writing it would destroy what is being read, with or without --force."""
    inputs = [Path(p) for p in inputs if p is not None]
    for out in (Path(o) for o in outputs):
        for src in inputs:
            if _same_file(out, src):
                raise ResultsError(f"{what} {out} is also an input ({src}); write it to another file")
