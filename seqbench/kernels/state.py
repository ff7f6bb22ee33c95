"""What a layer written by others returns and keeps: its output tensor, and the tensors of its decode state.

Outputs. A forward (or a decode step's y_t) may return a tensor, a tuple or an object (a Hugging Face
ModelOutput, a dict). `register_kernel(..., output=...)` says which tensor is the (B, T, d) output:
an index (0), a name (a key or an attribute: "last_hidden_state") or a callable of the result. Without
it a tensor is taken as is, and a tuple or list whose first item is a tensor of the expected shape
gives that item (the convention of HF mixers and decoder layers: (hidden_states, weights, ...)).

States. A decode state is any pytree of tensors and plain values (tensors, tuples, lists, dicts,
dataclasses) or an object holding them in its attributes (a Hugging Face cache). Its tensors are
found by walking it, or listed by the kernel (`register_kernel(..., state_tensors=fn)`, fn(state) ->
iterable of tensors) when the walk would miss them or see too much. Two sizes are recorded:
- logical bytes (`state_bytes`): the bytes of the tensors the state holds, each distinct view counted
  once and never more than its storage: what the state owns;
- retained bytes (`state_retained_bytes`): the whole storages those tensors keep alive. A view into a
  buffer of every chunk's state (xLSTM after a chunked prefill) retains the buffer; a KV cache
  preallocated for T + 1 tokens owns and retains it all.

In-place steps. A step that updates its state in place (`register_kernel(..., inplace_state=True)`:
HF caches, Mamba's conv/SSM state) is timed from a snapshot: seqbench restores the state before every
timed call, outside the timed region (Snapshot.restore), instead of the step cloning it inside.
"""

from __future__ import annotations

import copy
import dataclasses
import types
from typing import Any, Callable, Iterator

_ATOMS = (int, float, bool, str, bytes, type(None), complex)


class OutputError(Exception):
    """A forward's result holds no tensor seqbench can take as the output (see `register_kernel(output=)`)."""


def describe_result(result) -> str:
    import torch

    if isinstance(result, torch.Tensor):
        return f"a tensor of shape {tuple(result.shape)}"
    if isinstance(result, (tuple, list)):
        items = ", ".join(describe_result(r) if isinstance(r, torch.Tensor) else type(r).__name__ for r in result[:4])
        return f"{type(result).__name__} of {len(result)} ({items}{', ...' if len(result) > 4 else ''})"
    return type(result).__name__


def pick_output(result, selector=None, expected: tuple | None = None):
    """The output tensor of a forward's (or a step's) result, as `selector` says (see the module's doc)."""
    import torch

    if selector is None:
        if isinstance(result, torch.Tensor):
            return result
        if (isinstance(result, (tuple, list)) and result and isinstance(result[0], torch.Tensor)
                and (expected is None or tuple(result[0].shape) == tuple(expected))):
            return result[0]
        raise OutputError(f"forward returned {describe_result(result)}, expected one tensor of shape (B, T, d)"
                          f"{' = ' + str(tuple(expected)) if expected else ''}; say which item is the output with "
                          "register_kernel(..., output=0 | 'name' | a function of the result)")
    try:
        if callable(selector):
            out = selector(result)
        elif isinstance(selector, int) and not isinstance(selector, bool):
            out = result[selector]
        elif isinstance(selector, str):
            out = result[selector] if isinstance(result, dict) else getattr(result, selector)
        else:
            raise OutputError(f"output={selector!r}: allowed an index, a name or a function of the result")
    except OutputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the selector does not fit the result: say both
        raise OutputError(f"output={selector!r} does not fit what forward returned ({describe_result(result)}): "
                          f"{type(exc).__name__}: {exc}") from None
    if not isinstance(out, torch.Tensor):
        raise OutputError(f"output={selector!r} gave {describe_result(out)}, expected a tensor")
    return out


def check_selector(selector, name: str) -> None:
    """Refuse an `output=` that can never select anything (at registration, one line)."""
    from seqbench.errors import PluginError

    if selector is None or callable(selector) or isinstance(selector, str):
        return
    if isinstance(selector, int) and not isinstance(selector, bool):
        return
    raise PluginError(f"kernel {name!r}: output={selector!r}; allowed: an index (0), a name ('last_hidden_state') or "
                      "a function of the forward's result")


def _children(node) -> Iterator[tuple[Any, Any]]:
    """(key, child) pairs of a container node; nothing for a leaf."""
    import torch
    from torch import nn

    if isinstance(node, (torch.Tensor, nn.Module, type, types.FunctionType, types.MethodType, *_ATOMS)):
        return
    if isinstance(node, dict):
        for k in sorted(node, key=str):
            yield k, node[k]
    elif isinstance(node, (tuple, list)):
        yield from enumerate(node)
    elif dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            yield f.name, getattr(node, f.name)
    elif hasattr(node, "__dict__"):
        for k in sorted(vars(node), key=str):
            yield k, vars(node)[k]


def walk(state) -> Iterator[Any]:
    """Every node of a state, depth first, in a stable order, each object once (caches may refer back)."""
    seen: set[int] = set()
    stack = [state]
    while stack:
        node = stack.pop()
        if not isinstance(node, _ATOMS):  # an int may sit in two places (small ints are one object)
            if id(node) in seen:
                continue
            seen.add(id(node))
        yield node
        stack.extend(reversed([c for _, c in _children(node)]))


def tensors(state, declared: Callable | None = None) -> list:
    """The state's tensors: as the kernel lists them (declared), else every tensor the walk finds."""
    import torch

    if declared is not None:
        return [t for t in declared(state) if isinstance(t, torch.Tensor)]
    return [n for n in walk(state) if isinstance(n, torch.Tensor)]


def retained_bytes(state, declared: Callable | None = None) -> int:
    """Bytes of the distinct storages the state's tensors keep alive (a view counts its whole buffer)."""
    seen, total = set(), 0
    for t in tensors(state, declared):
        storage = t.untyped_storage()
        if storage._cdata not in seen:
            seen.add(storage._cdata)
            total += storage.nbytes()
    return total


def logical_bytes(state, declared: Callable | None = None) -> int:
    """Bytes the state owns: each distinct view's own bytes, at most its storage's size per storage."""
    per_storage: dict[int, list] = {}
    for t in tensors(state, declared):
        storage = t.untyped_storage()
        views = per_storage.setdefault(storage._cdata, [storage.nbytes(), set()])
        views[1].add((t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.element_size()))
    total = 0
    for cap, views in per_storage.values():
        own = 0
        for _, shape, _, elem in views:
            n = 1
            for s in shape:
                n *= s
            own += n * elem
        total += min(cap, own)
    return total


class Snapshot:
    """A state as it is now, to put back before every timed call of an in-place step (untimed).

    Containers (lists, dicts, objects' attributes) get back the very items they held, so a tensor an
    update replaced (a cache grown with torch.cat, a counter advanced) is the old one again; tensors
    get back their values (copy_), so a state updated in place reads as before. Costs one copy of the
    state in memory, and one copy per restore."""

    def __init__(self, state, declared: Callable | None = None):
        import torch

        self.containers = []
        for node in walk(state):
            if isinstance(node, list):
                self.containers.append((node, list(node)))
            elif isinstance(node, dict):
                self.containers.append((node, dict(node)))
            elif not isinstance(node, (tuple, torch.Tensor)) and hasattr(node, "__dict__") and list(_children(node)):
                self.containers.append((node, dict(vars(node))))
        with torch.inference_mode():
            self.values = [(t, t.clone()) for t in tensors(state, declared)]

    def restore(self) -> None:
        import torch

        for node, saved in self.containers:
            if isinstance(node, list):
                node[:] = saved
            elif isinstance(node, dict):
                node.clear()
                node.update(saved)
            else:
                vars(node).clear()
                vars(node).update(saved)
        with torch.inference_mode():
            for t, saved_t in self.values:
                t.copy_(saved_t)


def batch_axes(one, two) -> list[int | None]:
    """Per tensor (in walk order): the axis that is 1 in a state of one sequence and 2 in a state of two."""
    a, b = tensors(one), tensors(two)
    if len(a) != len(b):
        raise ValueError(f"states of 1 and 2 sequences hold {len(a)} and {len(b)} tensors: no batch axis to find")
    axes = []
    for x, y in zip(a, b):
        axis = None
        if x.dim() == y.dim():
            axis = next((i for i, (p, q) in enumerate(zip(x.shape, y.shape)) if p == 1 and q == 2), None)
        axes.append(axis)
    return axes


def replicate(one, axes: list[int | None], batch_size: int):
    """A state of `batch_size` sequences made from a state of one: every tensor with a batch axis
    repeated along it (real memory, not an expanded view), everything else copied as is."""
    import torch

    memo = {}
    with torch.inference_mode():
        for t, axis in zip(tensors(one), axes):
            if axis is not None:
                shape = list(t.shape)
                shape[axis] = batch_size
                memo[id(t)] = t.expand(shape).contiguous()
            else:
                memo[id(t)] = t.clone()
        return copy.deepcopy(one, memo)
