"""The public kernel API: register_kernel, FLOP formulas parsed safely, the correctness check before
timing, and one-line errors for every way a plugin can be wrong."""

from __future__ import annotations

import json
import os
import sys

import pytest
from kit import builtin_kernels
import torch
from torch import nn

from seqbench.sweep.runner import Harness
import seqbench
from seqbench.cli import main
from seqbench.errors import PluginError
from seqbench.kernels import get_kernel, kernels, registry
from seqbench.kernels.check import check_kernel, check_shape
from seqbench.kernels.formula import degree_in_T, parse_flops
from seqbench.results.reader import read_results
from seqbench.sweep.config import build_config
from seqbench.orchestration.run import run_to_files
from seqbench.sweep.runner import run_sweep
from kit import FakeTimer
from plugin_helpers import write_package


@pytest.fixture
def scratch_registry(monkeypatch):
    """Kernels, plugins and modules a test registers are gone when it ends."""
    from seqbench.kernels import plugins

    kernels()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(plugins, "_LOADED", dict(plugins._LOADED))
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [m for m in sys.modules if m.split(".")[0] in ("mylab", "badlab") or m.startswith("seqbench_plugin")]:
        del sys.modules[name]  # the user's modules this test imported (never torch's lazily loaded ones)


class LastFirst(nn.Module):
    """An LSTM that returns (h_n, outputs): a tuple whose first item is not the (B, T, d) output."""

    def __init__(self, d):
        super().__init__()
        self.lstm = nn.LSTM(d, d, batch_first=True)

    def forward(self, x):
        y, (h, _) = self.lstm(x)
        return h, y


class Wide(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, 2 * d)

    def forward(self, x):
        return self.lin(x)


class Scale(nn.Module):
    def __init__(self, d, factor=1.0, peek=False):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))
        self.factor, self.peek = factor, peek

    def forward(self, x):
        y = x * self.w * self.factor
        return y.flip(1).cumsum(1).flip(1) if self.peek else y  # peek: every output sums the future


# --- formulas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("4*B*T*d^2", 4 * 2 * 8 * 16**2),  # ^ is a power and binds tighter than *, as written by people
    ("8*B*T*d**2 + 4*B*T^2*d", 8 * 2 * 8 * 256 + 4 * 2 * 64 * 16),
    ("2*B*T*d*d_h", 2 * 2 * 8 * 16 * 4),
    ("(B + 1) * T // 3 % 5 - -h", ((2 + 1) * 8 // 3 % 5) + 4),
])
def test_formula_is_arithmetic_in_the_shape(text, expected):
    assert parse_flops(text)(seqbench.Shape(2, 8, 16, 4)) == expected


@pytest.mark.parametrize("text, words", [
    ("__import__('os').system('true')", "Call is not allowed"),
    ("B.bit_length()", "not allowed"),
    ("x * T", "unknown name 'x'"),
    ("B ** 100", "exponent must be a number up to 8"),
    ("2 ^ T", "exponent must be a number up to 8"),
    ("[B]", "List is not allowed"),
    ("B *", "is not an expression"),
    ("", "non-empty string"),
    ("'B'", "is not a number"),
])
def test_formula_refuses_anything_but_arithmetic(text, words):
    with pytest.raises(PluginError, match=words if "(" not in words else None) as info:
        parse_flops(text)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_formula_that_fails_at_a_shape_says_where():
    f = parse_flops("B*T/(d - 16)")
    with pytest.raises(PluginError, match="fails at B=1 T=1 d=16"):
        f(seqbench.Shape(1, 1, 16))
    with pytest.raises(PluginError, match="must be finite and >= 0"):
        parse_flops("-B")(seqbench.Shape(1, 1, 1))


def test_degree_in_T_tells_recurrence_from_softmax_attention():
    assert degree_in_T(parse_flops("6*B*T*d^2"), seqbench.Shape) == pytest.approx(1.0)
    assert degree_in_T(parse_flops("8*B*T*d^2 + 4*B*T^2*d"), seqbench.Shape) == pytest.approx(2.0, abs=0.01)


# --- register_kernel ---------------------------------------------------------------------------


def test_register_kernel_as_a_decorator_returns_the_factory(scratch_registry):
    @seqbench.register_kernel("my_scale", family="scan", flops="B*T*d", description="x * w")
    def my_scale(shape: seqbench.Shape):
        return Scale(shape.hidden_size)

    spec = get_kernel("my_scale")
    assert my_scale(seqbench.Shape(1, 2, 3)).w.shape == (3,)  # the function itself, unchanged
    assert (spec.family, spec.causal, spec.quadratic, spec.baseline) == ("scan", "always", False, False)
    assert spec.source == __name__ and not spec.builtin
    assert spec.flops(seqbench.Shape(2, 8, 16), "train") == 3 * 2 * 8 * 16
    assert "my_scale" in kernels()


def test_builtins_register_through_the_same_api_with_their_roles():
    for name in ("rnn_loop", "sdpa", "mingru_scan", "linear_attention", "calibration"):
        assert get_kernel(name).builtin
    assert {k for k, s in builtin_kernels(kernels()).items() if s.baseline} == {"rnn_loop"}  # the textbook case
    assert {k for k, s in builtin_kernels(kernels()).items() if s.quadratic} == {"attention_naive", "sdpa", "mha"}


@pytest.mark.parametrize("kwargs, words", [
    ({"family": "conv", "flops": "1"}, "family 'conv' unknown; allowed: recurrent, attention, scan"),
    ({"family": "scan", "flops": 3}, "flops must be a formula string"),
    ({"family": "scan", "flops": "1", "causal": "sometimes"}, "causal 'sometimes' unknown"),
])
def test_register_kernel_refuses_bad_attributes(scratch_registry, kwargs, words):
    with pytest.raises(PluginError, match=words):
        seqbench.register_kernel("bad_one", factory=lambda s: Scale(s.hidden_size), **kwargs)


def test_a_duplicate_name_names_both_registrations(scratch_registry):
    with pytest.raises(PluginError, match="'sdpa' is registered twice: by seqbench.kernels.attention and by"):
        seqbench.register_kernel("sdpa", family="attention", flops="1", factory=lambda s: Scale(s.hidden_size))
    seqbench.register_kernel("sdpa", family="attention", flops="1", factory=lambda s: Scale(s.hidden_size),
                             replace=True)
    assert not get_kernel("sdpa").builtin


# --- the correctness check ---------------------------------------------------------------------


@pytest.mark.parametrize("name, module, words", [
    ("wide", lambda s: Wide(s.hidden_size), "output shape (2, 8, 32), expected (B, T, d) = (2, 8, 16)"),
    ("nans", lambda s: Scale(s.hidden_size, float("nan")), "output has non-finite values"),
    ("peeks", lambda s: Scale(s.hidden_size, peek=True), "not causal: outputs at t <= 3 moved"),
    ("tuple", lambda s: LastFirst(s.hidden_size), "forward returned tuple of 2 (a tensor of shape (1, 2, 16), a "
                                                   "tensor of shape (2, 8, 16)), expected one tensor"),
])
def test_check_catches_a_kernel_that_is_wrong(scratch_registry, name, module, words):
    spec = seqbench.register_kernel(name, family="recurrent", flops="B*T*d", factory=module)
    assert words in check_kernel(spec, check_shape(16, 2, False), "cpu", "float32")


def test_a_tuple_output_is_taken_by_default_or_as_output_says(scratch_registry):
    shape = check_shape(16, 2, False)
    lstm = seqbench.register_kernel("lstm_tuple", family="recurrent", flops="16*B*T*d^2",
                                    factory=lambda s: nn.LSTM(s.hidden_size, s.hidden_size, batch_first=True))
    assert check_kernel(lstm, shape, "cpu", "float32") is None  # (output, (h, c)): the first item is (B, T, d)
    for output in (1, lambda r: r[1]):
        spec = seqbench.register_kernel("last_first", family="recurrent", flops="16*B*T*d^2", output=output,
                                        factory=lambda s: LastFirst(s.hidden_size), replace=True)
        assert check_kernel(spec, shape, "cpu", "float32") is None
    spec = seqbench.register_kernel("last_first", family="recurrent", flops="16*B*T*d^2", output=0,
                                    factory=lambda s: LastFirst(s.hidden_size), replace=True)
    assert "output shape (1, 2, 16)" in check_kernel(spec, shape, "cpu", "float32")
    spec = seqbench.register_kernel("last_first", family="recurrent", flops="16*B*T*d^2", output="hidden",
                                    factory=lambda s: LastFirst(s.hidden_size), replace=True)
    assert "output='hidden' does not fit what forward returned (tuple of 2" in check_kernel(spec, shape, "cpu", "float32")
    with pytest.raises(PluginError, match="output=2.5; allowed: an index"):
        seqbench.register_kernel("bad_out", family="recurrent", flops="1", output=2.5, factory=LastFirst)


def test_check_passes_every_builtin_kernel_causal_or_not():
    for causal in (False, True):
        for name, spec in kernels().items():
            if spec.family != "calibration":
                assert check_kernel(spec, check_shape(16, 2, causal), "cpu", "float32") is None, name


def test_non_causal_attention_may_read_the_future_but_causal_must_not(scratch_registry):
    spec = seqbench.register_kernel("peek_att", family="attention", flops="B*T*d",
                                    factory=lambda s: Scale(s.hidden_size, peek=True))
    assert check_kernel(spec, check_shape(16, 2, False), "cpu", "float32") is None
    assert "not causal" in check_kernel(spec, check_shape(16, 2, True), "cpu", "float32")


def test_a_failing_kernel_gets_error_rows_and_no_numbers(scratch_registry, tiny_cfg_data):
    seqbench.register_kernel("wide", family="recurrent", flops="B*T*d", factory=lambda s: Wide(s.hidden_size))
    cfg = build_config({**tiny_cfg_data, "kernels": ["wide", "sdpa"]})

    class Sink:
        def write(self, row):
            pass

    rows = run_sweep(cfg, Sink(), run_id="t", harness=Harness.scripted(FakeTimer(lambda i: 1e-3)))
    wide = [r for r in rows if r.kernel == "wide"]
    assert len(wide) == 2 and all(r.status == "error" and "output shape" in r.error and r.median_s is None for r in wide)
    assert all(r.status == "ok" for r in rows if r.kernel == "sdpa")


def test_a_factory_that_raises_stops_before_any_file(scratch_registry, tiny_cfg_data, tmp_path):
    seqbench.register_kernel("raises", family="scan", flops="B*T*d", factory=lambda s: 1 / 0)
    cfg = build_config({**tiny_cfg_data, "kernels": ["raises"]})
    with pytest.raises(PluginError, match="kernel 'raises' .*its factory raised ZeroDivisionError: division by zero"):
        run_to_files(cfg, tmp_path / "r.csv", command=["t"], harness=Harness.scripted(FakeTimer(lambda i: 1e-3)))
    assert not any(tmp_path.iterdir())


# --- loading plugins: one line, exit 2, for every mistake --------------------------------------


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    write_package(tmp_path)
    bad = tmp_path / "badlab"
    bad.mkdir()
    (bad / "__init__.py").write_text("")
    (bad / "broken.py").write_text("import seqbench\nx = 1\ny = undefined_name + x\n")
    (bad / "dupe.py").write_text("import seqbench\nfrom torch import nn\n"
                                 "seqbench.register_kernel('rnn_loop', family='recurrent', flops='1', "
                                 "factory=lambda s: nn.Identity())\n")
    (bad / "raises.py").write_text("import seqbench\n"
                                   "seqbench.register_kernel('raiser', family='scan', flops='1', factory=lambda s: 1/0)\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


TINY_RUN = ["run", "--seq-lens", "8", "--batch-sizes", "1", "--hidden-size", "8", "--heads", "2", "--min-time", "0.002",
            "--no-peak", "-q"]


@pytest.mark.parametrize("args, words", [
    (["--plugin", "nolab.kernels", "--kernels", "sdpa"], "plugin 'nolab.kernels' not found: no module named 'nolab'"),
    (["--plugin", "badlab.broken", "--kernels", "sdpa"],
     f"{os.sep}badlab{os.sep}broken.py, line 3: NameError: name 'undefined_name' is not defined"),
    (["--plugin", "badlab.dupe", "--kernels", "sdpa"], "kernel 'rnn_loop' is registered twice: by seqbench.kernels.recurrent and by badlab.dupe"),
    (["--plugin", "badlab.raises", "--kernels", "raiser"], "kernel 'raiser' (badlab.raises): its factory raised ZeroDivisionError"),
    (["--plugin", "not a module", "--kernels", "sdpa"], "is not a module name"),
    (["--plugin", "missing.py", "--kernels", "sdpa"], f"{os.sep}missing.py' not found"),
    (["--kernels", "my_glr"], "unknown kernel 'my_glr'; known kernels: rnn_loop"),
])
def test_plugin_mistakes_are_one_line_and_exit_2(scratch_registry, plugin_dir, capfd, args, words):
    assert main([*TINY_RUN, *args, "-o", str(plugin_dir / "x.csv")]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seqbench: error:") and "Traceback" not in err, err
    assert words in err, err
    assert not (plugin_dir / "x.csv").exists()


def test_plugin_as_a_file_and_list_json(scratch_registry, plugin_dir, capfd):
    (plugin_dir / "one_file.py").write_text(
        "import seqbench\nfrom mylab.glr import GLR\n"
        "seqbench.register_kernel('file_glr', family='scan', flops='6*B*T*d^2', factory=lambda s: GLR(s.hidden_size))\n")
    assert main(["list", "--plugin", "one_file.py", "--format", "json"]) == 0
    listed = json.loads(capfd.readouterr().out)
    assert listed["file_glr"]["source"].startswith("seqbench_plugin") and listed["sdpa"]["quadratic"] is True
    assert main([*TINY_RUN, "--plugin", "one_file.py", "--kernels", "file_glr", "-o", "f.csv"]) == 0
    meta = json.loads((plugin_dir / "f.json").read_text())
    assert meta["config"]["plugins"] == [str(plugin_dir / "one_file.py")]  # absolute: --resume finds it anywhere
    assert (read_results(plugin_dir / "f.csv")["status"] == "ok").all()


def test_run_from_python_returns_the_rows(scratch_registry, plugin_dir):
    df = seqbench.run(kernels=["my_glr", "sdpa"], seq_lens=[8], batch_sizes=[1], hidden_size=8, num_heads=2,
                      min_time=0.002, plugins=["mylab.bench_kernels"], out=plugin_dir / "py.csv", peak=False)
    assert list(df["kernel"]) == ["my_glr", "sdpa"] and set(df["status"]) == {"ok"}, list(df["error"])
    assert len(seqbench.load(plugin_dir / "py.csv")) == 2
