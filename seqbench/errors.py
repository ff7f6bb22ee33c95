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
    INTERRUPTED = 130  # SIGINT or SIGTERM, at any moment after the command started
    BROKEN_PIPE = 141  # whoever read stdout went away (`seqbench list | head -1`), as a shell reports SIGPIPE


class SeqbenchError(Exception):
    """A user-facing error: bad input or environment. One line, exit code 2."""


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
