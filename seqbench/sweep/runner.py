"""Runs a sweep: checks each kernel, builds and times each point, streams each row to a sink.
(orchestration.run wraps it with the files, the sidecar and the process's signals.)

It prints nothing: progress goes through the `on_row` callback. A point that fails is recorded with
its status (error / oom / timeout / skipped) and message, and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

from seqbench.choices import Family, Metric, Mode, PeakMemory, Status
from seqbench.errors import ResourceError, ResultsError
from seqbench.kernels import get_kernel
from seqbench.measure.memory import (analytic_bytes, decode_analytic_bytes, is_out_of_memory, measure_peak,
                                     tensor_bytes)
from seqbench.measure.memory import release_memory as _release_memory
from seqbench.measure.probe import sdpa_backend
from seqbench.measure.timer import BlockTimer, CallTooSlow, measure
from seqbench.results.schema import SCHEMA_VERSION, Row, format_samples, tokens_per_call
from seqbench.results.identity import Point
from seqbench.sweep.config import SweepConfig
from seqbench.sweep.matmul_peak import calibration_point, fill_pct


@dataclass(frozen=True)
class Harness:
    """What a sweep measures with, its seams named (torch.utils.benchmark's `_timer_cls` is the pattern).

    timer: the block timer (measure.timer.BlockTimer; None: the device's own clock, block_timer_for).
    memory: how a point's peak memory is had (choices.PeakMemory): profiled (torch's profiler on CPU, the caching
    allocator's peak on CUDA) or analytic (the kernel's estimate from its shape).
    burn_in: run the CPU burn-in (measure.timer.burn_in) before the first timed point.
    The default is a real run. `Harness.scripted(clock)` is a run on a scripted clock, as the tests
    use: no profiler and no burn-in, whose costs and timings a scripted clock would not see.
    """

    timer: BlockTimer | None = None
    memory: PeakMemory = PeakMemory.PROFILED
    burn_in: bool = True

    def __post_init__(self):
        object.__setattr__(self, "memory", PeakMemory(self.memory))  # ValueError on anything else

    @classmethod
    def scripted(cls, timer: BlockTimer) -> "Harness":
        """A sweep timed by `timer` alone: analytic memory, no burn-in."""
        return cls(timer=timer, memory=PeakMemory.ANALYTIC, burn_in=False)


REAL = Harness()  # the device's clock, profiled memory, burn-in


class NoSignalHandling:
    """The sweep's seam to the process's signal handling, as it is when nobody installed any (seqbench
    used as a library; Python's own SIGINT handler): every KeyboardInterrupt is a real interrupt, and
    none is ever deferred. orchestration.signals has the same two functions for a run that owns the
    process: checkpoint() raises an interrupt deferred to this safe point, and is_signal(exc) tells a
    real SIGINT/SIGTERM from a kernel's code raising KeyboardInterrupt itself, and in_flight(point)
    names the point whose call is running."""

    @staticmethod
    def checkpoint() -> None:
        return None

    @staticmethod
    def is_signal(exc: BaseException) -> bool:
        return isinstance(exc, KeyboardInterrupt)

    @staticmethod
    def in_flight(point) -> None:  # the point whose call is running, for a watchdog to name (signals.py)
        return None


NO_SIGNAL_HANDLING = NoSignalHandling()


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


@dataclass
class Workload:
    """A point built and ready to time: `step` runs one forward (or forward + backward, or decode step) call."""

    step: Callable[[], object]
    mode_context: Callable[[], contextlib.AbstractContextManager]
    resident_bytes: int  # weights + inputs (+ output grad, or the decode state), alive for the whole measurement
    param_bytes: int
    elem_size: int
    state_bytes: int | None = None  # decode: the state (KV cache or recurrent state) of all B sequences, owned
    state_retained_bytes: int | None = None  # decode: the storages that state keeps alive
    reset: Callable[[], None] | None = None  # decode, in-place step: the state put back before each call (untimed)
    first: Callable[[], object] | None = None  # one untimed call whose output is checked (check_output)


def build_workload(point: Point, seed: int = 0) -> Workload:
    import torch

    if point.mode == Mode.DECODE:
        from seqbench.sweep.decode import build_decode

        module, dec = build_decode(point, seed)
        params = tensor_bytes(*module.parameters())
        return Workload(dec.step, torch.inference_mode, params + dec.retained_bytes + dec.token_bytes, params,
                        torch.empty((), dtype=getattr(torch, point.dtype)).element_size(), dec.state_bytes,
                        dec.retained_bytes, dec.reset, first=lambda: check_output(dec.step(), point))
    spec = get_kernel(point.kernel)
    dtype = getattr(torch, point.dtype)
    torch.manual_seed(seed)
    module = spec.build(point.shape, torch.device(point.device), dtype)
    x = torch.randn(point.batch_size, point.seq_len, point.hidden_size, device=point.device, dtype=dtype)
    params = list(module.parameters())
    param_bytes = tensor_bytes(*params)
    if point.mode == Mode.TRAIN:
        module.train()
        grad_out = torch.randn_like(x)

        def step():
            module.zero_grad(set_to_none=True)
            spec.output_of(module(x)).backward(grad_out)

        def first():
            module.zero_grad(set_to_none=True)
            y = module(x)
            check_output(y, point)
            spec.output_of(y).backward(grad_out)

        return Workload(step, torch.enable_grad, param_bytes + tensor_bytes(x, grad_out), param_bytes, x.element_size(),
                        first=first)
    module.eval()
    return Workload(lambda: module(x), torch.inference_mode, param_bytes + tensor_bytes(x), param_bytes, x.element_size(),
                    first=lambda: check_output(module(x), point))


class BadOutput(Exception):
    """A point's output is not what every kernel must return at that size: an error row, never timings."""


def check_output(y, point: Point) -> None:
    """A point's first output at its real size (the kernel check runs at B=2, T=8 only): one tensor of
    shape (B, T, d) (decode: (B, 1, d)), in the run's dtype, finite. Untimed."""
    import torch

    from seqbench.kernels.state import OutputError

    want = (point.batch_size, 1 if point.mode == Mode.DECODE else point.seq_len, point.hidden_size)
    at = f"B={point.batch_size} T={point.seq_len}"
    try:  # a tuple or an object: the item register_kernel(output=) names
        y = get_kernel(point.kernel).output_of(y, want)
    except OutputError as exc:
        raise BadOutput(f"output check at {at}: {exc}") from None
    if not isinstance(y, torch.Tensor):
        raise BadOutput(f"output check at {at}: returned {type(y).__name__}, expected one tensor of shape {want}")
    if tuple(y.shape) != want:
        raise BadOutput(f"output check at {at}: output shape {tuple(y.shape)}, expected {want}")
    if y.dtype != getattr(torch, point.dtype):
        raise BadOutput(f"output check at {at}: output dtype {str(y.dtype).replace('torch.', '')}, the run's is "
                        f"{point.dtype} (the kernel computes in another precision than the one measured)")
    if not bool(torch.isfinite(y).all()):
        raise BadOutput(f"output check at {at}: output has non-finite values (NaN or inf)")


def classify_failure(exc: BaseException) -> str:
    return Status.OOM if is_out_of_memory(exc) else Status.ERROR


def describe(exc: BaseException) -> str:
    """One line for the error column: type and the first line of the message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


def base_row(point: Point, run_id: str, threads: int, status: str) -> Row:
    return Row(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        family=get_kernel(point.kernel).family,
        threads=threads,
        status=status,
        **dataclasses.asdict(point),  # a Point's fields are the row's identity columns, same names
    )


def time_call(fn: Callable[[], object], cfg: SweepConfig, device: str, timer: BlockTimer | None = None,
              reset: Callable[[], None] | None = None):
    """(Measurement, capture seconds or None): fn timed as cfg says, replayed from a CUDA graph with
    --cuda-graph. reset: run untimed before every call (a step that updates its state in place)."""
    capture_s = None
    if cfg.cuda_graph and reset is not None:
        raise ValueError("a step registered inplace_state=True cannot be replayed from a CUDA graph (its state is "
                         "put back between calls); run it without --cuda-graph")
    if cfg.cuda_graph:
        from seqbench.measure.cudagraph import capture

        graphed = capture(fn)  # alive until this function returns, so every replay has its graph
        fn, capture_s = graphed.replay, graphed.capture_s
    m = measure(fn, device=device, min_time=cfg.min_time, min_repeats=cfg.min_repeats, max_repeats=cfg.max_repeats,
                max_warmup=cfg.max_warmup, timer=timer, max_call=cfg.max_time_per_point or None, reset=reset)
    return m, capture_s


def kernel_limits(cfg: SweepConfig, spec) -> SweepConfig:
    """cfg with the kernel's own time limit, if it has one (register_kernel(max_time_per_point=))."""
    if spec.max_time_per_point is None:
        return cfg
    return dataclasses.replace(cfg, max_time_per_point=spec.max_time_per_point)


def measure_point(
    point: Point, cfg: SweepConfig, run_id: str, *, harness: Harness = REAL, profile_memory: bool = True,
    capacity: Callable[[Point], object] | None = None, interrupts=NO_SIGNAL_HANDLING,
) -> Row:
    """Build, time and memory-profile one point; any failure becomes a row with its status.

    harness: the clock and how memory is had (Harness). profile_memory: False for a later round of a
    point (its first round had the memory).
    capacity(point) -> sweep.capacity.Capacity, for a decode point's capacity columns (first round only).
    interrupts: the process's signal handling (see NoSignalHandling).
    """
    import torch

    from seqbench.kernels.decode import NoDecodeStep

    spec = get_kernel(point.kernel)
    threads = pin_threads(cfg)
    if cfg.metric == Metric.INSTRUCTIONS:
        return count_point(point, cfg, run_id, threads, interrupts)
    work = failure = None
    try:
        work = build_workload(point, cfg.seed)
        threads = pin_threads(cfg)  # after the build: a factory may have changed torch's thread count
        with work.mode_context():
            if work.first is not None:
                work.first()  # shape, dtype, finite at the real size, outside the timed region
            m, capture_s = time_call(work.step, kernel_limits(cfg, spec), point.device, harness.timer, work.reset)
            if work.reset is not None:
                work.reset()
            backend = ""
            # memory and backend from an eager call: a graph's replay allocates nothing new, its pool
            # was filled at capture with what the eager call needs
            if not profile_memory:  # a later round of a point: its first round profiled it
                peak, method = None, ""
            elif harness.memory == PeakMemory.PROFILED:
                peak, method, events = measure_peak(work.step, point.device, work.resident_bytes)
                if spec.family == Family.ATTENTION:
                    backend = sdpa_backend(work.step, events)
            elif point.mode == Mode.DECODE:
                peak = decode_analytic_bytes(spec, point.shape, work.elem_size, work.param_bytes,
                                             work.state_retained_bytes)
                method = "analytic"
            else:
                peak = analytic_bytes(spec, point.shape, work.elem_size, point.mode == Mode.TRAIN, work.param_bytes)
                method = "analytic"
    except ResourceError:  # the machine out of threads (signals._stop): not the point's fault
        raise
    except NoDecodeStep as exc:  # the kernel cannot decode: not a failure of the kernel
        failure = (Status.SKIPPED, str(exc))
    except BadOutput as exc:
        failure = (Status.ERROR, str(exc))
    except (Exception, SystemExit, GeneratorExit, KeyboardInterrupt) as exc:  # noqa: BLE001 - a failing point is data
        if interrupts.is_signal(exc):  # a real Ctrl-C / SIGTERM stops the run; a kernel raising KeyboardInterrupt does not
            raise
        timed_out = isinstance(exc, CallTooSlow)
        status = Status.TIMEOUT if timed_out else classify_failure(exc)
        failure = (status, str(exc) if timed_out else describe(exc))
    state_bytes = work.state_bytes if work is not None else None
    retained = work.state_retained_bytes if work is not None else None
    # Only here, outside the except block, is an exception (whose traceback pins the failed call's
    # tensors) gone; inside it, empty_cache could not hand that memory back. The point's own tensors
    # go before a capacity search, which may fill the memory budget.
    work = None  # noqa: F841
    if failure or capacity:
        _release_memory(point.device)
    if failure:
        row = base_row(point, run_id, threads, failure[0])
        row.error = failure[1]
        return row
    try:
        gflop = spec.flops(point.shape, point.mode)
    except Exception as exc:  # noqa: BLE001 - checked before the sweep; a function that changed its mind since
        row = base_row(point, run_id, threads, Status.ERROR)
        row.error = f"FLOP count failed: {describe(exc)}"
        return row
    gflop = None if gflop is None else gflop / 1e9
    row = base_row(point, run_id, threads, Status.OK)
    row.repeats = len(m.samples)
    row.median_s, row.iqr_s, row.min_s, row.mean_s = m.median, m.iqr, m.min, m.mean
    row.tokens_per_s = tokens_per_call(point.mode, point.batch_size, point.seq_len) / m.median
    row.gflop = gflop
    row.gflops_per_s = None if gflop is None else gflop / m.median
    row.peak_mem_bytes, row.peak_mem_method = (int(peak) if peak is not None else None), method
    row.samples_s = format_samples(m.samples)
    row.number, row.warmup_s, row.warmup_settled = m.number, m.warmup_s, m.warmup_settled
    row.sdpa_backend = backend
    row.capture_s = capture_s
    if state_bytes is not None:
        row.state_bytes = state_bytes // point.batch_size
    if retained is not None:
        row.state_retained_bytes = retained // point.batch_size
    if capacity and profile_memory:
        fill_capacity(row, point, capacity)
    return row


INSTRUCTION_BLOCKS = 3  # counted blocks a point: they agree to ~0.1% (measure.callgrind.Counter.count)


def count_point(point: Point, cfg: SweepConfig, run_id: str, threads: int, interrupts=NO_SIGNAL_HANDLING) -> Row:
    """Instructions per call of one point under Callgrind (measure.callgrind): INSTRUCTION_BLOCKS blocks
    of as many calls as make ~5 M instructions (BLOCK_TARGET) (the block size is the row's `number`). The time columns stay empty: under Valgrind a call runs 10-100x slower than it does."""
    from seqbench.kernels.decode import NoDecodeStep
    from seqbench.measure.callgrind import Counter

    spec = get_kernel(point.kernel)
    work = failure = None
    try:
        work = build_workload(point, cfg.seed)
        threads = pin_threads(cfg)  # after the build: a factory may have changed torch's thread count
        with work.mode_context():
            if work.first is not None:
                work.first()  # shape, dtype, finite at the real size, outside the counted region
            counts = Counter().count(work.step, repeats=INSTRUCTION_BLOCKS,
                                     warmup=0 if work.first is not None else 1)  # first() warmed it
        state_bytes = work.state_bytes
        peak = (decode_analytic_bytes(spec, point.shape, work.elem_size, work.param_bytes, work.state_bytes)
                if point.mode == Mode.DECODE else
                analytic_bytes(spec, point.shape, work.elem_size, point.mode == Mode.TRAIN, work.param_bytes))
        gflop = spec.flops(point.shape, point.mode)
    except NoDecodeStep as exc:
        failure = (Status.SKIPPED, str(exc))
    except BadOutput as exc:
        failure = (Status.ERROR, str(exc))
    except (Exception, SystemExit, GeneratorExit, KeyboardInterrupt) as exc:  # noqa: BLE001 - a failing point is data
        if interrupts.is_signal(exc):
            raise
        failure = (classify_failure(exc), describe(exc))
    work = None  # noqa: F841
    if failure:
        row = base_row(point, run_id, threads, failure[0])
        row.metric = Metric.INSTRUCTIONS.value  # a failed point of an instructions run is still one
        row.error = failure[1]
        return row
    row = base_row(point, run_id, threads, Status.OK)
    row.metric = Metric.INSTRUCTIONS.value
    row.repeats, row.number = len(counts.samples), counts.number
    row.instructions = counts.median
    row.instructions_samples = format_samples(counts.samples)
    row.gflop = None if gflop is None else gflop / 1e9
    row.peak_mem_bytes, row.peak_mem_method = (None, "") if peak is None else (int(peak), "analytic")
    if state_bytes is not None:
        row.state_bytes = state_bytes // point.batch_size
    return row


def fill_capacity(row: Row, point: Point, capacity: Callable[[Point], object]) -> None:
    """The capacity columns of a decode row; a search that fails leaves them empty and says why in `error`."""
    try:
        cap = capacity(point)
    except (KeyboardInterrupt, ResourceError):  # a stop, or the machine out of threads: not the point's fault
        raise
    except Exception as exc:  # noqa: BLE001 - the point's own timing stands; only the capacity is missing
        row.error = f"capacity search failed: {describe(exc)}"
        return
    if cap is None:
        return
    row.capacity_batch, row.capacity_peak_bytes, row.capacity_budget_bytes = cap.batch_size, cap.peak_bytes, cap.budget_bytes
    row.capacity_step_s, row.capacity_tokens_per_s = cap.step_s, cap.tokens_per_s


_RUN_THREADS: dict[str, int] = {}  # the thread count the run applied (torch's default when threads = 0)


def apply_threads(cfg: SweepConfig) -> None:
    """torch's thread count for the run: cfg.threads, or torch's default when it is 0."""
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _RUN_THREADS["n"] = torch.get_num_threads()


def pin_threads(cfg: SweepConfig) -> int:
    """Set the run's thread count again (a user's factory may have called torch.set_num_threads) and
    return it, for the row: what a point records is what it ran on."""
    import torch

    want = cfg.threads or _RUN_THREADS.get("n") or torch.get_num_threads()
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)
    return torch.get_num_threads()


def measure_calibration(cfg: SweepConfig, run_id: str, *, harness: Harness = REAL,
                        interrupts=NO_SIGNAL_HANDLING) -> Row:
    """One `calibration` row (the matmul peak) for cfg's device and dtype: ok, or a failure as for any point."""
    row = measure_point(calibration_point(cfg.device, cfg.dtype), cfg, run_id, harness=harness, interrupts=interrupts)
    return fill_pct(row, row.gflops_per_s)


def check_kernels(cfg: SweepConfig, interrupts=NO_SIGNAL_HANDLING) -> dict:
    """Why points must not be timed (kernels.check), for every kernel that fails: kernel name -> reason
    (all its points), or (kernel, "decode") -> reason when only its decode step is wrong."""
    from seqbench.kernels.check import check_decode, check_kernel, check_shape

    failed: dict = {}
    shape = check_shape(cfg.hidden_size, cfg.num_heads, cfg.causal)
    for name in cfg.kernels:
        spec = get_kernel(name)
        if spec.family == Family.CALIBRATION:
            continue
        try:
            reason = check_kernel(spec, shape, cfg.device, cfg.dtype, cfg.seed)
        except KeyboardInterrupt as exc:  # raised by the kernel's own code, not by a signal: its points fail
            if interrupts.is_signal(exc):
                raise
            failed[name] = "correctness check: forward raised KeyboardInterrupt (not a signal: the kernel's code raised it)"
            continue
        if reason and Mode.DECODE in cfg.modes and not _decodes(spec, shape, cfg):
            for mode in cfg.modes:  # its decode rows say "no decode step" (skipped), not the forward's error
                if mode != Mode.DECODE:
                    failed[name, Mode(mode).value] = reason
        elif reason:
            failed[name] = reason
        elif Mode.DECODE in cfg.modes and spec.supports_causal:
            reason = check_decode(spec, check_shape(cfg.hidden_size, cfg.num_heads, True), cfg.device, cfg.dtype,
                                  cfg.seed)
            if reason:
                failed[name, Mode.DECODE.value] = reason
    return failed


def _decodes(spec, shape, cfg: SweepConfig) -> bool:
    from seqbench.kernels.check import build_for_check
    from seqbench.kernels.decode import has_decode

    return spec.supports_causal and has_decode(build_for_check(spec, shape, cfg.device, cfg.dtype))


def check_values_everywhere(cfg: SweepConfig, source: str = "config") -> None:
    """Every kernel's FLOP count and memory estimate at every point of the sweep (kernels.check_values),
    before any point is timed: a formula like B*d/(T-32) fails here, naming the kernel and the config,
    not after an hour of timing."""
    import torch

    from seqbench.errors import PluginError
    from seqbench.kernels.check import check_values

    elem = {dt: torch.empty((), dtype=getattr(torch, dt)).element_size() for dt in {cfg.dtype}}
    seen = set()
    for p in cfg.points():
        key = (p.kernel, p.mode, p.shape)
        if key not in seen:
            seen.add(key)
            try:
                check_values(get_kernel(p.kernel), p.shape, p.mode, elem[p.dtype])
            except PluginError as exc:
                raise PluginError(f"{source}: {exc}") from None


def capacity_finder(cfg: SweepConfig, budget: int | None, harness: Harness = REAL):
    """point -> Capacity at the point's context length, searched once per (kernel, T, ...) whatever its B."""
    from seqbench.sweep.capacity import measure_capacity

    found: dict = {}

    def find(point: Point):
        if budget is None:
            raise RuntimeError("no memory budget: free memory could not be read; give --max-memory")
        key = dataclasses.replace(point, batch_size=1)
        if key not in found:
            found[key] = measure_capacity(point, budget, seed=cfg.seed, analytic=harness.memory == PeakMemory.ANALYTIC,
                                          measure_step=lambda step, reset=None: time_call(
                                              step, cfg, point.device, harness.timer, reset)[0].median)
        return found[key]

    return find


def run_sweep(
    cfg: SweepConfig,
    sink,
    *,
    run_id: str,
    on_row: Callable[[Row], None] | None = None,
    harness: Harness = REAL,
    preflight=None,
    done: frozenset = frozenset(),
    peak: bool = False,
    known_peak: float | None = None,
    rounds: int = 1,
    shard: tuple[int, int] | None = None,
    only: Sequence[str] | None = None,
    reference: bool = False,
    broken: dict[str, str] | None = None,
    interrupts=NO_SIGNAL_HANDLING,
) -> list[Row]:
    """Measure every point of cfg (or of its shard) in rounds; write each row to sink once it is done.

    Each kernel is first checked for correctness at a tiny shape (kernels.check); a kernel that fails
    gets `error` rows with the reason and is never timed. preflight (budget.Preflight) may skip a
    point before it is built; points whose key() is in `done` already have a row (--resume) and are
    left out. peak: first measure the `calibration` matmul (its own row) and fill every row's
    pct_of_peak; known_peak (GFLOP/s, a resumed run's calibration) is used instead of measuring
    again. See rounds.py for rounds and --reference and plan.py for shards: a point's row comes when
    its last round ends, or when a round fails. only: --points, the selectors of the points to measure. broken: the check's result if it already ran.
    interrupts: the process's signal handling (NoSignalHandling; orchestration.run passes its own).
    harness: the clock, how memory is had and whether to burn in (Harness; REAL for a real run).
    """
    import torch

    from seqbench.measure.timer import burn_in
    from seqbench.results.writer import vetted
    from seqbench.sweep.budget import Preflight
    from seqbench.sweep.plan import pending_points
    from seqbench.sweep.rounds import make_reference, measure_in_rounds, round_config

    preflight = preflight or Preflight()
    points = pending_points(cfg, shard, done, only)
    if broken is None:
        broken = check_kernels(cfg, interrupts) if points else {}

    apply_threads(cfg)
    if harness.burn_in and cfg.metric == Metric.TIME:  # a count does not depend on the clock speed
        burn_in(cfg.device)
    # timing.measure collects garbage before every point; with torch imported that walks ~1M objects
    # (0.15-0.35 s a point here). Everything alive now lives for the whole run: stop re-scanning it.
    gc.freeze()
    rows = []
    peak_gflops = known_peak
    if peak and known_peak is None and calibration_point(cfg.device, cfg.dtype).key() not in done:
        calib = measure_calibration(cfg, run_id, harness=harness, interrupts=interrupts)
        calib.regime = cfg.regime
        calib = vetted(calib)
        peak_gflops = calib.gflops_per_s
        sink.write(calib)
        rows.append(calib)
        if on_row:
            on_row(calib)
    per_round = round_config(cfg, rounds)

    capacity = capacity_finder(cfg, preflight.budget_bytes, harness) if cfg.capacity else None

    def measure_round(point: Point, r: int) -> Row:
        interrupts.checkpoint()  # an interrupt deferred (it came during an import) stops the run here
        why = broken.get(point.kernel) or broken.get((point.kernel, point.mode))
        if why:
            row = base_row(point, run_id, torch.get_num_threads(), Status.ERROR)
            row.error = why
            return row
        spec = get_kernel(point.kernel)
        reason = preflight.check(point) if r == 1 else ""
        if spec.max_seq_len is not None and point.seq_len > spec.max_seq_len:
            reason = f"T={point.seq_len} is beyond the kernel's max_seq_len={spec.max_seq_len} (register_kernel)"
        if reason:
            row = base_row(point, run_id, torch.get_num_threads(), Status.SKIPPED)
            row.error = reason
            return row
        interrupts.in_flight(point)  # named in the sidecar if an interrupt cannot wait for this point's call
        try:
            return measure_point(point, per_round, run_id, harness=harness, profile_memory=r == 1,
                                 capacity=capacity if point.mode == Mode.DECODE else None, interrupts=interrupts)
        finally:
            interrupts.in_flight(None)

    ref = make_reference(cfg, rounds, harness.timer) if reference else None
    for row in measure_in_rounds(points, rounds, measure_round, ref):
        row.regime = cfg.regime
        if row.status != Status.SKIPPED:
            fill_pct(row, peak_gflops)  # after the rounds are pooled: from the final GFLOP/s
        row = vetted(row)  # a value the reader would refuse costs this point, never the file
        preflight.observe(row)
        sink.write(row)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows
