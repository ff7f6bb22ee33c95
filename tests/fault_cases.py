"""The fault cases behind the README's Reliability table (issue 17): each breaks seqbench on purpose
and returns an Outcome. tests/test_fault_suite.py holds every case to its expected exit code, one
line on stderr, no traceback, no lost or doubled row; benchmarks/faults.py prints the table.

A case is a function of an empty directory. Most run seqbench in this process through its real
entry point (cli.main); those about processes (signals, SIGKILL, concurrent writers) start real
ones, and those about filesystems (a full disk, a read-only mount) run in a child with its own
mount namespace (fault_lab.in_mount_namespace).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from fault_lab import (Outcome, catches_sigterm, cli, count, finish, in_mount_namespace, mount_tmpfs, rows_in,
                       saboteur, scratch, sidecar, spawn, wait_for, write_config)


@dataclass(frozen=True)
class Case:
    id: str
    item: str  # the item it checks
    what: str  # the fault, for the table
    expect: str  # what must happen, for the table
    rc: int
    run: Callable[[Path], Outcome]
    slow: bool = False  # starts processes


CASES: list[Case] = []
INSIDE: dict[str, Callable[[Path], Outcome]] = {}  # run inside a mount namespace


def case(item, what, expect, rc, slow=False):
    def register(fn):
        CASES.append(Case(fn.__name__.replace("_", "-"), item, what, expect, rc, fn, slow))
        return fn
    return register


def _expect(outcome: Outcome, cond: bool, problem: str) -> None:
    if not cond:
        outcome.problems.append(problem)


def _all_exit(outcomes: dict[str, Outcome], rc: int) -> Outcome:
    """Several commands that must all end the same way: one Outcome (the first's stderr)."""
    first = next(iter(outcomes.values()))
    out = Outcome(first.rc, first.err)
    for label, o in outcomes.items():
        _expect(out, o.rc == rc, f"{label}: exit {o.rc}, expected {rc}")
        _expect(out, o.lines == 1 or rc == 0, f"{label}: {o.lines} lines on stderr")
        out.merge(o, label)
    out.rc = rc if all(o.rc == rc for o in outcomes.values()) else next(o.rc for o in outcomes.values() if o.rc != rc)
    return out


# --- 1. file integrity ---------------------------------------------------------------------------

@case("1", "a point with 10^6 samples (a 9 MB cell, over csv's 128 KiB field limit)",
      "written, read back sample for sample, merged", 0)
def huge_cell(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    from seqbench.results.reader import read_results
    from seqbench.results.schema import format_samples, parse_samples

    samples = [1e-3 * (1 + (i % 1000) / 1e4) for i in range(10**6)]
    big = replace(row("sdpa", 8, 1), samples_s=format_samples(samples), repeats=len(samples))
    write_csv(d / "a.csv", [big])
    write_csv(d / "b.csv", [replace(row("sdpa", 16, 1), run_id="test-run-2")])
    back = parse_samples(read_results(d / "a.csv")["samples_s"][0])
    out = cli("merge", "a.csv", "b.csv", "-o", "m.csv", cwd=d)  # reads both, as report, compare and --resume do
    _expect(out, back == [float(f"{s:.9g}") for s in samples], "samples changed on the way back")
    return count(out, d / "m.csv", 2)


@case("1", "an error message with a newline, \\r, \\x1c, a comma and quotes",
      "one record on one line, read back intact", 0)
def odd_characters(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    from seqbench.results.reader import read_results

    bad = row("sdpa", 8, 1, status="error", error='RuntimeError: "bad"\nshape, 3\r\x1cend')
    write_csv(d / "a.csv", [bad, row("sdpa", 16, 1)])
    out = cli("report", "a.csv", "--no-charts", "-o", "a.md", cwd=d)
    got = read_results(d / "a.csv")["error"][0]
    _expect(out, got.startswith('RuntimeError: "bad" shape, 3') and got.endswith("end")
            and not any(c in got for c in "\n\r\x1c"), f"error cell read back as {got!r}")
    _expect(out, len((d / "a.csv").read_bytes().splitlines()) == 3, "a record spans several lines")
    return count(out, d / "a.csv", 2)


# --- 2, 3. one owner per output ------------------------------------------------------------------

@case("2", "--resume, --force and --append while another process owns the CSV (holds its lock)",
      "each refused with one line naming the owner; the file is byte for byte unchanged", 2)
def second_writer(d: Path) -> Outcome:
    from seqbench.results.ownership import own

    cfg = write_config(d)
    first = cli("run", cfg, "-o", "r.csv", "--no-peak", "-q", cwd=d)
    before = (d / "r.csv").read_bytes()
    with own(d / "r.csv", "append"):  # as a live `seqbench run` would
        out = _all_exit({"--resume": cli("run", "--resume", "-o", "r.csv", cwd=d),
                         "--force": cli("run", cfg, "-o", "r.csv", "--force", cwd=d),
                         "--append": cli("run", cfg, "-o", "r.csv", "--append", cwd=d)}, 2)
    _expect(out, "being written by another seqbench process (pid" in out.err, "the refusal does not name the owner")
    _expect(out, (d / "r.csv").read_bytes() == before, "the file changed")
    out.merge(first, "first run")
    return count(out, d / "r.csv", 2)


@case("2", "`report X.csv -o X.csv --force`, `-o` a hard link to X.csv, `merge a b -o a --force`, "
      "a run whose sidecar would overwrite its config", "refused (output = input); nothing overwritten", 2)
def output_is_input(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    write_csv(d / "a.csv", [row("sdpa", 8, 1)])
    write_csv(d / "b.csv", [row("sdpa", 16, 1)])
    os.link(d / "a.csv", d / "link.md")
    (d / "c.json").write_text(write_config(d).read_text())  # a TOML config that happens to be named c.json
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    out = _all_exit({"report": cli("report", "a.csv", "-o", "a.csv", "--force", cwd=d),
                     "report-link": cli("report", "a.csv", "-o", "link.md", "--force", "--no-charts", cwd=d),
                     "merge": cli("merge", "a.csv", "b.csv", "-o", "a.csv", "--force", cwd=d),
                     "run": cli("run", "c.json", "-o", "c.csv", "--force", cwd=d)}, 2)
    _expect(out, {p.name: p.read_bytes() for p in d.iterdir()} == before, "a file changed")
    return count(out, d / "a.csv", 1)


@functools.lru_cache(maxsize=None)
def _process_races() -> dict:
    """Two `run -o race.csv` started at once (one with --force) on a sweep of ~10 s: exactly one may
    own the file; once the other has ended, SIGTERM for the owner. Shared by two cases."""
    d = scratch("seqbench-race-")
    cfg = write_config(d, "race", seq_lens=list(range(4, 164, 4)), min_time=0.1, max_warmup=0.1)
    procs = {name: spawn("run", cfg, "-o", "race.csv", *flags, "--no-peak", cwd=d)
             for name, flags in (("--force", ["--force"]), ("plain", []))}
    ended: dict = {}
    deadline = time.monotonic() + 90
    while len(ended) < 1 and time.monotonic() < deadline:
        ended.update({k: finish(p) for k, p in procs.items() if k not in ended and p.poll() is not None})
        time.sleep(0.01)
    owners = [k for k in procs if k not in ended]
    first = procs[owners[0]] if len(owners) == 1 else None
    if first is not None:
        wait_for(lambda: len(_lines(d / "race.csv")) >= 2, first, what="the owner's first row")
        first.send_signal(signal.SIGTERM)
    rest = {k: finish(p) for k, p in procs.items() if k not in ended}
    return {"dir": d, "others": ended, "first": rest.get(owners[0]) if first else None, "owners": owners}


def _lines(p: Path) -> list[bytes]:
    return p.read_bytes().splitlines() if p.exists() else []


@case("2", "two `run -o race.csv` started at once, one of them with --force",
      "one owns the file, the other is refused with one line; the owner's rows are all there, once, "
      "with its run_id", 2, slow=True)
def concurrent_writers(d: Path) -> Outcome:
    r = _process_races()
    out = _all_exit(r["others"], 2) if r["others"] else Outcome(None)
    _expect(out, len(r["owners"]) == 1, f"{len(r['owners'])} runs owned race.csv: {r['owners']}")
    meta = sidecar(r["dir"] / "race.csv")
    from seqbench.results.reader import read_results

    _expect(out, set(read_results(r["dir"] / "race.csv")["run_id"]) == {meta.get("run_id")},
            "rows of another run in the file")
    return count(out, r["dir"] / "race.csv", int(meta.get("rows", -1)))


@case("8", "SIGTERM in the middle of a sweep (the owner of race.csv above)",
      "exit 130, one line with the --resume hint; every finished row on disk; sidecar 'interrupted' by SIGTERM",
      130, slow=True)
def sigterm_mid_sweep(d: Path) -> Outcome:
    r = _process_races()
    out = r["first"] or Outcome(None, problems=["no single owner to interrupt"])
    meta = sidecar(r["dir"] / "race.csv")
    _expect(out, (meta.get("status"), meta.get("interrupted_by")) == ("interrupted", "SIGTERM"),
            f"sidecar {meta.get('status')}, by {meta.get('interrupted_by')}")
    _expect(out, "--resume" in out.err and "SIGTERM" in out.err, "no --resume hint, or not by SIGTERM")
    return count(out, r["dir"] / "race.csv", int(meta.get("rows", -1)))


@case("3", "SIGKILL inside a fresh PID namespace (the run is PID 1 there), then two `--resume` at once",
      "one resume refused (exit 2), the other completes: every point exactly once", 0, slow=True)
def sigkill_pid_namespace(d: Path) -> Outcome:
    from fault_lab import can_unshare

    no_ns = can_unshare("--pid", "--fork", "--mount-proc")
    prefix = () if no_ns else ("unshare", "--pid", "--fork", "--mount-proc")
    cfg = write_config(d, seq_lens=[4, 8, 16, 32], batch_sizes=[1, 2], min_time=0.1, max_warmup=0.05)
    run = spawn("run", cfg, "-o", "k.csv", "--no-peak", "-q", cwd=d, prefix=prefix)
    wait_for(lambda: len(_lines(d / "k.csv")) >= 3, run, what="two rows")
    os.killpg(run.pid, signal.SIGKILL)
    finish(run)
    meta = sidecar(d / "k.csv")
    resumes = [spawn("run", "--resume", "-o", "k.csv", "--no-peak", cwd=d) for _ in range(2)]
    outs = sorted((finish(p) for p in resumes), key=lambda o: o.rc or 0)
    out = outs[1] if outs[1].rc != 2 else outs[0]
    other = outs[0] if out is outs[1] else outs[1]
    _expect(out, [o.rc for o in outs] == [0, 2], f"resumes exited {[o.rc for o in outs]}, expected one 0 and one 2")
    _expect(out, other.lines == 1 and "being written by another seqbench process" in other.err,
            f"the refused resume said: {other.err.strip()[:120]!r}")
    out.merge(other, "refused resume")
    _expect(out, meta.get("status") == "running", f"the killed run's sidecar says {meta.get('status')}")
    if no_ns:
        out.note = f"plain process: {no_ns}"
    else:
        _expect(out, meta.get("pid") == 1, f"the killed run was pid {meta.get('pid')}, not 1")
    _expect(out, sidecar(d / "k.csv").get("status") == "complete", "not complete after the resume")
    return count(out, d / "k.csv", 8)


# --- 4. an output that vanishes or changes during the run -----------------------------------------

def _sabotaged_run(d: Path, action: str, *, target: str = "s.csv", seq_lens=(4, 12, 16, 20)) -> Outcome:
    cfg = write_config(d, kernels=["saboteur"], seq_lens=list(seq_lens), plugins=[str(saboteur(d))])
    return cli("run", cfg, "-o", "s.csv", "--no-peak", "-q", cwd=d, SEQBENCH_SABOTEUR=f"{action}:16:{d / target}")


@case("4", "the CSV deleted while the run writes it",
      "exit 2 at the next row, one line; sidecar 'failed' saying so (not 'wrote N rows')", 2)
def deleted_during_run(d: Path) -> Outcome:
    out = _sabotaged_run(d, "delete")
    meta = sidecar(d / "s.csv")
    _expect(out, meta.get("status") == "failed" and "deleted" in meta.get("error", ""), f"sidecar: {meta.get('status')}")
    out.note = "the rows went with the deleted file"
    return out


@case("4", "the CSV replaced by another file while the run writes it",
      "exit 2, one line; the other file left untouched", 2)
def replaced_during_run(d: Path) -> Outcome:
    out = _sabotaged_run(d, "replace")
    _expect(out, (d / "s.csv").read_text() == "someone else's file\n", "the replacing file was written to")
    _expect(out, sidecar(d / "s.csv").get("status") == "failed", "sidecar not 'failed'")
    return out


@case("4", "the CSV truncated mid-row while the run writes it; then --resume",
      "exit 2, one line; --resume drops the half row and measures what is missing: every point once", 2)
def truncated_during_run(d: Path) -> Outcome:
    out = _sabotaged_run(d, "truncate")
    _expect(out, "truncated" in out.err, "the message does not say truncated")
    again = cli("run", "--resume", "-o", "s.csv", "-q", cwd=d)
    _expect(out, again.rc == 0, f"--resume exited {again.rc}: {again.first_line()}")
    out.merge(again, "resume")
    return count(out, d / "s.csv", 4)


# --- 5. filesystem faults -------------------------------------------------------------------------

@case("5", "disk full (a 1 MiB tmpfs, filled mid-run); then space freed and --resume",
      "exit 2, one line; the rows before intact, no half row; sidecar 'failed: No space left'; "
      "resume completes every point once", 2, slow=True)
def disk_full(d: Path) -> Outcome:
    return _filesystem_runs()["disk_full"]


def _disk_full_inside(d: Path) -> Outcome:
    mnt = d / "small"
    mount_tmpfs(mnt, "1m")
    grid = list(range(4, 100, 4))
    out = _sabotaged_run(mnt, "fill", target="filler", seq_lens=grid)
    meta = sidecar(mnt / "s.csv")
    _expect(out, meta.get("status") == "failed" and "No space left" in meta.get("error", ""),
            f"sidecar after the failure: {meta.get('status')}, {meta.get('error', '')[:60]}")
    found, _, problem = rows_in(mnt / "s.csv")
    _expect(out, not problem and found == meta.get("rows"), f"after the failure: {problem or found} rows, sidecar {meta.get('rows')}")
    out.note = f"{found} rows kept when the disk filled"
    (mnt / "filler").unlink()
    again = cli("run", "--resume", "-o", str(mnt / "s.csv"), "-q", cwd=d)
    _expect(out, again.rc == 0, f"--resume exited {again.rc}: {again.first_line()}")
    out.merge(again, "resume")
    return count(out, mnt / "s.csv", len(grid))


INSIDE["disk_full"] = _disk_full_inside


@case("5", "output in a read-only filesystem (run; report into it)", "exit 2, one line; nothing written", 2, slow=True)
def read_only(d: Path) -> Outcome:
    return _filesystem_runs()["read_only"]


@functools.lru_cache(maxsize=None)
def _filesystem_runs() -> dict:
    """Both filesystem cases in one child with its own mount namespace (one interpreter start)."""
    return in_mount_namespace(["disk_full", "read_only"], scratch("seqbench-fs-"))


def _read_only_inside(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    ro = d / "ro"
    mount_tmpfs(ro, "1m")
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    cfg = write_config(d)
    write_csv(d / "a.csv", [row("sdpa", 8, 1)])
    out = _all_exit({"run": cli("run", cfg, "-o", ro / "r.csv", cwd=d),
                     "run-subdir": cli("run", cfg, "-o", ro / "sub" / "r.csv", cwd=d),
                     "report": cli("report", "a.csv", "--no-charts", "-o", ro / "a.md", cwd=d)}, 2)
    _expect(out, "Read-only file system" in out.err, "the message does not say read-only")
    _expect(out, not list(ro.iterdir()), "something was written")
    return out


INSIDE["read_only"] = _read_only_inside


@case("5", "--out is a directory (with and without --force); its parent is a file; the sidecar's name is a directory",
      "exit 2, one line each; no CSV left behind", 2)
def unusable_paths(d: Path) -> Outcome:
    cfg = write_config(d)
    (d / "dir.csv").mkdir()
    (d / "file.txt").write_text("x")
    (d / "side.json").mkdir()
    out = _all_exit({"dir": cli("run", cfg, "-o", "dir.csv", cwd=d),
                     "dir --force": cli("run", cfg, "-o", "dir.csv", "--force", cwd=d),
                     "parent is a file": cli("run", cfg, "-o", "file.txt/r.csv", cwd=d),
                     "sidecar is a dir": cli("run", cfg, "-o", "side.csv", "--force", cwd=d)}, 2)
    _expect(out, not (d / "side.csv").exists(), "side.csv left behind without its sidecar")
    return out


# --- 6. exit codes ----------------------------------------------------------------------------------

@case("6", "an internal error (a bug) during a run: `fill_pct` made to raise",
      "exit 3 (not 1), one line; sidecar 'failed'; rows before it intact; SEQBENCH_TRACEBACK=1 shows the traceback", 3)
def internal_error_run(d: Path) -> Outcome:
    from seqbench.sweep import runner

    cfg = write_config(d, seq_lens=[4, 8, 16])
    real, calls = runner.fill_pct, []

    def buggy(row, peak):
        calls.append(1)
        if len(calls) == 3:
            raise ZeroDivisionError("division by zero")
        return real(row, peak)

    runner.fill_pct = buggy
    try:
        out = cli("run", cfg, "-o", "r.csv", "--no-peak", "-q", cwd=d)
        calls.clear()
        shown = cli("run", cfg, "-o", "t.csv", "--no-peak", "-q", cwd=d, SEQBENCH_TRACEBACK="1")
    finally:
        runner.fill_pct = real
    _expect(out, "internal error: ZeroDivisionError" in out.err, "no 'internal error' line")
    _expect(out, "Traceback" in shown.err and shown.rc == 3, "SEQBENCH_TRACEBACK=1 did not show the traceback")
    _expect(out, sidecar(d / "r.csv").get("status") == "failed", "sidecar not 'failed'")
    return count(out, d / "r.csv", 2)


@case("6", "an internal error in `compare` (its analysis made to raise)", "exit 3, never 1 (a regression to CI)", 3)
def internal_error_compare(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    from seqbench.analysis import compare

    write_csv(d / "a.csv", [row("sdpa", 8, 1)])
    real = compare.compare_frames
    compare.compare_frames = lambda *a, **k: {}["missing"]
    try:
        return cli("compare", "a.csv", "a.csv", cwd=d)
    finally:
        compare.compare_frames = real


def _edited(d: Path, **cells) -> Path:
    from synthetic_results import row, write_csv

    p = d / f"e{len(list(d.iterdir()))}.csv"
    r = row("sdpa", 8, 1)
    return write_csv(p, [replace(r, **cells)])


@case("6", "malformed `sample_rounds` (`a b c`; 3 rounds for 5 samples) and `ref_s` (0, nan, text; "
      "a v1 file's `calib_s` 0)", "exit 2 when the file is read, one line naming file, line and column", 2)
def malformed_rounds(d: Path) -> Outcome:
    good = _edited(d)
    cases = {"sample_rounds a b c": {"sample_rounds": "a b c"}, "sample_rounds short": {"sample_rounds": "1 1 2"},
             "ref_s 0": {"ref_s": "0"}, "ref_s nan": {"ref_s": "nan"}, "ref_s text": {"ref_s": "fast"}}
    outs = {k: cli("compare", good, _edited(d, **v), cwd=d) for k, v in cases.items()}
    v1 = _edited(d, schema_version=1, ref_s="0")
    v1.write_text(v1.read_text().replace(",ref_s", ",calib_s", 1))
    outs["v1 calib_s 0"] = cli("compare", good, v1, cwd=d)
    out = _all_exit(outs, 2)
    _expect(out, all(": line 2:" in o.err for o in outs.values()), "a message does not name the line")
    return out


# --- 7. other tracebacks and hangs ----------------------------------------------------------------------

@case("7", "a binary config; a NUL byte in `name`; `name` with `../`; --max-memory 0.5; -q with -v",
      "exit 2, one line each; nothing written", 2)
def bad_run_input(d: Path) -> Outcome:
    (d / "bin.toml").write_bytes(b"\xff\xfe\x00\x81 kernels = 1")
    nul = write_config(d, "nul")
    nul.write_text(nul.read_text().replace('name = "nul"', 'name = "a\\u0000b"'))
    up = write_config(d, "up")
    up.write_text(up.read_text().replace('name = "up"', 'name = "../../escaped"'))
    cfg = write_config(d)
    out = _all_exit({"binary": cli("run", "bin.toml", cwd=d), "NUL": cli("run", nul, cwd=d),
                     "../": cli("run", up, cwd=d), "0.5": cli("run", cfg, "--max-memory", "0.5", cwd=d),
                     "-q -v": cli("run", cfg, "-q", "-v", cwd=d)}, 2)
    _expect(out, not (d / "results").exists() and not (d.parent / "escaped-cpu").exists(), "something was written")
    return out


@case("7", "a sidecar that is valid JSON but not an object (report, resume); `--resume` whose sidecar's config is null",
      "exit 2, one line each", 2)
def bad_sidecars(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    write_csv(d / "a.csv", [row("sdpa", 8, 1)])
    cfg = write_config(d)
    first = cli("run", cfg, "-o", "r.csv", "--no-peak", "-q", cwd=d)
    meta = json.loads((d / "r.json").read_text())
    (d / "a.json").write_text("[1, 2]")
    (d / "r.json").write_text(json.dumps({**meta, "config": None}))
    outs = {"report": cli("report", "a.csv", "--no-charts", "-o", "a.md", cwd=d),
            "config null": cli("run", "--resume", "-o", "r.csv", cwd=d)}
    (d / "r.json").write_text('"just a string"')
    outs["resume"] = cli("run", "--resume", "-o", "r.csv", cwd=d)
    out = _all_exit(outs, 2)
    out.merge(first, "first run")
    return out


@case("7", "gradflow with d = 0, d < 0, heads = 0; gradflow --seq-len 100000000; calibrate --max-memory 1MB",
      "exit 2 at once (a memory estimate, as for run), one line each", 2)
def gradflow_and_calibrate_guards(d: Path) -> Outcome:
    base = ["gradflow", "-o", "g.csv", "--seeds", "1"]
    t0 = time.monotonic()
    out = _all_exit({"d=0": cli(*base, "--hidden-size", "0", cwd=d), "d<0": cli(*base, "--hidden-size", "-4", cwd=d),
                     "heads=0": cli(*base, "--heads", "0", cwd=d), "T=1e8": cli(*base, "--seq-len", "100000000", cwd=d),
                     "calibrate": cli("calibrate", "--device", "cpu", "--max-memory", "1MB", cwd=d)}, 2)
    _expect(out, time.monotonic() - t0 < 60, "took over a minute")
    _expect(out, not (d / "g.csv").exists(), "gradflow wrote a file")
    return out


# benchmarks/faults.py sets this to the 200,000; the test suite checks the same path at 20,000
GRID_SIZE = {"n": 20_000}


@case("7", "a config with 200,000 sequence lengths (20,000 in `make test`)",
      "checked in seconds, not minutes (exit 2 here: --max-memory 100 bytes, which no point fits)", 2)
def huge_grid(d: Path) -> Outcome:
    cfg = write_config(d, seq_lens=list(range(1, GRID_SIZE["n"] + 1)))
    t0 = time.monotonic()
    out = cli("run", cfg, "--max-memory", "100", "-o", "r.csv", cwd=d)
    took = time.monotonic() - t0
    _expect(out, took < 60, f"took {took:.0f} s")
    out.note = f"{took:.1f} s"
    return out


# --- 8. signals at the edges ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _signal_runs() -> dict:
    """Real processes signalled at the edges, all at once: right after the entry point installed its
    handlers (imports still running), and twice mid-sweep."""
    d = scratch("seqbench-signals-")
    cfg = write_config(d, "sig", seq_lens=[4, 8, 16, 32, 48, 64], batch_sizes=[1, 2], min_time=0.05, max_warmup=0.05)
    # double-int measures the matmul peak first: its resume must not measure it again
    procs = {k: spawn("run", cfg, "-o", f"{k}.csv", *([] if k == "double-int" else ["--no-peak"]), "-q", cwd=d)
             for k in ("int-early", "term-early", "double-int")}
    started = {k: False for k in procs}
    sent = {k: 0 for k in procs}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and any(p.poll() is None and sent[k] < (2 if k == "double-int" else 1)
                                               for k, p in procs.items()):
        now = time.monotonic()
        for k, p in procs.items():
            if p.poll() is not None:
                continue
            if not started[k] and catches_sigterm(p.pid):
                started[k] = now
            if not started[k]:
                continue
            rows = len(_lines(d / f"{k}.csv")) - 1
            if k == "int-early" and not sent[k]:
                p.send_signal(signal.SIGINT)
            elif k == "term-early" and not sent[k]:
                p.send_signal(signal.SIGTERM)
            elif k == "double-int" and rows >= 2 and sent[k] < 2:
                p.send_signal(signal.SIGINT)
                time.sleep(0.02)  # the second lands during the cleanup of the first
            else:
                continue
            sent[k] += 1
        time.sleep(0.002)
    return {"dir": d, **{k: finish(p) for k, p in procs.items()}, "sent": sent}


def _signal_case(key: str, expect_rows: bool) -> Outcome:
    r = _signal_runs()
    out = r[key]
    _expect(out, r["sent"][key] > 0, "no signal was sent (the process ended first)")
    _expect(out, out.lines == 1 and "interrupted" in out.err, f"stderr: {out.err.strip()[:120]!r}")
    csv = r["dir"] / f"{key}.csv"
    if csv.exists():
        meta = sidecar(csv)
        _expect(out, meta.get("status") == "interrupted", f"sidecar says {meta.get('status')}")
        return count(out, csv, int(meta.get("rows", -1)))
    _expect(out, not expect_rows, "no CSV")
    return out


@case("8", "SIGINT right after start (while torch is imported)", "exit 130, one line, no traceback", 130, slow=True)
def sigint_at_start(d: Path) -> Outcome:
    return _signal_case("int-early", False)


@case("8", "SIGTERM right after start", "exit 130 (not 143), one line", 130, slow=True)
def sigterm_at_start(d: Path) -> Outcome:
    return _signal_case("term-early", False)


@case("8", "Ctrl-C twice, 20 ms apart, mid-sweep; then --resume",
      "exit 130, one line with the --resume hint, no atexit traceback; sidecar 'interrupted' (not stuck at "
      "'running'); resume: every point once, the matmul peak not measured again", 130, slow=True)
def double_ctrl_c(d: Path) -> Outcome:
    from seqbench.results.reader import read_results

    out = _signal_case("double-int", True)
    _expect(out, "--resume" in out.err, "no --resume hint")
    csv = _signal_runs()["dir"] / "double-int.csv"
    again = cli("run", "--resume", "-o", csv, "-q", cwd=csv.parent)
    _expect(out, again.rc == 0, f"--resume exited {again.rc}: {again.first_line()}")
    out.merge(again, "resume")
    df = read_results(csv)
    _expect(out, list(df.kernel).count("calibration") == 1 and df["pct_of_peak"].notna().all(),
            "the calibration row is missing, doubled, or not used after the resume")
    _expect(out, set(df.run_id) == {sidecar(csv).get("run_id")}, "rows of another run")
    return count(out, csv, 13)


# --- 9. surprises -------------------------------------------------------------------------------------------

@case("9", "--resume of a --no-peak run", "no calibration row appears", 0)
def resume_no_peak(d: Path) -> Outcome:
    cfg = write_config(d, seq_lens=[4, 8, 16])
    first = cli("run", cfg, "-o", "r.csv", "--no-peak", "-q", cwd=d)
    lines = (d / "r.csv").read_bytes().splitlines(keepends=True)
    (d / "r.csv").write_bytes(b"".join(lines[:2]))  # as if stopped after the first point
    out = cli("run", "--resume", "-o", "r.csv", "-q", cwd=d)
    out.merge(first, "first run")
    from seqbench.results.reader import read_results

    _expect(out, "calibration" not in set(read_results(d / "r.csv")["kernel"]), "a calibration row appeared")
    return count(out, d / "r.csv", 3)


def run_all(cases=None, keep: bool = False) -> list[tuple[Case, Outcome]]:
    """Every case (or those given) in a fresh directory each; for benchmarks/faults.py."""
    results = []
    for c in cases or CASES:
        with tempfile.TemporaryDirectory(prefix=f"seqbench-{c.id}-") as d:
            try:
                outcome = c.run(Path(d))
            except Exception as exc:  # noqa: BLE001 - the harness's own failure is a result too
                outcome = Outcome(None, problems=[f"harness: {type(exc).__name__}: {exc}"])
            results.append((c, outcome))
        print(f"  {c.id}: exit {outcome.rc}", file=sys.stderr)
    return results


import fault_cases_26  # noqa: E402,F401 - issue 26's cases register themselves into CASES
import fault_cases_second_round  # noqa: E402,F401 - registers the second round's cases (issues 26.13, 27)
import fault_cases_round3  # noqa: E402,F401 - registers round three's cases (history, option refusals)
