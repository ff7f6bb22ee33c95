"""Shared pieces of the reliability tests: tiny configs, a fake clock, test-only kernels."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

from seqbench.kernels import kernels, registry
from seqbench.kernels.registry import Shape, register_kernel
from seqbench.sweep.config import build_config

from kit import TINY, FakeClock, tiny_config  # noqa: F401 - imported from here by the reliability tests


@pytest.fixture(autouse=True)
def frozen_gc():
    """timing.measure runs gc.collect() before every point; with torch and pandas loaded that takes
    ~0.15 s here. Freezing the objects that already exist makes it cheap without changing behaviour."""
    gc.freeze()
    yield
    gc.unfreeze()


class Probe(nn.Module):
    """A (B, T, d) -> (B, T, d) kernel that raises `fault()` when T >= fail_at, after allocating."""

    def __init__(self, d, fail_at, fault, clock, leaks):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))
        self.fail_at, self.fault, self.clock, self.leaks = fail_at, fault, clock, leaks

    def forward(self, x):
        if self.clock is not None:
            self.clock.last_t = x.shape[1]
        if x.shape[1] >= self.fail_at:
            scratch = torch.empty(1 << 20)  # 4 MiB a failing call was holding: must be freed after
            self.leaks.append(weakref.ref(scratch))
            raise self.fault()
        return x * self.w


def register_probe(monkeypatch, name="probe", *, fail_at=10**9, fault=RuntimeError, clock=None,
                   supports_causal=True, supports_train=True):
    """Register a test-only kernel for the duration of one test; returns the list of weakrefs to
    tensors it allocated just before failing."""
    leaks: list = []

    def factory(shape: Shape):
        return Probe(shape.hidden_size, fail_at, fault, clock, leaks)

    kernels()  # built-ins first, so the placeholder below is the only new name
    monkeypatch.setitem(registry._REGISTRY, name, None)  # removed again when the test ends
    register_kernel(name, family="recurrent", flops="2*B*T*d", factory=factory, replace=True,
                    memory=lambda s, e, train: float(s.batch_size * s.seq_len * s.hidden_size * e),
                    causal="always" if supports_causal else "never", train=supports_train)
    return leaks


class ListSink:
    def __init__(self):
        self.rows = []

    def write(self, row):
        self.rows.append(row)
