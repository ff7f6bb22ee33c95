"""A user's own layer, in their own package, timed beside sdpa through every route seqbench offers:
--plugin, a config's `plugins`, an installed package's entry point and a `[[kernel]]` table; then an
interrupted run of it resumed from another folder, and a report with it as the baseline.

Each test runs the installed `seqbench` script in a fresh process, as the user would."""

from __future__ import annotations

import json

import pytest

from plugin_helpers import TINY, have_git, run_seqbench, write_installed, write_package
from seqbench.results.reader import read_results

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path):
    """The user's checkout: their package, and a folder to run seqbench from."""
    return write_package(tmp_path / "proj")


def _ok(proc):
    assert proc.returncode == 0, proc.stderr
    return proc


def _rows(csv):
    df = read_results(csv)
    return {(k, int(t)): s for k, t, s in zip(df["kernel"], df["seq_len"], df["status"])}


def test_plugin_flag_times_the_users_layer_beside_sdpa_and_records_where_it_came_from(project):
    _ok(run_seqbench(["run", "--plugin", "mylab.bench_kernels", "--kernels", "my_glr,sdpa", *TINY, "-o", "a.csv"],
                     cwd=project))
    assert _rows(project / "a.csv") == {("my_glr", 8): "ok", ("my_glr", 16): "ok", ("sdpa", 8): "ok", ("sdpa", 16): "ok"}
    meta = json.loads((project / "a.json").read_text())
    (plugin,) = meta["plugins"]
    assert plugin["module"] == "mylab.bench_kernels" and plugin["kernels"] == ["my_glr"]
    assert plugin["version"] == "0.3.1" and plugin["file"].endswith("mylab/bench_kernels.py")
    import hashlib

    source_hash = hashlib.sha256((project / "mylab" / "bench_kernels.py").read_bytes()).hexdigest()[:12]
    assert meta["kernels"]["my_glr"] == {"family": "scan", "formula": "6*B*T*d^2", "quadratic": False,
                                         "baseline": False, "causal": "always", "source": "mylab.bench_kernels",
                                         "description": "a user's gated linear recurrence", "decode_formula": "",
                                         "inplace_state": False,
                                         "definition": source_hash}  # the code that ran, for compare's checks
    df = read_results(project / "a.csv")
    glr = df[(df["kernel"] == "my_glr") & (df["seq_len"] == 16)].iloc[0]
    assert glr["gflop"] == pytest.approx(6 * 2 * 16 * 16**2 / 1e9) and glr["family"] == "scan"


@pytest.mark.skipif(not have_git(), reason="needs git")
def test_plugin_in_a_git_checkout_records_its_commit(project):
    import subprocess

    for args in (["init", "-q"], ["add", "."], ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=project, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    _ok(run_seqbench(["run", "--plugin", "mylab.bench_kernels", "--kernels", "my_glr", *TINY, "-o", "g.csv"],
                     cwd=project))
    assert json.loads((project / "g.json").read_text())["plugins"][0]["git_commit"] == head


def test_config_plugins_and_kernel_table(project):
    (project / "sweep.toml").write_text(
        'kernels = ["my_glr", "glr_table", "sdpa"]\nseq_lens = [8, 16]\nbatch_sizes = [2]\nhidden_size = 16\n'
        'num_heads = 2\nmin_time = 0.005\nplugins = ["mylab.bench_kernels"]\n\n'
        '[[kernel]]\nname = "glr_table"\nfactory = "mylab.glr:GLR"\nargs = ["d"]\nfamily = "scan"\n'
        'flops = "6*B*T*d^2"\n')
    _ok(run_seqbench(["run", "sweep.toml", "--no-peak", "-q", "-o", "c.csv"], cwd=project))
    assert set(_rows(project / "c.csv").values()) == {"ok"} and len(_rows(project / "c.csv")) == 6
    meta = json.loads((project / "c.json").read_text())
    assert {p["origin"] for p in meta["plugins"]} == {"config", "kernel_table"}
    assert meta["kernels"]["glr_table"]["source"] == "[[kernel]] factory=mylab.glr:GLR"


def test_installed_package_entry_point_needs_no_flag(tmp_path):
    site = write_installed(tmp_path / "site")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _ok(run_seqbench(["run", "--kernels", "ep_glr,sdpa", *TINY, "-o", "e.csv"], cwd=elsewhere, pythonpath=site))
    assert set(_rows(elsewhere / "e.csv").values()) == {"ok"}
    (plugin,) = json.loads((elsewhere / "e.json").read_text())["plugins"]
    assert plugin["origin"] == "entry_point" and plugin["distribution"] == "eplab" and plugin["version"] == "1.2.0"
    listed = _ok(run_seqbench(["list", "--format", "json"], cwd=elsewhere, pythonpath=site))
    assert json.loads(listed.stdout)["ep_glr"]["source"] == "eplab.bench_kernels"


def test_interrupted_run_of_a_plugin_kernel_resumes_from_another_folder(project, tmp_path):
    _ok(run_seqbench(["run", "--plugin", "mylab.bench_kernels", "--kernels", "my_glr,sdpa", *TINY, "-o", "r.csv"],
                     cwd=project))
    csv, sidecar = project / "r.csv", project / "r.json"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:3]))  # as if stopped after two points
    meta = json.loads(sidecar.read_text())
    meta["status"] = "interrupted"
    sidecar.write_text(json.dumps(meta))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = _ok(run_seqbench(["run", "--resume", "-o", csv], cwd=elsewhere))
    assert "not found" not in proc.stderr
    df = read_results(csv)
    assert len(df) == 4 and set(df["run_id"]) == {meta["run_id"]} and (df["status"] == "ok").all()
    assert json.loads(sidecar.read_text())["status"] == "complete"


def test_report_with_the_users_layer_as_baseline_needs_no_plugin(project, tmp_path):
    _ok(run_seqbench(["run", "--plugin", "mylab.bench_kernels", "--kernels", "my_glr,sdpa,rnn_loop",
                      "--seq-lens", "8,16,32", "--batch-sizes", "1", "--hidden-size", "16", "--heads", "2",
                      "--min-time", "0.005", "--no-peak", "-q", "-o", "b.csv"], cwd=project))
    elsewhere = tmp_path / "elsewhere"  # no plugin importable here: the sidecar says what my_glr is
    elsewhere.mkdir()
    _ok(run_seqbench(["report", project / "b.csv", "-o", "b.md", "--no-charts", "--baseline", "my_glr", "-q"],
                     cwd=elsewhere))
    text = (elsewhere / "b.md").read_text()
    crossover = text[text.index("## Crossover length"):text.index("## Scaling exponents")]
    rows = [ln for ln in crossover.splitlines() if ln.startswith("| my_glr")]
    assert len(rows) == 1 and "| forward | 1 |" in rows[0]
    assert "| rnn_loop" not in crossover  # the chosen baseline replaces the registered ones
    bad = run_seqbench(["report", project / "b.csv", "-o", "x.md", "--no-charts", "--baseline", "nope"], cwd=elsewhere)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "measured kernels" in bad.stderr


def test_a_plugins_distribution_is_found_by_its_name_by_its_files_or_not_at_all(tmp_path, monkeypatch):
    """The provenance of a plugin: asked by name first; a package installed under another name (its
    folder holds *.dist-info) found from the installed files; a checkout on the path is in none, and
    its lookup does not read every installed package's file list (0.2-0.6 s of each run)."""
    import importlib
    import importlib.metadata

    from seqbench.kernels import plugins

    site = write_installed(tmp_path / "site", pkg="eplab3", kernel="ep3_glr", version="2.0.1")
    other = tmp_path / "other"
    other.mkdir()
    (other / "renamed_mod").mkdir()
    (other / "renamed_mod" / "__init__.py").write_text("")
    info = other / "renamed_dist-0.4.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: renamed-dist\nVersion: 0.4\n")
    (info / "top_level.txt").write_text("renamed_mod\n")
    (info / "RECORD").write_text("renamed_mod/__init__.py,,\n")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "lab_here.py").write_text("__version__ = '0.9'\n")
    for p in (site, other, checkout):
        monkeypatch.syspath_prepend(str(p))
    importlib.invalidate_caches()
    mods = [importlib.import_module(n) for n in ("eplab3", "renamed_mod", "lab_here")]
    assert plugins._distribution(mods[0]) == ("eplab3", "2.0.1")
    assert plugins._distribution(mods[1]) == ("renamed-dist", "0.4")

    def scanned():
        raise AssertionError("read every installed package's files for a module in a checkout")

    monkeypatch.setattr(importlib.metadata, "packages_distributions", scanned)
    assert plugins._distribution(mods[2]) == (None, "0.9")
