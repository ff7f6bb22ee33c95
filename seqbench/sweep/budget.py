"""Pre-flight checks run before each point: will it fit in memory, and is it already known to fail?

Memory: a point's peak is estimated with memory.analytic_bytes (weights, input, output gradient and
the kernel's activation estimate, e.g. naive attention's B*h*T^2 score matrices). The weights are
counted by building the module on torch's 'meta' device, which allocates nothing. A point whose
estimate exceeds the budget is recorded as `skipped` instead of being allowed to exhaust the machine.
The default budget is SAFE_FRACTION of the memory free when the run starts (CPU: MemAvailable from
/proc/meminfo; CUDA: torch.cuda.mem_get_info).

Time and OOM: once a point times out or runs out of memory, larger T for the same kernel, mode and
batch size can only be slower and bigger, so they are skipped rather than tried.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from seqbench.choices import Mode, Status
from seqbench.errors import ConfigError
from seqbench.kernels import get_kernel
from seqbench.measure.memory import analytic_bytes, decode_analytic_bytes
from seqbench.sweep.config import Point, SweepConfig
from seqbench.units import fmt_bytes as _fmt

SAFE_FRACTION = 0.8  # headroom for the allocator's caching, the interpreter, and the estimate's error
CASCADE_STATUSES = (Status.TIMEOUT, Status.OOM)


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


def resolve_budget(cfg: SweepConfig) -> tuple[int | None, str]:
    """The memory budget in bytes for this run and a phrase saying where it came from."""
    return budget_for(cfg.device, cfg.max_memory)


def budget_for(device: str, max_memory: int = 0) -> tuple[int | None, str]:
    """The budget for a command on device: max_memory bytes, or SAFE_FRACTION of the free memory."""
    if max_memory:
        return max_memory, "--max-memory"
    avail = available_bytes(device)
    if avail is None:
        return None, "no budget: free memory could not be read"
    free, source = avail
    return int(free * SAFE_FRACTION), f"{SAFE_FRACTION:g} x {source} ({_fmt(free)})"


def check_each_fits(needs: list[tuple[int, str]], device: str, max_memory: int, command: str) -> None:
    """For commands that need every allocation they plan (gradflow, calibrate), not a sweep that
    can skip a point: (estimated bytes, what) pairs; the largest must fit in the budget (exit 2)."""
    budget, source = budget_for(device, max_memory)
    if not budget or not needs:
        return
    need, what = max(needs)
    if need > budget:
        raise ConfigError(f"{command}: {what} needs about {_fmt(need)} of memory and the budget is {_fmt(budget)} "
                          f"({source}); use smaller sizes, or raise --max-memory")


@functools.lru_cache(maxsize=None)
def _elem_size(dtype: str) -> int:
    import torch

    return torch.empty((), dtype=getattr(torch, dtype)).element_size()


def param_bytes(point: Point) -> int:
    """Bytes of the kernel's parameters, counted on the meta device (nothing is allocated)."""
    import torch

    spec = get_kernel(point.kernel)
    try:
        with torch.device("meta"):  # factories that build on the default device first allocate nothing either
            module = spec.build(point.shape, torch.device("meta"), getattr(torch, point.dtype))
        return sum(p.numel() * p.element_size() for p in module.parameters())
    except Exception:  # noqa: BLE001 - a factory that fails is reported when the point runs
        return 0


def decode_state_bytes(point: Point) -> int:
    """Bytes of the decode state for B sequences and T + 1 tokens, from init_state on the meta device
    (nothing is allocated); 0 for a kernel without a decode step (its points are skipped anyway)."""
    import torch

    from seqbench.kernels.decode import has_decode, state_nbytes

    spec = get_kernel(point.kernel)
    try:
        with torch.device("meta"):
            module = spec.build(point.shape, torch.device("meta"), getattr(torch, point.dtype))
            if not has_decode(module):
                return 0
            return state_nbytes(module.init_state(point.batch_size, point.seq_len + 1))
    except Exception:  # noqa: BLE001 - a factory or init_state that fails is reported when the point runs
        return 0


def estimate_bytes(point: Point, params: int | None = None) -> int:
    spec = get_kernel(point.kernel)
    params = param_bytes(point) if params is None else params
    if point.mode == Mode.DECODE:
        return decode_analytic_bytes(spec, point.shape, _elem_size(point.dtype), params, decode_state_bytes(point))
    return analytic_bytes(spec, point.shape, _elem_size(point.dtype), point.mode == Mode.TRAIN, params)


@dataclass
class Preflight:
    """Decides, before a point is built, whether it must be skipped, and learns from each row."""

    budget_bytes: int | None = None
    failed_at: dict = field(default_factory=dict)  # (kernel, mode, B, ...) -> (smallest failing T, status)
    _params: dict = field(default_factory=dict)

    @staticmethod
    def _family(point_or_row) -> tuple:
        r = point_or_row  # a Point and a Row share these attribute names
        return (r.kernel, r.mode, r.device, r.dtype, int(r.batch_size), int(r.hidden_size), int(r.num_heads), bool(r.causal))

    def estimate(self, point: Point) -> int:
        k = (point.kernel, point.dtype, point.hidden_size, point.num_heads, point.causal)
        if k not in self._params:
            self._params[k] = param_bytes(point)
        return estimate_bytes(point, self._params[k])

    def check(self, point: Point) -> str | None:
        """The reason to skip this point, or None if it should run."""
        failed = self.failed_at.get(self._family(point))
        if failed and point.seq_len > failed[0]:
            t, status = failed
            why = "took too long (--max-time-per-point)" if status == Status.TIMEOUT else "ran out of memory"
            return f"T={t} {why} for this kernel, mode and batch size; larger T cannot do better"
        if self.budget_bytes:
            need = self.estimate(point)
            if need > self.budget_bytes:
                return f"estimated peak memory {_fmt(need)} exceeds the budget of {_fmt(self.budget_bytes)} (--max-memory)"
        return None

    def observe(self, row) -> None:
        """Remember the smallest T that timed out or ran out of memory (rows may come from a resumed CSV)."""
        if row.status in CASCADE_STATUSES:
            fam = self._family(row)
            t = int(row.seq_len)
            if fam not in self.failed_at or t < self.failed_at[fam][0]:
                self.failed_at[fam] = (t, row.status)

    def check_anything_fits(self, cfg: SweepConfig, source: str = "config") -> None:
        """A config whose every point is over budget is a mistake, not a sweep: refuse it (exit 2)."""
        if not self.budget_bytes:
            return
        points = cfg.points()
        needs = [(self.estimate(p), p) for p in points]
        smallest, p = min(needs, key=lambda np_: np_[0])
        if smallest > self.budget_bytes:
            raise ConfigError(
                f"{source}: no point fits in memory: the smallest ({p.kernel}, B={p.batch_size}, T={p.seq_len}, "
                f"d={p.hidden_size}) needs about {_fmt(smallest)} and the budget is {_fmt(self.budget_bytes)}; "
                "lower seq_lens, batch_sizes or hidden_size, or raise --max-memory"
            )
