"""Pre-flight checks run before each point: will it fit in memory, and is it already known to fail?

Memory: a point's peak is estimated by measure.memory.estimate_bytes (weights, input, output
gradient and the kernel's activation estimate, e.g. naive attention's B*h*T^2 score matrices; the
weights counted on torch's 'meta' device, which allocates nothing). A point whose estimate exceeds
the budget (measure.memory.budget_for: by default SAFE_FRACTION of the memory free when the run
starts) is recorded as `skipped` instead of being allowed to exhaust the machine.

Time and OOM: once a point times out or runs out of memory, larger T for the same kernel, mode and
batch size can only be slower and bigger, so they are skipped rather than tried.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seqbench.choices import Status
from seqbench.errors import ConfigError
from seqbench.measure.memory import budget_for, estimate_bytes, param_bytes
from seqbench.results.identity import Point
from seqbench.sweep.config import SweepConfig
from seqbench.units import fmt_bytes as _fmt
CASCADE_STATUSES = (Status.TIMEOUT, Status.OOM)


def resolve_budget(cfg: SweepConfig) -> tuple[int | None, str]:
    """The memory budget in bytes for this run and a phrase saying where it came from."""
    return budget_for(cfg.device, cfg.max_memory)


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
            self._params[k] = param_bytes(point.kernel, point.shape, point.dtype)
        return estimate_bytes(point.kernel, point.shape, point.mode, point.dtype, self._params[k])

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
