"""`flops="count"`: FLOPs counted with torch's FlopCounterMode instead of written down.

A layer whose FLOPs depend on its own configuration and algorithm (a chunked scan, a gated delta
rule) is counted at three sequence lengths (COUNT_LENGTHS, multiples of the usual chunk sizes, so no
chunk is padded) for one sequence, and the count is fitted exactly as a + b*T + c*T^2 through them
(a: a convolution's padding; c > 0: the cost grows as T^2 at long T); B multiplies the whole.
`decode_flops="count"` does the same for one step after contexts of the first two lengths: a + b*T.

What FlopCounterMode sees is what is counted: matrix products and convolutions, not elementwise
work; torch's CPU SDPA kernel is invisible to it (give softmax attention a formula). Counts are
made once per (d, heads, causal) on the CPU in float32, the first time a point needs them.
"""

from __future__ import annotations

from typing import Callable

COUNT_LENGTHS = (64, 128, 256)


def _count(fn: Callable[[], object]) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _fit(points: list[tuple[int, float]]) -> list[float]:
    """Coefficients of the polynomial in T of degree len(points) - 1 through the points (exact solve)."""
    import numpy as np

    ts = np.array([t for t, _ in points], dtype=float)
    fs = np.array([f for _, f in points], dtype=float)
    coef = np.linalg.solve(np.vander(ts, increasing=True), fs)
    tiny = 1e-9 * max(abs(fs).max(), 1.0)  # rounding of the solve, not a term
    return [0.0 if abs(c * ts.max() ** i) <= tiny else float(c) for i, c in enumerate(coef)]


def counted_flops(get_spec: Callable[[], object], mode: str = "forward") -> Callable:
    """A FLOP function of the Shape for the kernel get_spec() returns, counted on first use (see the module's doc)."""
    import dataclasses

    fits: dict = {}

    def build(shape):
        import torch

        torch.manual_seed(0)
        module = get_spec().build(shape, torch.device("cpu"), torch.float32)
        return module.eval()

    def forward_count(shape, T: int) -> float:
        import torch

        s = dataclasses.replace(shape, batch_size=1, seq_len=T)
        module, x = build(s), torch.randn(1, T, shape.hidden_size)
        return _count(lambda: module(x))

    def step_count(shape, T: int) -> float:
        import torch

        from seqbench.kernels.decode import prefill

        s = dataclasses.replace(shape, batch_size=1, seq_len=T)
        module = build(s)
        with torch.inference_mode():
            state = prefill(module, torch.randn(1, T, shape.hidden_size), module.init_state(1, T + 1), get_spec())
        x_t = torch.randn(1, 1, shape.hidden_size)
        return _count(lambda: module.step(x_t, state))

    def flops(shape) -> float:
        key = (shape.hidden_size, shape.num_heads, shape.causal)
        if key not in fits:
            count = step_count if mode == "decode" else forward_count
            lengths = COUNT_LENGTHS[:2] if mode == "decode" else COUNT_LENGTHS
            fits[key] = _fit([(t, count(shape, t)) for t in lengths])
        return shape.batch_size * sum(c * shape.seq_len ** i for i, c in enumerate(fits[key]))

    flops.counted = True  # type: ignore[attr-defined]
    return flops
