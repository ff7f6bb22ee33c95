"""`seqbench run --metric instructions`: the same command again, inside ONE Valgrind (Callgrind) process.

The outer `seqbench run` checks the request (config, flags, output) as any run does, then starts
`valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no python -m seqbench run <same
arguments>` and waits for it. The inner run writes the CSV and sidecar as usual; only its points are
counted instead of timed (measure/callgrind.py switches instrumentation and collection on around
each point's calls). Start-up, imports, building and warm-up run uninstrumented, so a sweep pays
Valgrind's start-up once (`import torch` ~20 s here) instead of once per point.

What makes two processes of the same code count alike: a fixed PYTHONHASHSEED (string hashes decide
dict and set layouts, hence probe sequences), one thread (OMP/MKL too), the garbage collector off
while counting (callgrind.py). Two processes of the same code with the same seed count exactly alike
(measured: every point equal to the instruction). Another seed moves a point by up to ~0.7% (nn.RNN at
B=4, T=32: 3.171 M vs 3.192 M per call): that is the size of what any change to the code around a
kernel (a new dict key, a longer module) can do without changing its work, which is why the default
threshold is 1% and why `seqbench ab` gives its i-th run of each side the seed i-1 (paired across the
sides), so that two runs a side show it. PYTHONHASHSEED set in the environment wins; else 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from seqbench.measure.callgrind import DIR_ENV, DUMP_NAME, find_valgrind, inside  # noqa: F401

FIXED_ENV = {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # PYTHONHASHSEED: a default


def valgrind_command(valgrind: str, dump_dir: str | Path, argv: list[str]) -> list[str]:
    """The inner run's command line: this Python, `-m seqbench` and the outer run's arguments."""
    return [valgrind, "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
            f"--callgrind-out-file={Path(dump_dir) / DUMP_NAME}", "-q",
            sys.executable, "-m", "seqbench", *argv]


def run_under_valgrind(argv: list[str]) -> int:
    """Run `seqbench <argv>` under Callgrind and return its exit code (it prints its own messages).

    SIGINT from a terminal reaches both processes (one process group); a SIGTERM sent to this one is
    passed on, and either way this process waits for the inner run to record how it ended."""
    from seqbench.orchestration.signals import Terminated, interrupts_as_exceptions

    valgrind = find_valgrind()
    dump_dir = tempfile.mkdtemp(prefix="seqbench-callgrind-")
    env = {**os.environ, **FIXED_ENV, DIR_ENV: dump_dir}
    if os.environ.get("PYTHONHASHSEED", "").isdigit():  # a seed chosen by the caller (seqbench ab: one per run)
        env["PYTHONHASHSEED"] = os.environ["PYTHONHASHSEED"]
    try:
        proc = subprocess.Popen(valgrind_command(valgrind, dump_dir, argv), env=env)
        while True:
            try:
                with interrupts_as_exceptions():
                    return proc.wait()
            except Terminated:
                proc.terminate()
            except KeyboardInterrupt:
                pass  # the terminal's SIGINT reached the inner run too: wait for it to stop
    finally:
        shutil.rmtree(dump_dir, ignore_errors=True)
