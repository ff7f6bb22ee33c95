"""Decode points: build a kernel's module, prefill a context of T tokens (untimed), hand over one step to time.

In a decode row, T (seq_len) is the context length: the timed call is step(x_t, state_T) with x_t one
new token per sequence, (B, 1, d). Its new state is dropped, so every repeat does the same work and the
state never grows (kernels/decode.py, step_fn). The KV cache is allocated for T + 1 tokens: the context
plus the token being decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from seqbench.kernels import get_kernel
from seqbench.kernels.decode import NoDecodeStep, prefill_random, require_decode, restorer, step_fn
from seqbench.kernels.state import logical_bytes, retained_bytes
from seqbench.measure.memory import tensor_bytes
from seqbench.results.identity import Point


@dataclass
class DecodeStep:
    step: Callable[[], object]  # one decode step from the prefilled state
    state_bytes: int  # the state (KV cache or recurrent state) of all B sequences: the bytes it owns (logical)
    token_bytes: int  # the new token x_t, (B, 1, d)
    retained_bytes: int = 0  # the storages the state keeps alive (>= state_bytes: a view retains its buffer)
    reset: Callable[[], None] | None = None  # an in-place step's state put back, untimed, before each call


def build_module(point: Point, seed: int):
    """The kernel's module for a decode point, in eval mode; NoDecodeStep if it cannot decode."""
    import torch

    spec = get_kernel(point.kernel)
    if not spec.supports_causal:
        raise NoDecodeStep(f"no decode step: {point.kernel!r} is registered causal='never', and decoding is causal")
    torch.manual_seed(seed)
    module = spec.build(point.shape, torch.device(point.device), getattr(torch, point.dtype))
    module.eval()
    require_decode(module, point.kernel)
    return module


def _generator(point: Point, seed: int):
    import torch

    return torch.Generator(device=point.device).manual_seed(seed)


def prefilled_state(module, point: Point, batch_size: int, seed: int, seq_len: int | None = None):
    """init_state for T + 1 tokens, then a random context of T (or seq_len) tokens taken in (under inference_mode)."""
    import torch

    T = point.seq_len if seq_len is None else seq_len
    with torch.inference_mode():
        state = module.init_state(batch_size, point.seq_len + 1)
        return prefill_random(module, state, batch_size, T, point.hidden_size, generator=_generator(point, seed),
                              device=point.device, dtype=getattr(torch, point.dtype), spec=get_kernel(point.kernel))


def new_token(point: Point, batch_size: int, seed: int):
    import torch

    g = _generator(point, seed + 1)
    return torch.randn(batch_size, 1, point.hidden_size, generator=g, device=point.device,
                       dtype=getattr(torch, point.dtype))


def decode_step(module, point: Point, state, batch_size: int, seed: int) -> DecodeStep:
    spec = get_kernel(point.kernel)
    x_t = new_token(point, batch_size, seed)
    return DecodeStep(step_fn(module, x_t, state, spec), logical_bytes(state, spec.state_tensors), tensor_bytes(x_t),
                      retained_bytes(state, spec.state_tensors), restorer(state, spec))


def build_decode(point: Point, seed: int = 0) -> tuple[object, DecodeStep]:
    """(module, its step after a prefilled context of point.seq_len tokens for point.batch_size sequences)."""
    module = build_module(point, seed)
    state = prefilled_state(module, point, point.batch_size, seed)
    return module, decode_step(module, point, state, point.batch_size, seed)
