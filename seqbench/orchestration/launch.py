"""`seqbench launch CONFIG --shards N`: one job per shard through submitit, wait, merge.

submitit does the scheduling: a Slurm job array on a cluster, subprocesses with its local executor
on one machine. Each job is `seqbench run CONFIG --shard K/N -o FOLDER/shard-K-of-N.csv` done in
the job's own process (run_shard), so a shard's CSV and sidecar are exactly what a hand-run shard
writes, plus the job ids the sidecar records from the scheduler's variables (measure/env.py).

The folder (default: beside the output, OUT.shards/) holds the shards, submitit's logs and
launch.json (the sweep, N, every job submitted). Launching again with the same config and N picks
up where the last launch stopped: finished shards are kept, an unfinished one is resumed
(`run --resume`), a missing one is run, so a failed shard is rerun alone; then everything is
merged (results/merge.py: all N shards present, one sweep, one kind of machine).

On one machine the shards run one after another by default (`parallel=1`): shards running at once
would share its cores and each would time the others' load.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from seqbench.choices import Cluster
from seqbench.errors import ConfigError, ExitCode, SeqbenchError
from seqbench.results.reader import read_metadata
from seqbench.results.schema import sidecar_path
from seqbench.orchestration.signals import children_stopped, stop_process

LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local default (2 min) would kill any real sweep
SLURM_TIMEOUT_MIN = 4 * 60  # submitit's Slurm default is 5 min; a partition may allow less: --timeout-min
POLL_S = 0.5  # how often the launcher looks at its jobs (submitit reads result files; Slurm is asked at most once a minute)


class ShardsFailed(SeqbenchError):
    """Some shards failed: the others are kept, rerunning the launch reruns only the failed ones."""

    exit_code = ExitCode.SHARDS_FAILED


@dataclass(frozen=True)
class ShardTask:
    """What one job runs: shard k of n of the sweep (picklable: submitit sends it to the job)."""

    config: str  # absolute path of the TOML
    flags: dict
    k: int
    n: int
    out: str  # absolute path of the shard's CSV
    resume: bool
    peak: bool = True
    rounds: int = 1
    machine: str | None = None


@dataclass
class ShardOutcome:
    k: int
    path: Path
    state: str  # kept (finished earlier), done, failed
    job_id: str = ""
    error: str = ""
    log: str = ""
    rows: int | None = None
    wall_s: float | None = None


@dataclass
class LaunchResult:
    outcomes: list[ShardOutcome]
    merged: Path | None = None
    summary: object = None  # merge.MergeSummary
    cluster: str = ""

    @property
    def failed(self) -> list[ShardOutcome]:
        return [o for o in self.outcomes if o.state == "failed"]


def run_shard(task: ShardTask) -> dict:
    """The job: run (or resume) one shard into its CSV. Raises on failure, which submitit records."""
    from seqbench.sweep.plan import plan_run
    from seqbench.orchestration.run import execute

    import faulthandler

    os.environ["SEQBENCH_SHARD"] = f"{task.k}/{task.n}"  # for plugins and logs: which shard this process is
    faulthandler.enable()  # a crash (SIGSEGV in a kernel) says so in the job's stderr, which _job_error reads
    if task.resume:
        plan = plan_run(out=Path(task.out), resume=True)
        command = ["seqbench", "run", "--resume", "-o", task.out]
    else:
        plan = plan_run(config=Path(task.config), flags=task.flags, out=Path(task.out), shard=f"{task.k}/{task.n}",
                        peak=task.peak, rounds=task.rounds, machine=task.machine)
        command = ["seqbench", "run", task.config, "--shard", f"{task.k}/{task.n}", "-o", task.out]
    rows = execute(plan, command=command)
    return {"rows": len(rows), "failed_points": sum(r.status != "ok" for r in rows)}


def _record_killed(out: Path, signum: int) -> None:
    """A shard stopped with the launch whose sidecar still says running: its process was killed before it
    could record the interrupt (submitit's local controller sends SIGKILL a second after a Ctrl-C reaches
    it). Record it as the run would have: interrupted, with the rows its CSV holds."""
    from seqbench.results.ownership import abandoned
    from seqbench.results.reader import read_results
    from seqbench.results.writer import write_json_last

    side = sidecar_path(out)
    try:
        meta = json.loads(side.read_text())
        if not abandoned(out, meta):
            return
        meta.update(status="interrupted", interrupted_by=signal.Signals(signum).name,
                    finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    note="the shard's process was stopped before it could record this; launch recorded it")
        with contextlib.suppress(SeqbenchError):
            meta["rows"] = len(read_results(out))
        write_json_last(side, meta)
    except (OSError, ValueError, SeqbenchError):
        pass  # a courtesy to the next launch, which resumes the shard either way


def shard_path(folder: Path, k: int, n: int) -> Path:
    return folder / f"shard-{k}-of-{n}.csv"


def shard_state(path: Path) -> str:
    """complete (its sidecar says so), unfinished (a run to resume), or missing."""
    if not path.exists() or not sidecar_path(path).exists():
        return "missing"
    try:
        meta = read_metadata(path)
    except SeqbenchError:
        return "missing"
    if meta.get("status") == "complete":
        return "complete"
    return "unfinished" if meta.get("run_id") and meta.get("config") else "missing"


def _manifest(folder: Path, sweep: dict, force: bool) -> dict:
    """launch.json of the folder. The same sweep: its record (finished shards are kept). Another
    sweep's launch: refused, or with force cleared (its shards and job logs deleted)."""
    path = folder / "launch.json"
    if not path.exists():
        return {"sweep": sweep, "jobs": []}
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        old = {"unreadable": str(exc)}
    if isinstance(old, dict) and old.get("sweep") == sweep:
        return old
    if not force:
        recorded = old.get("sweep") if isinstance(old, dict) and isinstance(old.get("sweep"), dict) else {}
        diff = next((k for k in sorted(set(sweep) | set(recorded)) if recorded.get(k) != sweep.get(k)), "?")
        raise ConfigError(f"{folder} holds a launch of another sweep ({diff} differs); choose another --dir, "
                          "or pass --force to start over there")
    from seqbench.results.ownership import refuse_owned

    doomed = list(folder.glob("shard-*-of-*.csv")) + list(folder.glob("shard-*-of-*.json"))
    for p in doomed:  # a shard job still measuring: --force must not pull its file from under it
        refuse_owned(p, "--force (clearing the folder)")
    for p in doomed:
        p.unlink()
    shutil.rmtree(folder / "jobs", ignore_errors=True)
    return {"sweep": sweep, "jobs": []}


def _submitit():
    try:
        import submitit
    except ImportError:
        raise SeqbenchError("seqbench launch needs submitit: pip install 'seqbench[launch]'") from None
    return submitit


def _executor(folder: Path, cluster: str, name: str, timeout_min: float | None, slurm: dict):
    submitit = _submitit()
    if cluster == Cluster.SLURM and shutil.which("sbatch") is None:
        raise ConfigError("--cluster slurm: no `sbatch` on this machine; launch from the cluster's login node, "
                          "or use --cluster local")
    try:
        ex = submitit.AutoExecutor(folder=folder / "jobs", cluster=None if cluster == Cluster.AUTO else cluster)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"--cluster {cluster}: {exc}") from None
    if timeout_min is None:
        timeout_min = LOCAL_TIMEOUT_MIN if ex.cluster != "slurm" else SLURM_TIMEOUT_MIN
    params = {"timeout_min": int(max(1, timeout_min)), "name": f"seqbench-{name}"}
    if ex.cluster == "slurm":
        params.update({f"slurm_{k}" if k in ("partition", "array_parallelism") else k: v
                       for k, v in slurm.items() if v is not None})
    ex.update_parameters(**params)
    return ex


def _job_error(job) -> tuple[str, str]:
    """(one line saying why the job failed, its log file) from submitit's exception."""
    import re

    text = str(job.exception() or "no result")
    crash = re.search(r"Fatal Python error: ([^\n]+)", text)  # run_shard's faulthandler, in the job's stderr
    if crash:  # a crash in native code (a kernel or a plugin): the process died, so no traceback to read
        lines = [f"the shard's process crashed: {crash.group(1).strip()} (in native code: a kernel or a plugin)"]
    elif "-" * 22 in text:  # a FailedJobError: the job's traceback between dashed lines; its last line names the error
        lines = [ln.strip() for ln in text.split("-" * 22)[1].splitlines()
                 if ln.strip() and not ln.lstrip().startswith("submitit ")]  # submitit's own log lines say nothing
    else:  # an UncompletedJobError: the job died without a result (killed, timed out, node lost)
        lines = [" ".join(text.split("\n")[:2])]
    try:
        log = str(job.paths.stderr)
    except Exception:  # noqa: BLE001 - the log path is a courtesy
        log = ""
    why = lines[-1] if lines else ("the shard's process ended with no result and no error message (killed by SIGKILL, "
                                   "the out-of-memory killer?)")
    return (why if len(why) <= 600 else "…" + why[-600:]), log  # the end names the error


@dataclass
class LaunchSpec:
    config: Path
    shards: int
    out: Path
    folder: Path | None = None
    cluster: str = Cluster.AUTO
    flags: dict = field(default_factory=dict)
    peak: bool = True
    rounds: int = 1
    machine: str | None = None
    parallel: int | None = None  # jobs at once; None: 1 on the local executor, all on a cluster
    timeout_min: float | None = None  # None: no limit on the local executor, 4 hours on Slurm
    slurm: dict = field(default_factory=dict)  # partition, gpus_per_node, cpus_per_task, array_parallelism
    force: bool = False
    allow_partial: bool = False
    allow_mixed: bool = False


def default_folder(out: Path) -> Path:
    return out.with_suffix(".shards")


def launch(spec: LaunchSpec, *, on_event: Callable[[str, dict], None] | None = None) -> LaunchResult:
    """Submit the shards that are not finished, wait for them, merge all N (see the module's notes)."""
    from seqbench.results.merge import merge_files
    from seqbench.results.writer import check_output
    from seqbench.sweep.config import build_config, load_toml
    from seqbench.sweep.plan import check_machine, merge_flags

    emit = on_event or (lambda kind, info: None)
    _submitit()  # before anything is written
    config = Path(spec.config).resolve()
    cfg = build_config(merge_flags(load_toml(config), spec.flags), source=str(spec.config))
    n, n_points = spec.shards, len(cfg.points())
    if not 1 <= n <= n_points:
        raise ConfigError(f"--shards {n}: allowed 1 to {n_points} (the sweep has {n_points} points)")
    if spec.parallel is not None and spec.parallel < 1:
        raise ConfigError(f"--parallel {spec.parallel}: must be >= 1")
    if spec.timeout_min is not None and not spec.timeout_min > 0:
        raise ConfigError(f"--timeout-min {spec.timeout_min}: must be > 0 minutes")
    check_machine(spec.machine)
    out = Path(spec.out).resolve()
    check_output(out, force=spec.force)
    folder = (Path(spec.folder) if spec.folder else default_folder(out)).resolve()
    sweep = json.loads(json.dumps({"config": cfg.to_dict(), "shards": n, "peak": spec.peak, "rounds": spec.rounds}))
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(folder, sweep, spec.force)

    outcomes: dict[int, ShardOutcome] = {}
    todo: list[ShardTask] = []
    for k in range(1, n + 1):
        path = shard_path(folder, k, n)
        state = shard_state(path)
        if state == "complete":
            outcomes[k] = ShardOutcome(k, path, "kept", rows=read_metadata(path).get("rows"))
        else:
            todo.append(ShardTask(str(config), dict(spec.flags), k, n, str(path), resume=state == "unfinished",
                                  peak=spec.peak, rounds=spec.rounds, machine=spec.machine))
    emit("plan", {"folder": folder, "kept": sorted(outcomes), "todo": [t.k for t in todo], "shards": n})
    executor = _executor(folder, spec.cluster, cfg.name, spec.timeout_min, dict(spec.slurm))
    try:
        for o in _run_jobs(executor, todo, spec.parallel, manifest, folder, emit):
            outcomes[o.k] = o
    finally:
        _write_manifest(folder, manifest)
    result = LaunchResult([outcomes[k] for k in sorted(outcomes)], cluster=str(executor.cluster))
    if result.failed and not spec.allow_partial:
        return result
    present = [str(o.path) for o in result.outcomes if o.state != "failed" and o.path.exists()]
    info = {"launch": {"folder": str(folder), "cluster": result.cluster, "shards": n, "jobs": manifest["jobs"],
                       "submitit": getattr(_submitit(), "__version__", None)}}
    result.summary = merge_files(present, out, allow_partial=spec.allow_partial, allow_mixed=spec.allow_mixed,
                                 extra=info, force=spec.force)
    result.merged = out
    return result


def _run_jobs(executor, todo: list[ShardTask], parallel: int | None, manifest: dict, folder: Path, emit):
    """Submit the tasks (at most `parallel` at once locally; one job array on Slurm) and yield each
    ShardOutcome as its job ends. Ctrl-C cancels the jobs still running."""
    cluster = executor.cluster
    if cluster == "slurm":
        if parallel:
            executor.update_parameters(slurm_array_parallelism=parallel)
        parallel = None  # the array's parallelism is Slurm's to enforce
    elif parallel is None:
        parallel = 1  # one machine: shards at once would time each other's load
    queue, running = list(todo), []

    def submit_next() -> None:
        take = len(queue) if parallel is None else max(0, parallel - len(running))
        tasks, queue[:] = queue[:take], queue[take:]
        if not tasks:
            return
        # submitit's local controller process inherits our stderr: on Ctrl-C (which reaches it too) it
        # printed a traceback after seqbench's one line; it writes to a log in the jobs folder instead
        with _stderr_to(folder / "jobs" / "controllers.log"), executor.batch():  # one Slurm job array for the lot
            jobs = [executor.submit(run_shard, t) for t in tasks]
        for t, job in zip(tasks, jobs):
            if getattr(job, "_process", None) is not None:  # a local job writes to this disk: a job that died
                job._results_timeout_s = 0  # without a result has none coming (submitit waits 15 s, twice, for NFS)
            running.append((t, job, time.perf_counter()))
            manifest["jobs"].append({"shard": t.k, "job_id": str(job.job_id), "cluster": cluster,
                                     "resume": t.resume, "submitted_at": _now()})
            emit("submitted", {"shard": t.k, "n": t.n, "job_id": str(job.job_id), "resume": t.resume})
        _write_manifest(folder, manifest)

    def stop_jobs(signum: int) -> None:  # local jobs: the signal to each job's controller, which passes it
        # on to the shard's `seqbench run` (interrupted, rows kept); wait for them. Cluster jobs: cancel.
        for _, job, _ in running:
            proc = getattr(job, "_process", None)
            if proc is not None:
                stop_process(proc, signal.SIGTERM)
            else:
                job.cancel(check=False)
        for t, job, _ in running:
            if getattr(job, "_process", None) is not None:  # ended here, so its sidecar can be read as final
                _record_killed(Path(t.out), signum)

    # interrupted (a signal, Ctrl-C): children_stopped stops the jobs, whose shards a later launch resumes
    with children_stopped(stop_jobs):
        submit_next()
        while running:
            time.sleep(POLL_S)
            for item in [r for r in running if r[1].done()]:
                running.remove(item)
                t, job, t0 = item
                o = ShardOutcome(t.k, Path(t.out), "done", job_id=str(job.job_id), wall_s=time.perf_counter() - t0)
                if job.exception() is not None:
                    o.state = "failed"
                    o.error, o.log = _job_error(job)
                else:
                    o.rows = job.result().get("rows")
                _record(manifest, o)
                emit("finished", {"outcome": o, "n": t.n})
                yield o
            submit_next()


@contextlib.contextmanager
def _stderr_to(path: Path):
    """File descriptor 2 of processes started within goes to path (appended); ours is restored after."""
    import sys

    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = os.dup(2)
    os.dup2(log, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _record(manifest: dict, o: ShardOutcome) -> None:
    for job in reversed(manifest["jobs"]):
        if job["shard"] == o.k and job["job_id"] == o.job_id:
            job.update(state=o.state, error=o.error, log=o.log, finished_at=_now(),
                       wall_s=round(o.wall_s, 3) if o.wall_s is not None else None)
            return


def _write_manifest(folder: Path, manifest: dict) -> None:
    from seqbench.results.writer import write_json_atomic

    write_json_atomic(folder / "launch.json", manifest)
