"""Fault cases of the second round of breaking seqbench (issue 27, and issue 26's item 13 on records).

Registered into fault_cases.CASES (imported at the end of that module), so tests/test_fault_suite.py
and benchmarks/faults.py run them with the others. Each is cheap: in-process through the real entry
point (fault_lab.cli), with a lock taken here standing in for a live `seqbench run`, unless a real
process is what is being tested.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from fault_cases import _all_exit, _expect, case
from fault_lab import Outcome, cli, count, sidecar, write_config


def _module(name: str):
    """seqbench's `ab` or `launch` module, wherever the layout keeps it (an orchestration package, or
    analysis/ and sweep/ before it)."""
    import importlib

    for where in (f"seqbench.orchestration.{name}", f"seqbench.analysis.{name}", f"seqbench.sweep.{name}"):
        try:
            return importlib.import_module(where)
        except ImportError:
            continue
    raise ImportError(f"no seqbench module {name!r}")


def _results(d: Path, name: str = "a", run_id: str = "test-run", kernels=("sdpa",), Ts=(8, 16)) -> Path:
    """A small valid results CSV + sidecar (synthetic), every row of run `run_id`."""
    from synthetic_results import row, write_csv

    p = write_csv(d / f"{name}.csv", [replace(row(k, T, 1), run_id=run_id) for k in kernels for T in Ts])
    meta = json.loads(p.with_suffix(".json").read_text())
    p.with_suffix(".json").write_text(json.dumps({**meta, "run_id": run_id}))
    return p


# --- 27.1: every writer honours the owner's lock; no Markdown over a results CSV --------------------

@case("27.1", "while a run owns w.csv (holds its lock): `report -o w.csv --force`, `report -o w.json --force` "
      "(its sidecar), `gradflow -o w.csv --force`, `merge -o w.csv --force`, `launch --force` clearing a folder "
      "whose shard is being written, `ab --force` while its base.csv is being written; `report [--html] -o x.md --force` "
      "where x.md is a results CSV; `report --html -o w.csv`; `report -o other.json --force` (a finished run's "
      "sidecar)",
      "each refused with one line (the owner named, or 'a results CSV'); every file byte for byte unchanged", 2)
def force_over_owned(d: Path) -> Outcome:
    from seqbench.results.ownership import own

    _results(d, "full")
    _results(d, "other", run_id="other-run", Ts=(32,))
    _results(d, "w", run_id="w-run")
    _results(d, "x", run_id="x-run")
    (d / "x.csv").rename(d / "x.md")  # a results CSV under another name
    cfg = write_config(d)
    shards = d / "sh"
    shards.mkdir()
    (shards / "launch.json").write_text(json.dumps({"sweep": {"another": "sweep"}, "jobs": []}))
    _results(shards, "shard-1-of-2", run_id="shard-run")
    (d / "ab").mkdir()
    _results(d / "ab", "base", run_id="base-run")
    files = lambda: [p for p in [*d.iterdir(), *shards.iterdir(), *(d / "ab").iterdir()] if p.is_file()]  # noqa: E731
    before = {p: p.read_bytes() for p in files()}
    with own(d / "w.csv", "append"), own(shards / "shard-1-of-2.csv", "append"), own(d / "ab" / "base.csv", "append"):
        outs = {
            "report -o w.csv": cli("report", "full.csv", "--no-charts", "-o", "w.csv", "--force", cwd=d),
            "report -o w.json": cli("report", "full.csv", "--no-charts", "-o", "w.json", "--force", cwd=d),
            "report -o x.md": cli("report", "full.csv", "--no-charts", "-o", "x.md", "--force", cwd=d),
            "report --html -o w.csv": cli("report", "full.csv", "--html", "-o", "w.csv", "--force", cwd=d),
            "report --html -o x.md": cli("report", "full.csv", "--html", "-o", "x.md", "--force", cwd=d),
            "report -o other.json": cli("report", "full.csv", "--no-charts", "-o", "other.json", "--force", cwd=d),
            "gradflow": cli("gradflow", "-o", "w.csv", "--force", "--seeds", "1", "--seq-len", "8", "--hidden-size",
                            "8", "--heads", "2", "--layers", "rnn_loop", "--spectral-radius", "1", cwd=d),
            "merge": cli("merge", "full.csv", "other.csv", "-o", "w.csv", "--force", cwd=d),
            "launch --force": cli("launch", cfg, "-n", "2", "-o", "l.csv", "--dir", shards, "--force",
                                  "--cluster", "local", cwd=d),
            "ab --force": cli("ab", cfg, "--base", d, "-o", "ab", "--force", "--runs", "1", cwd=d),
        }
    out = _all_exit(outs, 2)
    why = {"report -o w.csv": "a report is Markdown", "report -o x.md": "is a seqbench results CSV",
           "report --html -o w.csv": "an HTML report; give a name ending in .html",
           "report --html -o x.md": "is a seqbench results CSV",
           "report -o other.json": "is the sidecar of the results CSV other.csv"}
    for label, o in outs.items():
        _expect(out, why.get(label, "seqbench run still writing") in o.err, f"{label}: {o.first_line()!r}")
    after = {p: p.read_bytes() for p in files() if p in before}
    _expect(out, after == before and len(after) == len(before), "a file changed or went")
    return out


# --- 27.2: a sidecar that describes another run ---------------------------------------------------

@case("27.2", "a.json replaced by the sidecar of another run (b.json copied over it): `run --resume -o a.csv`, "
      "`report a.csv`, `compare a.csv b.csv`, `merge a.csv b.csv`",
      "each refused with one line naming both runs; nothing appended to a.csv", 2)
def foreign_sidecar(d: Path) -> Outcome:
    cfg = write_config(d, "b", seq_lens=[4])
    first = cli("run", cfg, "-o", "b.csv", "--no-peak", "-q", cwd=d)
    _results(d, "a", run_id="a-run")
    (d / "a.json").write_bytes((d / "b.json").read_bytes())
    before = (d / "a.csv").read_bytes()
    out = _all_exit({"resume": cli("run", "--resume", "-o", "a.csv", cwd=d),
                     "report": cli("report", "a.csv", "--no-charts", "-o", "a.md", cwd=d),
                     "compare": cli("compare", "a.csv", "b.csv", cwd=d),
                     "merge": cli("merge", "a.csv", "b.csv", "-o", "m.csv", cwd=d)}, 2)
    _expect(out, "does not describe" in out.err and "a-run" in out.err, f"stderr: {out.first_line()!r}")
    _expect(out, (d / "a.csv").read_bytes() == before, "a.csv changed")
    _expect(out, not (d / "m.csv").exists() and not (d / "a.md").exists(), "an output was written")
    out.merge(first, "first run")
    return count(out, d / "b.csv", 1)


# --- 27.4: one kernel name, two definitions ------------------------------------------------------------

@case("27.4", "compare where the candidate's `sdpa` was re-registered by a plugin (replace=True): sidecars "
      "record different sources", "refused (exit 2) naming the kernel and both sources; with --allow-mismatch "
      "kernels it compares and says so", 2)
def redefined_kernel(d: Path) -> Outcome:
    for name, source in (("a", "seqbench.kernels.attention"), ("b", "seqbench_plugin_fake_sdpa")):
        p = _results(d, name, run_id=f"{name}-run")
        meta = json.loads(p.with_suffix(".json").read_text())
        meta["kernels"] = {"sdpa": {"family": "attention", "source": source, "definition": f"{name}-hash"}}
        p.with_suffix(".json").write_text(json.dumps(meta))
    out = cli("compare", "a.csv", "b.csv", cwd=d)
    _expect(out, "kernel sdpa is defined by seqbench.kernels.attention in the baseline and by "
            "seqbench_plugin_fake_sdpa" in out.err, f"stderr: {out.first_line()!r}")
    allowed = cli("compare", "a.csv", "b.csv", "--allow-mismatch", "kernels", "--format", "json", cwd=d)
    _expect(out, allowed.rc in (0, 1), f"--allow-mismatch kernels: exit {allowed.rc}: {allowed.first_line()}")
    return out


# --- 26.13: records ------------------------------------------------------------------------------------

@case("26.13", "a results CSV whose run holds one point twice (a row copied): report, compare, merge",
      "refused, one line naming the two lines and the point (a copy is not a second round)", 2)
def duplicated_row(d: Path) -> Outcome:
    p = _results(d, "a", run_id="a-run")
    lines = p.read_bytes().splitlines(keepends=True)
    p.write_bytes(b"".join([*lines, lines[1]]))
    _results(d, "b", run_id="b-run", Ts=(32,))
    out = _all_exit({"report": cli("report", "a.csv", "--no-charts", "-o", "a.md", cwd=d),
                     "compare": cli("compare", "a.csv", "b.csv", cwd=d),
                     "merge": cli("merge", "a.csv", "b.csv", "-o", "m.csv", cwd=d)}, 2)
    _expect(out, "lines 2 and 4" in out.err and "twice" in out.err, f"stderr: {out.first_line()!r}")
    return out


@case("26.13", "`run --append` onto a file whose earlier run was written by seqbench 0.1.0",
      "refused, one line naming both versions; the file unchanged", 2)
def append_other_version(d: Path) -> Outcome:
    cfg = write_config(d, seq_lens=[4])
    first = cli("run", cfg, "-o", "r.csv", "--no-peak", "-q", cwd=d)
    meta = sidecar(d / "r.csv")
    meta["environment"]["seqbench"] = "0.1.0"
    (d / "r.json").write_text(json.dumps(meta))
    before = (d / "r.csv").read_bytes(), (d / "r.json").read_bytes()
    out = cli("run", cfg, "-o", "r.csv", "--append", "--no-peak", "-q", cwd=d)
    _expect(out, "seqbench 0.1.0" in out.err, f"stderr: {out.first_line()!r}")
    _expect(out, ((d / "r.csv").read_bytes(), (d / "r.json").read_bytes()) == before, "the file changed")
    out.merge(first, "first run")
    return count(out, d / "r.csv", 1)


PLUGIN = '''
import torch
from torch import nn

import seqbench


class Mine(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * self.w


seqbench.register_kernel("mine", family="recurrent", flops="2*B*T*d", factory=lambda s: Mine(s.hidden_size))
'''


@case("26.13", "`run --resume` after the plugin file defining the run's kernel was edited (no git)",
      "resumes (exit 0) with a note naming the kernel and both definition hashes; the sidecar records them", 0)
def resume_after_plugin_edit(d: Path) -> Outcome:
    (d / "mine.py").write_text(PLUGIN)
    cfg = write_config(d, kernels=["mine"], seq_lens=[4, 8], plugins=[str(d / "mine.py")])
    first = cli("run", cfg, "-o", "r.csv", "--no-peak", "-q", cwd=d)
    was = sidecar(d / "r.csv")["kernels"]["mine"]["definition"]
    lines = (d / "r.csv").read_bytes().splitlines(keepends=True)
    (d / "r.csv").write_bytes(b"".join(lines[:2]))  # as if stopped after the first point
    (d / "mine.py").write_text(PLUGIN + "# edited\n")
    out = cli("run", "--resume", "-o", "r.csv", cwd=d)
    meta = sidecar(d / "r.csv")
    now = meta["kernels"]["mine"]["definition"]
    _expect(out, was != now, "the edit did not change the hash")
    _expect(out, "kernel mine: its code changed" in out.err and was in out.err and now in out.err,
            f"no note naming the kernel and both hashes: {out.err.strip()[:200]!r}")
    changed = (meta.get("resumed") or [{}])[-1].get("kernels_changed", {})
    _expect(out, changed.get("mine") == {"was": was, "now": now}, f"sidecar: resumed kernels_changed {changed}")
    out.merge(first, "first run")
    return count(out, d / "r.csv", 2)


def _shard(d: Path, k: int, commit: str, definition: str) -> Path:
    p = _results(d, f"shard-{k}", run_id=f"shard-{k}-run", Ts=(8 * k,))
    meta = json.loads(p.with_suffix(".json").read_text())
    meta.update(schedule={"shard": [k, 2]}, kernels={"sdpa": {"source": "seqbench.kernels.attention",
                                                              "definition": definition}})
    meta["environment"]["git_commit"] = commit
    p.with_suffix(".json").write_text(json.dumps(meta))
    return p


@case("26.13", "merge of the two shards of a sweep run from different commits; from one commit but with "
      "different kernel code", "refused, one line naming the commits (the kernel and its hashes); "
      "--allow-mixed merges them", 2)
def merge_other_code(d: Path) -> Outcome:
    (d / "c").mkdir()
    (d / "k").mkdir()
    _shard(d / "c", 1, "aaaa", "h1")
    _shard(d / "c", 2, "bbbb", "h1")
    _shard(d / "k", 1, "aaaa", "h1")
    _shard(d / "k", 2, "aaaa", "h2")
    out = _all_exit({"commits": cli("merge", "c/shard-1.csv", "c/shard-2.csv", "-o", "m.csv", cwd=d),
                     "kernels": cli("merge", "k/shard-1.csv", "k/shard-2.csv", "-o", "m.csv", cwd=d)}, 2)
    _expect(out, "commit bbbb" in out.err and "commit aaaa" in out.err, f"stderr: {out.first_line()!r}")
    allowed = cli("merge", "k/shard-1.csv", "k/shard-2.csv", "-o", "m.csv", "--allow-mixed", cwd=d)
    _expect(out, allowed.rc == 0, f"--allow-mixed: exit {allowed.rc}: {allowed.first_line()}")
    return count(out, d / "m.csv", 2)


@case("26.13", "`ab --append` (runs 1 a side, then 1 more)", "ab.json lists all 4 runs, the first two kept", 0)
def ab_append_keeps_runs(d: Path) -> Outcome:
    import subprocess

    ab_mod = _module("ab")

    def in_process(argv, cwd=None, env=None, **_):  # each side's `seqbench run` here: no interpreter start
        i = argv.index("run")
        o = cli(*argv[i:], cwd=Path(cwd))
        return subprocess.CompletedProcess(argv, o.rc, "", o.err)

    cfg = write_config(d, seq_lens=[4])
    real = ab_mod.run_child  # what ab starts when no runner is given (seqbench.ab passes none)
    ab_mod.run_child = in_process
    try:
        quiet = ("--runs", "1", "--rounds", "1", "-o", "out", "-q", "--fail-on", "failed")  # a verdict is noise here
        first = cli("ab", cfg, "--base", d, "--head", d, *quiet, cwd=d)
        out = cli("ab", cfg, "--base", d, "--head", d, *quiet, "--append", cwd=d)
    finally:
        ab_mod.run_child = real
    out.merge(first, "first ab")
    runs = json.loads((d / "out" / "ab.json").read_text())["runs"]
    _expect(out, [(r["side"], r["index"]) for r in runs] == [("base", 1), ("head", 1), ("base", 2), ("head", 2)],
            f"ab.json runs: {[(r['side'], r['index']) for r in runs]}")
    return out


# --- 27.5: a decode state that grows ---------------------------------------------------------------------

GROWING = '''
import torch
from torch import nn

import seqbench


class Grows(nn.Module):
    """A correct causal layer whose step appends to a list in the state it is given (4 KiB a call)."""

    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * self.w

    def init_state(self, batch_size, max_len):
        return {"log": []}

    def step(self, x_t, state):
        state["log"].append(torch.zeros(1024))
        return x_t * self.w, state


seqbench.register_kernel("grows", family="recurrent", flops="2*B*T*d", factory=lambda s: Grows(s.hidden_size))
'''


@case("27.5", "a decode step that appends to a list in the state it is given (the state grows with every "
      "repeat; its outputs are right)", "exit 0; its decode points are `error` rows saying the state grew, never "
      "timed; the built-in kernel's rows ok", 0)
def decode_state_grows(d: Path) -> Outcome:
    from seqbench.results.reader import read_results

    (d / "grows.py").write_text(GROWING)
    cfg = write_config(d, kernels=["grows", "rnn_loop"], modes=["decode"], seq_lens=[4], plugins=[str(d / "grows.py")])
    out = cli("run", cfg, "-o", "r.csv", "--no-peak", "-q", cwd=d)
    df = read_results(d / "r.csv")
    mine = df[df["kernel"] == "grows"]
    _expect(out, len(mine) == 1 and set(mine["status"]) == {"error"} and "state grew" in mine["error"].iloc[0],
            f"grows: {list(mine['status'])} {list(mine['error'])}")
    _expect(out, set(df[df["kernel"] == "rnn_loop"]["status"]) == {"ok"}, "rnn_loop not ok")
    return count(out, d / "r.csv", 2)


# --- 27.6, 27.7: compare's notes -------------------------------------------------------------------------

@case("27.6", "`compare a.csv a.csv` (a file with itself); `compare a.csv copy.csv` (a copy)",
      "exit 0, and every format says both sides are the same runs (table, markdown, json)", 0)
def compare_with_itself(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    rows = [replace(row("sdpa", T, 1, median=1e-3 * (1 + i / 50)), run_id=f"r{i}") for T in (8, 16) for i in range(3)]
    write_csv(d / "a.csv", rows)
    for ext in (".csv", ".json"):
        (d / f"copy{ext}").write_bytes((d / f"a{ext}").read_bytes())
    out = cli("compare", "a.csv", "a.csv", cwd=d)
    from fault_lab import captured, isolated  # noqa: F401 - stdout of the json and markdown forms
    from seqbench.cli import main

    here = Path.cwd()
    os.chdir(d)
    try:
        texts = {}
        for fmt in ("json", "markdown", "table"):
            with captured() as got:
                main(["compare", "a.csv", "copy.csv", "--format", fmt])
            texts[fmt] = got["out"] + got["err"]
    finally:
        os.chdir(here)
    _expect(out, "both sides are the same runs" in out.err + texts["table"], f"compare a a: {out.err[:200]!r}")
    for fmt, text in texts.items():
        _expect(out, "both sides are the same runs" in " ".join(text.split()), f"{fmt}: no note")
    return out


@case("27.7", "both sides failed every point (each an `error` row)", "no advice to add runs; says the points "
      "failed on both sides and nothing was compared", 0)
def compare_all_failed(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    for name in ("a", "b"):
        write_csv(d / f"{name}.csv", [replace(row("sdpa", T, 1, status="error", error="RuntimeError: boom"),
                                              run_id=f"{name}{T}") for T in (8, 16)])
    from fault_lab import captured
    from seqbench.cli import main

    here = Path.cwd()
    os.chdir(d)
    try:
        with captured() as got:
            rc = main(["compare", "a.csv", "b.csv"])
    finally:
        os.chdir(here)
    text = " ".join((got["out"] + got["err"]).split())
    out = Outcome(rc, got["err"])
    _expect(out, "Add runs" not in text, "still advises adding runs")
    _expect(out, "not compared because they failed (2 on both sides)" in text and "nothing is compared" in text,
            f"output: {text[-300:]!r}")
    return out


# --- 27.8 - 27.11: crashes and exit codes ---------------------------------------------------------------

@case("27.8", "--threads 100000, 20000 and 1000 on this machine's cores; calibrate --threads 100000; "
      "SEQBENCH_MAX_THREADS=2 with --threads 2", "exit 2 before anything starts, one line giving the cores and "
      "the override; the override allows what it names and says so", 2)
def too_many_threads(d: Path) -> Outcome:
    from seqbench.measure.env import usable_cores

    cfg = write_config(d, seq_lens=[4])
    outs = {n: cli("run", cfg, "--threads", n, "-o", f"t{n}.csv", "--no-peak", cwd=d)
            for n in ("100000", "20000", str(max(1000, usable_cores() + 1)))}
    outs["calibrate"] = cli("calibrate", "--device", "cpu", "--threads", "100000", cwd=d)
    out = _all_exit(outs, 2)
    _expect(out, f"may use {usable_cores()} CPU core" in out.err and "SEQBENCH_MAX_THREADS" in out.err,
            f"stderr: {out.first_line()!r}")
    _expect(out, not list(d.glob("t*.csv")), "a CSV was written")
    over = cli("run", cfg, "--threads", "2", "-o", "ok.csv", "--no-peak", cwd=d, SEQBENCH_MAX_THREADS="2")
    _expect(out, over.rc == 0, f"SEQBENCH_MAX_THREADS=2 --threads 2: exit {over.rc}: {over.first_line()}")
    if usable_cores() < 2:
        _expect(out, "allowed by SEQBENCH_MAX_THREADS=2" in over.err, "the override is not said")
    return out


def _formula_config(d: Path, name: str, formula: str) -> Path:
    p = write_config(d, name, kernels=["k"], batch_sizes=[3], seq_lens=[5])
    p.write_text(p.read_text() + '[[kernel]]\nname = "k"\nfamily = "recurrent"\nfactory = "torch.nn:Identity"\n'
                 f"flops = {json.dumps(formula)}\n")
    return p


@case("27.9", "FLOP formulas `(-1)**0.5 * B`, `(B-T)**0.5` (complex at T > B), 50,000 unary minuses",
      "exit 2 (not 3, not 'out of memory'), one line naming the kernel, the formula and the user's own sizes "
      "(B=3 T=5), never sizes the user did not ask for", 2)
def complex_formulas(d: Path) -> Outcome:
    outs = {f: cli("run", _formula_config(d, f"f{i}", f), "-o", f"f{i}.csv", "--no-peak", cwd=d)
            for i, f in enumerate(["(-1)**0.5 * B", "(B-T)**0.5", "-" * 50_000 + "B"])}
    out = _all_exit(outs, 2)
    for f, o in outs.items():
        _expect(out, "kernel 'k'" in o.err and "FLOP formula" in o.err and "16384" not in o.err,
                f"{f[:20]}: {o.first_line()[:160]!r}")
        _expect(out, "out of memory" not in o.err, f"{f[:20]}: says out of memory")
    _expect(out, all("B=3 T=5" in o.err for f, o in outs.items() if len(f) < 100), "the user's sizes are not named")
    return out


@case("27.10", "`seed = 99999999999999999999` in a config (over 64 bits)", "exit 2, one line: the allowed range", 2)
def seed_out_of_range(d: Path) -> Outcome:
    cfg = write_config(d, seq_lens=[4])
    cfg.write_text(cfg.read_text() + "seed = 99999999999999999999\n")
    out = cli("run", cfg, "-o", "s.csv", "--no-peak", cwd=d)
    _expect(out, "'seed'" in out.err and "2^63 - 1" in out.err, f"stderr: {out.first_line()!r}")
    return out


GENERATOR_EXIT = '''
import torch
from torch import nn

import seqbench


class Quits(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        if x.shape[1] >= 8:
            raise GeneratorExit("closed")
        return x * self.w


seqbench.register_kernel("quits", family="recurrent", flops="2*B*T*d", factory=lambda s: Quits(s.hidden_size))
'''


@case("27.11", "a plugin whose forward raises GeneratorExit (at T=8)", "exit 0, an `error` row naming "
      "GeneratorExit at T=8, the other points and kernels ok; no traceback", 0)
def forward_generator_exit(d: Path) -> Outcome:
    from seqbench.results.reader import read_results

    (d / "quits.py").write_text(GENERATOR_EXIT)
    cfg = write_config(d, kernels=["quits", "rnn_loop"], seq_lens=[4, 8], plugins=[str(d / "quits.py")])
    out = cli("run", cfg, "-o", "r.csv", "--no-peak", "-q", cwd=d)
    df = read_results(d / "r.csv")
    bad = df[df["status"] != "ok"]
    _expect(out, list(zip(bad["kernel"], bad["seq_len"])) == [("quits", 8)] and
            bad["error"].iloc[0].startswith("GeneratorExit"), f"failed rows: {list(zip(bad['kernel'], bad['error']))}")
    return count(out, d / "r.csv", 4)


# --- 27.13 - 27.15: messages ---------------------------------------------------------------------------

@case("27.13", "a plugin file with a SyntaxError; a plugin module (package) with one",
      "exit 2, one line naming the plugin's own file, line and column (not <frozen importlib._bootstrap>)", 2)
def plugin_syntax_error(d: Path) -> Outcome:
    (d / "syn.py").write_text("import seqbench\n\ndef f(:\n    pass\n")
    (d / "pkg" / "mylab").mkdir(parents=True)
    (d / "pkg" / "mylab" / "__init__.py").write_text("")
    (d / "pkg" / "mylab" / "bad.py").write_text("import seqbench\nx = (\n")
    out = _all_exit({"file": cli("list", "--plugin", d / "syn.py", cwd=d),
                     "module": cli("list", "--plugin", "mylab.bad", cwd=d, PYTHONPATH=str(d / "pkg"))}, 2)
    _expect(out, f"{d / 'syn.py'}, line 3" in out.err and "frozen" not in out.err, f"stderr: {out.first_line()!r}")
    return out


@case("27.14", "an installed package whose `seqbench.kernels` entry point raises at import: `run` and `report` "
      "of built-in kernels only", "exit 2, one line naming the entry point, its package and "
      "SEQBENCH_SKIP_ENTRY_POINTS; with it set, both succeed", 2)
def broken_entry_point(d: Path) -> Outcome:
    import sys

    from seqbench import kernels as kernels_mod

    site = d / "site"
    (site / "brokenpkg-1.0.dist-info").mkdir(parents=True)
    (site / "brokenpkg-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenpkg\nVersion: 1.0\n")
    (site / "brokenpkg-1.0.dist-info" / "entry_points.txt").write_text("[seqbench.kernels]\nbroken = brokenpkg_kernels\n")
    (site / "brokenpkg_kernels.py").write_text("raise ImportError('needs libfoo 2')\n")
    _results(d, "a", kernels=("sdpa",))
    cfg = write_config(d, seq_lens=[4])
    from fault_lab import captured, isolated
    from seqbench.cli import main

    def fresh(*args, **env) -> Outcome:  # as a new process: the entry points are loaded again
        here = Path.cwd()
        os.chdir(d)
        try:
            with isolated(**env), captured() as got:
                sys.path.insert(0, str(site))
                kernels_mod._STATE["loaded"] = False
                try:
                    rc = main([str(a) for a in args])
                finally:
                    kernels_mod._STATE["loaded"] = True
                    sys.modules.pop("brokenpkg_kernels", None)
        finally:
            os.chdir(here)
        return Outcome(rc, got["err"])

    outs = {}
    for label, env in (("plain", {}), ("skip", {"SEQBENCH_SKIP_ENTRY_POINTS": "broken"})):
        outs[f"run {label}"] = fresh("run", cfg, "-o", f"r-{label}.csv", "--no-peak", "-q", **env)
        outs[f"report {label}"] = fresh("report", "a.csv", "--no-charts", "-o", f"a-{label}.md", **env)
    out = _all_exit({k: o for k, o in outs.items() if k.endswith("plain")}, 2)
    _expect(out, "'broken'" in out.err and "brokenpkg" in out.err and "SEQBENCH_SKIP_ENTRY_POINTS=broken" in out.err,
            f"stderr: {out.first_line()!r}")
    for k in ("run skip", "report skip"):
        _expect(out, outs[k].rc == 0, f"{k}: exit {outs[k].rc}: {outs[k].first_line()}")
    return out


@case("27.15", "SIGINT (KeyboardInterrupt) during `ab` and during `launch`", "exit 130, one line: ab's says "
      "how to add runs (--append), launch's to run the same command again", 130)
def interrupt_hints(d: Path) -> Outcome:
    ab_mod, launch_mod = _module("ab"), _module("launch")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    cfg = write_config(d, seq_lens=[4])
    real = ab_mod.run_ab, launch_mod.launch
    ab_mod.run_ab = launch_mod.launch = interrupted
    try:
        outs = {"ab": cli("ab", cfg, "--base", d, "-o", "out", "--force", cwd=d),
                "launch": cli("launch", cfg, "-n", "1", "-o", "l.csv", "--cluster", "local", cwd=d)}
    finally:
        ab_mod.run_ab, launch_mod.launch = real
    out = _all_exit(outs, 130)
    _expect(out, "--append" in outs["ab"].err and "--force" not in outs["ab"].err, f"ab: {outs['ab'].first_line()!r}")
    _expect(out, "run the same command again" in outs["launch"].err and "seqbench launch" in outs["launch"].err,
            f"launch: {outs['launch'].first_line()!r}")
    return out


@case("27.15", "merge of two shards, one without its sidecar; `plot -d r.csv` (a file); `report --charts-dir` "
      "a file", "exit 2, one line each: the missing sidecar named (not 'shard 2 of 2 missing'); 'is a file, not "
      "a folder' (not 'File exists')", 2)
def message_fixes(d: Path) -> Outcome:
    _shard(d, 1, "aaaa", "h1")
    _shard(d, 2, "aaaa", "h1")
    (d / "shard-2.json").unlink()
    outs = {"merge": cli("merge", "shard-1.csv", "shard-2.csv", "-o", "m.csv", cwd=d),
            "plot": cli("plot", "shard-1.csv", "-d", "shard-1.csv", cwd=d),
            "report": cli("report", "shard-1.csv", "-o", "r.md", "--charts-dir", "shard-1.csv", cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, "shard-2.json is missing" in outs["merge"].err, f"merge: {outs['merge'].first_line()!r}")
    for k in ("plot", "report"):
        _expect(out, "is a file, not a folder" in outs[k].err, f"{k}: {outs[k].first_line()!r}")
    return out


@case("27.15", "a 5,000-character kernel name: report with charts", "exit 0, nothing on stderr but the "
      "summary line (no matplotlib warnings); legends cut to a readable length", 0)
def long_kernel_name(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    long = "k" * 5000
    write_csv(d / "a.csv", [replace(row("rnn_loop", T, 1), kernel=long) for T in (32, 64, 128)]
              + [row("sdpa", T, 1) for T in (32, 64, 128)])
    out = cli("report", "a.csv", "-o", "a.md", cwd=d)
    _expect(out, out.lines == 1 and "Warning" not in out.err, f"stderr: {out.err[:300]!r}")
    return out
