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


# --- 26.6, 26.7, 27.12: injection into reports, terminals and file names --------------------------

_EVIL = ["<script>alert(1)</script>", "[click](javascript:alert(1))", "![x](http://evil.example/x.png)",
         "<img src=x onerror=alert(1)>", "<details open>", "```", "a|b|c"]


def _no_markup(text: str) -> list[str]:
    """What must never appear raw in Markdown that a browser or CI renders."""
    import re

    found = [s for s in ("<script", "<img", "<details", "\x1b") if s in text]
    found += [m.group() for m in re.finditer(r"(?<!\\)\]\((javascript|http)", text)]
    if "```" in text.replace("\\`\\`\\`", ""):
        found.append("```")
    return found


@case("26.6", "labels with HTML, links, images, `<details open>` and fences: `--machine`, LABEL=PATH, a "
      "sidecar's machine; then report", "written as literal text: no raw tag, link or image in the report", 0)
def report_escapes_labels(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    write_csv(d / "a.csv", [row("sdpa", 8, 1)])
    meta = json.loads((d / "a.json").read_text())
    out = Outcome(0)
    for i, label in enumerate(_EVIL):
        (d / "a.json").write_text(json.dumps({**meta, "machine": label}))
        o = cli("report", "a.csv", "--no-charts", "-o", f"r{i}.md", cwd=d)
        out.merge(o, label)
        text = (d / f"r{i}.md").read_text() if (d / f"r{i}.md").exists() else ""
        _expect(out, o.rc == 0 and not _no_markup(text), f"{label!r}: exit {o.rc}, raw {_no_markup(text)}")
    return out


@case("26.6", "a sidecar machine label with newlines (a heading and a remote image), a 500-character label, "
      "an ANSI escape in a LABEL=; `--machine` with a newline", "refused on read, exit 2, one line each naming "
      "the sidecar or the label and what is allowed; nothing printed raw to the terminal", 2)
def bad_labels_refused(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    write_csv(d / "a.csv", [row("sdpa", 8, 1)])
    meta = json.loads((d / "a.json").read_text())
    (d / "a.json").write_text(json.dumps({**meta, "machine": "x\n# pwned\n![i](http://evil.example/i.png)"}))
    outs = {"newline in sidecar": cli("report", "a.csv", "--no-charts", "-o", "r.md", cwd=d)}
    (d / "a.json").write_text(json.dumps({**meta, "machine": "m" * 500}))
    outs["500 characters"] = cli("report", "a.csv", "--no-charts", "-o", "r.md", cwd=d)
    (d / "a.json").write_text(json.dumps(meta))
    outs["ANSI in LABEL="] = cli("report", "\x1b[2Jx=a.csv", "--no-charts", "-o", "s.md", cwd=d)
    outs["--machine newline"] = cli("run", write_config(d), "--machine", "a\nb", "-o", "m.csv", cwd=d)
    out = _all_exit(outs, 2)
    _expect(out, not any("\x1b" in o.err for o in outs.values()), "an escape sequence reached stderr raw")
    _expect(out, not (d / "r.md").exists() and not (d / "s.md").exists(), "a report was written")
    return out


@case("26.6", "identity columns that are not identities: a kernel name with a newline (a quoted CSV field), "
      "with an ANSI escape, with markup; a run_id with spaces", "refused on read, exit 2, one line naming "
      "file, line and column and what is allowed", 2)
def identity_columns_validated(d: Path) -> Outcome:
    from seqbench.results.schema import SCHEMA_VERSION  # noqa: F401

    from fault_cases import _edited

    outs = {}
    for label, cells in {"kernel newline": {"kernel": "sdpa\n### pwned"}, "kernel ANSI": {"kernel": "\x1b[31msdpa"},
                         "kernel markup": {"kernel": "<b>sdpa</b>"}, "run_id": {"run_id": "a b"}}.items():
        bad = _edited(d, **cells)
        outs[label] = cli("compare", bad, bad, "--format", "markdown", cwd=d)
    out = _all_exit(outs, 2)
    _expect(out, all(": line 2:" in o.err and "allowed" in o.err for o in outs.values()), "a message does not name line and rule")
    _expect(out, not any("\x1b" in o.err for o in outs.values()), "an escape sequence reached stderr raw")
    return out


@case("27.12", "error text with `|`, `![..](http://..)`, `<img>`, `<details open>`, ``` and an ANSI escape in "
      "`compare --format markdown` (what CI posts)", "each written as literal text in its one cell: the table "
      "keeps its columns, no raw tag, image or fence", 0)
def compare_markdown_escapes_errors(d: Path) -> Outcome:
    from synthetic_results import row, write_csv

    from fault_lab import captured, isolated

    import os

    evil = " ".join(_EVIL) + " \x1b[31mred"
    write_csv(d / "a.csv", [row("sdpa", 8, 1), row("sdpa", 16, 1)])
    write_csv(d / "b.csv", [row("sdpa", 8, 1), row("sdpa", 16, 1, status="error", error=evil)])
    from seqbench.cli import main

    here = Path.cwd()
    os.chdir(d)
    try:
        with isolated(), captured() as got:
            rc = main(["compare", "a.csv", "b.csv", "--format", "markdown", "--fail-on", "regression"])
    finally:
        os.chdir(here)
    out = Outcome(rc, got["err"])
    text = got["out"]
    _expect(out, not _no_markup(text), f"raw in compare.md: {_no_markup(text)}")
    rows = [ln for ln in text.splitlines() if ln.startswith("| sdpa")]
    cells = {len([c for c in __import__("re").split(r"(?<!\\)\|", ln)]) for ln in rows}
    _expect(out, len(rows) == 2 and len(cells) == 1, f"table rows {len(rows)}, cell counts {cells}")
    return out


@case("26.7", "a CSV whose mode is `x/../../../escaped` (and an unknown mode); plot -d into a folder",
      "refused on read, exit 2, one line naming the column and the allowed modes; nothing written outside "
      "(or inside) the folder", 2)
def mode_path_traversal(d: Path) -> Outcome:
    from fault_cases import _edited

    (d / "w").mkdir()
    outs = {"traversal": cli("plot", _edited(d, mode="x/../../../escaped"), "-d", "w/pl", cwd=d),
            "unknown": cli("plot", _edited(d, mode="sideways"), "-d", "w/pl2", cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, "allowed: forward, train, decode" in out.err, f"stderr: {out.first_line()}")
    _expect(out, not list(d.rglob("*escaped*")) and not list((d / "w").rglob("*.png")), "a chart was written")
    return out


# --- 26.4, 27.3, 26.9: ab's output folder and its runs ---------------------------------------------

def _hold_ab_folder(out: Path) -> int:
    """Hold OUT's ab lock as a live `seqbench ab` would (another open file description: flock conflicts)."""
    import fcntl
    import os

    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / ".ab.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, b"4242", 0)
    return fd


@case("26.4", "`ab -o OUT --force` and (27.3) `ab -o OUT --append` while another ab writes OUT",
      "each refused with one line naming the owner's pid; OUT's files untouched", 2)
def ab_folder_owned(d: Path) -> Outcome:
    import os

    cfg = write_config(d)
    out_dir = d / "OUT"
    fd = _hold_ab_folder(out_dir)
    (out_dir / "base.csv").write_text("theirs\n")
    (out_dir / "base.json").write_text("{}\n")
    try:
        outs = {"--force": cli("ab", cfg, "--base", d, "--head", d, "-o", out_dir, "--force", cwd=d),
                "--append": cli("ab", cfg, "--base", d, "--head", d, "-o", out_dir, "--append", cwd=d)}
    finally:
        os.close(fd)
    out = _all_exit(outs, 2)
    _expect(out, all("another seqbench ab (pid 4242)" in o.err for o in outs.values()), f"stderr: {out.first_line()}")
    _expect(out, (out_dir / "base.csv").read_text() == "theirs\n", "the other ab's file changed")
    return out


@case("26.4", "`ab OUT/base.json -o OUT --force`: the config is named like a file ab writes in OUT",
      "refused before anything is deleted, exit 2, one line; the config intact", 2)
def ab_config_inside_out(d: Path) -> Outcome:
    out_dir = d / "OUT"
    out_dir.mkdir()
    cfg = write_config(out_dir)
    (out_dir / "base.json").write_text(cfg.read_text())
    before = (out_dir / "base.json").read_text()
    out = cli("ab", out_dir / "base.json", "--base", d, "--head", d, "-o", out_dir, "--force", cwd=d)
    _expect(out, (out_dir / "base.json").exists() and (out_dir / "base.json").read_text() == before, "the config was deleted")
    _expect(out, "is also an input" in out.err, f"stderr: {out.first_line()}")
    return out


@case("26.9", "an ab side whose run exits 0 without writing a row (a head that stops early; `true`)",
      "exit 2 at that run, one line naming the side and run and saying it added no rows; never counted", 2)
def ab_run_writes_nothing(d: Path) -> Outcome:
    fake = d / "fakebase.sh"  # appends a header and a row to the file after -o, as a run would
    fake.write_text('for a; do [ "$prev" = "-o" ] && printf "h\\nr\\n" >> "$a"; prev="$a"; done\n')
    cfg = write_config(d)
    out = cli("ab", cfg, "--base", f"sh {fake}", "--head", "true", "-o", d / "OUT", "--runs", "2", "-q", cwd=d)
    _expect(out, "head: executable true: run 1 exited 0 but added no rows" in out.err, f"stderr: {out.first_line()}")
    _expect(out, not (d / "OUT" / "compare.md").exists(), "a comparison was written")
    return out


# --- 26.3: merge takes only what belongs ----------------------------------------------------------------

@case("26.3", "merge of shards where one holds a point twice; a row outside the sweep (T=999, a kernel not in "
      "the config); rows pasted from another run", "each refused, exit 2, one line naming the file and the row; "
      "the unedited shards merge (every point once)", 2)
def merge_takes_only_its_rows(d: Path) -> Outcome:
    from dataclasses import replace

    from synthetic_results import row, write_csv

    config = {"name": "s", "kernels": ["rnn_loop", "sdpa"], "seq_lens": [32, 64], "batch_sizes": [1],
              "modes": ["forward"], "hidden_size": 64, "num_heads": 2, "dtype": "float32"}
    env = {"device": "cpu", "cpu": "Test CPU", "torch": "0.0-test", "python": "3", "seqbench": "x"}

    def shard(sub: Path, k: int, rows, run: str) -> None:
        sub.mkdir(exist_ok=True)
        write_csv(sub / f"s{k}.csv", [replace(r, run_id=run) for r in rows], sidecar=False)
        (sub / f"s{k}.json").write_text(json.dumps({
            "schema_version": 2, "run_id": run, "config": config, "environment": env, "status": "complete",
            "schedule": {"shard": [k, 2]}, "machine": "box"}))

    def pair(name: str, extra=(), swap=None) -> str:
        sub = d / name
        one = [row("rnn_loop", 32, 1), row("rnn_loop", 64, 1)]
        if swap:
            one = [replace(one[0], **swap)] + one[1:]
        shard(sub, 1, one + list(extra), "run-1")
        shard(sub, 2, [row("sdpa", 32, 1), row("sdpa", 64, 1)], "run-2")
        return name

    cases = {"twice": pair("twice", extra=[row("rnn_loop", 32, 1)]),
             "T=999": pair("t999", swap={"seq_len": 999}),
             "kernel": pair("kern", swap={"kernel": "lstm_loop"}),
             "pasted": pair("paste", extra=[replace(row("rnn_loop", 128, 1), run_id="run-elsewhere")])}
    good = cli("merge", "ok/s1.csv", "ok/s2.csv", "-o", "m.csv", cwd=d) if pair("ok") else None
    outs = {k: cli("merge", f"{sub}/s1.csv", f"{sub}/s2.csv", "-o", f"{sub}/m.csv", cwd=d) for k, sub in cases.items()}
    out = _all_exit(outs, 2)
    _expect(out, good.rc == 0, f"the good shards did not merge: {good.first_line()}")
    _expect(out, not any((d / sub / "m.csv").exists() for sub in cases.values()), "a refused merge wrote a file")
    return count(out, d / "m.csv", 4)


# --- 26.10: signals reach the whole process tree ------------------------------------------------------

def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (ended, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    import subprocess

    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    kids = [int(p) for p in r.stdout.split()]
    return kids + [g for k in kids for g in _descendants(k)]


@__import__("functools").lru_cache(maxsize=None)
def _tree_signals() -> dict:
    """`seqbench ab` and `seqbench launch --cluster local`, each sent SIGTERM to its own pid only once its
    child run has written a row; and a launch sent SIGINT to its whole process group (a terminal's Ctrl-C)."""
    import signal
    import time

    from fault_lab import finish, scratch, spawn, wait_for

    d = scratch("seqbench-tree-")
    cfg = write_config(d, "tree", seq_lens=list(range(4, 204, 4)), min_time=0.05, max_warmup=0.05)
    procs = {"ab": spawn("ab", cfg, "--base", d, "--head", d, "-o", d / "ab", "--runs", "2", "--rounds", "1", cwd=d),
             "launch-term": spawn("launch", cfg, "--shards", "2", "--cluster", "local", "-o", d / "lt.csv", "-q", cwd=d),
             "launch-int": spawn("launch", cfg, "--shards", "2", "--cluster", "local", "-o", d / "li.csv", "-q", cwd=d)}
    csvs = {"ab": d / "ab" / "base.csv", "launch-term": d / "lt.shards" / "shard-1-of-2.csv",
            "launch-int": d / "li.shards" / "shard-1-of-2.csv"}
    seen, ends = {}, {}
    for k, p in procs.items():
        wait_for(lambda: csvs[k].exists() and len(csvs[k].read_bytes().splitlines()) >= 2, p, timeout=90,
                 what=f"{k}'s first row")
        seen[k] = _descendants(p.pid)
        if k == "launch-int":
            import os

            os.killpg(p.pid, signal.SIGINT)  # spawn() starts a session: its group is the terminal's job
        else:
            p.send_signal(signal.SIGTERM)
    for k, p in procs.items():
        ends[k] = finish(p, timeout=90)
        ends[k].note = f"children alive after exit: {[c for c in seen[k] if _alive(c)]}"
        time.sleep(0)
    return {"dir": d, "ends": ends, "seen": seen, "csvs": csvs}


def _tree_case(key: str) -> Outcome:
    r = _tree_signals()
    out = r["ends"][key]
    alive = [c for c in r["seen"][key] if _alive(c)]
    _expect(out, r["seen"][key], "no child process was seen")
    _expect(out, not alive, f"children still running after exit: {alive}")
    meta = sidecar(r["csvs"][key])
    _expect(out, meta.get("status") == "interrupted", f"the child run's sidecar says {meta.get('status')}")
    out.note = ""
    return count(out, r["csvs"][key], int(meta.get("rows", -1)))


@case("26.10", "SIGTERM to `seqbench ab`'s own pid (as `timeout` sends) while its child run measures",
      "exit 130, one line; the child run is stopped before ab exits (its sidecar 'interrupted', rows kept): "
      "no orphan measuring beside a relaunch", 130, slow=True)
def sigterm_ab_tree(d: Path) -> Outcome:
    return _tree_case("ab")


@case("26.10", "SIGTERM to `seqbench launch --cluster local`'s own pid while a shard measures",
      "exit 130, one line; the shard job stopped before launch exits (its sidecar 'interrupted')", 130, slow=True)
def sigterm_launch_tree(d: Path) -> Outcome:
    return _tree_case("launch-term")


@case("26.10", "Ctrl-C (SIGINT to the process group) on `seqbench launch --cluster local`",
      "exit 130, one line on stderr: no traceback from submitit's controller; the shard stopped", 130, slow=True)
def ctrl_c_launch(d: Path) -> Outcome:
    return _tree_case("launch-int")


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


@case("26.17", "`report a.csv -o f.md` and `run -o fifo.csv --force` where the output is a FIFO",
      "exit 2 at once, one line each saying it is not a regular file (was: blocked; 'Illegal seek' and a "
      "sidecar left)", 2)
def output_is_a_fifo(d: Path) -> Outcome:
    import os

    from synthetic_results import row, write_csv

    write_csv(d / "a.csv", [row("sdpa", 8, 1)])
    os.mkfifo(d / "f.md")
    os.mkfifo(d / "fifo.csv")
    outs = {"report": cli("report", "a.csv", "-o", "f.md", "--no-charts", cwd=d),
            "run --force": cli("run", write_config(d), "-o", "fifo.csv", "--force", "--no-peak", "-q", cwd=d)}
    out = _all_exit(outs, 2)
    _expect(out, all("not a regular file" in o.err for o in outs.values()), f"stderr: {out.first_line()}")
    _expect(out, not (d / "fifo.json").exists(), "a sidecar was left beside the FIFO")
    return out


SEGV = """
import os, signal
from torch import nn
import seqbench


class Crash(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x):
        if x.shape[1] == 16:
            os.kill(os.getpid(), signal.SIGSEGV)  # a crash in native code, at one point
        return self.lin(x)


seqbench.register_kernel("crash", family="recurrent", flops="2*B*T*d*d", factory=lambda s: Crash(s.hidden_size))
"""


@case("26.17", "a shard of `launch --cluster local` killed by SIGSEGV (a plugin crashing at T=16)",
      "exit 4; the failed shard's line says its process crashed with a segmentation fault (was submitit's "
      "'Loading pickle' log line); the other shard kept", 4, slow=True)
def shard_segfault_named(d: Path) -> Outcome:
    (d / "segv.py").write_text(SEGV)
    cfg = write_config(d, "seg", kernels=["crash", "sdpa"], plugins=[str(d / "segv.py")], seq_lens=[8, 16])
    out = cli("launch", cfg, "--shards", "2", "--cluster", "local", "-o", "l.csv", "-q", cwd=d)
    _expect(out, "crashed: Segmentation fault" in out.err, f"stderr: {out.first_line()}")
    _expect(out, "Loading pickle" not in out.err, "submitit's log line shown as the reason")
    out.err = "\n".join(ln for ln in out.err.splitlines() if "1 of 2 shards failed" in ln)  # the summary line
    return out


SQUARE = """
import torch
from torch import nn
import seqbench


class Square(nn.Module):
    \"\"\"A correct causal layer whose decode step builds a B x B matrix: its memory grows as B squared.\"\"\"

    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * self.w

    def init_state(self, batch_size, max_len):
        return {"h": torch.zeros(batch_size, self.w.shape[0])}

    def step(self, x_t, state):
        flat = x_t.reshape(x_t.shape[0], -1)
        return x_t * self.w + 0 * (flat @ flat.T).sum(), state


seqbench.register_kernel("square", family="recurrent", flops="2*B*T*d", factory=lambda s: Square(s.hidden_size))
"""


@case("26.17", "`--capacity` for a decode step whose memory grows as B squared, budget 64 MiB",
      "exit 0; the capacity found fits and B + 1 does not; no batch tried needs over 1.5x the budget "
      "(was 1.37 GB tried for 256 MiB; 15.6 GB RSS measured before the fix)", 0)
def capacity_footprint_bends(d: Path) -> Outcome:
    from seqbench.kernels.plugins import load_plugin
    from seqbench.results.identity import Point
    from seqbench.sweep.capacity import measure_capacity

    from fault_lab import isolated

    (d / "sq.py").write_text(SQUARE)
    budget = 64 << 20
    cfg = write_config(d, "sq", kernels=["square"], plugins=[str(d / "sq.py")], modes=["decode"], seq_lens=[8],
                       capacity=True)
    out = cli("run", cfg, "-o", "sq.csv", "--no-peak", "-q", "--max-memory", "64MiB", cwd=d)
    rows = _rows(d / "sq.csv") if (d / "sq.csv").exists() else []
    with isolated():
        load_plugin(str(d / "sq.py"))
        cap = measure_capacity(Point("square", "decode", "cpu", "float32", 1, 8, 8, 2, True), budget)
    tried = [p.bytes for p in cap.probes if p.bytes is not None]
    above = next((p for p in cap.probes if p.batch_size == cap.batch_size + 1), None)
    _expect(out, rows and rows[0]["capacity_batch"] == str(cap.batch_size), f"row {rows[:1]}, search {cap.batch_size}")
    _expect(out, cap.batch_size > 1 and cap.peak_bytes <= budget and above is not None and not above.fits,
            f"capacity {cap.batch_size}: {cap.probes_text()}")
    _expect(out, max(tried) <= 1.5 * budget, f"tried {max(tried) / budget:.1f}x the budget: {cap.probes_text()}")
    out.note = f"{len(cap.probes)} probes, largest {max(tried) / budget:.2f}x the budget"
    return out



# --- 26.16: large files ------------------------------------------------------------------------------------

SCALE = {"rows": 2_000}  # tests/fault_table.py raises it to the 100,000


@case("26.16", "compare, report --no-charts and plot of a file of 2,000 rows (100,000 in the table: 10 kernels x "
      "100 batch sizes x 100 lengths, 5 samples each)", "exit 0 each; at 100,000 rows each under 30 s on 2 cores "
      "(was: compare killed at 600 s, report 527 s and 3.9 GB, plot killed at 600 s)", 0)
def large_files(d: Path) -> Outcome:
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("scale", Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py")
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    scale.write(d / "a.csv", SCALE["rows"])
    scale.write(d / "b.csv", SCALE["rows"], slower=1.02, run_id="scale-run-b")
    walls, outs = {}, {}
    for name, args in {"compare": ("compare", "a.csv", "b.csv", "--format", "json", "--fail-on", "failed"),
                       "report": ("report", "a.csv", "--no-charts", "-o", "a.md"),
                       "plot": ("plot", "a.csv", "-d", "charts")}.items():
        t0 = time.perf_counter()
        outs[name] = cli(*args, cwd=d)
        walls[name] = time.perf_counter() - t0
    out = _all_exit(outs, 0)
    out.err = ""  # the commands' own notes (single runs, no verdict) are not what this case checks
    _expect(out, (d / "a.md").exists() and list((d / "charts").glob("*.png")), "no report or no charts")
    out.note = f"{SCALE['rows']:,} rows: " + ", ".join(f"{k} {v:.1f} s" for k, v in walls.items())
    return out
