"""Capacity: the largest batch whose decode state fits a memory budget at a context length, and its tokens/s.

This is the number behind the recurrent revival's generation claims (Mamba's 4-5x throughput comes
from the batch that fits without a KV cache, not from a faster step), so it is measured, not only
computed: every candidate batch B is allocated (weights + init_state for T + 1 tokens + the new token)
and one step is run, and its bytes are what the allocator saw (CPU: the profiler's replay of a step's
allocations; CUDA: the caching allocator's peak). B fits when that total is within the budget and no
allocation failed.

Search: B = 1 and 2 give a straight line (fixed bytes + bytes per sequence); its prediction is
checked, then the search gallops up or down from it one, two, four... sequences at a time and
bisects, so the answer B fits as measured and B + 1 was measured not to fit (usually four probes in
all). A candidate the line predicts over twice the budget is not allocated (a CPU has no allocator
that fails cleanly before the kernel's OOM killer steps in).

Prefilling B*T tokens at the capacity batch would take hours for a recurrence (B runs into the
hundreds of thousands), so one sequence is prefilled for real and its state copied into every batch
row (kernels.decode.broadcast_state): the memory and the step's work are those of B sequences. A state
that init_state cannot shape ahead of time (a cache that grows with every token, an object) is made
by repeating the one sequence's tensors along their batch axis, found by comparing states of one and
two sequences after the same context (kernels.state.replicate).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from seqbench.kernels import get_kernel
from seqbench.kernels.decode import broadcast_state
from seqbench.kernels.state import batch_axes, replicate
from seqbench.measure.memory import (cuda_peak_bytes, decode_step_bytes, is_out_of_memory, peak_from_events,
                                     profiled_call)
from seqbench.results.identity import Point

MAX_BATCH = 1 << 22
GUARD = 2.0  # never allocate a batch the line predicts over GUARD x the budget


@dataclass(frozen=True)
class Attempt:
    """One batch size the capacity search tried: what it held and whether it fit the budget."""

    batch_size: int
    bytes: int | None  # measured total; None when the allocation failed (or was not attempted)
    fits: bool
    note: str = ""  # "out of memory", "predicted ... not allocated"


@dataclass
class Capacity:
    batch_size: int  # largest batch that fits; 0 when not even one sequence does
    peak_bytes: int | None  # measured at batch_size
    budget_bytes: int
    probes: list[Attempt] = field(default_factory=list)
    step_s: float | None = None  # median time of one step at batch_size
    tokens_per_s: float | None = None  # batch_size / step_s

    def probes_text(self) -> str:
        """'B:bytes:fit' per probe in the order made ('-' for bytes not measured), for the sidecar or a log."""
        return " ".join(f"{p.batch_size}:{p.bytes if p.bytes is not None else '-'}:{'y' if p.fits else 'n'}"
                        for p in self.probes)


def largest_fitting(probe: Callable[[int], Attempt], budget: int, max_batch: int = MAX_BATCH) -> tuple[int, list[Attempt]]:
    """The largest B in 1..max_batch with probe(B).fits, assuming fitting is monotone in B (a pure search)."""
    made: dict[int, Attempt] = {}
    line: list[float] = []  # [fixed bytes, bytes per sequence] from B = 1, 2

    def fits(b: int) -> bool:
        if b not in made:
            if line and line[1] > 0 and line[0] + line[1] * b > GUARD * budget:
                made[b] = Attempt(b, None, False, f"predicted {int(line[0] + line[1] * b)} bytes: not allocated")
            else:
                made[b] = probe(b)
        return made[b].fits

    def result(b: int):
        return b, list(made.values())

    if not fits(1):
        return result(0)
    if max_batch == 1 or not fits(2):
        return result(1)
    b1, b2 = made[1].bytes, made[2].bytes
    per_seq = (b2 - b1) if b1 is not None and b2 is not None else 0
    if per_seq > 0:
        line[:] = [b1 - per_seq, per_seq]
        guess = int((budget - line[0]) // per_seq)
    else:
        guess = 4
    lo, hi = 2, None  # lo fits; hi does not (None: not found yet)
    b = min(max(guess, 3), max_batch)
    if fits(b):
        lo, stride = b, 1
        while hi is None and lo < max_batch:  # gallop up from the prediction
            nxt = min(max_batch, lo + stride)
            if fits(nxt):
                lo = nxt
            else:
                hi = nxt
            stride *= 2
        if hi is None:
            return result(lo)
    else:
        hi, stride = b, 1
        while hi - lo > 1:  # gallop down from the prediction
            nxt = max(lo + 1, hi - stride)
            if fits(nxt):
                lo = nxt
                break
            hi = nxt
            stride *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return result(lo)


def measure_capacity(point: Point, budget: int, *, seed: int = 0, measure_step=None,
                     analytic: bool = False) -> Capacity:
    """Capacity at point's context length (point.batch_size is ignored).

    measure_step(step) -> median seconds, for the step at the found batch (the runner passes its
    timer, so the regime and timing rules are the row's). analytic: count a step's activations with
    the kernel's estimate instead of profiling it (Harness.memory == "analytic").
    """
    import torch

    from seqbench.measure.memory import tensor_bytes
    from seqbench.sweep.decode import build_module, decode_step, prefilled_state

    spec = get_kernel(point.kernel)
    module = build_module(dataclasses.replace(point, batch_size=1), seed)
    params = tensor_bytes(*module.parameters())
    with torch.inference_mode():
        one = prefilled_state(module, point, 1, seed)
    axes: list = []  # batch axes of the state's tensors, for a state broadcast_state cannot fill

    def batched(b: int):
        if not axes:
            try:
                return broadcast_state(module.init_state(b, point.seq_len + 1), one)
            except (ValueError, RuntimeError):  # a growing cache: empty at init_state, or not a pytree
                axes.append(batch_axes(one, prefilled_state(module, point, 2, seed)))
        return replicate(one, axes[0], b)

    def prepare(b: int):
        with torch.inference_mode():
            state = batched(b)
        return decode_step(module, point, state, b, seed)

    def transient(step, b: int) -> int:
        if analytic:
            return int(decode_step_bytes(spec, dataclasses.replace(point.shape, batch_size=b),
                                         torch.empty((), dtype=getattr(torch, point.dtype)).element_size()))
        if point.device == "cuda":
            return cuda_peak_bytes(step)
        return peak_from_events(profiled_call(step, memory=True))

    def probe(b: int) -> Attempt:
        work = None
        try:
            work = prepare(b)
            with torch.inference_mode():
                work.step()  # the first call's one-off allocations are not the step's
                if work.reset is not None:
                    work.reset()
                total = params + work.retained_bytes + work.token_bytes + transient(work.step, b)
            return Attempt(b, total, total <= budget)
        except Exception as exc:  # noqa: BLE001 - an allocation that fails means "does not fit"
            if is_out_of_memory(exc):
                return Attempt(b, None, False, "out of memory")
            raise
        finally:
            work = None  # noqa: F841 - frees the candidate's tensors (no cycles: gc.collect is not needed)
            _empty_cache(point.device)

    best, probes = largest_fitting(probe, budget)
    cap = Capacity(best, next((p.bytes for p in probes if p.batch_size == best), None), budget, probes)
    if best and measure_step is not None:
        work = prepare(best)
        with torch.inference_mode():
            cap.step_s = measure_step(work.step, work.reset) if work.reset is not None else measure_step(work.step)
        cap.tokens_per_s = best / cap.step_s
        work = None
        _empty_cache(point.device)
    return cap


def _empty_cache(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()

