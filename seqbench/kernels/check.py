"""A cheap correctness check of each kernel before any point of it is timed.

At a tiny shape (B=2, T=8, the sweep's d and heads) on the sweep's device and dtype: the output must
be one tensor of shape (B, T, d) with finite values, and a causal kernel's output at t must not move
when inputs after t change. A kernel that fails gets its points recorded as `error` with the reason,
never timings. A factory that raises is a bug in the kernel, reported before the sweep (exit 2); a
forward that raises is left to the points, which record it with their own status (error, oom).
"""

from __future__ import annotations

import math

from seqbench.errors import PluginError
from seqbench.kernels.registry import KernelSpec, Shape
from seqbench.kernels.state import OutputError

CHECK_BATCH, CHECK_LEN = 2, 8
# How far outputs at t <= t0 may move when inputs after t0 change: rounding only (a causal kernel's
# prefix is computed from the same numbers, but blocked reductions may order them differently).
_CAUSAL_TOL = {"float64": 1e-9, "float32": 1e-4, "float16": 2e-2, "bfloat16": 5e-2}


def check_shape(hidden_size: int, num_heads: int, causal: bool) -> Shape:
    return Shape(CHECK_BATCH, CHECK_LEN, hidden_size, num_heads, causal)


def build_for_check(spec: KernelSpec, shape: Shape, device: str, dtype: str):
    import torch

    try:
        return spec.build(shape, torch.device(device), getattr(torch, dtype))
    except PluginError:
        raise
    except (Exception, SystemExit, GeneratorExit) as exc:  # noqa: BLE001 - the kernel's own bug: one line, before any timing
        lines = str(exc).strip().splitlines()
        raise PluginError(f"kernel {spec.name!r} ({spec.source}): its factory raised "
                          f"{type(exc).__name__}: {lines[0] if lines else ''}") from None


def check_kernel(spec: KernelSpec, shape: Shape, device: str, dtype: str, seed: int = 0) -> str | None:
    """None if the kernel passes, else the reason it fails (one line)."""
    import torch

    module = build_for_check(spec, shape, device, dtype)
    module.eval()
    B, T, d = shape.batch_size, shape.seq_len, shape.hidden_size
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, d, generator=g).to(device=device, dtype=getattr(torch, dtype))
    try:
        with torch.inference_mode():
            try:
                y = spec.output_of(module(x), (B, T, d))
            except OutputError as exc:
                return f"correctness check: {exc}"
            if tuple(y.shape) != (B, T, d):
                return f"correctness check: output shape {tuple(y.shape)}, expected (B, T, d) = {(B, T, d)}"
            if not torch.isfinite(y).all():
                return f"correctness check: output has non-finite values at B={B}, T={T}, d={d} ({dtype})"
            if spec.causal == "always" or (spec.causal == "optional" and shape.causal):
                t0 = T // 2 - 1
                x2 = x.clone()
                x2[:, t0 + 1:] = torch.randn(B, T - t0 - 1, d, generator=g).to(x2)
                y2 = spec.output_of(module(x2), (B, T, d))
                moved = (y2[:, : t0 + 1] - y[:, : t0 + 1]).abs().max().item()
                scale = max(1.0, y[:, : t0 + 1].abs().max().item())
                if moved > _CAUSAL_TOL.get(dtype, 1e-4) * scale:
                    return (f"correctness check: not causal: outputs at t <= {t0} moved by {moved:.3g} when only "
                            f"inputs after t={t0} changed")
    except (Exception, SystemExit, GeneratorExit):  # noqa: BLE001 - a forward that raises fails every point on its own
        return None
    return None


# How far a decode step (or a prefill chunk) may be from the causal forward at the same position, as a
# fraction of the output's scale (its largest magnitude over the positions compared): rounding only (a
# step and a fused or blocked forward add the same numbers in another order). Relative, so an output of
# scale 0.16 is held to 0.16x what an output of scale 1 is (HF Mamba's ignored initial state was
# 5.5e-4 off at scale 0.16: inside an absolute 1e-3, 3.4e-3 of the scale).
_DECODE_TOL = {"float64": 1e-8, "float32": 2e-4, "float16": 3e-2, "bfloat16": 1e-1}


def decode_tolerance(ref, dtype: str) -> float:
    import torch

    scale = ref.abs().max().item() if ref.numel() else 0.0
    return _DECODE_TOL.get(dtype, 2e-4) * max(scale, torch.finfo(ref.dtype).eps)


def check_decode(spec: KernelSpec, shape: Shape, device: str, dtype: str, seed: int = 0) -> str | None:
    """Before decode points are timed: steps after a prefill must give the causal forward's outputs,
    after a prefill in one chunk and after one in two chunks (the second starts from the state the
    first left: a prefill that ignores its initial state fails here), and a step repeated from the
    same state must give the same output (seqbench times repeats from one state; a kernel registered
    inplace_state=True has its state put back between them). None if it passes or has no decode step
    (its points are skipped), else the reason, naming the chunk and how far off it is."""
    import torch

    from seqbench.kernels import decode
    from seqbench.kernels.state import Snapshot

    module = build_for_check(spec, shape, device, dtype)
    module.eval()
    if not decode.has_decode(module):
        return None
    B, T, d = shape.batch_size, shape.seq_len, shape.hidden_size
    t1, t0 = T // 4, T // 2
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, d, generator=g).to(device=device, dtype=getattr(torch, dtype))

    def step(x_t, state):
        y, new = module.step(x_t, state)
        return spec.output_of(y, (B, 1, d)), new

    def off(got, want) -> tuple[float, float]:
        tol = decode_tolerance(want, dtype)
        return (got - want).abs().max().item(), tol

    def far(what: str, got, want, t_from: int) -> str | None:
        if tuple(got.shape) != tuple(want.shape):
            return f"decode check: {what} gave shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        err, tol = off(got, want)
        if not err <= tol:
            return (f"decode check: {what} differ from the causal forward at t = {t_from}..{t_from + got.shape[1] - 1} "
                    f"by {err:.3g} ({err / tol:.3g}x the tolerance {tol:.2g}: {_DECODE_TOL.get(dtype, 2e-4):g} of the "
                    f"output's scale {tol / _DECODE_TOL.get(dtype, 2e-4):.3g}, {dtype})")
        return None

    def steps_from(state, start: int):
        outs = []
        for t in range(start, T):
            y, state = step(x[:, t:t + 1], state)
            outs.append(y)
        return torch.cat(outs, dim=1)

    try:
        with torch.inference_mode():
            ref = spec.output_of(module(x), (B, T, d))
            state = decode.prefill(module, x[:, :t0], module.init_state(B, T), spec)
            snap = Snapshot(state, spec.state_tensors) if spec.inplace_state else None
            first, _ = step(x[:, t0:t0 + 1], state)
            if snap:
                snap.restore()
            held = _state_size(state, spec.state_tensors)
            again, _ = step(x[:, t0:t0 + 1], state)
            if snap:
                snap.restore()
            grown = _state_size(state, spec.state_tensors)
            if tuple(first.shape) != (B, 1, d):
                return f"decode check: step returned {tuple(first.shape)}, expected a tensor of shape (B, 1, d) = {(B, 1, d)}"
            if grown != held:  # repeats would fill memory (and each would see a longer context)
                return (f"decode check: the state grew when step was called with it again ({held[0]:,} -> "
                        f"{grown[0]:,} bytes, {held[1]} -> {grown[1]} entries); step must not change the state it "
                        "is given (seqbench times repeats from one state): return the new state instead")
            moved, tol = off(again, first)
            if moved > tol:
                return (f"decode check: step gave another output ({moved:.3g} apart) when called again with the same "
                        "state; it must not change the state it is given (seqbench times repeats from one state), or "
                        + ("its state holds something seqbench cannot put back: list its tensors with state_tensors="
                           if spec.inplace_state else "register it with inplace_state=True"))
            why = far(f"steps after a prefill of {t0} tokens in one chunk", steps_from(state, t0), ref[:, t0:], t0)
            if why:
                return why
            y1, state = decode.prefill_with_output(module, x[:, :t1], module.init_state(B, T), spec)
            if y1 is not None and (why := far(f"prefill chunk 1 (t < {t1})", y1, ref[:, :t1], 0)):
                return why
            y2, state = decode.prefill_with_output(module, x[:, t1:t0], state, spec)
            if y2 is not None and (why := far(f"prefill chunk 2 (t = {t1}..{t0 - 1}, after chunk 1's state)", y2,
                                              ref[:, t1:t0], t1)):
                return why
            return far(f"steps after a prefill in two chunks (t < {t1}, then {t1} <= t < {t0})", steps_from(state, t0),
                       ref[:, t0:], t0)
    except OutputError as exc:
        return f"decode check: step: {exc}"
    except (Exception, SystemExit, GeneratorExit) as exc:  # noqa: BLE001 - a broken step fails its decode points
        lines = str(exc).strip().splitlines()
        return f"decode check: {type(exc).__name__}: {lines[0] if lines else ''}"


def _state_size(state, declared=None) -> tuple[int, int]:
    """(bytes of its tensors, number of entries): what a step that appends to its state grows."""
    from seqbench.kernels import decode

    return decode.state_nbytes(state, declared), sum(1 for _ in decode.leaves(state))


def _number(value) -> float | None:
    """value as a float if it is a real number (not a bool, not a string), else None."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        try:  # a 0-d tensor or numpy scalar
            value = value.item()
        except Exception:  # noqa: BLE001 - not a number at all
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
    return float(value)


def check_values(spec: KernelSpec, shape: Shape, mode: str, elem_size: int) -> None:
    """The kernel's FLOP count and memory estimate at shape, as the run will use them: a PluginError
    naming the kernel and the sizes if either raises or is not a finite number >= 0 (a user's bug:
    exit 2 before anything is timed, never a crash mid-sweep or a NaN in a row)."""
    at = f"B={shape.batch_size} T={shape.seq_len} d={shape.hidden_size} h={shape.num_heads} ({mode})"
    fns = [("FLOP count" if spec.formula.startswith("(") else f"FLOP formula {spec.formula!r}",
            lambda: spec.flops_fn(shape)),
           ("memory estimate (memory=)", lambda: spec.activation_bytes_fn(shape, elem_size, mode == "train"))]
    if mode == "decode" and spec.decode_flops_fn is not None:
        fns.append(("decode FLOP count" if spec.decode_formula.startswith("(") else
                    f"decode FLOP formula {spec.decode_formula!r}", lambda: spec.decode_flops_fn(shape)))
    for what, fn in fns:
        try:
            value = fn()
        except KeyboardInterrupt:
            raise
        except PluginError as exc:  # a formula's own message names the formula and the sizes
            raise PluginError(f"kernel {spec.name!r} ({spec.source}): {exc}") from None
        except (Exception, SystemExit, GeneratorExit) as exc:  # noqa: BLE001 - the kernel's bug, named
            lines = str(exc).strip().splitlines()
            raise PluginError(f"kernel {spec.name!r} ({spec.source}): its {what} fails at {at}: "
                              f"{type(exc).__name__}: {lines[0][:200] if lines else ''}") from None
        number = _number(value)
        if number is None or not math.isfinite(number) or number < 0:
            got = type(value).__name__ if number is None else repr(number)
            raise PluginError(f"kernel {spec.name!r} ({spec.source}): its {what} gives {got[:40]} at {at}; "
                              "it must be a finite number >= 0")
