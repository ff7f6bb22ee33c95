"""Peak memory of one call: measured where torch lets us, else an analytic estimate (labelled so).

- cuda_allocator: torch.cuda.max_memory_allocated over one call (after reset_peak_memory_stats),
  minus what was allocated before the call, plus `resident_bytes` (as on CPU).
- cpu_profiler:   torch.profiler with profile_memory=True records every allocation and free made
  through c10's CPU allocator; replaying them in time order gives the peak of live bytes during the
  call. Weights, inputs and anything else alive before the call are added as `resident_bytes`.
  Resolution is one op: scratch space freed inside the op that made it is not seen.
- analytic:       weights + inputs + the kernel's activation estimate (see each kernel's docs).
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable


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
    """One call of fn under torch.profiler (CPU-side op records, which also name the CUDA ops
    dispatched; allocation events when `memory`), its events in time order."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=memory) as prof:
            fn()
        return sorted(prof.events(), key=lambda e: e.time_range.start)


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
