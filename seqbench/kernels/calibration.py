"""`calibration`: one fixed dense square matmul, the yardstick for "% of peak".

It does the same work whatever shape it is asked for (it ignores B, T and d and returns its input),
so its GFLOP/s is the device's dense matmul rate for the dtype, measured by the same timer as every
kernel. `seqbench calibrate` reports it; `seqbench run` measures it first (one `calibration` row)
and fills each row's `pct_of_peak` with 100 * gflops_per_s / that rate.

Size: N = 1024 (2.1 GFLOP, 35-60 ms on this 2-core CPU in float32). Measured here (float32, 2
threads, a loaded machine): N = 256 and 512 ran at 5-26 and 16-19 GFLOP/s, N = 1024 at ~60 and
N = 2048 at 78-88: 2048 gains ~30% for 8x the time per call, so 1024 keeps a run's calibration at
about a second.
On CUDA N = 8192: a 1024^3 product is far too small to fill a GPU (an H200 ran it at 37 TFLOP/s in
float32 and 163 in bfloat16, so SDPA showed "280% of peak"); 8192^3 is the size at which H100/H200
reach their dense bf16 rate (~790 TFLOP/s here). N travels as the row's hidden_size (and seq_len).
Forward FLOPs: 2 * N^3.
"""

from __future__ import annotations

import torch
from torch import nn

from seqbench.kernels.registry import register_kernel

SIZE = 1024  # CPU
CUDA_SIZE = 8192


def size_for(device: str) -> int:
    return CUDA_SIZE if str(device).startswith("cuda") else SIZE


class Calibration(nn.Module):
    def __init__(self, size: int = SIZE):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        # Parameters (frozen), not buffers: so the resident bytes of the row (peak_mem_bytes, the
        # memory budget) count the three matrices like any kernel's weights.
        def frozen(t):
            return nn.Parameter(t, requires_grad=False)

        self.a = frozen(torch.randn(size, size, generator=g) / size ** 0.5)
        self.b = frozen(torch.randn(size, size, generator=g) / size ** 0.5)
        self.c = frozen(torch.empty(size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.mm(self.a, self.b, out=self.c)  # out=: no allocation inside the timed call
        return x


def calibration_flops(size: int = SIZE) -> float:
    return 2.0 * size ** 3


register_kernel(
    "calibration",
    family="calibration",
    factory=lambda shape: Calibration(shape.hidden_size),
    flops=lambda s: calibration_flops(s.hidden_size),
    formula=f"2*N^3, N = {SIZE} on CPU, {CUDA_SIZE} on CUDA",
    memory=lambda s, elem, train: 0.0,  # out= into a resident matrix: the call allocates nothing
    description="fixed dense matmul: the device's matmul GFLOP/s for the dtype (% of peak)",
    train=False,
    causal="optional",  # it ignores the mask; the shape's causal flag changes nothing
)
