"""Which SDPA backend actually ran: read off the aten ops that one profiled call dispatched.

PyTorch picks flash / memory-efficient / cuDNN / math per call from shape, dtype, device and mask;
guessing from the rules is fragile across versions, so seqbench records what the profiler saw.
"""

from __future__ import annotations

from typing import Callable

from seqbench.measure.memory import profiled_call

# aten op name fragment -> backend label, most specific first
_BACKENDS = (
    ("_scaled_dot_product_flash_attention", "flash"),
    ("_scaled_dot_product_efficient_attention", "efficient"),
    ("_scaled_dot_product_cudnn_attention", "cudnn"),
    ("_scaled_dot_product_attention_math", "math"),
    ("_native_multi_head_attention", "native_mha"),  # nn.MultiheadAttention's inference fast path
)


def backend_from_op_names(names) -> str:
    found = []
    for fragment, label in _BACKENDS:
        if any(fragment in n for n in names) and label not in found:
            found.append(label)
    return "+".join(found)


def sdpa_backend(fn: Callable[[], object], events: list | None = None) -> str:
    """Name the backend from the events of one profiled call of fn (profiling one if none given)."""
    if events is None:
        events = profiled_call(fn)
    return backend_from_op_names({e.name for e in events})
