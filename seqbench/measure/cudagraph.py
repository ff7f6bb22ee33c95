"""--cuda-graph: the timed call captured once in a CUDA graph, and every sample a replay of it.

On a GPU a small step is often bound by launching kernels from Python (on an H200 a Python-loop RNN
step cost ~90 us of launches whatever B was); a graph replays the whole call with one launch. Which
regime a row was timed in is its `regime` column, so eager and graph rows are never mixed up, and the
one-off capture cost is its own column (`capture_s`), never part of a sample.

Static inputs: the call is a closure over tensors allocated before capture (the input, the weights, a
decode state); the graph records their addresses and replays read them in place. Outputs live in the
graph's private memory pool and are rewritten by every replay. Following the PyTorch CUDA-graph
notes, the call first runs a few times on a side stream (lazy initialisation, cuBLAS/cuDNN workspace
and autotuning happen there, not inside the capture).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

WARMUP_CALLS = 3


class GraphCaptureFailed(Exception):
    """The call cannot be captured (a host sync, a CPU tensor, an op without graph support)."""


@dataclass
class GraphedCall:
    replay: Callable[[], None]
    capture_s: float  # wall seconds of the capture alone (warm-up calls excluded)
    keep: tuple = field(default=(), repr=False)  # the graph and its outputs: alive as long as replay is used


def capture(fn: Callable[[], object]) -> GraphedCall:
    """Capture fn() in a CUDA graph after warm-up calls on a side stream."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP_CALLS):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    t0 = time.perf_counter()
    try:
        with torch.cuda.graph(graph):
            out = fn()
        torch.cuda.synchronize()
    except Exception as exc:  # noqa: BLE001 - recorded as the point's error, the sweep goes on
        lines = str(exc).strip().splitlines()
        raise GraphCaptureFailed(f"CUDA graph capture failed: {type(exc).__name__}: {lines[0] if lines else ''}") from None
    capture_s = time.perf_counter() - t0
    return GraphedCall(graph.replay, capture_s, (graph, out))
