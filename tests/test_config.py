"""Config parsing and validation: every mistake names the field and what is allowed."""

from pathlib import Path

import pytest

from seqbench.errors import ConfigError
from seqbench.sweep.config import build_config, load_toml, parse_list, resolve_device

ROOT = Path(__file__).resolve().parents[1]


CONFIGS = ROOT / "benchmarks" / "configs"


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.toml")))
def test_shipped_configs_are_valid(name):
    cfg = build_config(load_toml(CONFIGS / f"{name}.toml"))
    assert cfg.name == name
    assert cfg.points()


def test_points_are_the_full_grid_in_a_stable_order(tiny_cfg_data):
    tiny_cfg_data["modes"] = ["forward", "train"]
    cfg = build_config(tiny_cfg_data)
    pts = cfg.points()
    assert len(pts) == 2 * 2 * 1 * 2
    assert [(p.mode, p.kernel, p.seq_len) for p in pts[:3]] == [
        ("forward", "rnn_loop", 4), ("forward", "rnn_loop", 8), ("forward", "sdpa", 4)]
    assert pts == build_config(tiny_cfg_data).points()


def test_threads_default_to_one_and_zero_means_torchs_default(tiny_cfg_data):
    assert build_config(tiny_cfg_data).threads == 1
    assert build_config({**tiny_cfg_data, "threads": 0}).threads == 0


def test_config_is_immutable(tiny_cfg_data):
    cfg = build_config(tiny_cfg_data)
    with pytest.raises(AttributeError):
        cfg.hidden_size = 3


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"seq_len": [4]}, "unknown field 'seq_len'"),
        ({"seq_lens": [0, 8]}, "'seq_lens' must be a non-empty list of positive integers"),
        ({"seq_lens": [-4]}, "'seq_lens' must be a non-empty list of positive integers"),
        ({"batch_sizes": []}, "'batch_sizes' must be a non-empty list"),
        ({"seq_lens": [8, 8]}, "lists 8 twice"),
        ({"kernels": ["rnn_lop"]}, "unknown kernel 'rnn_lop'; known kernels: rnn_loop"),
        ({"num_heads": 3}, "num_heads=3 does not divide hidden_size=16"),
        ({"hidden_size": "big"}, "'hidden_size' must be an integer"),
        ({"causal": "yes"}, "'causal' must be true or false"),
        ({"modes": ["inference"]}, "unknown mode 'inference' in 'modes'; allowed: forward, train"),
        ({"dtype": "float8"}, "unknown dtype 'float8'; allowed: float32"),
        ({"device": "tpu"}, "unknown device 'tpu'; allowed: cpu, cuda, auto"),
        ({"min_time": -1}, "'min_time' must be a positive number of seconds"),
        ({"min_repeats": 50, "max_repeats": 10}, "min_repeats=50 exceeds max_repeats=10"),
    ],
)
def test_bad_configs_name_the_field(tiny_cfg_data, patch, message):
    tiny_cfg_data.update(patch)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        build_config(tiny_cfg_data, source="x.toml")


def test_toml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("kernels = [rnn_loop\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(bad)
    good = tmp_path / "mine.toml"
    good.write_text('kernels = ["sdpa"]\nseq_lens = [8]\nbatch_sizes = [1]\n')
    assert build_config(load_toml(good)).name == "mine"  # name defaults to the file's stem


def test_parse_list():
    assert parse_list("64, 256,1024", int, "seq_lens") == [64, 256, 1024]
    assert parse_list("rnn_loop,sdpa", str, "kernels") == ["rnn_loop", "sdpa"]
    with pytest.raises(ConfigError, match="--seq-lens must be comma-separated integers"):
        parse_list("64,x", int, "seq_lens")


def test_cuda_without_cuda_is_an_error_not_a_fallback(tiny_cfg_data):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    tiny_cfg_data["device"] = "cuda"
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device(build_config(tiny_cfg_data))
    tiny_cfg_data["device"] = "auto"
    assert resolve_device(build_config(tiny_cfg_data)).device == "cpu"


def test_kernel_globs_expand_to_registered_names_in_registry_order(tiny_cfg_data):
    cfg = build_config({**tiny_cfg_data, "kernels": ["sdpa", "rnn_*", "rnn_loop"]})  # a name a glob covers: once
    assert cfg.kernels == ("sdpa", "rnn_loop", "rnn_loop_hoisted", "rnn_fused")
    with pytest.raises(ConfigError, match="'zzz\\*' matches no kernel; known kernels: rnn_loop"):
        build_config({**tiny_cfg_data, "kernels": ["zzz*"]})
    with pytest.raises(ConfigError, match="lists 'sdpa' twice"):  # a name written twice is still a mistake
        build_config({**tiny_cfg_data, "kernels": ["sdpa", "sdpa"]})
    assert "calibration" not in build_config({**tiny_cfg_data, "kernels": ["*"]}).kernels
