"""Interrupts: SIGTERM handled like Ctrl-C, at any moment, and rows that an interrupt can never split.

Two ways to stop, by what is at stake:
- While a run writes its results (interrupts_as_exceptions), SIGINT raises KeyboardInterrupt and
  SIGTERM raises Terminated, so the runner can record how the run ended. The sink writes each row
  (and counts it) inside held(), which defers the interrupt to the end of the row. An interrupt that
  lands inside an import is deferred to the next such safe point too (checkpoint(): each point, each
  row): raised inside a C extension's initialisation (torch importing numpy) it was swallowed, so
  the run went on and exited 0, or it left a module half-loaded ("cannot load module more than
  once per process").
- Anywhere else in the `seqbench` command (start-up, imports, reading, plotting) nothing is half
  done that an exception could tidy up, so the handler prints one line and exits at once with 130
  (exit_on_interrupt, installed by the first line of seqbench/__main__.py). Raising there instead
  was not reliable: swallowed inside imports, or turned by typer into a silent exit.
Once a command is cleaning up after an error or an interrupt, both signals are ignored.

A SIGINT is not always a person: OpenBLAS raises SIGINT in its own process when it cannot start its
threads ("blas_thread_init: pthread_create failed ... Resource temporarily unavailable", on a machine
at its process/thread limit). So before a SIGINT is called an interrupt, one thread is started as a
probe; if that fails too, the cause is the machine's limit: exit code 5 (errors.ResourceError).

A signal reaches Python's handler only between bytecodes: a call in flight (one torch op of 90 s) would
delay "interrupted" until it returns, and a CI runner kills the job after a few seconds. So while a run
writes its results, a watchdog thread is woken by the signal itself (signal.set_wakeup_fd: written by
the C-level handler, at once); if the run has not begun to record its end within GRACE_S, the
watchdog records it (on_stuck: the sidecar says interrupted, and which point was in flight) and ends
the process with 130. Rows already written are complete (each is one write); the point in flight has
none, so --resume measures it again.
"""

from __future__ import annotations

import contextlib


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same clean stop as Ctrl-C: current point abandoned, rows kept."""


_state = {"depth": 0, "pending": None, "last": None, "raising": 0}
GRACE_S = 0.5  # how long the main thread may take to start recording an interrupt before the watchdog does
_watch: dict = {"on_stuck": None, "in_flight": None, "finishing": None}


def on_stuck(record) -> None:
    """record(signal_name, point_in_flight) writes how the run ended when the main thread cannot (a long
    call in flight); None when nothing is to be recorded. Set by the runner for the run's duration."""
    _watch["on_stuck"] = record


def in_flight(point) -> None:
    """The point being measured now (None between points): what the watchdog names if it ends the run."""
    _watch["in_flight"] = point


def finishing() -> bool:
    """Claim the end of the run for the main thread: False if the watchdog already claimed it."""
    lock = _watch["finishing"]
    return lock is None or lock.acquire(blocking=False)


def _watchdog(read_fd: int) -> None:
    import os
    import signal
    import time

    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        signums = [b for b in data if b in (signal.SIGINT, signal.SIGTERM)]
        if not signums:
            continue
        time.sleep(GRACE_S)
        record, lock = _watch["on_stuck"], _watch["finishing"]
        if record is None or lock is None or not lock.acquire(blocking=False):
            continue  # the main thread is recording the end itself (or nothing is to be recorded)
        name = "SIGTERM" if signums[-1] == signal.SIGTERM else "SIGINT"
        try:
            record(name, _watch["in_flight"])
        finally:
            os.write(2, f"seqbench: error: interrupted by {name} (recorded while a call was still in flight)\n"
                        .encode())
            os._exit(130)


@contextlib.contextmanager
def _watching():
    """The watchdog for the duration of a run (main thread only; elsewhere signals are not ours)."""
    import os
    import threading

    signal = _signal_module()
    if signal is None:
        yield
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except (ValueError, OSError):
        os.close(r)
        os.close(w)
        yield
        return
    _watch["finishing"] = threading.Lock()
    thread = threading.Thread(target=_watchdog, args=(r,), name="seqbench-interrupt-watchdog", daemon=True)
    thread.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(w)  # the watchdog reads end-of-file and returns
        thread.join(timeout=1.0)
        os.close(r)
        _watch.update(finishing=None, in_flight=None)


def _name(exc) -> str:
    return "SIGTERM" if exc is Terminated else "SIGINT"


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _out_of_threads() -> str | None:
    """Why no thread can be started now (the probe failed), or None: the test that tells OpenBLAS's
    self-raised SIGINT from a person's Ctrl-C."""
    import threading

    try:
        probe = threading.Thread(target=lambda: None, daemon=True)
        probe.start()
        probe.join()
    except RuntimeError as exc:  # "can't start new thread"
        return str(exc)
    return None


def _resource_message(why: str) -> str:
    return (f"a SIGINT came while no thread could be started ({why}): the machine is out of threads or "
            "processes (OpenBLAS raises SIGINT when it cannot start its threads), not an interrupt; retry "
            "when fewer processes run, or raise the limit (ulimit -u, a container's pids limit)")


def _stop(signum, frame):
    """SIGINT/SIGTERM -> KeyboardInterrupt/Terminated, except while a row is written or a module is
    imported: then at the next checkpoint. A SIGINT while no thread can start is a ResourceError."""
    import signal

    exc = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    why = _out_of_threads() if signum == signal.SIGINT else None
    if why:
        import functools

        from seqbench.errors import ResourceError

        exc = functools.partial(ResourceError, _resource_message(why))
    if _state["depth"] or _importing(frame):
        _state["pending"] = exc
        return
    if not why:
        _state["last"] = _name(exc)
    raise exc()


def _exit_now(signum, frame):
    """Outside a run: one line, exit 130, nothing to tidy (see the module doc)."""
    import os
    import signal
    import sys

    if _state["raising"]:  # a run that started inside this process took over
        return _stop(signum, frame)
    why = _out_of_threads() if signum == signal.SIGINT else None
    if why:
        os.write(2, f"seqbench: error: {_resource_message(why)}\n".encode())
        os._exit(5)  # errors.ExitCode.RESOURCES (not imported here: this runs before anything else is loaded)
    stop_children(signum)  # ab's run, launch's shard jobs: never left measuring beside a relaunch
    by = " by SIGTERM" if signum == signal.SIGTERM else ""
    show_cursor = "\x1b[?25h" if sys.stderr.isatty() else ""  # a progress bar may have hidden it
    os.write(2, f"{show_cursor}seqbench: error: interrupted{by}\n".encode())
    os._exit(130)


_CHILDREN: list = []  # stop(signum) of each process tree this process started and still waits for


def stop_children(signum: int) -> None:
    """Pass a SIGINT/SIGTERM on to what this process started (each stop waits for its child to end, so
    the child's own cleanup, e.g. its sidecar saying "interrupted", is done before this process exits)."""
    for stop in list(reversed(_CHILDREN)):
        try:
            stop(signum)
        except Exception:  # noqa: BLE001 - stopping the others matters more than one failure
            pass
    _CHILDREN.clear()


@contextlib.contextmanager
def children_stopped(stop):
    """Within: stop(signum) is called if this process is interrupted (a signal that exits at once, or a
    KeyboardInterrupt leaving the block), so a SIGTERM sent to `seqbench ab` or `launch` alone (as
    `timeout` and CI cancels do) reaches its children too."""
    import signal

    _CHILDREN.append(stop)
    try:
        yield
    except KeyboardInterrupt as exc:
        if stop in _CHILDREN:
            _CHILDREN.remove(stop)
            stop(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
        raise
    finally:
        if stop in _CHILDREN:
            _CHILDREN.remove(stop)


def stop_process(proc, signum: int, grace_s: float = 30.0) -> None:
    """Send signum to a child process and wait for it to end (SIGKILL after grace_s)."""
    import subprocess

    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signum)
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except OSError:
        pass


def checkpoint() -> None:
    """A safe point: raise an interrupt that was deferred (it came during an import or a row write)."""
    pending = _state["pending"]
    if pending and not _state["depth"]:
        _state["pending"] = None
        if pending in (KeyboardInterrupt, Terminated):  # not a ResourceError (see _stop)
            _state["last"] = _name(pending)
        raise pending()


def is_signal(exc: BaseException) -> bool:
    """Did this KeyboardInterrupt come from a real SIGINT/SIGTERM? While seqbench's handlers are installed
    every signal is recorded before anything is raised (or the process exits at once), so one that was
    not is a user's code raising KeyboardInterrupt itself: an error of that kernel, not an interrupt.
    Under Python's own handler (seqbench as a library) nothing tells them apart: a signal, to be safe."""
    if not isinstance(exc, KeyboardInterrupt):
        return False
    if _state["last"] is not None:
        return True
    signal = _signal_module()
    return signal is None or signal.getsignal(signal.SIGINT) not in (_stop, _exit_now)


def last_interrupt(forget: bool = False) -> str | None:
    """'SIGINT' or 'SIGTERM': the signal that last stopped something in this process (then forgotten
    if asked, so the next command starts afresh)."""
    last = _state["last"]
    if forget:
        _state["last"] = None
    return last


def _signal_module():
    import signal
    import threading

    # handlers can only be set from the main thread; elsewhere (a notebook's worker) leave them be
    return signal if threading.current_thread() is threading.main_thread() else None


def install_handlers(exit_at_once: bool = False):
    """From now on SIGINT and SIGTERM stop seqbench (SIGTERM's default would kill the process with
    code 143 and no cleanup): by exiting at once with 130 (the command line, outside a run), or by
    raising (a run; or seqbench used as a library). Returns a function restoring the previous ones."""
    signal = _signal_module()
    if signal is None:
        return lambda: None
    handler = _exit_now if exit_at_once else _stop
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

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
    """Within: SIGINT raises KeyboardInterrupt and SIGTERM raises Terminated, at once or at the next
    checkpoint (held(): after the row).

    Python runs signal handlers in the main thread whichever thread the signal reached (torch and
    rich have their own threads), so deferring in the handler is reliable where masking is not.
    """
    restore = install_handlers()
    _state["raising"] += 1
    try:
        with _watching():
            yield
            checkpoint()  # one that came in the last moments of the block: the command still stops
    finally:
        _state["raising"] -= 1
        restore()
        _state["pending"] = None


@contextlib.contextmanager
def held():
    """Defer SIGINT/SIGTERM to the end of the block, so a row is never half-written or written but uncounted."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        checkpoint()


class CountingSink:
    """Wraps the CSV sink: each row is written and counted as one step that an interrupt cannot split."""

    def __init__(self):
        self.sink, self.rows = None, []

    def write(self, row) -> None:
        with held():
            self.sink.write(row)
            self.rows.append(row)
