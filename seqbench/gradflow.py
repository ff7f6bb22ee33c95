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
from dataclasses import asdict, dataclass

from seqbench import SeqbenchError

LAYERS = ("rnn_loop", "lstm_loop", "mingru_scan", "sdpa")
RADIUS_LAYER = "rnn_loop"  # the layer whose recurrent matrix U --spectral-radius rescales


@dataclass(frozen=True)
class Fit:
    layer: str
    rate_per_step: float  # fitted decay rate: ||grad|| ~ exp(-rate * distance); negative = growth
    factor_per_step: float  # exp(-rate)
    r2: float  # of the straight-line fit of log ||grad|| against distance
    max_over_min: float  # of the seed-averaged norm over distances 1..T-1: the "constant factor"
    points: int  # distances with a non-zero norm used in the fit

    def as_dict(self) -> dict:
        return asdict(self)


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
    module = spec.factory(shape, torch.device("cpu"), torch.float64)
    if spectral_radius is not None:
        set_spectral_radius(module.weight_hh, spectral_radius)
    x = torch.randn(1, seq_len, hidden_size, dtype=torch.float64, requires_grad=True)
    u = torch.randn(hidden_size, dtype=torch.float64)
    u /= u.norm()
    (module(x)[0, -1] @ u).backward()
    return x.grad[0].norm(dim=-1).numpy()


def fit_decay(label: str, mean_norm_by_distance) -> Fit:
    """Least-squares line through log ||grad|| against distance, distances >= 1 with a non-zero norm."""
    import numpy as np

    g = np.asarray(mean_norm_by_distance, dtype=float)
    dist = np.arange(len(g))
    keep = (dist >= 1) & (g > 0) & np.isfinite(g)
    if keep.sum() < 2:
        return Fit(label, math.nan, math.nan, math.nan, math.nan, int(keep.sum()))
    x, y = dist[keep], np.log(g[keep])
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss = ((y - y.mean()) ** 2).sum()
    r2 = 1 - (resid ** 2).sum() / ss if ss > 0 else 1.0
    return Fit(label, float(-slope), float(math.exp(slope)), float(r2), float(g[keep].max() / g[keep].min()),
               int(keep.sum()))


def run_gradflow(*, layers=LAYERS, seq_len: int = 128, hidden_size: int = 64, num_heads: int = 4,
                 seeds: int = 5, spectral_radii=(0.5, 1.0, 3.0)):
    """All layers x seeds -> (tidy DataFrame: layer, kernel, spectral_radius, seed, t, distance,
    grad_norm; list of Fit on the geometric mean over seeds)."""
    import numpy as np
    import pandas as pd

    from seqbench.kernels import get_kernel

    if seq_len < 3:
        raise SeqbenchError(f"--seq-len {seq_len} is too short; need at least 3 tokens to fit a decay")
    if seeds < 1:
        raise SeqbenchError(f"--seeds {seeds} must be at least 1")
    if hidden_size % num_heads:
        raise SeqbenchError(f"--heads {num_heads} does not divide --hidden-size {hidden_size}")
    if any(not (r > 0 and math.isfinite(r)) for r in spectral_radii):
        raise SeqbenchError(f"--spectral-radius values must be positive numbers, got {list(spectral_radii)}")
    for k in layers:
        get_kernel(k)  # unknown name -> SeqbenchError listing the known kernels
    records, fits = [], []
    for kernel in layers:
        radii = list(spectral_radii) if (kernel == RADIUS_LAYER and spectral_radii) else [None]
        for radius in radii:
            label = layer_label(kernel, radius)
            per_seed = []
            for seed in range(seeds):
                g = gradient_norms(kernel, seq_len=seq_len, hidden_size=hidden_size, num_heads=num_heads,
                                   seed=seed, spectral_radius=radius)
                per_seed.append(g[::-1])  # index = distance T-1-t
                for t, v in enumerate(g):
                    records.append((label, kernel, radius, seed, t, seq_len - 1 - t, float(v)))
            with np.errstate(divide="ignore"):
                geo = np.exp(np.mean(np.log(np.stack(per_seed)), axis=0))
            fits.append(fit_decay(label, geo))
    df = pd.DataFrame.from_records(
        records, columns=["layer", "kernel", "spectral_radius", "seed", "t", "distance", "grad_norm"])
    return df, fits


def plot_gradflow(df, fits, path) -> None:
    """Gradient norm against distance T-t, log y: geometric mean over seeds, band = min..max over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rates = {f.layer: f.rate_per_step for f in fits}
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, grp in df.groupby("layer", sort=False):
        wide = grp.pivot(index="distance", columns="seed", values="grad_norm").sort_index()
        positive = wide.where(wide > 0)
        with np.errstate(divide="ignore"):
            geo = np.exp(np.log(positive).mean(axis=1))
        line, = ax.plot(wide.index, geo, label=f"{label}: rate {rates[label]:+.3g}/step")
        ax.fill_between(wide.index, positive.min(axis=1), positive.max(axis=1), color=line.get_color(), alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("distance T - t (tokens)")
    ax.set_ylabel("||u · dy_T/dx_t||  (geometric mean over seeds)")
    ax.set_title("Gradient path length: recurrence vs attention (random init, float64)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
