"""Every results file committed under results/ still reads through the versioned schema (CSV rows and
sidecar), a newer sidecar is refused in one line, and an older one is read as the current one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from seqbench.errors import ResultsError
from seqbench.results.reader import read_metadata, read_results
from seqbench.results.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]
NOT_RUNS = {"results/cpu/gradflow.csv"}  # gradflow's own table (seqbench gradflow), not a run's rows


def committed_results() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "results/*.csv", "results/**/*.csv"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "results").rglob("*.csv"))
    return sorted(set(out.split()))


FILES = [f for f in committed_results() if f not in NOT_RUNS]


def test_there_are_committed_results_to_read():
    assert len(FILES) >= 10


@pytest.mark.parametrize("name", FILES)
def test_each_committed_results_file_reads(name):
    df = read_results(ROOT / name)
    meta = read_metadata(ROOT / name)
    assert len(df) > 0 or meta.get("status") != "complete", name  # a run cut off before its first row is empty
    assert set(df["schema_version"]) <= set(range(1, SCHEMA_VERSION + 1))
    if meta:  # read as the current version: the fields every reader may ask for are there
        assert {"kernels", "plugins", "schedule"} <= set(meta), name
        assert meta["config"].get("metric") in ("time", "instructions"), name


def _sidecar(tmp_path, version, **extra):
    csv = tmp_path / "r.csv"
    csv.write_text("")
    meta = {"schema_version": version, "config": {"name": "x"}, "status": "complete", **extra}
    csv.with_suffix(".json").write_text(json.dumps(meta))
    return csv


def test_a_sidecar_of_a_newer_seqbench_is_refused_in_one_line(tmp_path):
    with pytest.raises(ResultsError, match=f"newer seqbench \\(schema_version {SCHEMA_VERSION + 1}\\).*upgrade"):
        read_metadata(_sidecar(tmp_path, SCHEMA_VERSION + 1))
    with pytest.raises(ResultsError, match="not an integer"):
        read_metadata(_sidecar(tmp_path, "4"))


def test_a_version_1_sidecar_is_migrated_and_keeps_its_version(tmp_path):
    meta = read_metadata(_sidecar(tmp_path, 1, interrupted_by="SIGTERM"))
    assert meta["schema_version"] == 1 and meta["interrupted_by"] == "SIGTERM"
    assert meta["kernels"] == {} and meta["plugins"] == [] and meta["schedule"] == {}
    assert meta["config"]["metric"] == "time"
    assert read_metadata(_sidecar(tmp_path, 3, config={"metric": "instructions"}))["config"]["metric"] == "instructions"
