"""Fault cases of issue 26 (round two of breaking it): plugins with bad values, configs that try to run
code, injection into reports and terminals, ab/launch/merge edges, scale. Registered into
fault_cases.CASES (imported at its end), so tests/test_fault_suite.py and benchmarks/faults.py run them
with the rest. In-process (cli()) unless a real process is what is tested."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from fault_cases import _all_exit, _expect, case
from fault_lab import Outcome, cli, count, sidecar, write_config

# A plugin file that registers one kernel `k` (a Linear, or what BODY makes of it); BODY may redefine
# FLOPS, MEMORY, the module class or add top-level code.
PLUGIN = '''
import math, os, sys
import torch
from torch import nn
import seqbench

FLOPS = "2*B*T*d"
MEMORY = None


class Layer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x):
        return self.lin(x)

{body}

seqbench.register_kernel("k", family="recurrent", flops=FLOPS, memory=MEMORY, factory=lambda s: Layer(s.hidden_size))
'''


def plugin(d: Path, body: str = "", name: str = "userplug") -> Path:
    p = d / f"{name}.py"
    p.write_text(PLUGIN.format(body=textwrap.dedent(body)))
    return p


def _run(d: Path, body: str, *, kernels=("k", "rnn_loop"), name: str = "c", extra: tuple = (), **fields) -> Outcome:
    cfg = write_config(d, name, kernels=list(kernels), plugins=[str(plugin(d, body, f"plug_{name}"))], **fields)
    return cli("run", cfg, "-o", f"{name}.csv", "--no-peak", "-q", *extra, cwd=d)


def _rows(csv: Path) -> list[dict]:
    import csv as csvmod

    with csv.open(newline="") as fh:
        return list(csvmod.DictReader(fh))


# --- 26.1 / 26.15: a plugin's values ----------------------------------------------------------------

@case("26.1", "a plugin whose FLOP function returns NaN, inf or -1",
      "exit 2 before anything is timed, one line naming the kernel and the value; no CSV", 2)
def flops_nan_inf_negative(d: Path) -> Outcome:
    outs = {v: _run(d, f"FLOPS = lambda s: {v}", name=f"f{i}") for i, v in enumerate(("float('nan')", "math.inf", "-1.0"))}
    out = _all_exit(outs, 2)
    _expect(out, all("kernel 'k'" in o.err and "finite number >= 0" in o.err for o in outs.values()),
            "a message does not name the kernel and what is allowed")
    _expect(out, not list(d.glob("f*.csv")), "a CSV was written")
    return out


@case("26.1", "a FLOP function that is fine when checked but returns NaN later in the sweep",
      "exit 0; that point becomes an `error` row naming gflop; the file reads back: report, compare and "
      "--resume take it, the built-in kernel's rows are all there", 0)
def flops_nan_mid_run(d: Path) -> Outcome:
    body = """
    CALLS = [0]
    def FLOPS(s):
        CALLS[0] += 1
        # calls 1-2: register_kernel reading off quadratic (T = 2^14, 2^18); 3-4: the checks before timing
        return float("nan") if CALLS[0] > 4 else 2.0 * s.batch_size * s.seq_len
    """
    out = _run(d, body)
    rows = _rows(d / "c.csv")
    bad = [r for r in rows if r["kernel"] == "k" and r["status"] == "error"]
    _expect(out, bad and all("gflop" in r["error"] for r in bad), f"no error row naming gflop: {[r['error'] for r in rows]}")
    for label, args in {"report": ("report", "c.csv", "--no-charts", "-o", "c.md"),
                        "compare": ("compare", "c.csv", "c.csv", "--fail-on", "regression"),
                        "resume": ("run", "--resume", "-o", "c.csv", "-q")}.items():
        o = cli(*args, cwd=d)
        _expect(out, o.rc == 0, f"{label} exited {o.rc}: {o.first_line()}")
        _expect(out, "must be finite" not in o.err, f"{label} refused the file")
    return count(out, d / "c.csv", 4)


@case("26.15", "a `flops` or `memory=` function that raises, returns a string or NaN; a negative `memory`",
      "exit 2 before anything is timed, one line naming the kernel (not an internal error, exit 3); "
      "a negative memory estimate never bypasses the budget", 2)
def bad_flops_and_memory_functions(d: Path) -> Outcome:
    bodies = {"flops raises": "def FLOPS(s):\n    raise ValueError('oops')",
              "flops str": "FLOPS = lambda s: 'many'",
              "memory raises": "def MEMORY(s, e, t):\n    raise KeyError('x')",
              "memory str": "MEMORY = lambda s, e, t: 'big'",
              "memory nan": "MEMORY = lambda s, e, t: float('nan')",
              "memory negative": "MEMORY = lambda s, e, t: -10**12"}
    outs = {k: _run(d, b, name=f"m{i}") for i, (k, b) in enumerate(bodies.items())}
    out = _all_exit(outs, 2)
    _expect(out, all("kernel 'k'" in o.err for o in outs.values()), "a message does not name the kernel")
    return out


@case("26.15", "a FLOP formula of 5,000 unary minuses; one of 30,000 terms (RecursionError)",
      "exit 2, one line naming the kernel and saying the formula is nested too deeply", 2)
def deep_formulas(d: Path) -> Outcome:
    outs = {"5000 minuses": _run(d, f"FLOPS = '{'-' * 5000}B'", name="r1"),
            "30000 terms": _run(d, f"FLOPS = '{'+'.join(['B'] * 30000)}'", name="r2")}
    out = _all_exit(outs, 2)
    _expect(out, all("nested too deeply" in o.err and "'k'" in o.err for o in outs.values()),
            f"stderr: {[o.first_line()[:120] for o in outs.values()]}")
    return out


@case("26.15", "a formula that fails at one point only (`B*d/(T-32)^2` with T=32 last in the grid)",
      "exit 2 before any point is timed, naming the kernel, the config and the sizes; no CSV", 2)
def formula_fails_at_one_point(d: Path) -> Outcome:
    out = _run(d, "FLOPS = 'B*d/(T-32)^2'", seq_lens=[4, 8, 32])
    _expect(out, "kernel 'k'" in out.err and "c.toml" in out.err and "T=32" in out.err, f"stderr: {out.first_line()}")
    _expect(out, not (d / "c.csv").exists(), "a CSV was written (points were timed first)")
    return out


# --- 26.8: sys.exit and KeyboardInterrupt in users' code ------------------------------------------

@case("26.8", "sys.exit(0) / sys.exit(1) in a plugin at import, and in an entry point's callable",
      "exit 2, one line naming the plugin; never 0 (no rows) or 1 (CI's regression)", 2)
def sys_exit_at_import(d: Path) -> Outcome:
    return _all_exit({"exit 0": _run(d, "sys.exit(0)", name="e0"), "exit 1": _run(d, "sys.exit(1)", name="e1")}, 2)


@case("26.8", "sys.exit(0) in forward; KeyboardInterrupt raised by forward (no signal); sys.exit in the factory",
      "forward: exit 0, the kernel's points are `error` rows naming SystemExit / KeyboardInterrupt, the sweep goes on, "
      "the sidecar says complete (no SIGINT recorded); factory: exit 2, one line naming the kernel", 0)
def sys_exit_in_forward(d: Path) -> Outcome:
    out = _run(d, "Layer.forward = lambda self, x: sys.exit(0)", name="a")
    kb = _run(d, "def _f(self, x):\n    raise KeyboardInterrupt\nLayer.forward = _f", name="b")
    fac = _run(d, "Layer.__init__ = lambda self, d: sys.exit(0)", name="f")
    out.merge(kb, "KeyboardInterrupt")
    for label, o, csv in (("sys.exit", out, "a"), ("KeyboardInterrupt", kb, "b")):
        _expect(out, o.rc == 0, f"{label}: exit {o.rc}")
        rows = _rows(d / f"{csv}.csv")
        want = "SystemExit" if csv == "a" else "KeyboardInterrupt"
        _expect(out, [r["status"] for r in rows if r["kernel"] == "k"] == ["error", "error"]
                and all(want in r["error"] for r in rows if r["kernel"] == "k"), f"{label}: rows {rows}")
        _expect(out, [r["status"] for r in rows if r["kernel"] == "rnn_loop"] == ["ok", "ok"], f"{label}: sweep stopped")
        meta = sidecar(d / f"{csv}.csv")
        _expect(out, meta.get("status") == "complete" and "interrupted_by" not in meta, f"{label}: sidecar {meta.get('status')}")
    _expect(out, fac.rc == 2 and "'k'" in fac.err and fac.lines == 1, f"factory: exit {fac.rc}: {fac.first_line()}")
    return count(out, d / "a.csv", 4)


# --- 26.11, 26.12: threads and outputs per point ----------------------------------------------------

@case("26.11", "a factory that calls torch.set_num_threads(2) in a run with threads = 1",
      "every row says threads=1 and ran on 1: the run's count is applied again after each build", 0)
def factory_changes_threads(d: Path) -> Outcome:
    body = """
    _init = Layer.__init__
    def _build(self, d):
        torch.set_num_threads(2)
        _init(self, d)
        self.seen = None
    def _fwd(self, x):
        with open(os.environ["THREADS_LOG"], "a") as fh:
            fh.write(f"{torch.get_num_threads()}\\n")
        return self.lin(x)
    Layer.__init__ = _build
    Layer.forward = _fwd
    """
    log = d / "threads.log"
    cfg = write_config(d, kernels=["k", "rnn_loop"], plugins=[str(plugin(d, body))])
    import torch

    before = torch.get_num_threads()
    out = cli("run", cfg, "-o", "c.csv", "--no-peak", "-q", cwd=d, THREADS_LOG=str(log))
    torch.set_num_threads(before)
    seen = set(log.read_text().split()) if log.exists() else set()
    _expect(out, {r["threads"] for r in _rows(d / "c.csv")} == {"1"}, "a row does not say threads=1")
    _expect(out, seen == {"1"}, f"forward ran on {seen} threads")
    return count(out, d / "c.csv", 4)


@case("26.12", "outputs wrong only at the real sizes: a shape that is right at T=8 only, NaN from T=16, "
      "a float64 output in a float32 run", "each such point an `error` row saying what is wrong (shape, "
      "non-finite, dtype), checked outside the timed region; the right points and other kernels ok", 0)
def outputs_at_real_size(d: Path) -> Outcome:
    bodies = {"shape": "Layer.forward = lambda self, x: self.lin(x)[:, :8]",
              "nan": "Layer.forward = lambda self, x: self.lin(x) * (float('nan') if x.shape[1] >= 16 else 1.0)",
              "dtype": "Layer.forward = lambda self, x: self.lin(x).double() if x.shape[1] > 8 else self.lin(x)"}
    out = Outcome(0)
    for i, (what, body) in enumerate(bodies.items()):
        o = _run(d, body, name=f"o{i}", seq_lens=[8, 16])
        out.merge(o, what)
        _expect(out, o.rc == 0, f"{what}: exit {o.rc}: {o.first_line()}")
        rows = {(r["kernel"], r["seq_len"]): r for r in _rows(d / f"o{i}.csv")}
        word = {"shape": "output shape", "nan": "non-finite", "dtype": "dtype float64"}[what]
        _expect(out, rows[("k", "16")]["status"] == "error" and word in rows[("k", "16")]["error"],
                f"{what}: T=16 row {rows[('k', '16')]['status']}: {rows[('k', '16')]['error']}")
        _expect(out, rows[("k", "8")]["status"] == "ok" and rows[("rnn_loop", "16")]["status"] == "ok",
                f"{what}: a right point was not ok")
    return count(out, d / "o0.csv", 4)


# --- 26.14: users' prints ------------------------------------------------------------------------------

@case("26.14", "a plugin that prints at import and in every forward: `list --format json`, `run -q`",
      "stdout holds only what was asked (valid JSON; the output path); the prints go to stderr", 0)
def plugin_prints(d: Path) -> Outcome:
    from fault_lab import captured, isolated

    import os

    body = """
    print("hello from import")
    _f = Layer.forward
    def _fwd(self, x):
        print("hello from forward")
        os.write(1, b"fd-level hello\\n")
        return _f(self, x)
    Layer.forward = _fwd
    """
    p = plugin(d, body)
    cfg = write_config(d, kernels=["k"], plugins=[str(p)])
    from seqbench.cli import main

    here = Path.cwd()
    os.chdir(d)
    try:
        with isolated(), captured() as listed:
            rc1 = main(["list", "--format", "json", "--plugin", str(p)])
        fd1 = d / "stdout.txt"
        with isolated(), captured() as ran, fd1.open("w") as fh:
            saved = os.dup(1)
            os.dup2(fh.fileno(), 1)
            try:
                rc2 = main(["run", str(cfg), "-o", "c.csv", "--no-peak", "-q"])
            finally:
                os.dup2(saved, 1)
                os.close(saved)
    finally:
        os.chdir(here)
    out = Outcome(rc1 or rc2, "")
    try:
        json.loads(listed["out"])
    except ValueError:
        out.problems.append(f"list --format json is not JSON: {listed['out'][:80]!r}")
    _expect(out, "hello" not in ran["out"] and "hello" not in fd1.read_text(), f"run -q stdout: {ran['out'][:80]!r}")
    _expect(out, ran["out"].strip() == "c.csv", f"run -q printed {ran['out'][:80]!r}, not just the path")
    _expect(out, "hello from forward" in ran["err"], "the plugin's print was lost, not sent to stderr")
    return count(out, d / "c.csv", 2)


# --- 26.5: a config must not run code ------------------------------------------------------------------

@case("26.5", "[[kernel]] factories `builtins:eval`, `builtins:exec`, `os:system`, `subprocess:call`, "
      "`sys:exit` with string arguments", "exit 2 before anything runs, one line: only nn.Module classes or "
      "functions of plugin modules; the shell command never ran", 2)
def config_runs_no_code(d: Path) -> Outcome:
    marker = d / "pwned"
    outs = {}
    for i, target in enumerate(("builtins:eval", "builtins:exec", "os:system", "subprocess:call", "sys:exit")):
        arg = f"__import__('os').system('touch {marker}')" if "eval" in target or "exec" in target else f"touch {marker}"
        p = d / f"k{i}.toml"
        p.write_text(f'kernels = ["evil"]\nseq_lens = [4]\nbatch_sizes = [1]\nhidden_size = 8\nnum_heads = 2\n\n'
                     f'[[kernel]]\nname = "evil"\nfactory = "{target}"\nargs = [{json.dumps(arg)}]\n'
                     f'family = "recurrent"\nflops = "B*T*d"\n')
        outs[target] = cli("run", p, "-o", f"k{i}.csv", "--no-peak", cwd=d)
    out = _all_exit(outs, 2)
    _expect(out, not marker.exists(), "the command ran")
    _expect(out, all("not a torch.nn.Module class" in o.err for o in outs.values()), "a refusal does not say what is allowed")
    return out


@case("26.5", "[[kernel]] factories that are allowed: an nn.Module class (`torch.nn:Linear`), a function of a "
      "module the config loads as a plugin", "exit 0, both kernels timed", 0)
def config_factories_allowed(d: Path) -> Outcome:
    plug = d / "myfactories.py"
    plug.write_text("import torch\n\ndef make(d):\n    return torch.nn.Linear(d, d)\n")
    p = d / "ok.toml"
    p.write_text('kernels = ["lin", "fn"]\nseq_lens = [4]\nbatch_sizes = [1]\nhidden_size = 8\nnum_heads = 2\n'
                 'min_time = 0.01\nmax_warmup = 0.05\nplugins = ["myfactories"]\n\n'
                 '[[kernel]]\nname = "lin"\nfactory = "torch.nn:Linear"\nargs = ["d", "d"]\nfamily = "recurrent"\nflops = "2*B*T*d^2"\n\n'
                 '[[kernel]]\nname = "fn"\nfactory = "myfactories:make"\nargs = ["d"]\nfamily = "recurrent"\nflops = "2*B*T*d^2"\n')
    out = cli("run", p, "-o", "ok.csv", "--no-peak", "-q", cwd=d)
    _expect(out, {r["status"] for r in _rows(d / "ok.csv")} == {"ok"} if (d / "ok.csv").exists() else False,
            "not every point ok")
    return count(out, d / "ok.csv", 2)


# --- 26.2: shards ------------------------------------------------------------------------------------

@case("26.2", "`run --shard 1/999999999` (more shards than points)",
      "exit 2 at once, one line giving the allowed N; no file, no memory growth", 2)
def shard_count_too_large(d: Path) -> Outcome:
    import time

    cfg = write_config(d)
    t0 = time.monotonic()
    out = cli("run", cfg, "--shard", "1/999999999", "-o", "s.csv", cwd=d)
    _expect(out, time.monotonic() - t0 < 10, "took over 10 s")
    _expect(out, "allowed: N from 1 to 2" in out.err, f"stderr: {out.first_line()}")
    _expect(out, not (d / "s.csv").exists(), "a file was written")
    return out


# --- 26.17: messages -----------------------------------------------------------------------------------

@case("26.17", "a config that is a directory", "exit 2, one line saying it is a directory (was 'not found')", 2)
def config_is_a_directory(d: Path) -> Outcome:
    (d / "cfgdir").mkdir()
    out = cli("run", d / "cfgdir", "-o", "x.csv", cwd=d)
    _expect(out, "is a directory" in out.err, f"stderr: {out.first_line()}")
    return out


@case("26.17", "a config that is a FIFO", "exit 2 at once, one line saying it is not a regular file (was 'not found')", 2)
def config_is_a_fifo(d: Path) -> Outcome:
    import os

    os.mkfifo(d / "fifo.toml")
    out = cli("run", d / "fifo.toml", "-o", "x.csv", cwd=d)
    _expect(out, "not a regular file" in out.err, f"stderr: {out.first_line()}")
    return out


@case("26.17", "`merge =x.csv` (an empty machine label)", "exit 2, one line naming the empty label and LABEL=PATH "
      "(was 'no such results file')", 2)
def merge_empty_label(d: Path) -> Outcome:
    out = cli("merge", "=x.csv", "-o", "m.csv", cwd=d)
    _expect(out, "label is empty" in out.err and "LABEL=PATH" in out.err, f"stderr: {out.first_line()}")
    _expect(out, not (d / "m.csv").exists(), "a file was written")
    return out


@case("26.17", "a 500-character --machine label", "exit 2, one line giving the allowed length (not 'File name too "
      "long')", 2)
def machine_label_too_long(d: Path) -> Outcome:
    out = cli("run", write_config(d), "--machine", "a" * 500, "-o", "x.csv", cwd=d)
    _expect(out, "1-64 characters" in out.err, f"stderr: {out.first_line()}")
    _expect(out, not (d / "x.csv").exists(), "a file was written")
    return out
