"""Decode: one token at a time. The protocol a kernel's module opts in with, and what seqbench does with it.

A module built by a kernel's factory supports decode mode when it has two methods:

    init_state(batch_size, max_len) -> state      an empty state with room for max_len tokens
    step(x_t, state) -> (y_t, new_state)          x_t (B, 1, d) -> y_t (B, 1, d), and the state after it

and, optionally, a faster way to take in a context than stepping through it:

    prefill(x, state) -> new_state                absorb x (B, n, d) after the tokens state already holds

A state is a tensor, or tuples / lists / dicts of tensors and plain values (a position as an int).

What seqbench relies on, and checks before timing (kernels.check.check_decode):
- step after a prefill of x[:, :t] returns the causal forward's output at position t;
- step must not change what the `state` it was given means: seqbench calls it again and again with
  the same state (the timed repeats), so every repeat decodes the same token after the same context.
  Writing the new token into preallocated room at the state's current length is fine (a KV cache
  writes slot T every time and does not advance); advancing a counter kept inside the old state, or
  updating a hidden state in place, is not (repeats would see a longer or different context).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

PREFILL_TOKENS = 1 << 16  # tokens (B x chunk) per prefill call: bounds the context's memory, not the state's


class NoDecodeStep(Exception):
    """The kernel's module has no init_state/step: its decode points are skipped, not failed."""


def has_decode(module) -> bool:
    return callable(getattr(module, "init_state", None)) and callable(getattr(module, "step", None))


def require_decode(module, kernel: str) -> None:
    if not has_decode(module):
        raise NoDecodeStep(f"no decode step: the module of {kernel!r} ({type(module).__name__}) has no "
                           "init_state(batch_size, max_len) and step(x_t, state) methods (README: Your own layer)")


def prefill(module, x, state, spec=None):
    """The state after taking in x (B, n, d): the module's own prefill, else one step per token."""
    return prefill_with_output(module, x, state, spec)[1]


def prefill_with_output(module, x, state, spec=None):
    """(outputs of the chunk or None, the state after it): outputs come from a prefill registered
    prefill_output=True (it returns (y, state)), or from the steps when the module has no prefill."""
    import torch

    if callable(getattr(module, "prefill", None)):
        result = module.prefill(x, state)
        if spec is not None and spec.prefill_output:
            y, state = result
            return spec.output_of(y, (x.shape[0], x.shape[1], x.shape[2])), state
        return None, result
    outs = []
    for t in range(x.shape[1]):
        y, state = module.step(x[:, t:t + 1], state)
        outs.append(y if spec is None else spec.output_of(y, (x.shape[0], 1, x.shape[2])))
    return (torch.cat(outs, dim=1) if outs and isinstance(outs[0], torch.Tensor) else None), state


def prefill_random(module, state, batch_size: int, context_len: int, hidden_size: int, *, generator, device, dtype,
                   spec=None):
    """Prefill a random context of context_len tokens, made and taken in chunks (a context of B*T*d
    floats at once would cost more memory than many a KV cache)."""
    import torch

    chunk = max(1, PREFILL_TOKENS // batch_size)
    for start in range(0, context_len, chunk):
        n = min(chunk, context_len - start)
        x = torch.randn(batch_size, n, hidden_size, generator=generator, device=device, dtype=dtype)
        state = prefill(module, x, state, spec)
    return state


def leaves(state) -> Iterator[Any]:
    """Every leaf of a state (tensors and plain values), depth first, in a stable order."""
    from seqbench.kernels.state import _children, walk

    return (n for n in walk(state) if not list(_children(n)) and not isinstance(n, (dict, list, tuple)))


def tensors(state, declared=None) -> list:
    from seqbench.kernels.state import tensors as state_tensors

    return state_tensors(state, declared)


def state_nbytes(state, declared=None) -> int:
    """Bytes of the distinct storages a state keeps alive (a view into a preallocated cache counts its
    buffer once): the retained size (kernels.state.retained_bytes; logical_bytes is what it owns)."""
    from seqbench.kernels.state import retained_bytes

    return retained_bytes(state, declared)


def broadcast_state(target, source):
    """`target` (a state for B sequences, fresh from init_state) filled with `source` (the same kind of
    state for 1 sequence) in every batch row; plain values (a position) are taken from source.

    No batch axis needs to be known: each source tensor has size 1 where the target has B, so it
    broadcasts. Used by the capacity search, which cannot prefill B*T tokens for real at large B.
    """
    import torch

    if isinstance(target, dict) and isinstance(source, dict) and set(target) == set(source):
        return {k: broadcast_state(target[k], source[k]) for k in target}
    if isinstance(target, (tuple, list)) and isinstance(source, (tuple, list)) and len(target) == len(source):
        return type(target)(broadcast_state(a, b) for a, b in zip(target, source))
    if isinstance(target, torch.Tensor) and isinstance(source, torch.Tensor):
        target.copy_(source.expand_as(target))
        return target
    if isinstance(target, (int, float, bool, str, type(None))) and isinstance(source, (int, float, bool, str, type(None))):
        return source
    if type(target) is type(source) and not any(True for _ in tensors(source)):
        return source  # an object without tensors (a config) is the same for every batch size
    raise ValueError("the state after prefill is not shaped like the state init_state returns")


def step_fn(module, x_t, state, spec=None) -> Callable[[], object]:
    """The timed call: one step from `state`. Its new state is dropped, so every repeat decodes the
    same token after the same context and nothing grows: a recurrence reads h_T and returns h_T+1, a
    KV cache (room for T + 1 tokens) writes slot T again and attends over T + 1 positions. A step that
    updates its state in place (spec.inplace_state) is given back its state by `restorer` before each
    call, untimed."""

    def step():
        return module.step(x_t, state)[0]

    return step


def restorer(state, spec=None) -> Callable[[], None] | None:
    """For a kernel registered inplace_state=True: a function that puts the state back as it is now
    (kernels.state.Snapshot), called before every timed step; None for a step that leaves its state be."""
    if spec is None or not spec.inplace_state:
        return None
    from seqbench.kernels.state import Snapshot

    return Snapshot(state, spec.state_tensors).restore
