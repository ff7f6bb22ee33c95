"""Instruction counts of a call, from inside a process that runs under Valgrind's Callgrind.

The process runs as `valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no ...` (see
orchestration/valgrind.py): nothing is instrumented while Python starts, imports torch and builds a point,
which is what makes a whole sweep in one Valgrind process affordable (`import torch` takes ~20 s
uninstrumented here, ~100 s instrumented). Around each point's calls this module switches
instrumentation on, and collection on only for the calls themselves, with Valgrind's client
requests: the magic instruction sequence of valgrind.h, which Valgrind recognises and which a CPU
runs as a no-op. torch._C has toggle-collect and dump requests (torch.utils.benchmark uses them)
but none to start instrumentation, so the sequence is issued here, from a few bytes of machine code
called through ctypes: no compiler, no valgrind headers. x86-64 only (the sequence differs per
architecture); elsewhere `supported()` says why not.

Counts are read back from the dumps Callgrind writes on request (the `totals:` line), into the
folder named by SEQBENCH_CALLGRIND_DIR.
"""

from __future__ import annotations

import ctypes
import gc
import math
import mmap
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

DIR_ENV = "SEQBENCH_CALLGRIND_DIR"  # where Callgrind writes its dumps (set by orchestration/valgrind.py)
BLOCK_TARGET = 5e6  # instructions a counted block aims at (count(number=None)); 1e7 made ab on ci.toml 195 s, 5e6 169 s
MAX_NUMBER = 50  # calls a block holds at most
DUMP_NAME = "callgrind.out"  # --callgrind-out-file=DIR/callgrind.out; dumps on request are callgrind.out.N

# valgrind.h / callgrind.h request codes
_RUNNING_ON_VALGRIND = 0x1001
_BASE = (ord("C") << 24) | (ord("T") << 16)  # VG_USERREQ_TOOL_BASE('C', 'T')
_DUMP_STATS, _ZERO_STATS, _TOGGLE_COLLECT, _DUMP_STATS_AT, _START_INSTR, _STOP_INSTR = range(_BASE, _BASE + 6)

# size_t request(size_t args[6]): valgrind.h's VALGRIND_DO_CLIENT_REQUEST_EXPR for amd64, default 0.
_AMD64 = bytes.fromhex(
    "4889f8"  # mov rax, rdi: the argument block
    "31d2"  # xor edx, edx: the result when not under Valgrind
    "48c1c703" "48c1c70d" "48c1c73d" "48c1c733"  # rol rdi by 3, 13, 61, 51 (128 in all: rdi unchanged)
    "4887db"  # xchg rbx, rbx: the request
    "4889d0"  # mov rax, rdx
    "c3"  # ret
)

_request = None
_code = None  # the executable page; alive as long as _request


class CallgrindError(RuntimeError):
    """The process cannot count instructions (not under Callgrind, or a dump could not be read)."""


def supported() -> str:
    """'' if client requests can be issued on this machine, else why not."""
    if not sys.platform.startswith("linux"):
        return f"instruction counting runs under Valgrind on Linux only; this is {sys.platform}"
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return f"instruction counting issues Valgrind requests for x86-64 only; this machine is {machine}"
    return ""


def _req(code: int, *args: int) -> int:
    global _request, _code
    if _request is None:
        why = supported()
        if why:
            raise CallgrindError(why)
        _code = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        _code.write(_AMD64)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(_code))
        _request = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t))(addr)
    block = (ctypes.c_size_t * 6)(code, *args)
    return int(_request(block))


def on_valgrind() -> bool:
    """True when this process runs under Valgrind (RUNNING_ON_VALGRIND; always False off x86-64)."""
    return not supported() and _req(_RUNNING_ON_VALGRIND) > 0


@dataclass
class Counts:
    """Instructions per call of one point: one entry per block of `number` calls."""

    samples: list[float]  # instructions per call, each block's count less the empty block's, / number
    number: int  # calls per block
    overhead: int  # instructions of an empty block (the requests themselves), taken off every block

    @property
    def median(self) -> float:
        import statistics

        return statistics.median(self.samples)


class Counter:
    """Reads Callgrind's dumps from DIR (SEQBENCH_CALLGRIND_DIR): one `count(fn, number)` per block."""

    def __init__(self, folder: str | Path | None = None):
        folder = folder or os.environ.get(DIR_ENV)
        if not folder or not on_valgrind():
            raise CallgrindError("instruction counts need the process to run under Callgrind: "
                                 "use `seqbench run --metric instructions`, which starts it")
        self.folder = Path(folder)

    def _dumped(self) -> int:
        """Instructions in the dump just written (then deleted): its `totals:` line."""
        found = [p for p in self.folder.iterdir() if p.name.startswith(DUMP_NAME + ".")]
        if len(found) != 1:
            raise CallgrindError(f"expected one Callgrind dump in {self.folder}, found {len(found)}")
        total = None
        for line in found[0].read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total = int(line.split()[1])
        found[0].unlink()
        if total is None:
            raise CallgrindError(f"{found[0]}: no totals line (not a Callgrind dump?)")
        return total

    def block(self, fn: Callable[[], object], number: int) -> int:
        """Instructions executed by `number` calls of fn, with the requests around them."""
        _req(_ZERO_STATS)
        _req(_TOGGLE_COLLECT)
        for _ in range(number):
            fn()
        _req(_TOGGLE_COLLECT)
        _req(_DUMP_STATS)
        return self._dumped()

    def count(self, fn: Callable[[], object], *, number: int | None = None, repeats: int = 3, warmup: int = 2,
              block_target: float = BLOCK_TARGET) -> Counts:
        """Instructions per call of fn: `repeats` blocks of `number` calls, each less an empty block.

        The warm-up calls run uninstrumented; then one counted call (a block of one) translates the
        code with instrumentation, takes torch's lazy first-call paths and the requests' own, so that
        every later block sees the same state, and sizes the blocks when number=None: as many calls as
        make `block_target` instructions (at most MAX_NUMBER). Under Valgrind a call is as slow
        uninstrumented as instrumented (an AVX2 matmul runs ~1000x slower than natively either way),
        so every call beyond the counted blocks costs as much as a counted one: a caller that has
        already called fn once (seqbench's output check) passes warmup=0. One call alone varies by 0.2-0.8%
        from block to block (an allocator that sometimes reaches malloc, a cache that sometimes
        refills), and a block of one call read 0.4% above a block of ten on nn.RNN at B=4, T=32
        (3.19 M vs 3.17 M): a fixed cost of starting a block that one call cannot amortise. Blocks of
        ~5 M instructions agree to ~0.07% (median over ci.toml's points; 0.06% at ~10 M, which cost
        26 s more per `ab`); the spread is in every row: instructions_samples.
        The garbage collector is off while counting: a collection falls where the allocation count
        says, which is noise here.
        """
        for _ in range(warmup):
            fn()
        enabled = gc.isenabled()
        gc.collect()
        gc.disable()
        _req(_START_INSTR)
        try:
            first = self.block(fn, 1)
            overhead = self.block(fn, 0)
            if number is None:
                number = max(1, min(MAX_NUMBER, math.ceil(block_target / max(first - overhead, 1))))
            samples = [(self.block(fn, number) - overhead) / number for _ in range(repeats)]
        finally:
            _req(_STOP_INSTR)
            if enabled:
                gc.enable()
        return Counts(samples, number, overhead)


INSTALL_HINT = "install it: `sudo apt-get install valgrind` (Debian, Ubuntu) or `sudo dnf install valgrind` (Fedora)"


def inside() -> bool:
    """True in the inner run: started by orchestration.valgrind and running under Valgrind."""
    return bool(os.environ.get(DIR_ENV)) and on_valgrind()


def find_valgrind() -> str:
    """The valgrind executable, or a one-line ConfigError (exit 2) saying how to get it."""
    import shutil

    from seqbench.errors import ConfigError

    why = supported()
    if why:
        raise ConfigError(f"--metric instructions: {why}; use --metric time")
    exe = shutil.which("valgrind")
    if exe is None:
        raise ConfigError(f"--metric instructions counts under Valgrind, which is not installed: {INSTALL_HINT}")
    return exe
