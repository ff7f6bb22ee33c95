"""Sweep configuration: a TOML file and/or CLI flags -> one validated, immutable SweepConfig.

Configs are data: TOML is parsed with tomllib and nothing in it is evaluated.
Every error is a ConfigError whose message names the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench.choices import DType, Device, Metric, Mode, Regime, allowed, values
from seqbench.errors import ConfigError, PluginError
from seqbench.kernels import get_kernel
from seqbench.results.identity import Point
from seqbench.units import parse_size

MODES = values(Mode)
DTYPES = values(DType)
DEVICES = values(Device)


@dataclass(frozen=True)
class SweepConfig:
    name: str
    kernels: tuple[str, ...]
    seq_lens: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    hidden_size: int = 256
    num_heads: int = 4
    modes: tuple[str, ...] = ("forward",)
    dtype: str = "float32"
    device: str = "cpu"
    causal: bool = False
    # One thread unless asked: torch.utils.benchmark's default too. With torch's default (a thread
    # per core) any neighbour on a core makes its threads wait for each other, and timings swing by
    # 10-100x (README, "Threads"). 0 = leave torch's default.
    threads: int = 1
    min_time: float = 0.2  # seconds of timed samples per point
    min_repeats: int = 5
    max_repeats: int = 1000
    max_warmup: float = 2.0  # seconds; warm-up stops earlier once timings settle
    seed: int = 0
    max_memory: int = 0  # bytes a point may need (estimated); 0 = a safe fraction of free device memory
    max_time_per_point: float = 0.0  # seconds one call may take; 0 = no limit
    plugins: tuple[str, ...] = ()  # modules (or .py files) that register kernels, loaded before anything else
    kernel: tuple[dict, ...] = ()  # [[kernel]] tables: a factory "pkg.module:callable" and a FLOP formula
    baselines: tuple[str, ...] = ()  # the report's references for speed-ups and T* (default: the registry's)
    cuda_graph: bool = False  # capture each timed call in a CUDA graph and time replays (CUDA only)
    capacity: bool = False  # decode: also find the largest batch that fits the memory budget at each T
    metric: str = "time"  # time: seconds per call; instructions: counted under Callgrind (docs/instructions.md)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def points(self) -> list[Point]:
        """Grid in a stable order: mode, kernel (as listed), batch size, then sequence length.

        Decode points are causal whatever `causal` says: a token is decoded from the ones before it."""
        return [
            Point(k, m, self.device, self.dtype, b, t, self.hidden_size, self.num_heads, self.causal or m == Mode.DECODE)
            for m in self.modes
            for k in self.kernels
            for b in self.batch_sizes
            for t in self.seq_lens
        ]

    @property
    def regime(self) -> str:
        """How the timed calls are launched: cuda_graph with --cuda-graph, else eager (column `regime`)."""
        return Regime.CUDA_GRAPH.value if self.cuda_graph else Regime.EAGER.value

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d


FIELDS = {f.name: f for f in dataclasses.fields(SweepConfig) if f.name != "extra"}
_LIST_FIELDS = {"kernels": str, "seq_lens": int, "batch_sizes": int, "modes": str, "plugins": str, "baselines": str}
_MAY_BE_EMPTY = ("plugins", "baselines")


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {str(p)!r} is a directory; give a TOML file (e.g. benchmarks/configs/quick.toml)")
    if p.exists() and not p.is_file():
        raise ConfigError(f"config file {str(p)!r} is not a regular file (a FIFO or device?); give a TOML file")
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found")
    try:
        data = tomllib.loads(p.read_bytes().decode("utf-8").removeprefix("\ufeff"))  # Notepad's byte-order mark
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(p)!r} is not UTF-8 text; a config is a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {exc.strerror or exc}") from None
    data.setdefault("name", p.stem)
    return data


def parse_list(text: str, kind: type, name: str) -> list:
    """Parse a comma-separated flag value ('64,256,1024')."""
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if kind is int:
        try:
            return [int(s) for s in items]
        except ValueError:
            raise ConfigError(f"--{name.replace('_', '-')} must be comma-separated integers, got {text!r}") from None
    return items


def build_config(data: dict[str, Any], source: str = "config") -> SweepConfig:
    """Validate a mapping of config fields (from TOML and/or flags) into a SweepConfig."""
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{source}: unknown field {unknown[0]!r}; allowed fields: {', '.join(FIELDS)}")
    values: dict[str, Any] = {}
    # Plugins and [[kernel]] tables first: the kernel names below may be theirs.
    for name in ("plugins", "kernel"):
        if name in data:
            values[name] = _check_field(name, data[name], source)
    for name, f in FIELDS.items():
        if name in values:
            continue
        if name not in data:
            if f.default is dataclasses.MISSING:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{source}: missing required field {name!r} (set it in the config file or pass {flag})")
            continue
        values[name] = _check_field(name, data[name], source)
    values.setdefault("name", "sweep")
    cfg = SweepConfig(**values)
    _check_combination(cfg, source)
    return cfg


def _expand_kernel_globs(names: list[str], source: str) -> list[str]:
    """`rnn_*`, `hf_*`: the registered kernels a glob matches, in registry order (as plot and report read
    --kernels); plain names pass through, checked below. The config records the names, not the glob."""
    import fnmatch

    from seqbench.kernels import kernels as registered

    known = [k for k, spec in registered().items() if str(spec.family) != "calibration"]
    out: list[str] = []
    globbed: set[str] = set()  # a name a glob already gave is not repeated; a name written twice is refused
    for pattern in names:
        if not any(ch in pattern for ch in "*?["):
            if pattern not in globbed:
                out.append(pattern)
            continue
        matched = [k for k in known if fnmatch.fnmatchcase(k, pattern)]
        if not matched:
            raise ConfigError(f"{source}: kernels pattern {pattern!r} matches no kernel; known kernels: "
                              f"{', '.join(known)}")
        added = [k for k in matched if k not in out]
        out += added
        globbed.update(added)
    return out


def _type_error(source, name, want, got) -> ConfigError:
    return ConfigError(f"{source}: field {name!r} must be {want}, got {got!r}")


def _check_field(name: str, value: Any, source: str) -> Any:
    if name == "kernel":
        return _kernel_tables(value, source)
    if name in _LIST_FIELDS:
        kind = _LIST_FIELDS[name]
        want = ("a list of " if name in _MAY_BE_EMPTY else "a non-empty list of ") + (
            "positive integers" if kind is int else "strings")
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or (not value and name not in _MAY_BE_EMPTY):
            raise _type_error(source, name, want, value)
        for v in value:
            if kind is int and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise _type_error(source, name, want, value)
            if kind is str and not isinstance(v, str):
                raise _type_error(source, name, want, value)
        if name == "kernels":
            value = _expand_kernel_globs(value, source)
        seen: set = set()
        dupes = sorted({v for v in value if v in seen or seen.add(v)}, key=str)
        if dupes:
            raise ConfigError(f"{source}: field {name!r} lists {dupes[0]!r} twice; values must be unique")
        if name == "modes":
            bad = [m for m in value if m not in MODES]
            if bad:
                raise ConfigError(f"{source}: unknown mode {bad[0]!r} in 'modes'; allowed: {', '.join(MODES)}")
        if name == "plugins":
            from seqbench.kernels import load_plugins
            from seqbench.kernels.plugins import is_file_spec

            # a plugin file is recorded by its absolute path, so --resume finds it from any directory
            value = [str(Path(v).resolve()) if is_file_spec(v) else v for v in value]
            try:
                load_plugins(value, origin="config")
            except PluginError as exc:
                raise PluginError(f"{source}: {exc}") from None
        if name in ("kernels", "baselines"):
            for k in value:
                try:
                    get_kernel(k)
                except PluginError as exc:  # its message lists the known kernels
                    raise ConfigError(f"{source}: {exc}") from None
        return tuple(value)
    if name == "max_memory":
        try:
            return parse_size(value, name)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    if name == "max_time_per_point":  # unlike the other float fields, 0 (no limit) is allowed
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise _type_error(source, name, "a number of seconds >= 0 (0: no limit)", value)
        return float(value)
    f = FIELDS[name]
    default = f.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _type_error(source, name, "true or false", value)
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(source, name, "an integer", value)
        floor = 0 if name in ("threads", "seed") else 1
        if value < floor:
            raise _type_error(source, name, f"an integer >= {floor}", value)
        if value > MAX_INT:  # torch takes seeds (and sizes) as signed 64-bit integers
            raise _type_error(source, name, f"an integer from {floor} to {MAX_INT} (2^63 - 1)", value)
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
            raise _type_error(source, name, "a positive number of seconds", value)
        return float(value)
    if name == "dtype" and value not in DTYPES:
        raise ConfigError(f"{source}: unknown dtype {value!r}; allowed: {allowed(DType)}")
    if name == "device" and value not in DEVICES:
        raise ConfigError(f"{source}: unknown device {value!r}; allowed: {allowed(Device)}")
    if name == "metric" and value not in values(Metric):
        raise ConfigError(f"{source}: unknown metric {value!r}; allowed: {allowed(Metric)}")
    if not isinstance(value, str) or not value:
        raise _type_error(source, name, "a non-empty string", value)
    if name == "name" and (value.startswith(".") or len(value) > 200
                           or any(c in "/\\" or ord(c) < 32 or c == "\x7f" for c in value)):
        # it names results/NAME-<device>-<time>.csv: a path or a NUL byte there writes elsewhere or crashes
        raise _type_error(source, name, "a plain file name (no '/' or '\\', no control characters, not "
                          "starting with '.', at most 200 characters)", value)
    return value


MAX_INT = 2**63 - 1


def _kernel_tables(value: Any, source: str) -> tuple[dict, ...]:
    """[[kernel]] tables: each registers a kernel from a factory "pkg.module:callable" and a FLOP formula."""
    from seqbench.kernels import register_tables

    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _type_error(source, "kernel", "a list of [[kernel]] tables", value)
    register_tables(value, source)
    return tuple(dict(t) for t in value)


def _check_combination(cfg: SweepConfig, source: str) -> None:
    if cfg.hidden_size % cfg.num_heads:
        raise ConfigError(
            f"{source}: num_heads={cfg.num_heads} does not divide hidden_size={cfg.hidden_size}; "
            "pick num_heads from the divisors of hidden_size"
        )
    if cfg.min_repeats > cfg.max_repeats:
        raise ConfigError(f"{source}: min_repeats={cfg.min_repeats} exceeds max_repeats={cfg.max_repeats}")
    if cfg.capacity and Mode.DECODE not in cfg.modes:
        raise ConfigError(f"{source}: capacity is measured for decode; add 'decode' to modes (--mode decode)")
    if cfg.cuda_graph and Mode.TRAIN in cfg.modes:
        raise ConfigError(f"{source}: cuda_graph captures forward and decode calls, not train mode's backward; "
                          "drop 'train' from modes or drop --cuda-graph")
    if cfg.metric == Metric.INSTRUCTIONS:
        _check_instructions(cfg, source)
    for k in cfg.kernels:
        spec = get_kernel(k)
        if cfg.causal and not spec.supports_causal:
            raise ConfigError(f"{source}: kernel {k!r} cannot run causal=true; drop it or set causal=false")
        if "train" in cfg.modes and not spec.supports_train:
            raise ConfigError(f"{source}: kernel {k!r} has no train mode; use modes=['forward']")


def _check_instructions(cfg: SweepConfig, source: str) -> None:
    """What instruction counting cannot do: Valgrind runs one thread at a time and sees no GPU."""
    if cfg.device == Device.CUDA or cfg.cuda_graph:
        raise ConfigError(f"{source}: metric 'instructions' counts CPU instructions under Valgrind, which cannot "
                          "see CUDA; use --device cpu, or --metric time for the GPU")
    if cfg.threads != 1:
        raise ConfigError(f"{source}: metric 'instructions' needs threads = 1 (got {cfg.threads}); Valgrind runs one "
                          "thread at a time, so counts of several threads would include their waiting")
    if cfg.capacity:
        raise ConfigError(f"{source}: --capacity times decode steps at the largest batch that fits; it has no "
                          "instruction count: drop --capacity or use --metric time")


def resolve_device(cfg: SweepConfig) -> SweepConfig:
    """Turn device='auto' into cpu/cuda and check that the device can run the dtype."""
    import torch

    device = cfg.device
    if device == "auto":  # instruction counts are CPU-only: there auto means the CPU
        device = "cuda" if torch.cuda.is_available() and cfg.metric != Metric.INSTRUCTIONS else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for but CUDA is not available here; use --device cpu or auto")
    if cfg.cuda_graph and device != "cuda":
        raise ConfigError(f"--cuda-graph needs CUDA and the device is {device}: CUDA graphs replay GPU kernel "
                          "launches; drop --cuda-graph or use --device cuda")
    dtype = getattr(torch, cfg.dtype)
    try:
        a = torch.ones(4, 4, device=device, dtype=dtype)
        torch.softmax(a @ a, dim=-1)
    except (RuntimeError, TypeError) as exc:
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"dtype {cfg.dtype!r} cannot run on {device}: {msg}") from None
    return dataclasses.replace(cfg, device=device)
