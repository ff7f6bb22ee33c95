"""A cheap correctness check of each kernel before any point of it is timed.

At a tiny shape (B=2, T=8, the sweep's d and heads) on the sweep's device and dtype: the output must
be one tensor of shape (B, T, d) with finite values, and a causal kernel's output at t must not move
when inputs after t change. A kernel that fails gets its points recorded as `error` with the reason,
never timings. A factory that raises is a bug in the kernel, reported before the sweep (exit 2); a
forward that raises is left to the points, which record it with their own status (error, oom).
"""

from __future__ import annotations

from seqbench.errors import PluginError
from seqbench.kernels.registry import KernelSpec, Shape

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
    except Exception as exc:  # noqa: BLE001 - the kernel's own bug: one line, before any timing
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
            y = module(x)
            if not isinstance(y, torch.Tensor):
                return (f"correctness check: forward returned {type(y).__name__}, expected one tensor of shape "
                        f"(B, T, d) = {(B, T, d)}")
            if tuple(y.shape) != (B, T, d):
                return f"correctness check: output shape {tuple(y.shape)}, expected (B, T, d) = {(B, T, d)}"
            if not torch.isfinite(y).all():
                return f"correctness check: output has non-finite values at B={B}, T={T}, d={d} ({dtype})"
            if spec.causal == "always" or (spec.causal == "optional" and shape.causal):
                t0 = T // 2 - 1
                x2 = x.clone()
                x2[:, t0 + 1:] = torch.randn(B, T - t0 - 1, d, generator=g).to(x2)
                y2 = module(x2)
                moved = (y2[:, : t0 + 1] - y[:, : t0 + 1]).abs().max().item()
                scale = max(1.0, y[:, : t0 + 1].abs().max().item())
                if moved > _CAUSAL_TOL.get(dtype, 1e-4) * scale:
                    return (f"correctness check: not causal: outputs at t <= {t0} moved by {moved:.3g} when only "
                            f"inputs after t={t0} changed")
    except Exception:  # noqa: BLE001 - a forward that raises fails every point on its own, with its own status
        return None
    return None
