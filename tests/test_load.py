"""seqbench.measure.load: the machine's load from /proc, and when a run counts as disturbed by it."""

import subprocess
import sys
import time

import pytest

from seqbench.sweep.runner import Harness
from seqbench.measure import load

pytestmark = pytest.mark.skipif(not load.PROC.is_dir(), reason="reads /proc (Linux)")


def _fake_proc(tmp_path, procs, loadavg="3.50 2.25 1.00 3/120 999"):
    (tmp_path / "loadavg").write_text(loadavg + "\n")
    for pid, (comm, utime, stime) in procs.items():
        (tmp_path / str(pid)).mkdir(exist_ok=True)
        fields = ["S", "1"] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 30
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
    (tmp_path / "self").mkdir(exist_ok=True)  # not a pid: ignored
    return tmp_path


def test_ticks_parse_names_with_spaces_and_parentheses(tmp_path):
    proc = _fake_proc(tmp_path, {10: ("python3", 100, 50), 11: ("tmux: server) (x", 7, 3), 12: ("me", 1, 1)})
    ticks = load._cpu_ticks(proc, skip={12})
    assert ticks == {10: ("python3", 150), 11: ("tmux: server) (x", 10)}


def test_usage_counts_cores_and_names_the_busiest():
    before = {1: ("spin", 100), 2: ("idle", 5), 3: ("half", 0), 4: ("gone", 0)}
    after = {1: ("spin", 200), 2: ("idle", 5), 3: ("half", 60), 5: ("new", 90)}
    cores, busy, busiest = load.usage(before, after, window_ticks=100)
    assert cores == 1.6  # a new or vanished process has no window of its own: left out
    assert busy == 2
    assert busiest == ["spin (1) 1.00 cores", "half (3) 0.60 cores"]


def test_sample_reads_loadavg_and_cores(tmp_path):
    proc = _fake_proc(tmp_path, {10: ("python3", 1, 1)})
    got = load.sample(window=0.01, proc=proc)
    assert (got.loadavg_1m, got.loadavg_5m, got.loadavg_15m) == (3.5, 2.25, 1.0)
    assert got.busy_cores == 0.0 and got.busy_processes == 0 and got.busiest == []
    assert got.cores >= 1 and got.free_cores == got.cores
    d = got.as_dict()
    assert d["window_s"] == 0.01 and d["free_cores"] == got.cores and d["at"].endswith("+00:00")


def test_no_window_no_usage(tmp_path):
    got = load.sample(window=0, proc=_fake_proc(tmp_path, {}))
    assert got.busy_cores is None and got.free_cores is None and load.loaded(got, threads=1) is None


@pytest.mark.parametrize("busy, cores, threads, disturbed", [
    (0.1, 2, 1, False),   # an idle machine
    (1.0, 2, 1, False),   # one neighbour, one free core for a one-thread run
    (1.6, 2, 1, True),    # the neighbours take more than the free core
    (1.0, 2, 2, True),    # a two-thread run has no core to spare
    (0.2, 1, 1, False),   # the slack: a shell's blips
    (None, 2, 1, False),  # unknown is not a verdict
])
def test_loaded_when_others_use_more_than_the_free_cores(busy, cores, threads, disturbed):
    d = {"cores": cores, "busy_cores": busy, "busiest": ["spin (7) 0.99 cores"] if busy else []}
    why = load.loaded(d, threads)
    assert (why is not None) == disturbed
    if disturbed:
        assert f"{busy:.1f} of {cores} cores" in why and "spin (7)" in why


def test_a_busy_neighbour_is_seen():
    """A real spinning process beside us shows in the sample, by pid; excluding it hides it again."""
    import os

    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.1)  # past the interpreter's start
        # Everyone else left out, so the other helpers' work on this shared machine cannot crowd the spinner
        # out of the top three.
        others = tuple(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != spin.pid)
        seen = load.sample(window=0.3, busy_share=0.05, exclude=others)
        hidden = load.sample(window=0.3, busy_share=0.05, exclude=others + (spin.pid,))
    finally:
        spin.kill()
        spin.wait()
    # On a shared 2-core machine the spinner may get well under a core, but it is never idle.
    assert len(seen.busiest) == 1 and seen.busiest[0].startswith(f"python") and f"({spin.pid})" in seen.busiest[0]
    assert seen.busy_processes == 1 and seen.busy_cores >= 0.1
    assert hidden.busiest == [] and hidden.busy_processes == 0


@pytest.fixture
def neighbours(monkeypatch):
    """Three spinning processes, and /proc scans that see only them (the other work on a shared machine
    is left out, so what the test sees is what it planted)."""
    spins = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    pids = {s.pid for s in spins}
    real = load._cpu_ticks
    monkeypatch.setattr(load, "_cpu_ticks", lambda proc, skip: {p: v for p, v in real(proc, skip).items() if p in pids})
    time.sleep(0.1)
    yield pids
    for s in spins:
        s.kill()
        s.wait()


def test_a_loaded_run_records_the_load_in_its_sidecar(tmp_path, monkeypatch, neighbours):
    from reliability_helpers import FakeClock, tiny_config
    from seqbench.results.reader import read_metadata
    from seqbench.orchestration.run import run_to_files

    monkeypatch.setenv("SEQBENCH_LOAD_WINDOW", "0.3")
    monkeypatch.setattr(load, "available_cores", lambda: 1)  # as under a one-CPU quota: no core to spare
    out = tmp_path / "run.csv"
    run_to_files(tiny_config(kernels=["rnn_loop"], seq_lens=[8]), out, command=["test"], harness=Harness.scripted(FakeClock()))
    record = read_metadata(out)["load"]
    assert set(record) == {"start", "during", "end"}
    for moment in ("start", "end"):
        got = record[moment]
        assert got["cores"] == 1 and got["window_s"] == 0.3 and got["loadavg_1m"] is not None
        # three spinners: three fair shares of a machine that other work may keep busy too (load 6 on 2 cores
        # gave each 0.2 of a core), so well over the quarter core that counts
        assert got["busy_cores"] > 0.25, got
        assert {int(b.split("(")[1].split(")")[0]) for b in got["busiest"]} <= neighbours
    assert record["during"]["seconds"] >= 0 and record["during"]["cores"] == 1
    why = load.disturbances(record, threads=1)
    assert [w.split(":")[0] for w in why] == ["at the start", "at the end"]  # the sweep itself was too short to judge
    assert "of 1 cores while the run needed 1" in why[0]


def test_load_off_records_nothing(tmp_path):
    from reliability_helpers import FakeClock, tiny_config
    from seqbench.results.reader import read_metadata
    from seqbench.orchestration.run import run_to_files

    out = tmp_path / "run.csv"  # conftest: SEQBENCH_LOAD_WINDOW=off
    run_to_files(tiny_config(kernels=["rnn_loop"], seq_lens=[8]), out, command=["test"], harness=Harness.scripted(FakeClock()))
    assert "load" not in read_metadata(out)
