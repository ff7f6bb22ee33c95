"""`seqbench run` as a process does it: the sweep (sweep.runner) into a CSV and its JSON sidecar.

This is where a run meets the outside world: it owns the output files (results.ownership), writes
the sidecar before the first row and again when the run ends, however it ends, and turns SIGINT and
SIGTERM into a clean stop (orchestration.signals) that never splits a row.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

from seqbench.choices import Status
from seqbench.errors import ResultsError
from seqbench.kernels import get_kernel
from seqbench.orchestration import signals
from seqbench.orchestration.signals import CountingSink, Terminated, held, interrupts_as_exceptions
from seqbench.results.schema import SCHEMA_VERSION, Row, sidecar_path
from seqbench.results.writer import write_json_last
from seqbench.sweep.config import SweepConfig
from seqbench.sweep.runner import (REAL, Harness, apply_threads, check_kernels, check_values_everywhere, describe,
                                   new_run_id, run_sweep)


def run_to_files(cfg: SweepConfig, out_path, **kwargs) -> list[Row]:
    """_run_to_files with users' code (factories, forward calls) printing to stderr, never to stdout."""
    from seqbench.kernels.plugins import users_stdout_to_stderr

    with users_stdout_to_stderr():
        return _run_to_files(cfg, out_path, **kwargs)


def _run_to_files(
    cfg: SweepConfig, out_path, *, command: list[str], on_row=None, harness: Harness = REAL, resume=None,
    source: str = "config", peak: bool = False, append: bool = False, force: bool = False, machine: str | None = None,
    on_start=None, **schedule
) -> list[Row]:
    """Run the sweep into out_path (CSV) and its JSON sidecar; the sidecar says how the run ended.

    resume: a resume.ResumeState from resume.load(out_path, cfg), which already owns the CSV: append
    to that run, skipping the points it finished. Raises ConfigError before writing anything if no
    point fits in memory. peak: measure the matmul peak first (a `calibration` row; a resumed run
    reuses its own). schedule: rounds / shard / only (--points) / reference, passed to run_sweep and recorded in the
    sidecar. With append, rows go after the existing ones and the sidecar keeps the earlier runs'
    metadata under "previous_runs". The CSV is created exclusively unless force or append
    (results.ownership) and stays locked until the sidecar's last write.
    machine: the label of the machine in the sidecar (default: env.machine_label), beside the
    scheduler's job ids (env.job_ids), so merged shards and runs of several machines stay told apart.
    harness: the clock and how memory is had (sweep.runner.Harness; REAL for a real run).
    """
    import time

    from seqbench.measure.load import Watch
    from seqbench.sweep.budget import Preflight, resolve_budget

    apply_threads(cfg)  # before the environment is captured: the sidecar records the threads the run uses
    check_values_everywhere(cfg, source)  # a formula that fails at one point fails before anything is timed
    budget, budget_source = resolve_budget(cfg)
    preflight = Preflight(budget)
    preflight.check_anything_fits(cfg, source)
    broken = check_kernels(cfg, signals)  # before any file is written: a factory that raises is exit 2
    if resume is not None:
        for old in resume.rows:
            preflight.observe(old)
    meta, done, rows_before = _sidecar(cfg, out_path, command, resume=resume, append=append, machine=machine,
                                       schedule={**schedule, "peak": peak})
    meta.update(memory_budget_bytes=budget, memory_budget_source=budget_source)
    wall_before = float(meta.get("wall_s") or 0.0)
    # The machine's load at the start and end and what other processes used in between (measure.load):
    # the summary and report warn when the run had to share its cores.
    if "load" in meta and resume is not None:  # the earlier stretch's load stays with its record
        meta["resumed"][-1]["load_before"] = meta["load"]
    watch = Watch()
    watch.start()
    if watch.enabled:
        meta["load"] = watch.as_dict()
    sink = CountingSink()
    with interrupts_as_exceptions():
        output = _open_files(out_path, meta, sink, resume=resume, append=append, force=force)
        t0 = time.perf_counter()

        def ended(status: str, **fields) -> dict:
            """The sidecar as the run ends now, however it ends."""
            return dict(meta, status=status, finished_at=_now(), wall_s=round(wall_before + time.perf_counter() - t0, 3),
                        rows=rows_before + len(sink.rows), **fields)

        def record_stuck(signal_name: str, point) -> None:
            """The watchdog's record of the end (signals.py): a call was still in flight GRACE_S after the signal."""
            extra = {"interrupted_point": dataclasses.asdict(point)} if point is not None else {}
            write_json_last(sidecar_path(out_path), ended("interrupted", interrupted_by=signal_name, **extra))

        signals.on_stuck(record_stuck)
        try:
            if on_start:  # every check passed and the files exist: the run really starts (e.g. say how long)
                on_start()
            known = None if resume is None else next(
                (r.gflops_per_s for r in resume.rows if r.kernel == "calibration" and r.status == Status.OK), None)
            run_sweep(cfg, sink, run_id=meta["run_id"], on_row=on_row, harness=harness, preflight=preflight, done=done,
                      peak=peak, known_peak=known, broken=broken, interrupts=signals, **schedule)
            sink.sink.verify()  # deleted or replaced after the last row is not a success either
            meta["status"] = "complete"
        except KeyboardInterrupt as exc:
            meta["status"] = "interrupted"
            meta["interrupted_by"] = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
            raise
        except BaseException as exc:
            meta["status"] = "failed"
            meta["error"] = describe(exc)
            raise
        finally:
            signals.on_stuck(None)
            if not signals.finishing():  # the watchdog is recording the end and ending the process
                time.sleep(60)
            with held():  # a second Ctrl-C waits until the sidecar says how the run ended
                try:
                    if watch.enabled:
                        watch.stop()
                        meta["load"] = watch.as_dict()
                    meta.update(ended(meta["status"]))
                    write_json_last(sidecar_path(out_path), meta)
                except ResultsError:
                    if meta["status"] == "complete":  # the rows are fine, but the record of the run is not
                        raise
                    # otherwise the error that stopped the run is the one to report
                finally:
                    output.release()
    return sink.rows


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sidecar(cfg: SweepConfig, out_path, command: list[str], *, resume, append: bool, machine: str | None,
             schedule: dict) -> tuple[dict, frozenset, int]:
    """(the sidecar as the run starts, the keys of points already done, rows already in the CSV).

    A new run gets a new record (with the earlier runs under "previous_runs" when it appends); a
    resumed one continues its own, with the resumption noted. Either way it names where every kernel
    came from, so a run can be reproduced and report/plot read it without plugins.
    """
    import os
    import socket

    from seqbench.kernels.plugins import loaded_plugins
    from seqbench.measure import env
    from seqbench.results.reader import read_metadata

    if resume is not None:
        meta, done = resume.meta, resume.done
        meta.setdefault("resumed", []).append(
            {"at": _now(), "command": command, "rows_before": len(resume.rows), "host": socket.gethostname(),
             "job": env.job_ids(), **({"kernels_changed": resume.changed} if resume.changed else {})}
        )
        rows_before = len(resume.rows)
    else:
        done, rows_before = frozenset(), 0
        environment = env.capture(cfg.device)
        meta = {
            "schema_version": SCHEMA_VERSION,
            "run_id": new_run_id(),
            "command": command,
            "config": cfg.to_dict(),
            "environment": environment,
            "machine": machine or env.machine_label(environment),
            "job": env.job_ids(),
            "started_at": _now(),
            "schedule": {k: v for k, v in schedule.items() if v is not None},
        }
        if append:
            old = read_metadata(out_path) if Path(out_path).exists() else {}
            if old:
                meta["previous_runs"] = old.pop("previous_runs", []) + [old]
    meta["plugins"] = [p.as_dict() for p in loaded_plugins()]
    meta["kernels"] = {k: get_kernel(k).info() for k in cfg.kernels}
    meta.update(status="running", pid=os.getpid(), host=socket.gethostname())  # names the owner in messages
    for stale in ("interrupted_by", "error"):
        meta.pop(stale, None)
    return meta, done, rows_before


def _open_files(out_path, meta: dict, sink: CountingSink, *, resume, append: bool, force: bool):
    """Own the CSV (results.ownership), write the first sidecar and point sink at the CSV: all or nothing,
    since an interrupt cannot leave a CSV without its sidecar, or the reverse. Returns the owned output."""
    import os

    from seqbench.results.ownership import own
    from seqbench.results.writer import CsvSink, write_json_atomic

    with held():
        output = resume.output if resume is not None else own(out_path, "append" if append else
                                                               "replace" if force else "new")
        try:
            write_json_atomic(sidecar_path(out_path), meta)
            sink.sink = CsvSink(output=output, append=resume is not None or append)
        except BaseException:
            if output.created and os.fstat(output.fd).st_size == 0:  # ours, and nothing in it: gone again
                Path(out_path).unlink(missing_ok=True)
            output.release()
            raise
    return output


def execute(plan, *, command: list[str], on_row=None, harness: Harness = REAL, on_start=None) -> list[Row]:
    """Carry out a checked RunPlan (sweep.plan.plan_run): the sweep into plan.out and its sidecar."""
    return run_to_files(plan.cfg, plan.out, command=command, on_row=on_row, harness=harness, resume=plan.resume,
                        source=plan.source, peak=plan.peak, append=plan.append, force=plan.force,
                        rounds=plan.rounds, shard=plan.shard, only=list(plan.only) if plan.only else None,
                        reference=plan.reference, machine=plan.machine, on_start=on_start)
