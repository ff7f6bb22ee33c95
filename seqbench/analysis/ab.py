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


def schedule(names: Sequence[str], runs: int) -> list[str]:
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


@dataclass
class ABResult:
    out_dir: Path
    sides: list[Side]
    runs: list[RunRecord] = field(default_factory=list)
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self, earlier: dict | None = None) -> dict:
        """ab.json; earlier: the ab.json this --append continues, whose runs (and wall time) it keeps."""
        old = earlier if isinstance(earlier, dict) else {}
        old_runs = [r for r in old.get("runs") or [] if isinstance(r, dict)]
        wall = self.wall_s + (float(old.get("wall_s") or 0) if isinstance(old.get("wall_s"), (int, float)) else 0)
        return {"sides": [asdict(s) for s in self.sides], "wall_s": round(wall, 3),
                "runs": old_runs + [asdict(r) for r in self.runs],
                "notes": list(dict.fromkeys([*(n for n in old.get("notes") or [] if isinstance(n, str)), *self.notes]))}


def earlier_record(out_dir: Path) -> dict:
    """The ab.json already in out_dir ({} if none or unreadable), for --append to keep its runs."""
    try:
        data = json.loads((Path(out_dir) / "ab.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def prepare_out(out_dir: Path, names: Sequence[str], *, append: bool, force: bool) -> None:
    """Refuse to mix with earlier results unless asked: --append adds runs, --force starts afresh."""
    if append and force:
        raise ABError("--append and --force contradict each other: append adds runs to OUT, force replaces them")
    existing = [out_dir / f"{n}{ext}" for n in names for ext in SIDE_FILES if (out_dir / f"{n}{ext}").exists()]
    if existing and not (append or force):
        raise ABError(f"{existing[0]} already exists; pass --append to add runs to it (and compare them all), "
                      "or --force to start again, or choose another -o")
    if force:
        for p in existing:
            p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def run_command(side: Side, config: Path, out_csv: Path, rounds: int) -> list[str]:
    return [*side.command, "run", str(config), "--rounds", str(rounds), "--append", "--no-peak", "-q",
            "-o", str(out_csv)]


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


def run_ab(config: Path, sides: Sequence[Side], out_dir: Path, *, runs: int, rounds: int, append: bool = False,
           force: bool = False, on_run: Callable[[RunRecord, int, int], None] | None = None,
           after_first_pass: Callable[[], None] | None = None,
           runner: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> ABResult:
    """Run `runs` runs of every side in ABBA order into out_dir/<side>.csv; returns what ran.

    A run that fails stops everything (ABError, exit 2) with that side's own message: a config or
    plugin the side cannot load is bad input, not a regression. after_first_pass() is called once
    every side has a run, so a comparison that would be refused (compare's mismatch checks) stops
    after one pass instead of after all of them.
    """
    if not 1 <= runs <= MAX_RUNS:
        raise ABError(f"--runs {runs} out of range; allowed: 1 to {MAX_RUNS} runs a side (a verdict needs >= 2; "
                      "4 is the default)")
    if not 1 <= rounds <= 100:
        raise ABError(f"--rounds {rounds} out of range; allowed: 1 to 100")
    names = [s.name for s in sides]
    if len(set(names)) != len(names):
        raise ABError(f"side names must differ, got {names}")
    config = Path(config).resolve()
    if not config.is_file():
        raise ABError(f"config {config} not found")
    out_dir = Path(out_dir).resolve()
    prepare_out(out_dir, names, append=append, force=force)
    result = ABResult(out_dir, list(sides))
    if len({(s.command, s.cwd, s.pythonpath) for s in sides}) < len(sides):
        result.notes.append("two sides run the same code: an A/A run, so any change it reports is noise")
    by_name = {s.name: s for s in sides}
    done = {n: _runs_in(out_dir / f"{n}.json") for n in names}
    order = schedule(names, runs)
    checked: set[str] = set()
    t_all = time.perf_counter()
    for i, name in enumerate(order, 1):
        side = by_name[name]
        out_csv = out_dir / f"{name}.csv"
        t0 = time.perf_counter()
        proc = runner(run_command(side, config, out_csv, rounds), cwd=side.cwd, env=side.env(),
                      capture_output=True, text=True)
        done[name] += 1
        rec = RunRecord(name, done[name], time.perf_counter() - t0, proc.returncode)
        result.runs.append(rec)
        if proc.returncode == 130:
            raise KeyboardInterrupt
        if proc.returncode != 0:
            raise ABError(f"{side.describe()}: run {rec.index} exited with {proc.returncode}: "
                          f"{_last_line(proc.stderr or proc.stdout)}")
        if name not in checked:  # once per side: where its plugins really came from
            checked.add(name)
            result.notes += plugin_notes(side, out_csv.with_suffix(".json"))
        if on_run:
            on_run(rec, i, len(order))
        if i == len(names) and after_first_pass:
            after_first_pass()
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
