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
