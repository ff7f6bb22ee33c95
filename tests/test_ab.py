"""`seqbench ab` (ABBA schedule, directory and executable sides, end to end on a tiny sweep), the
mismatch checks of compare, and the comparison table at 80 columns."""

from __future__ import annotations

import io
import re
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from compare_helpers import make_row, make_runs, make_table
from plugin_helpers import seqbench_cmd, write_package
from seqbench.orchestration.ab import abba_order, resolve_side, run_ab
from seqbench.analysis.compare import compare_frames
from seqbench.cli import main
from seqbench.errors import ABError
from seqbench.results.schema import COLUMNS


def test_schedule_is_abba():
    assert abba_order(["base", "head"], 4) == ["base", "head", "head", "base", "base", "head", "head", "base"]
    assert abba_order(["a", "b", "c"], 2) == ["a", "b", "c", "c", "b", "a"]


def test_sides_directory_executable_and_neither(tmp_path):
    (tmp_path / "src").mkdir()
    d = resolve_side("base", str(tmp_path))
    assert d.kind == "directory" and d.cwd == str(tmp_path.resolve())
    assert d.pythonpath == (str(tmp_path.resolve()), str(tmp_path.resolve() / "src"))  # src layouts too
    assert d.env()["PYTHONPATH"].split(os.pathsep)[:2] == list(d.pythonpath)
    exe = resolve_side("head", f"{sys.executable} -m seqbench")
    assert exe.kind == "executable" and exe.command[1:] == ("-m", "seqbench") and not exe.pythonpath
    with pytest.raises(ABError, match="neither a directory"):
        resolve_side("base", str(tmp_path / "nowhere"))


class FakeRunner:
    """Stands in for subprocess.run: records what would run, appends a row as a run would, can fail on cue."""

    def __init__(self, fail_on_call=None, code=2):
        self.calls, self.fail_on_call, self.code = [], fail_on_call, code

    def __call__(self, argv, *, cwd, env, capture_output, text):
        self.calls.append((argv, cwd, env.get("PYTHONPATH", "")))
        code = self.code if len(self.calls) == self.fail_on_call else 0
        if code == 0:  # ab checks that every run added its rows
            out = Path(argv[argv.index("-o") + 1])
            with out.open("a") as fh:
                fh.write(("header\n" if out.stat().st_size == 0 else "") + "row\n")
        return subprocess.CompletedProcess(argv, code, "", "seqbench: error: plugin 'mylab' not found\n")


def test_run_ab_alternates_sides_in_their_own_folders_and_refuses_to_clobber(tmp_path):
    cfg = tmp_path / "bench.toml"
    cfg.write_text("kernels = ['rnn_loop']\nseq_lens = [8]\nbatch_sizes = [2]\n")
    base_dir, head_dir = tmp_path / "base", tmp_path / "head"
    base_dir.mkdir(), head_dir.mkdir()
    sides = [resolve_side("base", str(base_dir)), resolve_side("head", str(head_dir))]
    fake, passes = FakeRunner(), []
    res = run_ab(cfg, sides, tmp_path / "out", runs=2, rounds=3, runner=fake, after_first_pass=lambda: passes.append(1))
    assert [r.side for r in res.runs] == ["base", "head", "head", "base"] and passes == [1]
    argv, cwd, pythonpath = fake.calls[0]
    assert argv[argv.index("run") + 1] == str(cfg.resolve()) and argv[argv.index("--rounds") + 1] == "3"
    assert "--append" in argv and cwd == str(base_dir.resolve()) and pythonpath.startswith(str(base_dir.resolve()))
    assert fake.calls[1][1] == str(head_dir.resolve())
    (tmp_path / "out" / "base.csv").write_text("x\n")  # as a real run would have left it
    with pytest.raises(ABError, match="--append to add runs"):
        run_ab(cfg, sides, tmp_path / "out", runs=1, rounds=1, runner=fake)
    with pytest.raises(ABError, match=r"base: directory .* run 1 exited with 2: seqbench: error: plugin 'mylab'"):
        run_ab(cfg, sides, tmp_path / "out2", runs=1, rounds=1, runner=FakeRunner(fail_on_call=1))


# --- mismatch checks --------------------------------------------------------------------------------

def _side(tmp_path, name, *, threads=1, env=None, kernels=None):
    rows = [make_row("rnn_loop", 64, rounds, run_id=f"{name}{i}", threads=threads) for i, rounds in enumerate(make_runs(1e-3))]
    path = tmp_path / f"{name}.csv"
    pd.DataFrame([r.as_csv() for r in rows], columns=COLUMNS).to_csv(path, index=False)
    meta = {"environment": {"cpu": "Test CPU 9000", "torch": "2.13.0", "seqbench": "0.5.0", **(env or {})},
            "kernels": kernels or {"rnn_loop": {"source": "seqbench.kernels.recurrent", "definition": "aaaa"}}}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return str(path)


@pytest.mark.parametrize("change,kind,needle", [
    ({"threads": 2}, "threads", "threads: baseline 1, candidate 2"),
    ({"env": {"cpu": "Other CPU"}}, "device", "cpu: baseline Test CPU 9000, candidate Other CPU"),
    ({"env": {"torch": "2.14.0"}}, "torch", "torch: baseline 2.13.0, candidate 2.14.0"),
    ({"kernels": {"rnn_loop": {"source": "seqbench.kernels.recurrent", "definition": "bbbb"}}}, "kernels",
     "code of kernel rnn_loop differs"),
])
def test_mismatches_are_refused_unless_allowed(tmp_path, capsys, change, kind, needle):
    base, head = _side(tmp_path, "base"), _side(tmp_path, "head", **change)
    assert main(["compare", base, head]) == 2
    err = capsys.readouterr().err
    assert needle in err and f"--allow-mismatch {kind}" in err and err.count("\n") == 1
    assert main(["compare", base, head, "--allow-mismatch", kind, "--format", "markdown"]) == 0
    captured = capsys.readouterr()
    assert needle in captured.out and needle in captured.err  # in the summary and in the log


def test_a_users_own_kernels_may_differ(tmp_path, capsys):
    # the layer under test is expected to change between base and head: only seqbench's are checked
    mine = {"rnn_loop": {"source": "mylab.bench_kernels", "definition": "cccc"}}
    base = _side(tmp_path, "base", kernels=mine)
    head = _side(tmp_path, "head", kernels={"rnn_loop": {**mine["rnn_loop"], "definition": "dddd"}})
    assert main(["compare", base, head]) == 0


# --- the table at 80 columns ------------------------------------------------------------------------

def test_table_fits_80_columns_and_never_cuts_a_kernel_name(monkeypatch):
    from seqbench.render import console

    names = ["linear_attention_loop", "attention_naive", "mingru_logscan"]
    base = pd.concat([make_table({t: make_runs(1e-3 * t / 64, seed=t)}, side="b", kernel=k) for k in names for t in (64, 1024)])
    head = pd.concat([make_table({t: make_runs(1.2e-3 * t / 64 if k == "mingru_logscan" else 1e-3 * t / 64, seed=t + 1)},
                             side="h", kernel=k) for k in names for t in (64, 1024)]
                     + [make_table({64: make_runs(1e-3)}, side="h", kernel="sdpa")])
    broken = make_row("attention_naive", 64, [], run_id="h9", status="error", error="check: [[kernel]] [bold]x[/] broke")
    head = pd.concat([head, pd.DataFrame([broken.as_csv()], columns=COLUMNS)])
    comp = compare_frames(base, head)
    buf = io.StringIO()
    monkeypatch.setattr(console, "out", Console(file=buf, width=80, highlight=False))
    console.comparison_table(comp)
    text = buf.getvalue()
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80
    rows = [ln for ln in lines if ln.split() and ln.split()[0] in names]
    assert len(rows) == 6 and all(ln.split()[1] in ("64", "1024") for ln in rows)  # whole names, T beside them
    assert "base min" in text and "head min" in text and "each run's fastest round" in text
    assert sum(bool(re.search(r"mingru_logscan .* \+(19|20)\.\d% ±\d\.\d .* regression", ln)) for ln in rows) == 2
    assert "1 point(s) only in the candidate, not compared: sdpa ×1" in text
    flat = " ".join(text.split())  # long lines wrap at 80 columns
    assert "attention_naive T=64: fails in 1 of 5 candidate runs: check: [[kernel]] [bold]x[/] broke" in flat  # no markup


# --- end to end ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_seqbench_ab_with_a_directory_and_an_executable(tmp_path):
    # base: the user's checkout as a directory; head: this environment's seqbench executable, run
    # from the head checkout. Each side must time its own copy of the plugin.
    base_dir, head_dir = write_package(tmp_path / "base"), write_package(tmp_path / "head")
    cfg = tmp_path / "bench.toml"
    cfg.write_text('plugins = ["mylab.bench_kernels"]\nkernels = ["my_glr"]\nseq_lens = [8]\nbatch_sizes = [2]\n'
                   'hidden_size = 16\nnum_heads = 2\nmin_time = 0.005\nmax_warmup = 0.01\nthreads = 1\n')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([*seqbench_cmd(), "ab", str(cfg), "--base", str(base_dir), "--head", " ".join(seqbench_cmd()),
                           "--runs", "1", "--rounds", "2", "-o", str(tmp_path / "out"), "--format", "json"],
                          cwd=head_dir, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    point = doc["points"][0]
    assert point["key"]["kernel"] == "my_glr" and point["verdict"] == "inconclusive"  # 1 run a side: says so
    assert point["base_rounds"] == point["head_rounds"] == 2
    for side, root in (("base", base_dir), ("head", head_dir)):
        plugins = json.loads((tmp_path / "out" / f"{side}.json").read_text())["plugins"]
        assert Path(plugins[0]["file"]).resolve().is_relative_to(root.resolve())
    assert (tmp_path / "out" / "compare.md").read_text().startswith("### seqbench compare")
    ab = json.loads((tmp_path / "out" / "ab.json").read_text())
    assert [r["side"] for r in ab["runs"]] == ["base", "head"] and ab["sides"][1]["kind"] == "executable"
