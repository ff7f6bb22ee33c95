"""A user's layer in a throwaway package, for `make bench-ci`: the plugin route of `seqbench ab`.

    write_checkout(DIR, plant={64: 0.10})   # DIR/cilab/{__init__,glr,bench_kernels}.py

`cilab` registers one kernel, `cilab_glr`, a gated linear recurrence stepped in a Python loop (the
kind of layer a user benchmarks). A HEAD checkout is planted slower inside the layer itself: for the
sequence lengths in `plant`, after computing its output the forward keeps the core busy for s x the
time the call itself just took, so the call is exactly 1 + s times slower under whatever noise it
met. The base checkout runs the same code with an empty `plant`, so both sides have the same
overhead. Nothing outside the plugin is touched: seqbench measures it like any other layer.
"""

from __future__ import annotations

from pathlib import Path

from lab import KERNEL

GLR = '''\
import time

import torch
from torch import nn

PLANT = {plant!r}  # seq_len -> planted slowdown (a fraction); empty in the base checkout


class GLR(nn.Module):
    """h_t = a_t * h_(t-1) + (1 - a_t) * v_t with a_t = sigmoid(x_t W_a), v_t = x_t W_v; output h W_o."""

    def __init__(self, d):
        super().__init__()
        self.gate, self.value, self.out = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):  # (B, T, d) -> (B, T, d)
        t0 = time.perf_counter()
        a = torch.sigmoid(self.gate(x))
        b = (1 - a) * self.value(x)
        h, outs = x.new_zeros(x.shape[0], x.shape[2]), []
        for t in range(x.shape[1]):
            h = torch.addcmul(b[:, t], a[:, t], h)
            outs.append(h)
        y = self.out(torch.stack(outs, 1))
        slow = PLANT.get(x.shape[1], 0.0)
        if slow:  # the planted regression: busy for `slow` x this call's own time
            deadline = time.perf_counter() + slow * (time.perf_counter() - t0)
            while time.perf_counter() < deadline:
                pass
        return y
'''

BENCH = '''\
import seqbench

from cilab.glr import GLR


@seqbench.register_kernel("{kernel}", family="scan", flops="6*B*T*d^2", description="cilab's gated linear recurrence")
def cilab_glr(shape: seqbench.Shape):
    return GLR(shape.hidden_size)
'''


def write_checkout(root: Path, plant: dict[int, float] | None = None) -> Path:
    """root/cilab: the package as a user's checkout holds it; `plant` makes it a slower head."""
    pkg = Path(root) / "cilab"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text('__version__ = "1.0"\n')
    (pkg / "glr.py").write_text(GLR.format(plant=dict(sorted((plant or {}).items()))))
    (pkg / "bench_kernels.py").write_text(BENCH.format(kernel=KERNEL))
    return Path(root)


CONFIG = '''\
# The bench-ci sweep: seqbench's own CI points (benchmarks/configs/ci.toml) plus a user's layer loaded as a
# plugin from each side's checkout.
name = "ci-layer"
plugins = ["cilab.bench_kernels"]
kernels = ["{kernel}", "rnn_loop", "rnn_fused", "sdpa"]
seq_lens = [32, 64, 128]
batch_sizes = [4]
hidden_size = 128
num_heads = 4
modes = ["forward"]
dtype = "float32"
device = "cpu"
threads = 1
min_time = {min_time}
max_warmup = {max_warmup}
'''


def write_config(path: Path, *, min_time: float, max_warmup: float) -> Path:
    Path(path).write_text(CONFIG.format(kernel=KERNEL, min_time=min_time, max_warmup=max_warmup))
    return Path(path)
