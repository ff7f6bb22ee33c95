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


def run_gradflow(*, layers=LAYERS, seq_len: int = 128, hidden_size: int = 64, num_heads: int = 4,
                 seeds: int = 5, spectral_radii=(0.5, 1.0, 3.0)):
    """All layers x seeds -> tidy DataFrame: layer, kernel, spectral_radius, seed, t, distance, grad_norm
    (analysis.fits.decay_fits fits each layer's decay)."""
    import pandas as pd

    from seqbench.kernels import get_kernel

    if seq_len < 3:
        raise ConfigError(f"--seq-len {seq_len} is too short; need at least 3 tokens to fit a decay")
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds} must be at least 1")
    if hidden_size % num_heads:
        raise ConfigError(f"--heads {num_heads} does not divide --hidden-size {hidden_size}")
    if any(not (r > 0 and math.isfinite(r)) for r in spectral_radii):
        raise ConfigError(f"--spectral-radius values must be positive numbers, got {list(spectral_radii)}")
    for k in layers:
        get_kernel(k)  # unknown name -> one line listing the known kernels
    records = []
    for kernel in layers:
        radii = list(spectral_radii) if (kernel == RADIUS_LAYER and spectral_radii) else [None]
        for radius in radii:
            label = layer_label(kernel, radius)
            for seed in range(seeds):
                g = gradient_norms(kernel, seq_len=seq_len, hidden_size=hidden_size, num_heads=num_heads,
                                   seed=seed, spectral_radius=radius)
                for t, v in enumerate(g):
                    records.append((label, kernel, radius, seed, t, seq_len - 1 - t, float(v)))
    return pd.DataFrame.from_records(
        records, columns=["layer", "kernel", "spectral_radius", "seed", "t", "distance", "grad_norm"])
