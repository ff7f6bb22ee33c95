"""The kernel registry: one way in, used by the built-in kernels and by users' own layers alike.

    import seqbench

    @seqbench.register_kernel("my_glr", family="scan", flops="8*B*T*d^2")
    def my_glr(shape: seqbench.Shape):
        return MyLayer(shape.hidden_size)   # nn.Module mapping (B, T, d) -> (B, T, d)

A factory takes a Shape and returns an nn.Module whose forward maps x of shape (B, T, d) to (B, T, d);
seqbench moves it to the run's device and dtype. FLOPs count a multiply-add as 2 (forward pass);
train mode (forward + backward) is 3x forward. A module that also has `init_state` and `step` can be
timed in decode mode (kernels/decode.py); `decode_flops` gives the FLOPs of one such step.

This module holds the registration primitives only; `seqbench.kernels` (the package) is the catalog
that fills it: the built-in kernels and the plugins of installed packages (entry-point group
`seqbench.kernels`) are loaded the first time it is read. Importing either is cheap (no torch).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from seqbench.choices import Family, allowed
from seqbench.errors import PluginError

TRAIN_FLOP_FACTOR = 3  # backward costs ~2x forward (grads w.r.t. activations and weights)
Causality = Literal["always", "optional", "never"]
CAUSALITY = ("always", "optional", "never")


@dataclass(frozen=True)
class Shape:
    """What a factory is built for: batch size B, sequence length T, width d, heads h, causal mask."""

    batch_size: int
    seq_len: int
    hidden_size: int
    num_heads: int = 1
    causal: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def per_token_activations(forward: float, train: float) -> Callable[[Shape, int, bool], float]:
    """An activation estimate of `forward` (or, in train mode, `train`) d-vectors of the dtype per token."""

    def estimate(s: Shape, elem: int, is_train: bool) -> float:
        return float((train if is_train else forward) * s.batch_size * s.seq_len * s.hidden_size * elem)

    return estimate


DEFAULT_ACTIVATIONS = per_token_activations(8, 24)  # for kernels that give no estimate: generous


@dataclass(frozen=True)
class KernelSpec:
    """A registered kernel: how to build it and what the analysis needs to know about it."""

    name: str
    family: Family
    factory: Callable  # (Shape) -> nn.Module
    flops_fn: Callable[[Shape], float]  # forward FLOPs
    formula: str  # human-readable forward FLOP formula, shown by `seqbench list`
    activation_bytes_fn: Callable[[Shape, int, bool], float] = DEFAULT_ACTIVATIONS  # (shape, elem size, train) -> bytes
    description: str = ""
    supports_train: bool = True
    # always: causal by construction (a recurrence); optional: follows Shape.causal (attention);
    # never: cannot be causal, so causal=true is refused
    causal: Causality = "optional"
    quadratic: bool = False  # cost grows as T^2 (softmax attention): what a crossover is measured against
    baseline: bool = False  # a default reference for the report's speed-ups and crossover T*
    source: str = "seqbench"  # the module (or config table) that registered it
    # FLOPs of one decode step for B sequences after a context of T tokens (None: not given, so decode
    # rows leave gflop empty rather than guess), and its formula for `seqbench list`
    decode_flops_fn: Callable[[Shape], float] | None = None
    decode_formula: str = ""
    # layers written by others (kernels/state.py): which item of forward's (or a step's) result is the
    # output; whether step updates its state in place (restored untimed before every timed call); how
    # to list a state's tensors; whether prefill returns (outputs, state) rather than the state
    output: object = None
    inplace_state: bool = False
    state_tensors: Callable | None = None
    prefill_output: bool = False
    params: dict = field(default_factory=dict, compare=False, hash=False)  # the FLOP formulas' own names
    # the kernel's own limits: seconds one call may take (instead of the run's --max-time-per-point), and
    # the longest sequence (decode: context) it is run at; longer points get `skipped` rows
    max_time_per_point: float | None = None
    max_seq_len: int | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def supports_causal(self) -> bool:
        return self.causal != "never"

    @property
    def builtin(self) -> bool:
        return self.source.startswith("seqbench.")

    def build(self, shape: Shape, device, dtype):
        """The factory's module for shape, moved to device and dtype."""
        import torch
        from torch import nn

        threads = torch.get_num_threads()
        try:
            module = self.factory(shape)
        except (SystemExit, GeneratorExit) as exc:  # a user's sys.exit must not end seqbench (with its code)
            raise PluginError(f"kernel {self.name!r} ({self.source}): its factory raised {type(exc).__name__}"
                              f"({exc.args[0] if exc.args else ''!r}); a factory must return a module") from None
        finally:  # a factory calling torch.set_num_threads must not change what the run measures with
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        if not isinstance(module, nn.Module):
            raise PluginError(f"kernel {self.name!r}: its factory returned {type(module).__name__}, expected a "
                              "torch.nn.Module mapping (B, T, d) to (B, T, d)")
        return module.to(device=device, dtype=dtype)

    def output_of(self, result, expected: tuple | None = None):
        """The output tensor of what the module's forward (or step) returned (kernels.state.pick_output)."""
        from seqbench.kernels.state import pick_output

        return pick_output(result, self.output, expected)

    def flops(self, shape: Shape, mode: str = "forward") -> float | None:
        """FLOPs of one timed call in `mode`; in decode mode one step, None when no decode formula was given."""
        if mode == "decode":
            return None if self.decode_flops_fn is None else float(self.decode_flops_fn(shape))
        f = float(self.flops_fn(shape))
        return f * TRAIN_FLOP_FACTOR if mode == "train" else f

    def info(self) -> dict:
        """What a results sidecar records of the kernel, so report and plot need no plugin to read it."""
        return {"family": str(self.family), "formula": self.formula, "quadratic": self.quadratic,
                "baseline": self.baseline, "causal": self.causal, "source": self.source,
                "description": self.description, "decode_formula": self.decode_formula,
                "inplace_state": self.inplace_state, **({"params": self.params} if self.params else {}),
                **{k: v for k, v in (("max_time_per_point", self.max_time_per_point),
                                     ("max_seq_len", self.max_seq_len)) if v is not None},
                "definition": self.definition()}

    def definition(self) -> str | None:
        """A hash of the source file that defines the kernel (12 hex digits of sha256), or None.

        Two runs whose kernel has the same hash ran the same kernel code: `seqbench compare` checks it
        for seqbench's own kernels, so a comparison across seqbench versions cannot blame a change of
        a kernel's code on the change being measured."""
        import hashlib

        module = self.source.partition("factory=")[2].partition(":")[0] if self.source.startswith("[[kernel]]") else self.source
        file = getattr(sys.modules.get(module.strip()), "__file__", None)
        try:
            return hashlib.sha256(Path(file).read_bytes()).hexdigest()[:12] if file else None
        except OSError:
            return None


_REGISTRY: dict[str, KernelSpec] = {}  # filled by register_kernel; read through seqbench.kernels


def _caller_module(depth: int = 2) -> str:
    try:
        return sys._getframe(depth).f_globals.get("__name__", "?")
    except ValueError:
        return "?"


COUNTED = "count"  # flops="count": FlopCounterMode at two lengths (kernels/flopcount.py)


def _as_flops(flops, name: str, what: str = "flops", params: dict | None = None) -> tuple[Callable[[Shape], float], str | None]:
    if isinstance(flops, str) and flops.strip() == COUNTED:
        from seqbench.kernels.flopcount import COUNT_LENGTHS, counted_flops

        return (counted_flops(lambda: _REGISTRY[name], "decode" if what == "decode_flops" else "forward"),
                f"counted (FlopCounterMode at T = {', '.join(map(str, COUNT_LENGTHS))})")
    if isinstance(flops, str):
        from seqbench.kernels.formula import parse_flops

        try:
            fn = parse_flops(flops, params)
        except PluginError as exc:
            raise PluginError(f"kernel {name!r}: {what}: {exc}") from None
        return fn, fn.formula
    if callable(flops):
        return flops, None
    raise PluginError(f"kernel {name!r}: {what} must be a formula string such as '4*B*T*d^2' or a function of the "
                      f"Shape, got {flops!r}")


def register_kernel(name: str, *, family: str, flops, factory: Callable | None = None, description: str = "",
                    formula: str | None = None, train: bool = True, causal: Causality | None = None,
                    quadratic: bool | None = None, baseline: bool = False, memory=None, source: str | None = None,
                    replace: bool = False, decode_flops=None, decode_formula: str | None = None, output=None,
                    inplace_state: bool = False, state_tensors: Callable | None = None, prefill_output: bool = False,
                    params: dict | None = None, max_time_per_point: float | None = None,
                    max_seq_len: int | None = None):
    """Register a kernel. Used as a decorator on a factory (Shape -> nn.Module), or with factory=.

    family: recurrent | attention | scan (calibration is seqbench's own).
    flops: forward FLOPs, a function of the Shape, a formula in B, T, d, h, d_h and params ("4*B*T*d^2"),
        or "count" (torch's FlopCounterMode at two lengths, fitted as a*T + b*T^2; kernels/flopcount.py).
    train: the kernel can run backward (train mode).
    causal: always (causal by construction, e.g. a recurrence; default for recurrent and scan),
        optional (follows shape.causal; default for attention) or never.
    quadratic: its cost grows as T^2 (softmax attention). Default: read off the formula or the FLOP
        function (its growth between T = 2^14 and 2^18); state it with flops="count".
    baseline: a default reference for the report's speed-ups and crossover.
    memory: (shape, element size, train) -> activation bytes, for the memory budget (default: 8
        d-vectors per token forward, 24 in train mode).
    replace: allow replacing a kernel of the same name (otherwise a duplicate name is an error).
    decode_flops: FLOPs of one decode step for B sequences after a context of T tokens, a formula
        ("4*B*d^2"; T is the context length) or a function of the Shape. For modules with a decode
        step (init_state/step, see kernels/decode.py); without it decode rows leave gflop empty.
    output: which item of what forward (and step) returns is the (B, T, d) output: an index, a name (key
        or attribute) or a function of the result. Default: a tensor as is, or the first item of a tuple
        when it has the output's shape.
    inplace_state: step updates the state it is given in place (an HF cache): seqbench restores the
        state before every timed call, untimed.
    state_tensors: state -> iterable of its tensors, for a state object the walk cannot read.
    prefill_output: prefill returns (outputs of the chunk, new state), so the check compares them too.
    params: names and numbers the FLOP formulas may use beside B, T, d, h, d_h ({"d_state": 16}).
    max_time_per_point: seconds one call of this kernel may take, instead of the run's limit (a slow
        layer's own); max_seq_len: the longest T it is run at (longer points are skipped, said why).
    Returns the decorator, or the KernelSpec when factory is given.
    """
    src = source or _caller_module()

    def register(fn: Callable) -> KernelSpec:
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginError(f"kernel name {name!r} must be an identifier (letters, digits, _)")
        try:
            fam = Family(family)
        except ValueError:
            raise PluginError(f"kernel {name!r}: family {family!r} unknown; allowed: {allowed(Family)}") from None
        if not callable(fn):
            raise PluginError(f"kernel {name!r}: factory {fn!r} is not callable")
        from seqbench.kernels.state import check_selector

        check_selector(output, name)
        if state_tensors is not None and not callable(state_tensors):
            raise PluginError(f"kernel {name!r}: state_tensors must be a function of the state, got {state_tensors!r}")
        from seqbench.kernels.formula import check_params

        names = check_params(params, f"kernel {name!r}: params")
        for what, value, kind in (("max_time_per_point", max_time_per_point, (int, float)),
                                  ("max_seq_len", max_seq_len, int)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind) or not value > 0):
                raise PluginError(f"kernel {name!r}: {what}={value!r}; allowed: a number > 0 (or None: the run's)")
        flops_fn, text = _as_flops(flops, name, params=names)
        decode_fn, decode_text = (_as_flops(decode_flops, name, "decode_flops", names) if decode_flops is not None
                                  else (None, None))
        caus = causal or {"attention": "optional", "calibration": "never"}.get(fam.value, "always")
        if caus not in CAUSALITY:
            raise PluginError(f"kernel {name!r}: causal {causal!r} unknown; allowed: {', '.join(CAUSALITY)}")
        quad = quadratic
        if quad is None:
            from seqbench.kernels.formula import degree_in_T

            quad = not getattr(flops_fn, "counted", False) and degree_in_T(flops_fn, Shape) >= 1.5
        spec = KernelSpec(
            name=name, family=fam, factory=fn, flops_fn=flops_fn, formula=formula or text or "(a Python function)",
            activation_bytes_fn=memory or DEFAULT_ACTIVATIONS, description=description, supports_train=bool(train),
            causal=caus, quadratic=bool(quad), baseline=bool(baseline), source=src, decode_flops_fn=decode_fn,
            decode_formula=decode_formula or decode_text or ("(a Python function)" if decode_fn else ""),
            output=output, inplace_state=bool(inplace_state), state_tensors=state_tensors,
            prefill_output=bool(prefill_output), params=names,
            max_time_per_point=None if max_time_per_point is None else float(max_time_per_point),
            max_seq_len=max_seq_len,
        )
        add(spec, replace=replace)
        return spec

    if factory is not None:
        return register(factory)

    def decorator(fn: Callable) -> Callable:
        register(fn)
        return fn

    return decorator


def add(spec: KernelSpec, *, replace: bool = False) -> KernelSpec:
    """Put a built spec in the registry (register_kernel's last step)."""
    old = _REGISTRY.get(spec.name)
    if old is not None and not replace:
        raise PluginError(f"kernel {spec.name!r} is registered twice: by {old.source} and by {spec.source}; "
                          "rename one (or pass replace=True to register_kernel)")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a kernel (tests, notebooks)."""
    _REGISTRY.pop(name, None)


def param_count(module) -> int:
    return sum(p.numel() for p in module.parameters())
