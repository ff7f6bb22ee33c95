"""`seqbench ab`: time two versions of the code on one machine, alternately, each run its own process.

A side is either a DIRECTORY (a checkout of the user's code: put first on the import path of that
side's processes, which also run in it, so the config's plugin modules and relative plugin files
load from it; if it holds seqbench itself, that seqbench runs) or the seqbench EXECUTABLE of
another environment (a torch or seqbench upgrade). Every run is a fresh `seqbench run CONFIG
--rounds K --append` process writing into OUT/<side>.csv, so compare sees how much one process
differs from the next, on both sides alike.

Order: passes over the sides, forward then backward (ABBA for two sides: A B B A A B B A ...), so
a slow drift of the machine hits every side equally; with an even number of passes a linear drift
cancels exactly. The core takes any number of sides (the bench in benchmarks/aa_collect.py times a
base, its copy and planted heads in one interleaved schedule); the CLI gives it two.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from seqbench.errors import ABError

SIDE_FILES = (".csv", ".json")
MAX_RUNS = 100


@dataclass(frozen=True)
class Side:
    """How to start a `seqbench run` for one side of the comparison."""

    name: str  # base / head: names the CSV (OUT/<name>.csv)
    spec: str  # as the user gave it
    kind: str  # directory | executable
    command: tuple[str, ...]  # argv that runs seqbench
    cwd: str
    pythonpath: tuple[str, ...] = ()  # put first on the import path (directory sides)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join([*self.pythonpath, *filter(None, [os.environ.get("PYTHONPATH")])])
        return env

    def describe(self) -> str:
        return f"{self.name}: {self.kind} {self.spec}"


def resolve_side(name: str, spec: str) -> Side:
    """A directory (checkout) or an executable (another environment's `seqbench`, or a command line
    such as "/other/venv/bin/python -m seqbench"); anything else is an ABError (exit 2)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        root = path.resolve()
        src = root / "src"  # a src-layout checkout keeps its packages one level down
        paths = (str(root), str(src)) if src.is_dir() else (str(root),)
        return Side(name, spec, "directory", (sys.executable, "-m", "seqbench"), str(root), paths)
    try:
        argv = shlex.split(spec)
    except ValueError as exc:
        raise ABError(f"--{name} {spec!r}: {exc}") from None
    exe = shutil.which(argv[0]) if argv else None
    if exe is None:
        raise ABError(f"--{name} {spec!r} is neither a directory (a checkout of your code) nor an executable "
                      "(another environment's seqbench, e.g. ../base/.venv/bin/seqbench)")
    return Side(name, spec, "executable", (str(Path(exe).resolve()), *argv[1:]), os.getcwd())


def abba_order(names: Sequence[str], runs: int) -> list[str]:
    """`runs` runs of every side: passes over the sides, alternately forward and backward (ABBA)."""
    order = []
    for i in range(runs):
        order += list(names) if i % 2 == 0 else list(reversed(names))
    return order


@dataclass
class RunRecord:
    side: str
    index: int  # 1.. within its side, counting runs already in OUT when appending
    wall_s: float
    returncode: int
    load: dict | None = None  # the machine while it ran (machine_load): others' CPU, load average, busiest
    loaded: str | None = None  # why it competed with other work (None: it did not, or unknown)
    points: dict | None = None  # --runs auto: the kernels/seq_lens/batch_sizes it was limited to (None: all)


@dataclass
class ABResult:
    out_dir: Path
    sides: list[Side]
    runs: list[RunRecord] = field(default_factory=list)
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    stopped: str = ""  # --runs auto: why it stopped adding runs
    sequential: dict = field(default_factory=dict)  # --runs auto: the design and each point's look history

    def to_json(self, earlier: dict | None = None) -> dict:
        """ab.json; earlier: the ab.json this --append continues, whose runs (and wall time) it keeps."""
        old = earlier if isinstance(earlier, dict) else {}
        old_runs = [r for r in old.get("runs") or [] if isinstance(r, dict)]
        wall = self.wall_s + (float(old.get("wall_s") or 0) if isinstance(old.get("wall_s"), (int, float)) else 0)
        out = {"sides": [asdict(s) for s in self.sides], "wall_s": round(wall, 3),
               "runs": old_runs + [asdict(r) for r in self.runs],
               "notes": list(dict.fromkeys([*(n for n in old.get("notes") or [] if isinstance(n, str)), *self.notes]))}
        if self.stopped:
            out.update(stopped=self.stopped, sequential=self.sequential)
        return out


def earlier_record(out_dir: Path) -> dict:
    """The ab.json already in out_dir ({} if none or unreadable), for --append to keep its runs."""
    try:
        data = json.loads((Path(out_dir) / "ab.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


_HELD: dict[Path, int] = {}  # folders this process owns (their lock file's descriptor): re-entrant


@contextlib.contextmanager
def own_folder(out_dir: Path):
    """One `seqbench ab` per output folder at a time, as one `run` per CSV: an exclusive flock on
    OUT/.ab.lock for the whole A/B run (runs, compare, ab.json), taken before anything in OUT is
    deleted or written. A second ab (--force and --append included) is refused with the owner's pid;
    the kernel drops the lock when its process ends, however it ends."""
    import fcntl

    out_dir = Path(out_dir).resolve()
    if out_dir in _HELD:
        yield
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(out_dir / ".ab.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ABError(f"-o {out_dir}: cannot use it as the output folder: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = os.pread(fd, 64, 0).decode(errors="replace").strip()
        os.close(fd)
        raise ABError(f"{out_dir} is being written by another seqbench ab{f' (pid {owner})' if owner else ''}; "
                      "wait for it to finish, or choose another -o") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _HELD[out_dir] = fd
    try:
        yield
    finally:
        _HELD.pop(out_dir, None)
        os.close(fd)  # releases the lock


def prepare_out(out_dir: Path, names: Sequence[str], *, append: bool, force: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse to mix with earlier results unless asked: --append adds runs, --force starts afresh.
    Never deletes or overwrites one of `inputs` (the user's config, named base.json inside OUT)."""
    from seqbench.errors import ResultsError
    from seqbench.results.ownership import check_not_input

    if append and force:
        raise ABError("--append and --force contradict each other: append adds runs to OUT, force replaces them")
    written = [out_dir / f"{n}{ext}" for n in names for ext in SIDE_FILES] + \
        [out_dir / f for f in ("compare.md", "compare.json", "ab.json")]
    try:
        check_not_input(written, inputs, "-o (a file ab writes there)")
    except ResultsError as exc:
        raise ABError(f"{exc}; move the config out of the output folder") from None
    existing = [out_dir / f"{n}{ext}" for n in names for ext in SIDE_FILES if (out_dir / f"{n}{ext}").exists()]
    if existing and not (append or force):
        raise ABError(f"{existing[0]} already exists; pass --append to add runs to it (and compare them all), "
                      "or --force to start again, or choose another -o")
    if force:
        from seqbench.results.ownership import refuse_owned

        for p in existing:  # a run still writing a side's CSV (another ab): --force must not pull it away
            refuse_owned(p, "--force (starting again)")
        for p in existing:
            p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def run_command(side: Side, config: Path, out_csv: Path, rounds: int, points: dict | None = None,
                metric: str = "time") -> list[str]:
    """points: {"kernels": [...], "seq_lens": [...], "batch_sizes": [...], "points": [...]} limits the run to
    those (--runs auto stops measuring decided points); None runs the whole config. metric: instructions
    makes each run one Valgrind process (`seqbench run --metric instructions`)."""
    limit = [] if not points else [x for flag, vals in points.items()
                                   for x in (f"--{flag.replace('_', '-')}", ",".join(map(str, vals)))]
    counted = ["--metric", metric] if metric != "time" else []
    return [*side.command, "run", str(config), "--rounds", str(rounds), "--append", "--no-peak", "-q",
            *counted, *limit, "-o", str(out_csv)]


class LoadMeter:
    """How busy the machine was with OTHER work while one child run ran: the CPU time /proc/stat counts
    as busy (steal included: a VM's neighbours) minus the child's own (os.times' children), over the
    run's wall time, in cores (short-lived processes count too, unlike a scan of live pids); with
    measure.load's sample at the end (load average, busiest processes). A run that competed for its
    cores is `loaded` (measure.load.loaded): compare does not take a side measured under a load the
    other side did not see as evidence (compare.split_by_load). SEQBENCH_LOAD_WINDOW=off records none."""

    def __init__(self) -> None:
        from seqbench.measure import load

        self.window = load.window_from_env(0.1)
        self.t0, self.busy0, self.own0 = time.perf_counter(), _busy_seconds(), _children_cpu()

    def stop(self, threads: int) -> tuple[dict | None, str | None]:
        from seqbench.measure import load

        if self.window is None:
            return None, None
        wall = max(time.perf_counter() - self.t0, 1e-9)
        busy1, own1 = _busy_seconds(), _children_cpu()
        snap = load.sample(self.window).as_dict()
        snap["end_busy_cores"] = snap.pop("busy_cores")
        if busy1 is not None and self.busy0 is not None:
            snap["busy_cores"] = round(max(0.0, (busy1 - self.busy0) - (own1 - self.own0)) / wall, 2)
        snap["run_s"] = round(wall, 2)
        return snap, load.loaded(snap, threads)


def _busy_seconds() -> float | None:
    """Non-idle CPU seconds of the whole machine since boot (/proc/stat), None where unreadable."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / tick


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def plugin_notes(side: Side, sidecar: Path) -> list[str]:
    """A directory side whose plugins were imported from elsewhere compares code it did not mean to."""
    if side.kind != "directory" or not sidecar.exists():
        return []
    meta = json.loads(sidecar.read_text())
    notes = []
    for rec in meta.get("plugins", []):
        file = rec.get("file")
        if file and not Path(file).resolve().is_relative_to(Path(side.cwd)):
            notes.append(f"{side.name}: plugin {rec.get('spec')} was imported from {file}, outside {side.spec}: "
                         "both sides may be timing that same copy")
    return notes


def _check(config: Path, sides: Sequence[Side], out_dir: Path, rounds: int, append: bool, force: bool) -> ABResult:
    if not 1 <= rounds <= 100:
        raise ABError(f"--rounds {rounds} out of range; allowed: 1 to 100")
    names = [s.name for s in sides]
    if len(set(names)) != len(names):
        raise ABError(f"side names must differ, got {names}")
    if not config.is_file():
        raise ABError(f"config {config} not found")
    prepare_out(out_dir, names, append=append, force=force, inputs=[config])
    result = ABResult(out_dir, list(sides))
    if len({(s.command, s.cwd, s.pythonpath) for s in sides}) < len(sides):
        result.notes.append("two sides run the same code: an A/A run, so any change it reports is noise")
    return result


class _Runner:
    """Starts one side's runs, one process each, and keeps the record (wall time, load) of each."""

    def __init__(self, config: Path, result: ABResult, rounds: int, runner, threads: int, metric: str = "time") -> None:
        self.config, self.result, self.rounds, self.runner, self.threads = config, result, rounds, runner, threads
        self.metric = metric
        self.done = {s.name: _runs_in(result.out_dir / f"{s.name}.json") for s in result.sides}
        self.checked: set[str] = set()
        self.without_points: set[str] = set()  # sides whose seqbench predates `run --points`

    def run(self, side: Side, points: dict | None = None) -> RunRecord:
        out_csv = self.result.out_dir / f"{side.name}.csv"
        meter = LoadMeter()
        before = _lines(out_csv)
        t0 = time.perf_counter()
        env = side.env()
        if self.metric == "instructions":  # run i of every side counts under hash seed i-1 (orchestration/valgrind.py)
            env["PYTHONHASHSEED"] = str(self.done[side.name])
        if points and "points" in points and side.name in self.without_points:
            points = {k: v for k, v in points.items() if k != "points"}
        proc = self.runner(run_command(side, self.config, out_csv, self.rounds, points, self.metric), cwd=side.cwd,
                           env=env, capture_output=True, text=True)
        if points and "points" in points and proc.returncode == 2 and "--points" in (proc.stderr or "") \
                and "No such option" in proc.stderr:  # a seqbench from before `run --points`: the lists' product
            self.without_points.add(side.name)
            self.result.notes.append(f"{side.describe()}: its seqbench has no `run --points`; its runs measure "
                                     "every combination of the open points' kernels, T and B (decided ones again)")
            return self.run(side, points)
        wall = time.perf_counter() - t0
        self.done[side.name] += 1
        load, loaded = meter.stop(self.threads)
        rec = RunRecord(side.name, self.done[side.name], wall, proc.returncode, load, loaded, points)
        self.result.runs.append(rec)
        if proc.returncode == 130:
            raise KeyboardInterrupt
        if proc.returncode != 0:
            raise ABError(f"{side.describe()}: run {rec.index} exited with {proc.returncode}: "
                          f"{_last_line(proc.stderr or proc.stdout)}")
        if _lines(out_csv) <= max(before, 1):  # exit 0 but no rows: it did not run the sweep; never a run to count
            raise ABError(f"{side.describe()}: run {rec.index} exited 0 but added no rows to {out_csv} "
                          f"(is it a seqbench that runs `run CONFIG --append -o FILE`?); last output: "
                          f"{_last_line(proc.stderr or proc.stdout)}")
        if side.name not in self.checked:  # once per side: where its plugins really came from
            self.checked.add(side.name)
            self.result.notes += plugin_notes(side, out_csv.with_suffix(".json"))
        return rec


def run_child(argv, *, cwd, env, capture_output=True, text=True) -> subprocess.CompletedProcess:
    """subprocess.run for one side's run, whose process stops with ab's: a SIGTERM or SIGINT to ab is
    passed on and waited for (the run records "interrupted" and keeps its rows), never an orphan that
    goes on measuring beside the next ab."""
    from seqbench.orchestration.signals import children_stopped, stop_process

    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text)
    with children_stopped(lambda signum: stop_process(proc, signum)):
        out, err = proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _lines(csv: Path) -> int:
    try:
        with csv.open("rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return 0


def _threads(config: Path) -> int:
    """The config's thread count (what a run needs of the cores), 1 when it does not say."""
    import tomllib

    try:
        return int(tomllib.loads(config.read_text()).get("threads", 1)) or (os.cpu_count() or 1)
    except (OSError, ValueError, TypeError):
        return 1


def _run_ab(config: Path, sides: Sequence[Side], out_dir: Path, *, runs: int, rounds: int, append: bool = False,
           force: bool = False, on_run: Callable[[RunRecord, int, int], None] | None = None,
           after_first_pass: Callable[[], None] | None = None,
           runner: Callable[..., subprocess.CompletedProcess] | None = None, metric: str = "time") -> ABResult:
    """Run `runs` runs of every side in ABBA order into out_dir/<side>.csv; returns what ran.

    A run that fails stops everything (ABError, exit 2) with that side's own message: a config or
    plugin the side cannot load is bad input, not a regression. after_first_pass() is called once
    every side has a run, so a comparison that would be refused (compare's mismatch checks) stops
    after one pass instead of after all of them.
    """
    if not 1 <= runs <= MAX_RUNS:
        raise ABError(f"--runs {runs} out of range; allowed: 1 to {MAX_RUNS} runs a side (a verdict needs >= 2; "
                      "4 is the default), or auto")
    config, out_dir = Path(config).resolve(), Path(out_dir).resolve()
    result = _check(config, sides, out_dir, rounds, append, force)
    by_name = {s.name: s for s in sides}
    order = abba_order([s.name for s in sides], runs)
    starter = _Runner(config, result, rounds, runner or run_child, _threads(config), metric)
    t_all = time.perf_counter()
    # Instruction counts do not depend on the machine's load (docs/instructions.md): the sides of a pass
    # run side by side, one Valgrind process per core, where times must run one at a time.
    width = min(len(sides), os.cpu_count() or 1) if metric == "instructions" else 1
    i = 0
    for at in range(0, len(order), width):
        for rec in _run_side_by_side(starter, [by_name[n] for n in order[at:at + width]]):
            i += 1
            if on_run:
                on_run(rec, i, len(order))
            if i == len(sides) and after_first_pass:
                after_first_pass()
    result.wall_s = time.perf_counter() - t_all
    return result


def _run_side_by_side(starter: "_Runner", sides: Sequence[Side]) -> list[RunRecord]:
    """One run of each side, at the same time (threads that wait on a child each); a failure of any is raised
    once all have ended. A SIGINT/SIGTERM reaches every child through signals.children_stopped."""
    if len(sides) == 1:
        return [starter.run(sides[0])]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(sides), thread_name_prefix="seqbench-ab") as pool:
        futures = [pool.submit(starter.run, side) for side in sides]
    return [f.result() for f in futures]


def _run_ab_auto(config: Path, sides: Sequence[Side], out_dir: Path, *, max_runs: int, rounds: int,
                decide: Callable[[ABResult], dict | None], budget_s: float | None = None, append: bool = False,
                force: bool = False, on_run: Callable[[RunRecord, int, int], None] | None = None,
                after_first_pass: Callable[[], None] | None = None,
                runner: Callable[..., subprocess.CompletedProcess] | None = None) -> ABResult:
    """`--runs auto`: passes over the sides (ABBA: forward, backward, ...) until decide() says stop, a
    side has max_runs runs, or the next pass would end past budget_s.

    decide(result) is called after every pass; it returns None (every point decided: stop) or the
    points still open, {"kernels": [...], "seq_lens": [...], "batch_sizes": [...]} ({} = all), which
    the next pass's runs are limited to (`seqbench run --kernels ... --seq-lens ...`): decided points
    are not measured again (a product of lists can hold a decided point; decide ignores its new runs).
    """
    if not 2 <= max_runs <= MAX_RUNS:
        raise ABError(f"--max-runs {max_runs} out of range; allowed: 2 to {MAX_RUNS} runs a side")
    if budget_s is not None and budget_s <= 0:
        raise ABError(f"--budget {budget_s:g} s out of range; allowed: a positive duration such as 5m or 300s")
    config, out_dir = Path(config).resolve(), Path(out_dir).resolve()
    result = _check(config, sides, out_dir, rounds, append, force)
    starter = _Runner(config, result, rounds, runner or run_child, _threads(config))
    names = [s.name for s in sides]
    points: dict | None = None
    t_all = time.perf_counter()
    i = 0
    for p in range(max_runs):
        passing = list(sides) if p % 2 == 0 else list(reversed(sides))
        t_pass = time.perf_counter()
        for side in passing:
            i += 1
            rec = starter.run(side, points or None)
            if on_run:
                on_run(rec, i, 0)
        if p == 0 and after_first_pass:
            after_first_pass()
        points = decide(result)
        if points is None:
            result.stopped = "every point decided"
            break
        spent, last = time.perf_counter() - t_all, time.perf_counter() - t_pass
        if budget_s is not None and spent + last > budget_s:
            result.stopped = f"budget: another pass (~{last:.0f} s) would end past {budget_s:g} s"
            break
        if min(starter.done[n] for n in names) >= max_runs:
            result.stopped = f"--max-runs {max_runs} reached"
            break
    result.wall_s = time.perf_counter() - t_all
    return result


def _runs_in(sidecar: Path) -> int:
    """Runs already appended into a side's CSV (its sidecar keeps the earlier ones)."""
    if not sidecar.exists():
        return 0
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return 0
    return 1 + len(meta.get("previous_runs", []))


def run_ab(config: Path, sides: Sequence[Side], out_dir: Path, **kwargs) -> ABResult:
    """_run_ab while this process owns out_dir (own_folder: one ab per folder, from the first deletion on)."""
    with own_folder(Path(out_dir)):
        return _run_ab(config, sides, out_dir, **kwargs)


def run_ab_auto(config: Path, sides: Sequence[Side], out_dir: Path, **kwargs) -> ABResult:
    """_run_ab_auto while this process owns out_dir (own_folder)."""
    with own_folder(Path(out_dir)):
        return _run_ab_auto(config, sides, out_dir, **kwargs)
