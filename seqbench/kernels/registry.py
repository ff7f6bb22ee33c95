"""Kernel registry: name -> KernelSpec. Adding a kernel is one factory plus one `register` call.

A factory is `factory(shape, device, dtype) -> torch.nn.Module` whose forward maps x of shape
(B, T, d) to (B, T, d). FLOPs count a multiply-add as 2; train mode (forward + backward) is 3x forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from seqbench import SeqbenchError

FAMILIES = ("recurrent", "attention", "scan", "calibration")
TRAIN_FLOP_FACTOR = 3  # backward costs ~2x forward (grads w.r.t. activations and weights)


@dataclass(frozen=True)
class Shape:
    batch_size: int
    seq_len: int
    hidden_size: int
    num_heads: int = 1
    causal: bool = False


@dataclass(frozen=True)
class KernelSpec:
    name: str
    family: str
    factory: Callable  # (Shape, torch.device, torch.dtype) -> nn.Module
    flops_fn: Callable[[Shape], float]  # forward FLOPs
    formula: str  # human-readable forward FLOP formula, shown by `seqbench list`
    activation_bytes_fn: Callable[[Shape, int, bool], float]  # (shape, elem size, train) -> bytes
    description: str = ""
    supports_train: bool = True
    supports_causal: bool = True  # may the user ask for causal=True with this kernel?

    def flops(self, shape: Shape, mode: str = "forward") -> float:
        f = float(self.flops_fn(shape))
        return f * TRAIN_FLOP_FACTOR if mode == "train" else f


def per_token_activations(forward: float, train: float) -> Callable[[Shape, int, bool], float]:
    """An activation estimate of `forward` (or, in train mode, `train`) d-vectors of the dtype per token."""

    def estimate(s: Shape, elem: int, is_train: bool) -> float:
        return float((train if is_train else forward) * s.batch_size * s.seq_len * s.hidden_size * elem)

    return estimate


KERNELS: dict[str, KernelSpec] = {}


def register(spec: KernelSpec) -> KernelSpec:
    if spec.family not in FAMILIES:
        raise ValueError(f"family {spec.family!r} not in {FAMILIES}")
    if spec.name in KERNELS:
        raise ValueError(f"kernel {spec.name!r} registered twice")
    KERNELS[spec.name] = spec
    return spec


def get_kernel(name: str) -> KernelSpec:
    try:
        return KERNELS[name]
    except KeyError:
        raise SeqbenchError(
            f"unknown kernel {name!r}; known kernels: {', '.join(KERNELS)}"
        ) from None


def param_count(module) -> int:
    return sum(p.numel() for p in module.parameters())
