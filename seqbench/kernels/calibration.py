"""`calibration`: a fixed 256x256 float matmul, the same work whatever the shape asked for.

`seqbench run --calibrate` times it just before every point's round, and `seqbench compare
--normalize calibration` divides each round's time by it, so a machine-wide slow phase or a slower
runner cancels out. Forward FLOPs: 2 * 256^3 (it ignores B, T and d; its output is its input).
"""

from __future__ import annotations

import torch
from torch import nn

from seqbench.kernels.registry import KernelSpec, Shape, register

SIZE = 256


class Calibration(nn.Module):
    def __init__(self, device, dtype):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("a", (torch.randn(SIZE, SIZE, generator=g) / SIZE**0.5).to(device, dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.a @ self.a
        return x


def _factory(shape: Shape, device, dtype) -> nn.Module:
    return Calibration(device, dtype)


register(
    KernelSpec(
        name="calibration",
        family="calibration",
        factory=_factory,
        flops_fn=lambda s: 2 * SIZE**3,
        formula="2·256³ (fixed)",
        activation_bytes_fn=lambda s, elem, train: SIZE * SIZE * elem,
        description="fixed matmul timed next to points for --normalize calibration",
        supports_train=False,
    )
)
