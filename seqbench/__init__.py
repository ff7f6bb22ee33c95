"""seqbench: measure how recurrence and attention scale with sequence length and batch size.

The public API:
    register_kernel, Shape, KernelSpec    time your own layer beside the built-in kernels
    run, load, compare, merge, calibrate  the CLI's pipeline as functions
    SeqbenchError                         what every user-facing error derives from
Importing seqbench is cheap: torch, pandas and matplotlib load when first needed.
"""

from seqbench.errors import SeqbenchError
from seqbench.kernels.registry import KernelSpec, Shape, register_kernel
from seqbench.version import __version__

_API = ("run", "load", "compare", "ab", "merge", "calibrate", "gradflow")

__all__ = ["__version__", "SeqbenchError", "KernelSpec", "Shape", "register_kernel", *_API]


def __getattr__(name: str):
    if name in _API:
        from seqbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqbench' has no attribute {name!r}")
