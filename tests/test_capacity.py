"""Capacity: the search finds the largest batch that fits (measured, B + 1 measured not to), and the
decode rows carry it with the tokens/s timed at that batch."""

import pytest

from seqbench.sweep.runner import Harness
from seqbench.sweep.budget import Preflight
from seqbench.sweep.capacity import GUARD, Attempt, largest_fitting, measure_capacity
from seqbench.results.identity import Point
from seqbench.sweep.config import build_config
from seqbench.sweep.runner import run_sweep

from kit import FakeTimer


def fake_probe(bytes_of, budget, oom_from=None):
    seen = []

    def probe(b):
        seen.append(b)
        if oom_from is not None and b >= oom_from:
            return Attempt(b, None, False, "out of memory")
        n = bytes_of(b)
        return Attempt(b, n, n <= budget)

    return probe, seen


def test_a_linear_footprint_takes_six_probes():
    probe, seen = fake_probe(lambda b: 1000 + 100 * b, 10_000)
    best, probes = largest_fitting(probe, 10_000)
    assert best == 90 and seen == [1, 2, 4, 32, 90, 91]  # the line, its check, 8x, its prediction, the neighbour
    assert [p.fits for p in probes] == [True, True, True, True, True, False]


@pytest.mark.parametrize("bytes_of, budget", [
    (lambda b: 10_000_000 + 2000 * b * b, 256 << 20),  # a state that grows with B squared (issue 26.17: 1.37 GB for 256 MiB)
    (lambda b: 1_000_000 + 4096 * b + 64 * b * b, 256 << 20),  # looks straight at B <= 4
    (lambda b: 1000 + 5 * b ** 3, 10 ** 9),
])
def test_a_footprint_that_bends_up_is_never_allocated_far_over_the_budget(bytes_of, budget):
    probe, seen = fake_probe(bytes_of, budget)
    best, _ = largest_fitting(probe, budget)
    assert bytes_of(best) <= budget < bytes_of(best + 1)
    assert max(bytes_of(b) for b in seen) <= 1.1 * budget, [(b, bytes_of(b) / budget) for b in seen]
    assert len(seen) <= 12


def test_a_footprint_that_flattens_is_not_cut_short_by_the_guard():
    probe, seen = fake_probe(lambda b: 1000 + 4000 * b ** 0.5, 10 ** 6)  # the line through 1, 2 would stop at ~1200
    best, _ = largest_fitting(probe, 10 ** 6)
    assert best == 62375 and len(seen) <= 12


def test_a_footprint_that_jumps_is_still_searched_exactly():
    # B > 50 costs 3000 more than the line through B = 1, 2 says: the prediction (90) fails, the answer is 60
    probe, seen = fake_probe(lambda b: 1000 + 100 * b + (3000 if b > 50 else 0), 10_000)
    best, probes = largest_fitting(probe, 10_000)
    assert best == 60
    assert {60, 61} <= set(seen) and next(p for p in probes if p.batch_size == 61).fits is False


def test_allocation_failures_bound_the_answer_and_far_candidates_are_not_allocated():
    probe, seen = fake_probe(lambda b: 1000 + 100 * b, 10_000, oom_from=40)
    best, _ = largest_fitting(probe, 10_000)
    assert best == 39
    probe, seen = fake_probe(lambda b: 1000 + 100 * b if b < 3 else 100, 10_000)  # a line that hides the real cost
    best, probes = largest_fitting(probe, 10_000, max_batch=10_000)
    assert all(1000 + 100 * b <= GUARD * 10_000 for b in seen)  # nothing allocated beyond twice the budget
    assert any("not allocated" in p.note for p in probes)


def test_nothing_fits_gives_zero():
    probe, _ = fake_probe(lambda b: 5000 * b, 1000)
    assert largest_fitting(probe, 1000)[0] == 0


@pytest.mark.parametrize("kernel", ["rnn_fused", "sdpa"])
def test_measured_capacity_fits_the_budget_and_one_more_sequence_does_not(kernel):
    budget = 1 << 20
    short = measure_capacity(Point(kernel, "decode", "cpu", "float32", 1, 8, 32, 4, True), budget)
    assert short.batch_size > 0 and short.peak_bytes <= budget
    above = next(p for p in short.probes if p.batch_size == short.batch_size + 1)
    assert not above.fits and (above.bytes is None or above.bytes > budget)
    if kernel == "sdpa":  # a KV cache 8 times longer leaves room for fewer sequences
        long = measure_capacity(Point(kernel, "decode", "cpu", "float32", 1, 64, 32, 4, True), budget)
        assert 0 < long.batch_size < short.batch_size


def test_decode_rows_carry_the_capacity_and_its_tokens_per_s():
    cfg = build_config({"name": "cap", "kernels": ["rnn_fused", "sdpa"], "seq_lens": [8, 16], "batch_sizes": [1, 2], "hidden_size": 16,
                        "num_heads": 4, "modes": ["decode"], "capacity": True, "min_time": 0.002, "min_repeats": 3,
                        "max_warmup": 0.01})
    rows = run_sweep(cfg, type("Sink", (), {"write": lambda self, r: None})(), run_id="t",
                     harness=Harness.scripted(FakeTimer(lambda i: 0.005)), preflight=Preflight(budget_bytes=256 * 1024))
    assert all(r.status == "ok" and r.capacity_budget_bytes == 256 * 1024 for r in rows)
    for r in rows:
        assert r.capacity_batch > 0 and r.capacity_peak_bytes <= 256 * 1024
        assert r.capacity_step_s == pytest.approx(0.005)
        assert r.capacity_tokens_per_s == pytest.approx(r.capacity_batch / 0.005)
    cap = {(r.kernel, r.seq_len, r.batch_size): r.capacity_batch for r in rows}
    assert cap["sdpa", 8, 1] == cap["sdpa", 8, 2] > cap["sdpa", 16, 1]  # one search per context, whatever B
    assert cap["rnn_fused", 8, 1] == cap["rnn_fused", 16, 1]  # a fixed-size state: the same at every context
