"""`seqbench launch` end to end on submitit's local executor: two shards, one failing, rerun alone, merged."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from seqbench.cli import main
from seqbench.results.reader import read_metadata, read_results
from seqbench.sweep.config import build_config, load_toml

pytest.importorskip("submitit")

# A plugin that breaks shard 2/2 while the marker file exists: the job's process raises, as a job
# whose node lacks a package would, deterministically and without killing anything.
FAILER = '''
import os
from pathlib import Path

if os.environ.get("SEQBENCH_SHARD") == "2/2" and Path({marker!r}).exists():
    raise RuntimeError("planted failure in shard 2/2")
'''


def write_sweep(tmp_path):
    marker = tmp_path / "fail-shard-2"
    marker.touch()
    plugin = tmp_path / "failer.py"
    plugin.write_text(FAILER.format(marker=str(marker)))
    config = tmp_path / "tiny.toml"
    config.write_text(f'''name = "tiny"
kernels = ["rnn_loop", "sdpa"]
seq_lens = [8, 16]
batch_sizes = [1]
hidden_size = 16
num_heads = 2
threads = 1
min_time = 0.005
min_repeats = 3
max_warmup = 0.01
plugins = ["{plugin}"]
''')
    return config, marker


@pytest.mark.slow
def test_launch_local_two_shards_failed_shard_rerun_alone(tmp_path, capsys):
    config, marker = write_sweep(tmp_path)
    out = tmp_path / "tiny.csv"
    args = ["launch", str(config), "--shards", "2", "--cluster", "local", "--parallel", "2", "--no-peak", "-o", str(out)]
    assert main(args) == 4
    err = capsys.readouterr().err
    assert "shard 2/2 failed" in err and "planted failure in shard 2/2" in err and "_log.err" in err
    folder = tmp_path / "tiny.shards"
    assert not out.exists()
    assert read_metadata(folder / "shard-1-of-2.csv")["status"] == "complete"

    marker.unlink()  # the "node" is fixed: the same command reruns shard 2 only, then merges
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "1 of 2 finished earlier (1), kept" in err and "shard 2/2: job" in err and "shard 1/2: job" not in err
    jobs = json.loads((folder / "launch.json").read_text())["jobs"]
    assert [(j["shard"], j["state"]) for j in jobs] == [(1, "done"), (2, "failed"), (2, "done")]

    df = read_results(out)
    cfg = build_config(load_toml(config))
    assert sorted(tuple(r) for r in df[["kernel", "batch_size", "seq_len"]].itertuples(index=False)) == sorted(
        (p.kernel, p.batch_size, p.seq_len) for p in cfg.points())
    meta = read_metadata(out)
    assert meta["shards"]["count"] == 2 and meta["partial"] is False
    assert meta["launch"]["cluster"] == "local"
    for part in meta["merged_from"]:  # each shard's sidecar names its job (submitit's local job id)
        k = part["shard"][0]
        assert part["job"]["SUBMITIT_EXECUTOR"] == "local"
        assert part["job"]["SUBMITIT_LOCAL_JOB_ID"] == [j["job_id"] for j in jobs if j["shard"] == k][-1]
    # each (kernel, B) curve was measured by one shard
    runs = df.groupby(["kernel", "batch_size"])["run_id"].nunique()
    assert (runs == 1).all()


def test_launch_without_submitit_says_how_to_install(tmp_path, capsys, monkeypatch):
    config, _ = write_sweep(tmp_path)
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    err_code = main(["launch", str(config), "--shards", "2", "--cluster", "local", "-o", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert err_code == 2 and err.count("\n") == 1 and "pip install 'seqbench[launch]'" in err


def test_launch_bad_input(tmp_path, capsys):
    config, _ = write_sweep(tmp_path)
    assert main(["launch", str(config), "--shards", "5", "-o", str(tmp_path / "x.csv")]) == 2
    assert "--shards 5: allowed 1 to 4" in capsys.readouterr().err
    assert main(["launch", str(config), "--shards", "2", "--machine", "a=b", "-o", str(tmp_path / "x.csv")]) == 2
    assert "--machine" in capsys.readouterr().err
    if shutil.which("sbatch") is None:
        assert main(["launch", str(config), "--shards", "2", "--cluster", "slurm", "-o", str(tmp_path / "x.csv")]) == 2
        assert "no `sbatch`" in capsys.readouterr().err
    other = tmp_path / "other.toml"
    other.write_text(config.read_text().replace("seq_lens = [8, 16]", "seq_lens = [8, 32]"))
    (tmp_path / "x.shards").mkdir(exist_ok=True)
    (tmp_path / "x.shards" / "launch.json").write_text(json.dumps({"sweep": {"shards": 2}, "jobs": []}))
    assert main(["launch", str(other), "--shards", "2", "--cluster", "local", "-o", str(tmp_path / "x.csv")]) == 2
    assert "holds a launch of another sweep (config differs)" in capsys.readouterr().err
