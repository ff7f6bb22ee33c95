"""The errors a user can cause. The CLI prints each as one line and exits with code 2 (see exit codes
in the README); anything else escaping a command is an internal error with its own exit code."""


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
