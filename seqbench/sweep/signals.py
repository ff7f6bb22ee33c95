"""Interrupts: SIGTERM handled like Ctrl-C, and rows that an interrupt can never split.

An interrupted run must keep every row it finished: the sink writes each row (and counts it) inside
held(), which defers SIGINT/SIGTERM to the end of the block. The command line installs the same
stop for its whole life (install_handlers, from its first line: `seqbench/__main__.py`), so SIGTERM
is exit code 130 like Ctrl-C even during start-up, and ignores both once it is cleaning up.
"""

from __future__ import annotations

import contextlib


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same clean stop as Ctrl-C: current point abandoned, rows kept."""


_deferred = {"depth": 0, "pending": None}


def _terminate(signum, frame):
    raise Terminated()


def _signal_module():
    import signal
    import threading

    # handlers can only be set from the main thread; elsewhere (a notebook's worker) leave them be
    return signal if threading.current_thread() is threading.main_thread() else None


def install_handlers():
    """SIGINT raises KeyboardInterrupt and SIGTERM raises Terminated from now on (SIGTERM's default
    would kill the process with code 143 and no cleanup). Returns a function restoring the previous."""
    signal = _signal_module()
    if signal is None:
        return lambda: None
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
                signal.SIGTERM: signal.signal(signal.SIGTERM, _terminate)}

    def restore():
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)

    return restore


def ignore_interrupts() -> None:
    """After the first interrupt (or once the work is done) only cleanup is left: a second Ctrl-C
    must not cut it short or turn it into a traceback (atexit handlers included)."""
    signal = _signal_module()
    if signal is not None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


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
