"""Factories and helpers the tests share (fixtures live in conftest.py). Import as `from kit import ...`."""

from __future__ import annotations

HF_SOURCE = "seqbench.kernels.hf"  # the optional Hugging Face blocks (tests/test_hf_blocks.py covers them)


def builtin_kernels(registry=None) -> dict:
    """seqbench's own kernels, name -> spec: built in, and not the optional HF blocks (which a test may have
    registered in this process)."""
    from seqbench.kernels import KERNELS

    registry = KERNELS if registry is None else registry
    return {k: s for k, s in registry.items() if s.builtin and not s.source.startswith(HF_SOURCE)}


TINY = {"hidden_size": 8, "num_heads": 2, "min_time": 0.004, "min_repeats": 3, "max_warmup": 0.05}


def tiny_config(**fields):
    """The one config builder of the tests: a sweep that finishes in well under a second; fields override."""
    from seqbench.sweep.config import build_config

    data = {"name": "t", "kernels": ["rnn_loop"], "seq_lens": [8, 16], "batch_sizes": [1], **TINY}
    data.update(fields)
    return build_config(data, source="test")


# Two scripted clocks, for two kinds of test: FakeTimer scripts time by call (the timer's own logic:
# warm-up, blocks, outliers); FakeClock by the point's sequence length (sweeps of Probe kernels, whose
# faults depend on T). Neither reads a real clock.


class FakeTimer:
    """A block timer whose cost follows a script by call: per_call(call_index) seconds, fn really run every call.
    Records whether gc was on in each block (measure turns it off). Run a sweep on it with
    harness=Harness.scripted(FakeTimer(...))."""

    def __init__(self, per_call):
        self.per_call = per_call  # callable(call_index) -> seconds
        self.calls = 0
        self.gc_states = []

    def __call__(self, fn, number):
        import gc

        self.gc_states.append(gc.isenabled())
        total = 0.0
        for _ in range(number):
            fn()  # really run it (tiny shapes in tests), so failures surface as they would
            total += self.per_call(self.calls)
            self.calls += 1
        return total


class FakeClock:
    """A block timer whose cost follows a script by sequence length: runs fn once a block (so faults
    fire) and charges `per_call(T)` seconds per call.

    T is the sequence length of the last input a Probe kernel saw; `hook(T)` runs on every block.
    """

    def __init__(self, per_call=lambda t: 0.01, hook=None):
        self.per_call, self.hook, self.last_t = per_call, hook, 0

    def __call__(self, fn, number):
        fn()
        if self.hook:
            self.hook(self.last_t)
        return self.per_call(self.last_t) * number


def one_line_error(captured, rc: int, *needles: str) -> None:
    """The bad-input contract: exit code 2, one line on stderr ("seqbench: error: ..."), no traceback,
    and the words that say what is wrong and what is allowed. captured: pytest's capsys or capfd."""
    err = captured.readouterr().err
    assert rc == 2, (rc, err)
    assert err.count("\n") == 1 and err.startswith("seqbench: error: "), err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
