"""Interrupted runs: SIGTERM handled like Ctrl-C, and `seqbench run --resume` continuing one in place.

A resumed run is the *same* run continued: same run_id, same config (checked against the JSON
sidecar; any difference is refused), new rows appended to the same CSV, points that already have a
row of this run skipped. (Adding a different run to an existing CSV is another matter.)
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from seqbench.config import ConfigError, SweepConfig
from seqbench.results import COLUMNS, KEY_COLUMNS, ResultsError, read_metadata, read_results, sidecar_path


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same clean stop as Ctrl-C: current point abandoned, rows kept."""


_deferred = {"depth": 0, "pending": None}


@contextlib.contextmanager
def interrupts_as_exceptions():
    """Within: SIGINT raises KeyboardInterrupt and SIGTERM raises Terminated, except inside held().

    Python runs signal handlers in the main thread whichever thread the signal reached (torch and
    rich have their own threads), so deferring in the handler is reliable where masking is not.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # handlers can only be set here
        yield
        return

    def handler(signum, frame):
        exc = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        if _deferred["depth"]:
            _deferred["pending"] = exc
            return
        raise exc()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _deferred["pending"] = None


@contextlib.contextmanager
def held():
    """Defer SIGINT/SIGTERM to the end of the block, so a row is never half-written or written but uncounted."""
    _deferred["depth"] += 1
    try:
        yield
    finally:
        _deferred["depth"] -= 1
        pending = _deferred["pending"]
        if pending and not _deferred["depth"]:
            _deferred["pending"] = None
            raise pending()


class CountingSink:
    """Wraps the CSV sink: each row is written and counted as one step that an interrupt cannot split."""

    def __init__(self):
        self.sink, self.rows = None, []

    def write(self, row) -> None:
        with held():
            self.sink.write(row)
            self.rows.append(row)


@dataclass
class ResumeState:
    meta: dict  # the sidecar of the run being continued
    done: frozenset  # Point.key() of every point that already has a row of this run
    rows: list  # those rows (kernel, mode, ..., seq_len, status), for budget.Preflight.observe
    note: str = ""  # what was repaired, for the user


def recorded_config(out: str | Path) -> dict:
    """The config recorded in the sidecar of `out`, for `--resume` given no config and no flags."""
    return dict(_sidecar(Path(out))["config"])


def _sidecar(p: Path) -> dict:
    if not p.is_file():
        raise ResultsError(f"{p}: nothing to resume (no such file); drop --resume to start a new run")
    meta = read_metadata(p)
    if not meta:
        raise ResultsError(f"{sidecar_path(p)}: missing; --resume needs the JSON sidecar written by the interrupted run")
    for key in ("run_id", "config"):
        if key not in meta:
            raise ResultsError(f"{sidecar_path(p)}: has no {key!r}; it was not written by `seqbench run`")
    return meta


def _still_running(meta: dict) -> bool:
    """Is the process that wrote this sidecar, on this machine, still alive (two writers would mix rows)?"""
    import os
    import socket

    if meta.get("status") != "running" or meta.get("host") != socket.gethostname() or not meta.get("pid"):
        return False
    try:
        os.kill(int(meta["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError):
        return True  # exists, but belongs to someone else
    return True


def check_same_config(meta: dict, cfg: SweepConfig, where: Path) -> None:
    old = meta["config"]
    new = json.loads(json.dumps(cfg.to_dict()))  # tuples -> lists, as in the sidecar
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise ConfigError(
                f"--resume refused: {key} is {new.get(key)!r} but the run in {where} used {old.get(key)!r}; "
                "resume with the same config, or start a new run with another --out"
            )


def _drop_partial_line(p: Path) -> str:
    """A run killed mid-write can leave half a row: cut it so the point is measured again."""
    data = p.read_bytes()
    if not data or data.endswith(b"\n"):
        return ""
    keep = data.rfind(b"\n") + 1
    with p.open("r+b") as fh:
        fh.truncate(keep)
    return f"dropped an unfinished last line ({len(data) - keep} bytes) from {p}"


def load(out: str | Path, cfg: SweepConfig) -> ResumeState:
    """Check that `out` holds an unfinished run of cfg and find which of its points are done."""
    p = Path(out)
    meta = _sidecar(p)
    if _still_running(meta):
        raise ResultsError(
            f"{p}: still being written by process {meta['pid']}; stop it (Ctrl-C) or wait for it before --resume"
        )
    check_same_config(meta, cfg, p)
    note = _drop_partial_line(p)
    if p.stat().st_size == 0:  # killed before the header reached the disk
        return ResumeState(meta, frozenset(), [], note)
    with p.open(newline="") as fh:
        header = fh.readline().rstrip("\r\n").split(",")
    if tuple(header) != COLUMNS:
        raise ResultsError(f"{p}: line 1: columns differ from this seqbench's ({len(header)} vs {len(COLUMNS)}); cannot append to it")
    df = read_results(p)
    mine = df[df["run_id"] == meta["run_id"]]
    rows = [SimpleNamespace(**rec) for rec in mine.to_dict("records")]
    done = frozenset(_key(r) for r in rows)
    return ResumeState(meta, done, rows, note)


def _key(r) -> tuple:
    """Point.key() of a row read back from the CSV (pandas types -> plain Python)."""
    conv = {"batch_size": int, "seq_len": int, "hidden_size": int, "num_heads": int, "causal": bool}
    return tuple(conv.get(c, str)(getattr(r, c)) for c in KEY_COLUMNS)
