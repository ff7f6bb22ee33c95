"""The CLI end to end: exit codes, one-line errors, files written, nothing clobbered."""

import json
import subprocess
import sys

import pytest

from seqbench.version import __version__
from seqbench.cli import main
from seqbench.results.reader import read_results

TINY = ["--kernels", "rnn_loop,attention_naive", "--seq-lens", "4,8", "--batch-sizes", "2",
        "--hidden-size", "16", "--heads", "2", "--min-time", "0.002"]


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"seqbench {__version__}"


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "seqbench", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


@pytest.mark.parametrize("cmd", [[], ["run"], ["list"], ["env"]])
def test_help_everywhere_with_examples(cmd, capsys):
    code, out, _ = run_cli(cmd + ["--help"], capsys)
    assert code == 0 and "Usage" in out
    if cmd:
        assert "Example" in out


def test_list_shows_families_and_formulas(capsys):
    code, out, _ = run_cli(["list"], capsys)
    assert code == 0
    assert "rnn_loop" in out and "recurrent" in out and "4*B*T*d^2" in out and "attention" in out


def test_run_writes_csv_json_and_a_summary(tmp_path, capsys):
    out_csv = tmp_path / "r.csv"
    code, out, err = run_cli(["run", *TINY, "--out", str(out_csv)], capsys)
    assert code == 0, err
    df = read_results(out_csv)
    assert len(df) == 5 and (df["status"] == "ok").all()
    # every run measures the matmul peak first; pct_of_peak of each row is relative to it
    assert df["kernel"].iloc[0] == "calibration" and df["pct_of_peak"].iloc[0] == pytest.approx(100)
    peak = df["gflops_per_s"].iloc[0]
    assert list(df["pct_of_peak"].iloc[1:]) == pytest.approx(list(100 * df["gflops_per_s"].iloc[1:] / peak))
    assert "best recurrence vs best softmax attention" in err  # tables for people go to stderr
    assert out == ""  # stdout carries only data
    meta = json.loads(out_csv.with_suffix(".json").read_text())
    assert meta["command"][:2] == ["seqbench", "run"]
    # one torch thread unless asked otherwise: in every row, the sidecar's config and its environment
    assert set(df["threads"]) == {1} and meta["config"]["threads"] == 1 and meta["environment"]["torch_threads"] == 1
    assert "1 thread(s)" in err


def test_run_from_config_file_with_flag_override(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('kernels = ["sdpa"]\nseq_lens = [4]\nbatch_sizes = [1, 2]\nhidden_size = 8\n'
                   'num_heads = 2\nmin_time = 0.002\n')
    out_csv = tmp_path / "r.csv"
    code, _, err = run_cli(["run", str(cfg), "--seq-lens", "6", "-q", "--no-peak", "--out", str(out_csv)], capsys)
    assert code == 0, err
    df = read_results(out_csv)
    assert list(df["seq_len"]) == [6, 6] and list(df["batch_size"]) == [1, 2]
    assert df["pct_of_peak"].isna().all()  # --no-peak: no calibration row, nothing to be a % of


def test_existing_output_is_not_overwritten_without_force(tmp_path, capsys):
    out_csv = tmp_path / "r.csv"
    out_csv.write_text("precious\n")
    code, _, err = run_cli(["run", *TINY, "--out", str(out_csv)], capsys)
    assert code == 2 and "already exists; pass --force" in err
    assert out_csv.read_text() == "precious\n"
    code, _, _ = run_cli(["run", *TINY, "-q", "--out", str(out_csv), "--force"], capsys)
    assert code == 0 and len(read_results(out_csv)) == 5  # 4 points + the calibration row


@pytest.mark.parametrize("args, message", [
    (["run", "--kernels", "lstm"], "unknown kernel 'lstm'; known kernels:"),
    (["run", "--kernels", "sdpa", "--seq-lens", "-5", "--batch-sizes", "1"], "positive integers"),
    (["run", "--kernels", "sdpa", "--seq-lens", "8", "--batch-sizes", "1", "--heads", "3"], "does not divide"),
    (["run", "--kernels", "sdpa", "--seq-lens", "8", "--batch-sizes", "1", "--mode", "fast"], "unknown mode 'fast'"),
    (["run", "--kernels", "sdpa", "--seq-lens", "8", "--batch-sizes", "1", "--dtype", "int8"], "'int8' is not one of 'float32'"),
    (["run", "--kernels", "sdpa", "--seq-lens", "8", "--batch-sizes", "1", "--hidden-size", "x"], "hidden-size"),
    (["run", "nope.toml"], "config file 'nope.toml' not found"),
    (["run", "--bogus"], "No such option"),
    (["frobnicate"], "No such command"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cuda_requested_without_cuda(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    code, _, err = run_cli(["run", *TINY, "--device", "cuda"], capsys)
    assert code == 2 and "CUDA is not available" in err and len(err.strip().splitlines()) == 1


def test_installed_entry_point_exit_code_on_bad_input(tmp_path):
    out = subprocess.run([sys.executable, "-m", "seqbench", "run", "--kernels", "nope"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.startswith("seqbench: error: ") and "Traceback" not in out.stderr


def test_list_and_env_as_json_on_stdout(capsys):
    import json

    code, out, _ = run_cli(["list", "--format", "json"], capsys)
    kernels = json.loads(out)
    assert code == 0 and kernels["sdpa"]["quadratic"] and kernels["rnn_loop"]["baseline"]
    assert kernels["rnn_loop"]["formula"] == "4*B*T*d^2" and kernels["calibration"]["train"] is False
    code, out, _ = run_cli(["env", "--device", "cpu", "--format", "json"], capsys)
    env = json.loads(out)
    assert code == 0 and env["device"] == "cpu" and env["torch"].startswith("2.")


def test_sidecar_has_the_csvs_permissions_and_quiet_prints_only_the_path(tmp_path, capsys):
    import os
    import stat

    out_csv = tmp_path / "perm.csv"
    code, out, _ = run_cli(["run", *TINY, "-q", "--no-peak", "--out", str(out_csv)], capsys)
    assert code == 0 and out == f"{out_csv}\n"
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(out_csv.with_suffix(".json")) == mode(out_csv)
