"""% of peak: measure the `calibration` kernel (a fixed dense matmul) and express kernels against it.

The peak is *measured*, never a datasheet figure: the same timer, dtype, device and thread count as
the kernels, so `pct_of_peak` = 100 * gflops_per_s / calibration gflops_per_s says how much of the
dense-matmul rate this machine actually delivers a kernel gets. It can exceed 100 for a kernel whose
counted FLOPs are done by something faster than one big GEMM (or when the machine was busier during
the calibration); read it with the calibration row's IQR.
"""

from __future__ import annotations


from seqbench.results.schema import Row
from seqbench.results.identity import Point
from seqbench.sweep.config import SweepConfig

CALIBRATION = "calibration"


def calibration_point(device: str, dtype: str) -> Point:
    from seqbench.kernels.calibration import size_for

    # The row records the matmul it runs (N x N times N x N) as seq_len = hidden_size = N.
    n = size_for(device)
    return Point(CALIBRATION, "forward", device, dtype, 1, n, n, 1, False)


def fill_pct(row: Row, peak_gflops: float | None) -> Row:
    if row.status == "ok" and row.gflops_per_s is not None and peak_gflops:
        row.pct_of_peak = 100.0 * row.gflops_per_s / peak_gflops
    return row


def calibrate_config(device: str, dtype: str, threads: int, min_time: float) -> SweepConfig:
    """A one-point sweep config for `seqbench calibrate`, validated like any other."""
    from seqbench.kernels.calibration import size_for
    from seqbench.sweep.config import build_config

    n = size_for(device)
    cfg = build_config(
        {"name": "calibrate", "kernels": [CALIBRATION], "seq_lens": [n], "batch_sizes": [1], "hidden_size": n,
         "num_heads": 1, "dtype": dtype, "device": device, "threads": threads, "min_time": min_time},
        source="flags",
    )
    return cfg
