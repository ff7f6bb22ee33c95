"""Tools for breaking seqbench on purpose (tests/fault_cases.py): run it in-process or as real processes,
capture what it printed, sabotage its output mid-run, and count the rows that survived.

`python tests/fault_lab.py inside-mount-ns DIR CASE...` is the entry point of a child started under
`unshare --mount`, where a case may mount a tmpfs (full disk, read-only) that nobody else sees.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
TRACEBACK_MARKS = ("Traceback (most recent call last)", "Exception ignored")


@dataclass
class Outcome:
    """What one fault did: exit code, stderr, and the rows that should be / are in the results CSV."""

    rc: int | None
    err: str = ""
    rows_expected: int = 0  # rows finished before the fault (or the whole grid after a resume)
    rows_found: int = 0  # distinct points in the CSV afterwards, if it reads back (0 if it does not)
    duplicates: int = 0  # points found twice
    problems: list[str] = field(default_factory=list)  # case-specific checks that failed
    note: str = ""  # what else was seen, for the table

    @property
    def traceback(self) -> bool:
        return any(m in self.err for m in TRACEBACK_MARKS)

    @property
    def lines(self) -> int:
        return len(self.err.strip().splitlines())

    @property
    def lost(self) -> int:
        return max(0, self.rows_expected - self.rows_found)

    def first_line(self) -> str:
        return self.err.strip().splitlines()[0] if self.err.strip() else ""

    def merge(self, other: "Outcome", label: str) -> None:
        """Fold a secondary command's outcome in: its traceback or extra lines are problems of this case."""
        if other.traceback:
            self.problems.append(f"{label}: printed a traceback")
            self.err += other.err
        self.problems += [f"{label}: {p}" for p in other.problems]


# --- running seqbench --------------------------------------------------------------------------

def child_env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "PYTHONUNBUFFERED": "1",
            "COLUMNS": "140", **extra}


@contextlib.contextmanager
def captured():
    """stdout and stderr of in-process code, Python-level and file-descriptor-level alike."""
    sys.stdout.flush()
    sys.stderr.flush()
    got: dict = {}
    with tempfile.TemporaryFile() as fd2:
        saved = os.dup(2)
        os.dup2(fd2.fileno(), 2)
        old = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
        try:
            yield got
        finally:
            out, err = sys.stdout.getvalue(), sys.stderr.getvalue()
            sys.stdout, sys.stderr = old
            os.dup2(saved, 2)
            os.close(saved)
            fd2.seek(0)
            got.update(out=out, err=err + fd2.read().decode("utf-8", "replace"))


@contextlib.contextmanager
def isolated(**env: str):
    """Registry, loaded plugins, sys.path and the given environment variables as they were afterwards;
    no 0.5 s burn-in (the faults do not depend on it)."""
    from seqbench.kernels import kernels, plugins, registry
    from seqbench.measure import timer

    kernels()
    saved = dict(registry._REGISTRY), dict(plugins._LOADED), list(sys.path), timer.burn_in
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    timer.burn_in = lambda device="cpu", seconds=0.5: None
    try:
        yield
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved[0])
        plugins._LOADED.clear()
        plugins._LOADED.update(saved[1])
        sys.path[:] = saved[2]
        timer.burn_in = saved[3]
        for k, v in saved_env.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        for name in [m for m in sys.modules if m.startswith("seqbench_plugin_")]:
            del sys.modules[name]


def cli(*args, cwd: Path, **env: str) -> Outcome:
    """`seqbench ARGS` through the real entry point (cli.main), in this process."""
    from seqbench.cli import main

    here = Path.cwd()
    os.chdir(cwd)
    try:
        with isolated(**env), captured() as got:
            rc = main([str(a) for a in args])
    finally:
        os.chdir(here)
    return Outcome(rc, got["err"])


def command(*args) -> list[str]:
    return [sys.executable, "-m", "seqbench", *map(str, args)]


def spawn(*args, cwd: Path, prefix: tuple = (), **env: str) -> subprocess.Popen:
    """`seqbench ARGS` as a real process (in its own process group, so a kill reaches its children)."""
    return subprocess.Popen([*prefix, *command(*args)], cwd=cwd, env=child_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 60) -> Outcome:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        return Outcome(None, err, problems=[f"hung: killed after {timeout:g} s"])
    return Outcome(proc.returncode, err)


def catches_sigterm(pid: int) -> bool:
    """Has the process installed its SIGTERM handler yet (its first act, seqbench/__main__.py)?"""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except OSError:
        pass
    return False


def wait_for(cond, proc: subprocess.Popen, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before {what} (rc {proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


# --- configs, sabotage, counting rows -----------------------------------------------------------

def scratch(prefix: str) -> Path:
    """A temporary directory for processes shared by several cases, removed when this process exits."""
    import atexit

    d = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, d, True)
    return d


def write_config(d: Path, name: str = "c", **fields) -> Path:
    data = {"name": name, "kernels": ["rnn_loop"], "seq_lens": [4, 8], "batch_sizes": [1], "hidden_size": 8,
            "num_heads": 2, "min_time": 0.01, "max_warmup": 0.05, "threads": 1, **fields}
    p = d / f"{name}.toml"
    p.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in data.items()))
    return p


SABOTEUR = '''
"""A kernel that, at one sequence length, does something to the run's surroundings (once)."""
import os

import torch
from torch import nn

import seqbench


def act(action, target):
    if action == "delete":
        os.remove(target)
    elif action == "truncate":
        os.truncate(target, os.path.getsize(target) // 2)
    elif action == "replace":
        with open(target + ".new", "w") as fh:
            fh.write("someone else's file\\n")
        os.replace(target + ".new", target)
    elif action == "fill":  # the disk: write until there is no space left
        with open(target, "wb") as fh:
            try:
                while True:
                    fh.write(b"\\0" * 4096)
                    fh.flush()
            except OSError:
                pass


class Saboteur(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        action, at, target = (os.environ.get("SEQBENCH_SABOTEUR") or "none:0:").split(":", 2)
        if x.shape[1] == int(at) and not os.path.exists(target + ".done"):
            open(target + ".done", "w").close()
            act(action, target)
        return x * self.w


seqbench.register_kernel("saboteur", family="recurrent", flops="2*B*T*d", factory=lambda s: Saboteur(s.hidden_size))
'''


def saboteur(d: Path) -> Path:
    p = d / "saboteur.py"
    p.write_text(textwrap.dedent(SABOTEUR))
    return p


def rows_in(csv: Path) -> tuple[int, int, str]:
    """(distinct points, duplicated points, problem) of a results CSV; a file that does not read back
    has kept nothing."""
    from seqbench.errors import ResultsError
    from seqbench.results.reader import read_results
    from seqbench.results.schema import KEY_COLUMNS

    if not csv.exists():
        return 0, 0, f"{csv.name} is missing"
    try:
        df = read_results(csv)
    except ResultsError as exc:
        return 0, 0, f"does not read back: {exc}"
    keys = [tuple(r) for r in df[list(KEY_COLUMNS)].itertuples(index=False)]
    return len(set(keys)), len(keys) - len(set(keys)), ""


def sidecar(csv: Path) -> dict:
    try:
        return json.loads(csv.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}


def count(outcome: Outcome, csv: Path, expected: int) -> Outcome:
    found, dupes, problem = rows_in(csv)
    outcome.rows_expected, outcome.rows_found, outcome.duplicates = expected, found, dupes
    if problem:
        outcome.problems.append(problem)
    return outcome


# --- namespaces ----------------------------------------------------------------------------------

def can_unshare(*flags: str) -> str:
    """'' if `unshare FLAGS true` works here, else why not (for a skip reason)."""
    if not shutil.which("unshare"):
        return "no unshare command"
    try:
        r = subprocess.run(["unshare", *flags, "true"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare {' '.join(flags)} failed: {exc}"
    return "" if r.returncode == 0 else f"unshare {' '.join(flags)} is not permitted here: {r.stderr.strip()[:80]}"


def in_mount_namespace(cases: list[str], d: Path, timeout: float = 120) -> dict[str, Outcome]:
    """Run INSIDE[case](d/case) for each case in one child with its own mount namespace (its mounts
    vanish with it); {case: Outcome}."""
    why = can_unshare("--mount") or _can_mount_tmpfs()
    if why:
        return {c: Outcome(None, note=f"skipped: {why}") for c in cases}
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, __file__,
                        "inside-mount-ns", str(d), *cases], capture_output=True, text=True, env=child_env(),
                       timeout=timeout)
    try:
        return {c: Outcome(**o) for c, o in json.loads(r.stdout.strip().splitlines()[-1]).items()}
    except (ValueError, IndexError, TypeError):
        return {c: Outcome(r.returncode, r.stderr, problems=["the namespace child failed"]) for c in cases}


def _can_mount_tmpfs() -> str:
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d; r=$?; rmdir $d; exit $r"],
                       capture_output=True, text=True)
    return "" if r.returncode == 0 else f"cannot mount a tmpfs here: {r.stderr.strip()[:80]}"


def mount_tmpfs(d: Path, size: str, *extra: str) -> None:
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *extra]), "tmpfs", str(d)], check=True)


if __name__ == "__main__" and sys.argv[1:2] == ["inside-mount-ns"]:
    import fault_cases

    root, done = Path(sys.argv[2]), {}
    for name in sys.argv[3:]:
        (root / name).mkdir()
        try:
            done[name] = asdict(fault_cases.INSIDE[name](root / name))
        except Exception as exc:  # noqa: BLE001 - reported as the case's problem
            done[name] = asdict(Outcome(None, problems=[f"harness: {type(exc).__name__}: {exc}"]))
    print(json.dumps(done))
