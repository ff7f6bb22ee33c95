"""Gradient path length: ||dy_T/dx_t|| for every t, for a recurrent, a gated, a scan and an attention layer.

The textbook claim: in an RNN the path from x_t to y_T is T - t steps long, so the gradient is a
product of T - t Jacobians diag(1 - h^2) U and shrinks or grows exponentially with the distance,
depending on the spectral radius of U; in attention every token is one step from every other, so
the gradient shows no trend with distance (the last token itself also feeds the query, so distance
0 is left out of the comparison).

One backward pass per layer and seed: we back-propagate u . y_T for a random unit vector u, which
gives u^T dy_T/dx_t for every t at once. Its squared norm averaged over u is ||dy_T/dx_t||_F^2 / d,
so over seeds it tracks the Jacobian norm up to a constant that is the same for every t.
Float64 throughout, so a decaying gradient reaches 1e-300 before it underflows to 0.
"""

from __future__ import annotations

import math

from seqbench.errors import ConfigError

LAYERS = ("rnn_loop", "lstm_loop", "mingru_scan", "sdpa")
RADIUS_LAYER = "rnn_loop"  # the layer whose recurrent matrix U --spectral-radius rescales


def layer_label(kernel: str, radius: float | None) -> str:
    return f"{kernel} (rho={radius:g})" if radius is not None else kernel


def set_spectral_radius(weight, radius: float) -> None:
    """Rescale a square matrix in place so that its largest |eigenvalue| is `radius`."""
    import torch

    with torch.no_grad():
        current = torch.linalg.eigvals(weight).abs().max().item()
        weight.mul_(radius / current)


def gradient_norms(kernel: str, *, seq_len: int, hidden_size: int, num_heads: int, seed: int,
                   spectral_radius: float | None = None):
    """||u^T dy_T/dx_t|| for t = 0..T-1 (numpy array) for a freshly initialised layer."""
    import torch

    from seqbench.kernels import Shape, get_kernel

    spec = get_kernel(kernel)
    torch.manual_seed(seed)
    shape = Shape(1, seq_len, hidden_size, num_heads, causal=True)
    module = spec.build(shape, torch.device("cpu"), torch.float64)
    if spectral_radius is not None:
        set_spectral_radius(module.weight_hh, spectral_radius)
    x = torch.randn(1, seq_len, hidden_size, dtype=torch.float64, requires_grad=True)
    u = torch.randn(hidden_size, dtype=torch.float64)
    u /= u.norm()
    (module(x)[0, -1] @ u).backward()
    return x.grad[0].norm(dim=-1).numpy()


ROW_BYTES = 200  # one (layer, seed, t) row of the result: DataFrame columns and the copies fits and plots make


def check_settings(*, layers, seq_len: int, hidden_size: int, num_heads: int, seeds: int, spectral_radii) -> None:
    """Every setting a gradflow run needs, checked before anything is built (ConfigError: exit 2)."""
    from seqbench.kernels import get_kernel

    if seq_len < 3:
        raise ConfigError(f"--seq-len {seq_len} is too short; need at least 3 tokens to fit a decay")
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds} must be at least 1")
    if hidden_size < 1 or num_heads < 1:
        raise ConfigError(f"--hidden-size ({hidden_size}) and --heads ({num_heads}) must be at least 1")
    if hidden_size % num_heads:
        raise ConfigError(f"--heads {num_heads} does not divide --hidden-size {hidden_size}")
    if any(not (r > 0 and math.isfinite(r)) for r in spectral_radii):
        raise ConfigError(f"--spectral-radius values must be positive numbers, got {list(spectral_radii)}")
    if not layers:
        raise ConfigError("--layers names no kernel")
    for k in layers:
        get_kernel(k)  # unknown name -> one line listing the known kernels


def memory_needs(*, layers, seq_len: int, hidden_size: int, num_heads: int, seeds: int, spectral_radii) -> list:
    """(bytes, what) for each layer: its float64 forward + backward at B=1 (the sweep's estimate for a
    train-mode point) plus the rows of the result, for memory.check_each_fits."""
    from seqbench.kernels import Shape
    from seqbench.measure.memory import estimate_bytes

    curves = sum(len(spectral_radii) if (k == RADIUS_LAYER and spectral_radii) else 1 for k in layers)
    table = curves * seeds * seq_len * ROW_BYTES
    shape = Shape(1, seq_len, hidden_size, num_heads, True)
    return [(estimate_bytes(k, shape, "train", "float64") + table,
             f"{k} at T={seq_len}, d={hidden_size} ({curves * seeds} curves)") for k in layers]


def run_gradflow(*, layers=LAYERS, seq_len: int = 128, hidden_size: int = 64, num_heads: int = 4,
                 seeds: int = 5, spectral_radii=(0.5, 1.0, 3.0), max_memory: int = 0):
    """All layers x seeds -> tidy DataFrame: layer, kernel, spectral_radius, seed, t, distance, grad_norm
    (analysis.fits.decay_fits fits each layer's decay). Refused (exit 2) if it would not fit in
    memory: max_memory bytes, or by default 80% of the free memory, as for `seqbench run`."""
    import numpy as np
    import pandas as pd

    from seqbench.measure.memory import check_each_fits

    settings = dict(layers=layers, seq_len=seq_len, hidden_size=hidden_size, num_heads=num_heads, seeds=seeds,
                    spectral_radii=spectral_radii)
    check_settings(**settings)
    check_each_fits(memory_needs(**settings), "cpu", max_memory, "gradflow")
    t = np.arange(seq_len)
    parts = []
    for kernel in layers:
        radii = list(spectral_radii) if (kernel == RADIUS_LAYER and spectral_radii) else [None]
        for radius in radii:
            label = layer_label(kernel, radius)
            for seed in range(seeds):
                g = gradient_norms(kernel, seq_len=seq_len, hidden_size=hidden_size, num_heads=num_heads,
                                   seed=seed, spectral_radius=radius)
                parts.append(pd.DataFrame({"layer": label, "kernel": kernel,
                                           "spectral_radius": math.nan if radius is None else radius,
                                           "seed": seed, "t": t, "distance": seq_len - 1 - t, "grad_norm": g.astype(float)}))
    return pd.concat(parts, ignore_index=True)
