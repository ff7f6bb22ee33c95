"""Kernels, registered by name. Importing this package registers every built-in kernel."""

from seqbench.kernels.registry import KERNELS, KernelSpec, Shape, get_kernel, register
from seqbench.kernels import recurrent, attention, scan, linear_attention, calibration  # noqa: F401  (registers kernels)

__all__ = ["KERNELS", "KernelSpec", "Shape", "get_kernel", "register"]
