"""Bad configs and flags: exit 2, exactly one line on stderr naming the field, no traceback, no file."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability_helpers import register_probe
from kit import one_line_error, tiny_config
from seqbench.errors import SeqbenchError
from seqbench.cli import main
from seqbench.errors import ConfigError
from seqbench.sweep.config import SweepConfig, build_config, resolve_device

BASE = {"kernels": '["rnn_loop"]', "seq_lens": "[8]", "batch_sizes": "[1]", "hidden_size": "8", "num_heads": "2"}

TOML_CASES = [  # id, fields to override (TOML values; None removes), words the message must hold
    ("unknown-field", {"colour": '"red"'}, "unknown field 'colour'"),
    ("int-as-string", {"hidden_size": '"256"'}, "'hidden_size' must be an integer"),
    ("int-as-bool", {"hidden_size": "true"}, "'hidden_size' must be an integer"),
    ("list-as-string", {"seq_lens": '"many"'}, "'seq_lens' must be a non-empty list of positive integers"),
    ("float-in-int-list", {"batch_sizes": "[1.5]"}, "'batch_sizes' must be a non-empty list"),
    ("table-for-list", {"kernels": "{ a = 1 }"}, "'kernels' must be a non-empty list of strings"),
    ("bool-as-string", {"causal": '"yes"'}, "'causal' must be true or false"),
    ("empty-kernels", {"kernels": "[]"}, "'kernels' must be a non-empty list"),
    ("empty-seq-lens", {"seq_lens": "[]"}, "'seq_lens' must be a non-empty list"),
    ("duplicate-t", {"seq_lens": "[64, 8, 64]"}, "'seq_lens' lists 64 twice"),
    ("duplicate-kernel", {"kernels": '["sdpa", "sdpa"]'}, "'kernels' lists 'sdpa' twice"),
    ("t-zero", {"seq_lens": "[0]"}, "'seq_lens' must be a non-empty list of positive integers"),
    ("t-negative", {"seq_lens": "[8, -16]"}, "'seq_lens' must be a non-empty list of positive integers"),
    ("b-zero", {"batch_sizes": "[0]"}, "'batch_sizes' must be a non-empty list of positive integers"),
    ("heads-not-dividing-d", {"hidden_size": "10", "num_heads": "3"}, "num_heads=3 does not divide hidden_size=10"),
    ("causal-unsupported", {"kernels": '["nocausal"]', "causal": "true"}, "kernel 'nocausal' cannot run causal=true"),
    ("train-unsupported", {"kernels": '["notrain"]', "modes": '["train"]'}, "kernel 'notrain' has no train mode"),
    ("unknown-kernel", {"kernels": '["transformer_xl"]'}, "unknown kernel 'transformer_xl'; known kernels: rnn_loop"),
    ("unknown-mode", {"modes": '["inference"]'}, "unknown mode 'inference'"),
    ("unknown-dtype", {"dtype": '"float8"'}, "unknown dtype 'float8'; allowed: float32"),
    ("unknown-device", {"device": '"tpu"'}, "unknown device 'tpu'; allowed: cpu, cuda, auto"),
    ("min-time-zero", {"min_time": "0"}, "'min_time' must be a positive number of seconds"),
    ("min-time-nan", {"min_time": "nan"}, "'min_time' must be a positive number"),
    ("min-time-inf", {"min_time": "inf"}, "'min_time' must be a positive number"),
    ("threads-negative", {"threads": "-1"}, "'threads' must be an integer >= 0"),
    ("repeats-crossed", {"min_repeats": "10", "max_repeats": "5"}, "min_repeats=10 exceeds max_repeats=5"),
    ("empty-name", {"name": '""'}, "'name' must be a non-empty string"),
    ("max-memory-words", {"max_memory": '"lots"'}, "'max_memory' must be a size in bytes"),
    ("max-time-negative", {"max_time_per_point": "-1"}, "'max_time_per_point' must be a number of seconds >= 0"),
    ("missing-kernels", {"kernels": None}, "missing required field 'kernels'"),
    # sizes that cannot fit anywhere are caught by the memory budget before anything is written
    ("absurd-hidden-size", {"hidden_size": "10_000_000"}, "no point fits in memory"),
    ("absurd-seq-len", {"kernels": '["attention_naive"]', "seq_lens": "[100_000_000]"}, "no point fits in memory"),
    ("tiny-max-memory", {"max_memory": '"1KB"'}, "no point fits in memory"),
    # configs are data: a string that looks like code is just an unknown kernel name
    ("code-is-not-run", {"kernels": "[\"__import__('os').system('touch PWNED')\"]"}, "unknown kernel \"__import__"),
]

FLAG_CASES = [  # id, argv after `run`, words
    ("flag-not-ints", ["--kernels", "rnn_loop", "--seq-lens", "8,x", "--batch-sizes", "1"], "--seq-lens must be comma-separated integers"),
    ("flag-bad-size", ["--kernels", "rnn_loop", "--seq-lens", "8", "--batch-sizes", "1", "--max-memory", "8 parsecs"], "'max_memory' must be a size"),
    ("flag-wrong-type", ["--kernels", "rnn_loop", "--seq-lens", "8", "--batch-sizes", "1", "--hidden-size", "big"], "Invalid value for '--hidden-size'"),
    ("flag-unknown", ["--kernels", "rnn_loop", "--colour", "red"], "No such option: --colour"),
    ("resume-without-out", ["--resume"], "--resume continues the run in --out"),
    ("resume-with-force", ["--resume", "--force", "-o", "x.csv"], "--resume continues the run in --out"),
    ("resume-nothing-there", ["--resume", "-o", "never-written.csv"], "nothing to resume"),
    ("missing-config-file", ["no-such.toml"], "config file 'no-such.toml' not found"),
]


@pytest.fixture
def probes(monkeypatch, tmp_path):
    register_probe(monkeypatch, "nocausal", supports_causal=False)
    register_probe(monkeypatch, "notrain", supports_train=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("override, words", [c[1:] for c in TOML_CASES], ids=[c[0] for c in TOML_CASES])
def test_bad_config_file(probes, tmp_path, capfd, override, words):
    fields = {**BASE, **override}
    (tmp_path / "c.toml").write_text("".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None))
    rc = main(["run", "c.toml", "-o", "out.csv"])
    one_line_error(capfd, rc, words)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.json").exists()
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("argv, words", [c[1:] for c in FLAG_CASES], ids=[c[0] for c in FLAG_CASES])
def test_bad_flags(probes, tmp_path, capfd, argv, words):
    one_line_error(capfd, main(["run", *argv]), words)
    assert list(tmp_path.iterdir()) == []


def test_invalid_toml(probes, tmp_path, capfd):
    (tmp_path / "c.toml").write_text('kernels = ["rnn_loop"\nseq_lens = 8\n')
    one_line_error(capfd, main(["run", "c.toml"]), "is not valid TOML")


TINY_TOML = 'kernels = ["rnn_loop"]\nseq_lens = [4]\nbatch_sizes = [1]\nhidden_size = 8\nnum_heads = 2\nmin_time = 0.01\nmax_warmup = 0.05\n'


@pytest.fixture
def tiny_toml(tmp_path, monkeypatch):
    monkeypatch.setattr("seqbench.measure.timer.burn_in", lambda device: None)
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    return "tiny.toml"


def test_resume_refuses_a_different_config(probes, tmp_path, capfd, tiny_toml):
    assert main(["run", tiny_toml, "-o", "r.csv", "-q"]) == 0
    capfd.readouterr()
    before = (tmp_path / "r.csv").read_text()
    one_line_error(capfd, main(["run", tiny_toml, "--hidden-size", "16", "--resume", "-o", "r.csv"]),
                    "--resume refused: hidden_size is 16 but the run in r.csv used 8")
    one_line_error(capfd, main(["run", tiny_toml, "--min-time", "0.5", "--resume", "-o", "r.csv"]),
                    "--resume refused: min_time is 0.5 but the run in r.csv used 0.01")
    assert (tmp_path / "r.csv").read_text() == before
    assert main(["run", "--resume", "-o", "r.csv", "-q"]) == 0  # the recorded config: nothing left to do
    assert main(["run", tiny_toml, "--resume", "-o", "r.csv", "-q"]) == 0  # the same config again
    assert (tmp_path / "r.csv").read_text() == before


# --- device selection ------------------------------------------------------------------------

def _cfg(device):
    return tiny_config(seq_lens=[8], device=device)


def test_device_cuda_without_cuda_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device 'cuda' asked for but CUDA is not available here; use --device cpu or auto"):
        resolve_device(_cfg("cuda"))


def test_device_auto_falls_back_to_cpu_and_says_so(monkeypatch, tmp_path, capfd, tiny_toml):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(_cfg("auto")).device == "cpu"
    assert resolve_device(_cfg("cpu")).device == "cpu"
    monkeypatch.chdir(tmp_path)
    rc = main(["run", tiny_toml, "--device", "auto", "-o", "a.csv"])
    assert rc == 0 and "device: cpu" in capfd.readouterr().err
    one_line_error(capfd, main(["run", "--kernels", "rnn_loop", "--seq-lens", "4", "--batch-sizes", "1",
                                 "--device", "cuda", "-o", "c.csv"]), "CUDA is not available")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_auto_picks_cuda_when_present():
    assert resolve_device(_cfg("auto")).device == "cuda"


# --- property: any mapping is either a valid config or one ConfigError/SeqbenchError ----------

_values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.sampled_from(["rnn_loop", "sdpa", "forward", "train", "float32", "cpu", "auto", "8GiB"]),
    st.lists(st.one_of(st.integers(-2, 64), st.sampled_from(["rnn_loop", "sdpa", "mha", "forward", "train"])), max_size=4),
)
_fields = st.sampled_from(["kernels", "seq_lens", "batch_sizes", "hidden_size", "num_heads", "modes", "dtype", "device",
                           "causal", "threads", "min_time", "max_memory", "max_time_per_point", "name", "bogus"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_fields, _values, max_size=8))
def test_build_config_accepts_or_explains(data):
    data = {k: v for k, v in data.items() if v is not None}
    try:
        cfg = build_config(data)
    except SeqbenchError as exc:  # ConfigError, or the registry's unknown-kernel error
        assert "\n" not in str(exc) and str(exc)
        return
    assert isinstance(cfg, SweepConfig) and cfg.points()
    assert all(t > 0 for t in cfg.seq_lens) and all(b > 0 for b in cfg.batch_sizes)
    assert len(set(cfg.seq_lens)) == len(cfg.seq_lens) and cfg.hidden_size % cfg.num_heads == 0
    assert cfg.max_memory >= 0 and cfg.max_time_per_point >= 0
