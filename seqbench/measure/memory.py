"""Memory, in one place: the peak of one call, measured where torch lets us, else an analytic
estimate (labelled so); the estimate of a point before anything is built (estimate_bytes); and the
budget a command holds its estimates against (budget_for: --max-memory, or SAFE_FRACTION of the
memory free now: CPU MemAvailable from /proc/meminfo, CUDA torch.cuda.mem_get_info).

How the peak of one call is measured:

- cuda_allocator: torch.cuda.max_memory_allocated over one call (after reset_peak_memory_stats),
  minus what was allocated before the call, plus `resident_bytes` (as on CPU).
- cpu_profiler:   torch's profiler with profile_memory=True records every allocation and free made
  through c10's CPU allocator; replaying them in time order gives the peak of live bytes during the
  call. Weights, inputs and anything else alive before the call are added as `resident_bytes`.
  Resolution is one op: scratch space freed inside the op that made it is not seen.
- analytic:       weights + inputs + the kernel's activation estimate (see each kernel's docs).
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Callable

from seqbench.errors import ConfigError
from seqbench.units import fmt_bytes

SAFE_FRACTION = 0.8  # headroom for the allocator's caching, the interpreter, and the estimate's error


def is_out_of_memory(exc: BaseException) -> bool:
    """A failed allocation, whichever allocator raised it (CPU: MemoryError or c10's message; CUDA: OutOfMemoryError)."""
    import torch

    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text


def release_memory(device: str) -> None:
    """Hand freed memory back: collect dropped tensors (and, on CUDA, empty the allocator's cache)."""
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def tensor_bytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def analytic_bytes(spec, shape, elem_size: int, train: bool, param_bytes: int) -> int:
    """Weights (+ their grads in train mode) + input + output gradient + activation estimate."""
    io = shape.batch_size * shape.seq_len * shape.hidden_size * elem_size
    weights = param_bytes * (2 if train else 1)
    return int(weights + io * (2 if train else 1) + spec.activation_bytes_fn(shape, elem_size, train))


def decode_step_bytes(spec, shape, elem_size: int) -> float:
    """Activations of one decode step for B sequences: the kernel's own per-token rule at one token, plus
    for softmax attention (quadratic) its score row over the T + 1 cached keys, scores and softmax."""
    import dataclasses

    one_token = spec.activation_bytes_fn(dataclasses.replace(shape, seq_len=1), elem_size, False)
    scores = 2 * shape.batch_size * shape.num_heads * (shape.seq_len + 1) * elem_size if spec.quadratic else 0
    return float(one_token + scores)


def decode_analytic_bytes(spec, shape, elem_size: int, param_bytes: int, state_bytes: int) -> int:
    """Weights + the decode state (KV cache or recurrent state) + the new token + one step's activations."""
    token = shape.batch_size * shape.hidden_size * elem_size
    return int(param_bytes + state_bytes + token + decode_step_bytes(spec, shape, elem_size))


@contextlib.contextmanager
def _quiet_stderr():
    # The profiler's C++ side logs to fd 2 on every start/stop; keep the user's terminal clean.
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def profiled_call(fn: Callable[[], object], *, memory: bool = False) -> list:
    """One call of fn under torch's (kineto) profiler (CPU-side op records, which also name the CUDA ops
    dispatched; allocation events when `memory`), its events in time order.

    The profiler torch.profiler.profile wraps, called directly: the wrapper's first start asks
    `hasattr(torch, "_inductor")`, which imports inductor and dynamo (1.2-1.8 s of every run's first
    point on a 2-core machine; measured 2026-12-04) for a setting that only matters to CUDA graphs
    of compiled code. The events are the same (checked on every built-in kernel and mode)."""
    from torch.autograd.profiler import profile

    with _quiet_stderr():
        with profile(use_cpu=True, use_kineto=True, profile_memory=memory) as prof:
            fn()
        return sorted(prof.function_events, key=lambda e: e.time_range.start)


def peak_from_events(events) -> int:
    """Replay allocations and frees in time order: the peak of live bytes above the start."""
    live = peak = 0
    for e in events:
        if e.self_cpu_memory_usage:
            live += e.self_cpu_memory_usage
            peak = max(peak, live)
    return peak


def cuda_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak of torch.cuda.max_memory_allocated during one call, above what was allocated before it.

    Relative, like the CPU figure: the device also holds cuBLAS's workspace (32 MiB by default, taken
    from the same allocator) and whatever else the process keeps, which is not this kernel's cost.
    """
    import torch

    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated() - before)


def measure_peak(fn: Callable[[], object], device: str, resident_bytes: int) -> tuple[int, str, list | None]:
    """Peak bytes of one call: the kernel's own transient peak plus its resident weights and inputs.

    Also returns the profiler events of that call on CPU (None on CUDA, where the allocator
    measures), so what else is read off a call (probe.sdpa_backend) needs no second call.
    """
    if device == "cuda":
        return resident_bytes + cuda_peak_bytes(fn), "cuda_allocator", None
    events = profiled_call(fn, memory=True)
    return resident_bytes + peak_from_events(events), "cpu_profiler", events


# --- estimates before anything is built, and the budget they are held against ---


def available_bytes(device: str, meminfo: str | Path = "/proc/meminfo") -> tuple[int, str] | None:
    """(free bytes, where the figure came from) for the device, or None if it cannot be read."""
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free), "free CUDA memory (torch.cuda.mem_get_info)"
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                kib = int(line.split()[1])  # the kernel reports kB meaning KiB
                return kib * 1024, f"MemAvailable in {meminfo}"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free physical pages (sysconf)"
    except (ValueError, OSError, AttributeError):
        return None


def budget_for(device: str, max_memory: int = 0) -> tuple[int | None, str]:
    """The budget for a command on device: max_memory bytes, or SAFE_FRACTION of the free memory."""
    if max_memory:
        return max_memory, "--max-memory"
    avail = available_bytes(device)
    if avail is None:
        return None, "no budget: free memory could not be read"
    free, source = avail
    return int(free * SAFE_FRACTION), f"{SAFE_FRACTION:g} x {source} ({fmt_bytes(free)})"


def check_each_fits(needs: list[tuple[int, str]], device: str, max_memory: int, command: str) -> None:
    """For commands that need every allocation they plan (gradflow, calibrate), not a sweep that
    can skip a point: (estimated bytes, what) pairs; the largest must fit in the budget (exit 2)."""
    budget, source = budget_for(device, max_memory)
    if not budget or not needs:
        return
    need, what = max(needs)
    if need > budget:
        raise ConfigError(f"{command}: {what} needs about {fmt_bytes(need)} of memory and the budget is {fmt_bytes(budget)} "
                          f"({source}); use smaller sizes, or raise --max-memory")


@functools.lru_cache(maxsize=None)
def _elem_size(dtype: str) -> int:
    import torch

    return torch.empty((), dtype=getattr(torch, dtype)).element_size()


def param_bytes(kernel: str, shape, dtype: str) -> int:
    """Bytes of the kernel's parameters at shape (kernels.Shape), counted on the meta device (nothing is allocated)."""
    import torch

    from seqbench.kernels import get_kernel

    spec = get_kernel(kernel)
    try:
        with torch.device("meta"):  # factories that build on the default device first allocate nothing either
            module = spec.build(shape, torch.device("meta"), getattr(torch, dtype))
        return sum(p.numel() * p.element_size() for p in module.parameters())
    except Exception:  # noqa: BLE001 - a factory that fails is reported when the point runs
        return 0


def decode_state_bytes(kernel: str, shape, dtype: str) -> int:
    """Bytes of the decode state for B sequences and T + 1 tokens, from init_state on the meta device
    (nothing is allocated); 0 for a kernel without a decode step (its points are skipped anyway)."""
    import torch

    from seqbench.kernels import get_kernel
    from seqbench.kernels.decode import has_decode, state_nbytes

    spec = get_kernel(kernel)
    try:
        with torch.device("meta"):
            module = spec.build(shape, torch.device("meta"), getattr(torch, dtype))
            if not has_decode(module):
                return 0
            return state_nbytes(module.init_state(shape.batch_size, shape.seq_len + 1))
    except Exception:  # noqa: BLE001 - a factory or init_state that fails is reported when the point runs
        return 0


def estimate_bytes(kernel: str, shape, mode: str, dtype: str, params: int | None = None) -> int:
    """The estimated peak of one call of kernel at shape (kernels.Shape) in mode, before anything is
    built: analytic_bytes (or decode_analytic_bytes), with the parameters counted on the meta device
    unless given (params)."""
    from seqbench.kernels import get_kernel

    spec = get_kernel(kernel)
    params = param_bytes(kernel, shape, dtype) if params is None else params
    if mode == "decode":
        return decode_analytic_bytes(spec, shape, _elem_size(dtype), params, decode_state_bytes(kernel, shape, dtype))
    return analytic_bytes(spec, shape, _elem_size(dtype), mode == "train", params)
