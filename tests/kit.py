"""Factories and helpers the tests share (fixtures live in conftest.py). Import as `from kit import ...`."""

from __future__ import annotations

HF_SOURCE = "seqbench.kernels.hf"  # the optional Hugging Face blocks (tests/test_hf_blocks.py covers them)


def builtin_kernels(registry=None) -> dict:
    """seqbench's own kernels, name -> spec: built in, and not the optional HF blocks (which a test may have
    registered in this process)."""
    from seqbench.kernels import KERNELS

    registry = KERNELS if registry is None else registry
    return {k: s for k, s in registry.items() if s.builtin and not s.source.startswith(HF_SOURCE)}
