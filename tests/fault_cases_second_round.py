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
      "whose shard is being written; `report -o x.md --force` where x.md is a results CSV",
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
    before = {p: p.read_bytes() for p in [*d.iterdir(), *shards.iterdir()] if p.is_file()}
    with own(d / "w.csv", "append"), own(shards / "shard-1-of-2.csv", "append"):  # as live runs would
        outs = {
            "report -o w.csv": cli("report", "full.csv", "--no-charts", "-o", "w.csv", "--force", cwd=d),
            "report -o w.json": cli("report", "full.csv", "--no-charts", "-o", "w.json", "--force", cwd=d),
            "report -o x.md": cli("report", "full.csv", "--no-charts", "-o", "x.md", "--force", cwd=d),
            "gradflow": cli("gradflow", "-o", "w.csv", "--force", "--seeds", "1", "--seq-len", "8", "--hidden-size",
                            "8", "--heads", "2", "--layers", "rnn_loop", "--spectral-radius", "1", cwd=d),
            "merge": cli("merge", "full.csv", "other.csv", "-o", "w.csv", "--force", cwd=d),
            "launch --force": cli("launch", cfg, "-n", "2", "-o", "l.csv", "--dir", shards, "--force",
                                  "--cluster", "local", cwd=d),
        }
    out = _all_exit(outs, 2)
    why = {"report -o w.csv": "a report is Markdown", "report -o x.md": "is a seqbench results CSV"}
    for label, o in outs.items():
        _expect(out, why.get(label, "seqbench run still writing") in o.err, f"{label}: {o.first_line()!r}")
    after = {p: p.read_bytes() for p in [*d.iterdir(), *shards.iterdir()] if p.is_file() and p in before}
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
    import functools
    import subprocess

    from seqbench.analysis import ab as ab_mod

    def in_process(argv, cwd=None, env=None, **_):  # each side's `seqbench run` here: no interpreter start
        i = argv.index("run")
        o = cli(*argv[i:], cwd=Path(cwd))
        return subprocess.CompletedProcess(argv, o.rc, "", o.err)

    cfg = write_config(d, seq_lens=[4])
    real = ab_mod.run_ab
    ab_mod.run_ab = functools.partial(real, runner=in_process)
    try:
        first = cli("ab", cfg, "--base", d, "--head", d, "--runs", "1", "--rounds", "1", "-o", "out", "-q", cwd=d)
        out = cli("ab", cfg, "--base", d, "--head", d, "--runs", "1", "--rounds", "1", "-o", "out", "-q", "--append",
                  cwd=d)
    finally:
        ab_mod.run_ab = real
    out.merge(first, "first ab")
    runs = json.loads((d / "out" / "ab.json").read_text())["runs"]
    _expect(out, [(r["side"], r["index"]) for r in runs] == [("base", 1), ("head", 1), ("base", 2), ("head", 2)],
            f"ab.json runs: {[(r['side'], r['index']) for r in runs]}")
    return out
