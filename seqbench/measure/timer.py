"""The timer: warm-up until timings settle, adaptive repeats, CUDA events, raw samples.

Like torch.utils.benchmark's blocked_autorange, each sample is the mean time per call over a block
of `number` back-to-back calls (number is 1 for anything slower than ~1 ms), and the statistic of
record is the median over samples. Unlike it, warm-up is not a fixed count: windows of calls run
until two consecutive windows agree within `settle_tol`, because a fresh process on a shared
machine runs far slower for its first fraction of a second.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

BLOCK_TARGET_S = 1e-3  # a sample spans at least this long, so clock overhead stays < 0.1%
SETTLE_TOL = 0.05


class BlockTimer(Protocol):
    def __call__(self, fn: Callable[[], object], number: int) -> float:
        """Run fn `number` times back to back and return the elapsed seconds."""


def cpu_block_timer(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - t0


def cuda_block_timer(fn: Callable[[], object], number: int) -> float:
    """CUDA events around the block: measures device time, never host time around async launches."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(number):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


class CallTooSlow(Exception):
    """One call took longer than the per-point limit (--max-time-per-point)."""

    def __init__(self, seconds: float, limit: float):
        super().__init__(f"one call took {seconds:.3g} s, over the {limit:g} s limit (--max-time-per-point)")
        self.seconds, self.limit = seconds, limit


def block_timer_for(device: str) -> BlockTimer:
    return cuda_block_timer if device == "cuda" else cpu_block_timer


@dataclass
class Measurement:
    samples: list[float]  # seconds per call, one entry per block
    number: int  # calls per block
    warmup_s: float  # wall time spent warming up
    warmup_settled: bool  # False if warm-up hit max_warmup before two windows agreed
    extra: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def iqr(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[2] - q[0]

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)


def _pick_number(per_call: float) -> int:
    number = 1
    while per_call * number < BLOCK_TARGET_S and number < 1 << 20:
        number *= 2
    return number


def warm_up(
    fn, timer: BlockTimer, *, max_warmup: float, window: float, max_call: float | None = None
) -> tuple[float, bool, float]:
    """Run windows of calls until two consecutive window medians agree within SETTLE_TOL.

    Returns (seconds spent, settled?, last per-call estimate). Raises CallTooSlow if a call takes
    longer than max_call twice in a row: the first call alone carries one-off costs (lazy init, cuDNN
    plan building, allocator growth: 0.6 s for a 0.2 ms bfloat16 SDPA call on an H200), so it is
    never judged by itself. Calls are not cut short.
    """
    spent = timer(fn, 1)  # first call: lazy init, allocator growth; never a sample
    estimate = spent
    if max_call and spent > max_call:
        estimate = timer(fn, 1)
        spent += estimate
        if estimate > max_call:
            raise CallTooSlow(estimate, max_call)
    previous = None
    while spent < max_warmup:
        number = _pick_number(estimate)
        per_call, elapsed = [], 0.0
        while elapsed < window:  # calls slower than a window are compared one to one
            t = timer(fn, number)
            per_call.append(t / number)
            elapsed += t
        spent += elapsed
        estimate = statistics.median(per_call)
        if previous is not None and abs(estimate / previous - 1) <= SETTLE_TOL:
            return spent, True, estimate
        previous = estimate
    return spent, False, estimate


def measure(
    fn: Callable[[], object],
    *,
    device: str = "cpu",
    min_time: float = 0.2,
    min_repeats: int = 5,
    max_repeats: int = 1000,
    max_warmup: float = 2.0,
    timer: BlockTimer | None = None,
    max_call: float | None = None,
    reset: Callable[[], object] | None = None,
) -> Measurement:
    """Time fn: warm up until settled, then collect blocks until min_time of samples and min_repeats.

    max_call (seconds): give up with CallTooSlow if the first two calls both took longer.
    reset: called before every call, outside the timed region (a decode step that updates its state
    in place gets it back); every block is then one call.
    """
    timer = timer or block_timer_for(device)
    if reset is not None:
        timer = _with_reset(timer, reset)
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # a collection inside a sample would be charged to the kernel
    try:
        window = max(0.02, min_time / 10)
        warm_s, settled, estimate = warm_up(fn, timer, max_warmup=max_warmup, window=window, max_call=max_call)
        number = _pick_number(estimate)
        samples: list[float] = []
        total = 0.0
        while len(samples) < max_repeats and (total < min_time or len(samples) < min_repeats):
            t = timer(fn, number)
            samples.append(t / number)
            total += t
    finally:
        if gc_was_enabled:
            gc.enable()
    return Measurement(samples=samples, number=number, warmup_s=warm_s, warmup_settled=settled)


def _with_reset(timer: BlockTimer, reset: Callable[[], object]) -> BlockTimer:
    """A timer that runs reset() untimed before each call: `number` calls cost `number` timed blocks of one."""

    def timed(fn, number: int) -> float:
        total = 0.0
        for _ in range(number):
            reset()
            total += timer(fn, 1)
        return total

    return timed


def burn_in(device: str = "cpu", seconds: float = 0.5) -> None:
    """Keep the device busy for `seconds` before the first point: a fresh process runs slow at first."""
    import torch

    a = torch.randn(256, 256, device=device)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(10):
            a @ a
        if device == "cuda":
            torch.cuda.synchronize()
