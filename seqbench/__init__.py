"""seqbench: measure how recurrence and attention scale with sequence length and batch size."""

__version__ = "0.1.0"


class SeqbenchError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits with code 2."""


__all__ = ["__version__", "SeqbenchError"]
