"""seqbench: measure how recurrence and attention scale with sequence length and batch size.

The public API:
    register_kernel, Shape, KernelSpec    time your own layer beside the built-in kernels
    run, load, compare, merge, calibrate  the CLI's pipeline as functions
    SeqbenchError                         what every user-facing error derives from
Importing seqbench is cheap: torch, pandas and matplotlib load when first needed.

The package's layers, lowest first; a module imports only its own package and lower layers
(tests/test_layout.py checks every import, function-level ones included):
    errors, version, choices < units
    kernels, measure      what is timed and how: the registry and kernels; timer, memory, env
    results               the schema (a point's identity, Row, versions), reader, writer, merge
    sweep                 config, run plan, pre-flight budget, the sweep loop (rows to a sink)
    analysis              pure functions of results: fits, intervals, compare's verdicts
    orchestration         what spawns processes or owns this one: run into files, signals, ab, launch
    render                the console (the only printer), charts, reports
    api < cli_history < cli < this module and __main__
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
