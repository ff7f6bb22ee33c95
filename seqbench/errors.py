"""The errors a user can cause, and the exit codes CI reads. The CLI prints each error as one line and
exits with code 2; anything else escaping a command is an internal error with its own code (3)."""

from enum import IntEnum


class ExitCode(IntEnum):
    """What `seqbench` exits with (README "Exit codes"); CI jobs branch on these."""

    OK = 0
    REGRESSION = 1  # compare found a regression (or what --fail-on names); nothing else uses 1
    BAD_INPUT = 2  # bad input or environment (config, flags, files, an unwritable output, a second writer)
    INTERNAL = 3  # a bug in seqbench: one line; SEQBENCH_TRACEBACK=1 (or -v) prints the traceback
    SHARDS_FAILED = 4  # `seqbench launch`: some shards failed (listed); launching again reruns only them
    RESOURCES = 5  # the machine could not give a thread, process or file (EAGAIN, EMFILE, "can't start new thread")
    INTERRUPTED = 130  # SIGINT or SIGTERM, at any moment after the command started
    BROKEN_PIPE = 141  # whoever read stdout went away (`seqbench list | head -1`), as a shell reports SIGPIPE


class SeqbenchError(Exception):
    """A user-facing error: bad input or environment. One line, exit code 2."""


class ResourceError(SeqbenchError):
    """The machine ran out of threads, processes or open files (not the user's input, not a bug, not an
    interrupt: OpenBLAS raises SIGINT when it cannot start its threads). Exit code 5."""

    exit_code = ExitCode.RESOURCES


def resource_error(exc: BaseException) -> ResourceError | None:
    """The ResourceError for an exception that says the machine is out of threads/processes/files, else None."""
    import errno

    if isinstance(exc, OSError) and exc.errno in {errno.EAGAIN, errno.ENOMEM, errno.ENFILE, errno.EMFILE}:
        what = {errno.ENFILE: "open files (system-wide)", errno.EMFILE: "open files (ulimit -n)"}.get(
            exc.errno, "threads or processes (ulimit -u, a container's pids limit)")
        where = f"{exc.filename}: " if exc.filename else ""
        return ResourceError(f"{where}{exc.strerror or exc}: the machine is out of {what}; nothing was "
                             "interrupted. Retry when fewer processes run, or raise the limit")
    if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
        return ResourceError(f"{exc}: the machine is out of threads or processes (ulimit -u, a container's "
                             "pids limit); nothing was interrupted. Retry when fewer processes run, or raise the limit")
    return None


class ConfigError(SeqbenchError):
    """A sweep config or a flag is wrong: the message names the field and what is allowed."""


class PluginError(SeqbenchError):
    """A kernel plugin cannot be loaded or registered, or a kernel cannot be built."""


class ResultsError(SeqbenchError):
    """A results file cannot be read, written or appended to."""


class CompareError(SeqbenchError):
    """Two result files cannot be compared as asked."""


class ABError(SeqbenchError):
    """`seqbench ab` cannot run a side as asked (not a checkout or executable, a run that fails)."""
