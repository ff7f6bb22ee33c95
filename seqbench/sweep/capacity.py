"""Capacity: the largest batch whose decode state fits a memory budget at a context length, and its tokens/s.

This is the number behind the recurrent revival's generation claims (Mamba's 4-5x throughput comes
from the batch that fits without a KV cache, not from a faster step), so it is measured, not only
computed: every candidate batch B is allocated (weights + init_state for T + 1 tokens + the new token)
and one step is run, and its bytes are what the allocator saw (CPU: the profiler's replay of a step's
allocations; CUDA: the caching allocator's peak). B fits when that total is within the budget and no
allocation failed.

Search (largest_fitting): B = 1, 2 and 4 give fixed bytes and how the per-sequence part grows
(_Footprint); the search goes up to its prediction, at most 8x past the largest batch measured at a
time, then gallops past it or narrows the bracket it found, so the answer B fits as measured and B + 1
was measured not to fit (six probes on a straight line up to B = 256, one more per 8x beyond). A
candidate predicted over twice the budget is not allocated (a CPU has no allocator that fails cleanly
before the kernel's OOM killer steps in, and Linux lets a 17 GB buffer be allocated on 24 GB).

Prefilling B*T tokens at the capacity batch would take hours for a recurrence (B runs into the
hundreds of thousands), so one sequence is prefilled for real and its state copied into every batch
row (kernels.decode.broadcast_state): the memory and the step's work are those of B sequences. A state
that init_state cannot shape ahead of time (a cache that grows with every token, an object) is made
by repeating the one sequence's tensors along their batch axis, found by comparing states of one and
two sequences after the same context (kernels.state.replicate).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

from seqbench.kernels import get_kernel
from seqbench.kernels.decode import broadcast_state
from seqbench.kernels.state import batch_axes, replicate
from seqbench.measure.memory import (cuda_peak_bytes, decode_step_bytes, is_out_of_memory, peak_from_events,
                                     profiled_call)
from seqbench.results.identity import Point

MAX_BATCH = 1 << 22
GUARD = 2.0  # never allocate a batch predicted (_Footprint) to need over GUARD x the budget


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


class _Footprint:
    """Bytes as a function of B, from the batches measured so far: fixed bytes (the line through the two
    smallest) plus a per-sequence part that grows as B^k, k read off the two largest measured (1 on a
    straight line, ~2 where something grows with B squared, < 1 where it flattens). No guess goes more
    than REACH times past the largest batch measured: a B x B buffer hidden by rounding at B <= 4
    (a straight line there) is seen on the way up, before a batch of 8^n tries terabytes."""

    REACH = 8

    def __init__(self, made: dict[int, Attempt]):
        pts = sorted((a.batch_size, a.bytes) for a in made.values() if a.bytes is not None)
        self.ok = len(pts) >= 2 and pts[1][1] > pts[0][1]
        if not self.ok:
            return
        (b1, y1), (b2, y2) = pts[0], pts[1]
        self.slope = (y2 - y1) / (b2 - b1)
        self.fixed = y1 - self.slope * b1
        (ba, ya), (self.bb, yb) = pts[-2], pts[-1]
        va, self.vb = ya - self.fixed, yb - self.fixed
        self.k = math.log(self.vb / va) / math.log(self.bb / ba) if 0 < va <= self.vb and ba < self.bb else None
        if self.k is not None:
            self.k = min(max(self.k, 0.25), 4.0)

    def reach(self) -> int:
        return int(self.REACH * self.bb)

    def bytes(self, b: int) -> float:
        if self.k is None:
            return self.fixed + self.slope * b
        return self.fixed + self.vb * (b / self.bb) ** self.k

    def largest_within(self, budget: int) -> int:
        """The largest B predicted to fit budget, at most REACH x the largest measured."""
        room = budget - self.fixed
        if room <= 0:
            return 0
        b = self.bb * (room / self.vb) ** (1 / self.k) if self.k is not None else room / self.slope
        return int(min(b, self.reach(), MAX_BATCH))


def largest_fitting(probe: Callable[[int], Attempt], budget: int, max_batch: int = MAX_BATCH) -> tuple[int, list[Attempt]]:
    """The largest B in 1..max_batch with probe(B).fits, assuming fitting is monotone in B (a pure search)."""
    made: dict[int, Attempt] = {}

    def fits(b: int) -> bool:
        if b not in made:
            model = _Footprint(made)
            if model.ok and model.bytes(b) > GUARD * budget:
                made[b] = Attempt(b, None, False, f"predicted {int(model.bytes(b))} bytes: not allocated")
            else:
                made[b] = probe(b)
        return made[b].fits

    def result(b: int):
        return b, list(made.values())

    lo, hi = 0, None  # lo fits (0: nothing yet); hi does not (None: not found yet)
    for b in (1, 2, 4):  # the line, and whether it bends
        if b > max_batch:
            return result(lo)
        if not fits(b):
            hi = b
            break
        lo = b
    stride, halved = 1, True
    while hi is None or hi - lo > 1:
        model = _Footprint(made)
        guess = model.largest_within(budget) if model.ok else 2 * lo
        if hi is None:  # up to the prediction, or galloping past it (1, 2, 4... more) while it is passed
            if guess > lo:
                b, stride = guess, 1
            else:
                b, stride = lo + stride, stride * 2
            b = min(max_batch, b)
        elif halved:  # a bracket: the prediction inside it, or the middle when that did not halve it
            b = min(max(guess, lo + 1), hi - 1)
        else:
            b = min((lo + hi) // 2, model.reach() if model.ok else hi)
        width = (hi - lo) if hi is not None else None
        if fits(b):
            lo = b
            if lo == max_batch:
                break
        else:
            hi = b
        halved = width is None or (hi - lo) * 2 <= width
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

