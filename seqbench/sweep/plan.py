"""The run plan: which config, which output, which points, how many rounds, which shard; every rule
that combines --resume, --append, --force, --rounds, --shard and --reference is checked here, before
anything is measured or written (a broken combination is one line, exit 2).

Shards (`--shard K/N`): whole curves (one kernel, mode and B over every T) dealt out by estimated
cost, see shards.py; shards 1..N hold every point exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from seqbench.errors import ConfigError
from seqbench.results.identity import Point
from seqbench.sweep.config import SweepConfig, build_config, load_toml, resolve_device


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N), with 1 <= K <= N."""
    try:
        k, n = (int(s) for s in str(text).split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like K/N (e.g. 2/4), got {text!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"--shard {text!r}: need 1 <= K <= N")
    return k, n


def shard_points(points: Sequence[Point], shard: tuple[int, int] | None, min_time: float = 0.2) -> list[Point]:
    """Shard K of N (shards.py: whole curves, balanced by estimated cost), in the grid's order; None: all."""
    from seqbench.sweep.shards import shard_of

    return list(points) if shard is None else shard_of(points, shard, min_time)


def pending_points(cfg: SweepConfig, shard: tuple[int, int] | None = None, done=frozenset(),
                   only: Sequence[str] | None = None) -> list[Point]:
    """The points this run measures: its shard of the grid (of the points `only` selects: --points),
    less those a resumed run already has."""
    grid = cfg.points() if not only else [p for p in cfg.points() if any(_selects(s, p) for s in only)]
    return [p for p in shard_points(grid, shard, cfg.min_time) if p.key() not in done]


POINT_FIELDS = ("kernel", "seq_len", "batch_size", "mode")  # a --points selector: KERNEL:T[:B[:MODE]]


def _selects(selector: str, point: Point) -> bool:
    return all(str(getattr(point, f)) == v for f, v in zip(POINT_FIELDS, selector.split(":")))


def parse_points(text: str, cfg: SweepConfig) -> tuple[str, ...]:
    """--points: comma-separated KERNEL:T[:B[:MODE]] (a field left out matches every value), each of which
    must select a point of the grid; a ConfigError naming what the grid has otherwise."""
    selectors = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not selectors:
        raise ConfigError("--points is empty; allowed: KERNEL:T[:B[:MODE]], comma-separated, e.g. sdpa:128,rnn_loop:64:4")
    grid = cfg.points()
    for sel in selectors:
        parts = sel.split(":")
        if not 2 <= len(parts) <= len(POINT_FIELDS) or not all(parts) or not all(x.isdigit() for x in parts[1:3]):
            raise ConfigError(f"--points {sel!r}: allowed: KERNEL:T[:B[:MODE]] with whole numbers T and B, "
                              "e.g. sdpa:128 or rnn_loop:64:4:forward")
        if not any(_selects(sel, p) for p in grid):
            ks = ",".join(dict.fromkeys(p.kernel for p in grid))
            ts = ",".join(map(str, sorted({p.seq_len for p in grid})))
            bs = ",".join(map(str, sorted({p.batch_size for p in grid})))
            ms = ",".join(dict.fromkeys(p.mode for p in grid))
            raise ConfigError(f"--points {sel!r} is not a point of the sweep; it has kernels {ks}, T {ts}, B {bs}, "
                              f"modes {ms}")
    return selectors


@dataclass
class RunPlan:
    """Everything `seqbench run` was asked to do, checked: carry it out with orchestration.run.execute."""

    cfg: SweepConfig
    out: Path
    source: str  # where the config came from, for messages: a path or "flags"
    rounds: int = 1
    shard: tuple[int, int] | None = None
    only: tuple[str, ...] | None = None  # --points: the selectors of the grid's points to measure
    reference: bool = False  # time the reference matmul before every point's round (column ref_s)
    append: bool = False
    force: bool = False  # replace --out if it exists (once this run owns it)
    peak: bool = True  # measure the matmul peak first (a `calibration` row)
    machine: str | None = None  # label of this machine in the sidecar (None: the device's name)
    resume: Any = None  # resume.ResumeState when continuing a run
    points: list[Point] = field(default_factory=list)  # what this run measures
    notes: list[str] = field(default_factory=list)  # for the user: what was repaired or assumed


def check_machine(label: str | None) -> str | None:
    """A machine label is a short name for tables and legends: printable, one line, no '='."""
    from seqbench.results.reader import check_label

    return None if label is None else check_label(label, "--machine")


def bounded_threads(threads: int, source: str, where: str = "threads") -> str:
    """Threads no more than the cores this process may use (measure.env.check_threads): a ConfigError
    otherwise; a note when SEQBENCH_MAX_THREADS allowed more."""
    from seqbench.measure.env import check_threads

    try:
        return check_threads(threads, where)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}" if source != "flags" else str(exc)) from None


def merge_flags(data: dict, flags: dict) -> dict:
    """Flags over config fields; plugins given both ways are all loaded (config's first)."""
    out = dict(data)
    for key, value in flags.items():
        if value is None:
            continue
        if key == "plugins":
            value = list(dict.fromkeys([*out.get("plugins", []), *value]))
        out[key] = value
    return out


def plan_run(*, config: Path | None = None, flags: dict | None = None, out: Path | None = None, force: bool = False,
             resume: bool = False, append: bool = False, rounds: int = 1, shard: str | None = None,
             reference: bool = False, peak: bool = True, machine: str | None = None,
             points: str | None = None) -> RunPlan:
    """Validate a run request into a RunPlan, or raise a one-line SeqbenchError."""
    from seqbench.kernels.plugins import is_file_spec
    from seqbench.results.ownership import check_not_input
    from seqbench.results.schema import sidecar_path
    from seqbench.results.writer import check_output
    from seqbench.sweep import resume as resume_mod

    if resume and (out is None or force):
        raise ConfigError("--resume continues the run in --out: give --out, and no --force")
    if append and force:
        raise ConfigError("--append and --force contradict each other: append keeps the rows in --out, force replaces them")
    if resume and (append or shard or rounds != 1 or reference or points):
        raise ConfigError("--resume continues with the rounds, shard, points and reference recorded in the run's "
                          "sidecar; drop --rounds, --shard, --points, --reference and --append")
    if not 1 <= rounds <= 100:
        raise ConfigError(f"--rounds {rounds} out of range; allowed: 1 to 100")
    # A resumed run starts from its recorded config (and plugins); anything given explicitly must agree with it.
    notes: list[str] = []
    data = {"name": "sweep"}
    if resume:
        data, notes = resume_mod.recorded_config(out), resume_mod.restore_plugins(out)
    if config:
        data.update(load_toml(config))
    source = str(config) if config else "flags"
    cfg = resolve_device(build_config(merge_flags(data, flags or {}), source=source))
    notes.append(bounded_threads(cfg.threads, source))
    if out is None:
        out = Path("results") / f"{cfg.name}-{cfg.device}-{datetime.now():%Y%m%d-%H%M%S}.csv"
    if shard:  # as launch does: N above the number of points is refused before any work (a heap entry per shard)
        n_points, (_, n_shards) = len(cfg.points()), parse_shard(shard)
        if n_shards > n_points:
            raise ConfigError(f"--shard {shard}: N = {n_shards} is more shards than the sweep has points; "
                              f"allowed: N from 1 to {n_points}")
    plan = RunPlan(cfg, Path(out), source, rounds=rounds, shard=parse_shard(shard) if shard else None,
                   reference=reference, append=append, force=force, peak=peak and "calibration" not in cfg.kernels,
                   notes=notes, machine=check_machine(machine), only=parse_points(points, cfg) if points is not None else None)
    if cfg.metric == "instructions":
        if rounds != 1 or reference:
            raise ConfigError("--rounds and --reference are for timing on a noisy machine; an instruction count "
                              "needs neither: drop them (or use --metric time)")
        plan.peak = False  # the matmul peak is a speed: nothing to count
        from seqbench.measure.callgrind import find_valgrind, inside

        if not inside():
            find_valgrind()  # missing: one line saying how to install it
    plan.notes = [n for n in plan.notes if n]
    plugin_files = [p for p in cfg.plugins if is_file_spec(p)]
    check_not_input([plan.out, sidecar_path(plan.out)], [config, *plugin_files], "--out (or its sidecar)")
    if resume:
        plan.resume = state = resume_mod.load(out, cfg)
        if state.note:
            plan.notes.append(state.note)
        for name, h in state.changed.items():
            plan.notes.append(f"kernel {name}: its code changed since this run began (definition {h['was']}, now "
                              f"{h['now']}); the rows measured before and after this resume time different code "
                              "(both recorded in the sidecar); for one definition throughout, start a new run")
        schedule = state.meta.get("schedule", {})
        plan.rounds = schedule.get("rounds", 1)
        plan.reference = schedule.get("reference", schedule.get("calibrate", False))
        plan.shard = tuple(schedule["shard"]) if schedule.get("shard") else None
        plan.only = tuple(schedule["only"]) if schedule.get("only") else None
        plan.peak = schedule.get("peak", plan.peak)  # a --no-peak run stays without a calibration row
        total = len(pending_points(cfg, only=plan.only))
        plan.notes.append(f"resuming {out}: {len(state.done)} of {total} points already done")
    else:
        check_output(out, force=force, append=append)
    plan.points = pending_points(cfg, plan.shard, plan.resume.done if plan.resume else frozenset(), plan.only)
    if not plan.points and plan.shard and not resume:
        raise ConfigError(f"shard {shard} holds no points: the sweep has only {len(cfg.points())}")
    return plan
