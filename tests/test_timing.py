"""The timer with a scripted clock: warm-up, adaptive repeats, statistics, gc, block sizing."""

import statistics

import pytest

from seqbench.measure.timer import BLOCK_TARGET_S, Measurement, _pick_number, measure, warm_up
from kit import FakeTimer


def test_warm_up_runs_until_a_slow_start_settles():
    # Caches and allocator warming: the first call costs 10 ms, decaying towards 4 ms.
    timer = FakeTimer(lambda i: 0.004 + 0.006 * 0.9**i)
    spent, settled, estimate = warm_up(lambda: None, timer, max_warmup=5.0, window=0.05)
    assert settled
    assert estimate == pytest.approx(0.004, rel=0.1)
    assert timer.calls > 25  # it did not stop while calls were still getting faster


def test_warm_up_gives_up_at_max_warmup_when_never_settled():
    timer = FakeTimer(lambda i: 0.001 * 1.05**i)  # keeps getting slower
    spent, settled, _ = warm_up(lambda: None, timer, max_warmup=0.3, window=0.02)
    assert not settled
    assert 0.3 <= spent < 0.3 + 0.1


def test_measure_collects_min_time_of_samples_after_warmup():
    timer = FakeTimer(lambda i: 0.002)
    m = measure(lambda: None, min_time=0.1, min_repeats=5, max_repeats=1000, max_warmup=1.0, timer=timer)
    assert m.number == 1  # 2 ms calls need no batching
    assert sum(m.samples) == pytest.approx(0.1, abs=0.0021)
    assert all(s == pytest.approx(0.002) for s in m.samples)
    assert m.warmup_settled


def test_min_repeats_and_max_repeats_bound_the_sample_count():
    slow = measure(lambda: None, min_time=0.01, min_repeats=7, max_warmup=0.5, timer=FakeTimer(lambda i: 0.5))
    assert len(slow.samples) == 7  # one call exceeds min_time, yet 7 samples are taken
    fast = measure(lambda: None, min_time=10.0, max_repeats=25, max_warmup=0.5, timer=FakeTimer(lambda i: 0.002))
    assert len(fast.samples) == 25


def test_fast_calls_are_timed_in_blocks_and_reported_per_call():
    timer = FakeTimer(lambda i: 10e-6)
    m = measure(lambda: None, min_time=0.05, max_warmup=0.5, timer=timer)
    assert m.number == _pick_number(10e-6)
    assert m.number * 10e-6 >= BLOCK_TARGET_S
    assert m.median == pytest.approx(10e-6)


def test_gc_is_off_while_timing_and_restored_after():
    import gc

    timer = FakeTimer(lambda i: 0.001)
    assert gc.isenabled()
    measure(lambda: None, min_time=0.01, max_warmup=0.05, timer=timer)
    assert timer.gc_states and not any(timer.gc_states)
    assert gc.isenabled()


def test_statistics_on_hand_picked_samples():
    m = Measurement(samples=[1.0, 2.0, 3.0, 4.0, 10.0], number=1, warmup_s=0.0, warmup_settled=True)
    assert m.median == 3.0
    assert m.min == 1.0
    assert m.mean == 4.0
    assert m.iqr == pytest.approx(statistics.quantiles([1, 2, 3, 4, 10], n=4, method="inclusive")[2] - 2.0)
    assert m.iqr == 2.0  # inclusive quartiles of 1,2,3,4,10 are 2 and 4


def test_real_clock_returns_positive_samples():
    m = measure(lambda: sum(range(100)), min_time=0.01, max_warmup=0.05)
    assert m.samples and all(s > 0 for s in m.samples)
    assert m.min <= m.median <= max(m.samples)


def test_a_slow_first_call_alone_is_not_a_timeout():
    """One-off costs (cuDNN plans, lazy init) made a 0.2 ms bf16 SDPA call take 0.6 s the first time."""
    from seqbench.measure.timer import CallTooSlow

    cold = FakeTimer(lambda i: 1.0 if i == 0 else 0.002)
    m = measure(lambda: None, min_time=0.02, max_warmup=0.5, max_call=0.5, timer=cold)
    assert m.median == pytest.approx(0.002)
    slow = FakeTimer(lambda i: 1.0 if i == 0 else 0.8)
    with pytest.raises(CallTooSlow, match="0.8 s, over the 0.5 s limit"):
        measure(lambda: None, min_time=0.02, max_warmup=0.5, max_call=0.5, timer=slow)
    assert slow.calls == 2  # it gave up after the second slow call
