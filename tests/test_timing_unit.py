"""Unit layer for grader/timing.py: the verdict's arithmetic and texts, and measure_speedup's median,
re-measuring and early stops, driven in this process with callables that burn a known amount of CPU.

The burners spin on the calling thread's CPU clock (the clock measure_speedup judges by with one
torch thread), so a loaded machine stretches their wall time but not the ratios the tests pin."""

from __future__ import annotations

import math
import time

import pytest
import torch

from grader.checks import CheckFailure
from grader.timing import (CLOCK_CPU, CLOCK_WALL, CLOCK_WALL_IDLE, DECISIVE_PAIRS, SpeedResult, charged_cpu,
                           expect_speedup, measure_speedup)

MS = 1e-3


def burn(seconds: float) -> None:
    """Spend `seconds` of this thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def burner(*milliseconds: float):
    """A callable that burns the next of `milliseconds` on each call (the last one repeats)."""
    queue = list(milliseconds)

    def call(*args):
        burn((queue.pop(0) if len(queue) > 1 else queue[0]) * MS)
        return args

    return call


def measure(student, reference, **kw):
    kw = {"threshold": 1.5, "threads": 1, "repeats": 5, "more_repeats": 4, "warmup": 1, "budget_s": 30.0,
          "first_call_s": 2.0, **kw}
    return measure_speedup(student, reference, lambda: (), **kw)


def result(**kw) -> SpeedResult:
    base = dict(speedup=2.0, threshold=1.5, device="cpu", threads=1, clock=CLOCK_WALL, pairs=3,
                ratios=(1.5, 2.0, 2.5), student_s=0.001, reference_s=0.002)
    return SpeedResult(**{**base, **kw})


# -- SpeedResult: the verdict and its texts --------------------------------------------------------


def test_passed_needs_the_threshold_reached_measured_pairs_and_no_slow_call():
    assert result(speedup=1.5, threshold=1.5).passed  # reaching the threshold is enough
    assert not result(speedup=1.49, threshold=1.5).passed
    assert not result(speedup=3.0, too_slow=True).passed
    assert not result(speedup=3.0, pairs=0).passed
    assert not result(speedup=math.nan).passed
    assert not result(speedup=math.inf).passed


def test_summary_states_median_pairs_spread_call_times_and_clock():
    assert result().summary() == ("2× (median of 3 interleaved pairs, pair ratios 1.5–2.5; one call of yours 1 ms, "
                                  "the reference 2 ms, by wall clock)")
    one = result(pairs=1, ratios=(2.0,), student_s=0.5e-3, reference_s=1.5, remeasured=True, stopped="budget used")
    assert one.summary() == ("2× (median of 1 interleaved pair, re-measured because the first median was near the "
                             "threshold; one call of yours 500 µs, the reference 1.5 s, by wall clock; budget used)")


def test_summary_of_a_call_that_was_stopped_for_being_too_slow():
    slow = result(speedup=0.1, too_slow=True, stopped="one call took over 10× the reference's time",
                  student_s=0.02, reference_s=math.inf)
    assert slow.summary() == ("at most 0.1× (one call took over 10× the reference's time; one call of yours took "
                              "over 20 ms, one of the reference ?)")


def test_the_cpu_clock_names_its_resolution_and_where_names_threads():
    r = result(clock=CLOCK_CPU, resolution_s=2e-6, threads=2)
    assert r.clock_text() == f"{CLOCK_CPU}, resolving 2 µs"
    assert result(clock=CLOCK_CPU).clock_text() == CLOCK_CPU  # resolution unknown: not claimed
    assert r.where() == "cpu, 2 torch threads" and result().where() == "cpu, 1 torch thread"
    assert result(device="cuda (NVIDIA H100)").where() == "cuda (NVIDIA H100)"


def test_threshold_text_says_where_a_calibrated_threshold_came_from():
    assert result(threshold=1.25).threshold_text() == "1.25×"
    calibrated = result(threshold=1.25, reference_speedup=1.69, policy="the larger of 1.2× and R ** 0.5")
    assert calibrated.threshold_text() == ("1.25× (the larger of 1.2× and R ** 0.5; the reference solution reached "
                                           "1.69× here)")


def test_ratio_range_falls_back_to_the_speedup_without_pairs():
    assert (result().ratio_min, result().ratio_max) == (1.5, 2.5)
    assert (result(ratios=()).ratio_min, result(ratios=()).ratio_max) == (2.0, 2.0)


def test_expect_speedup_passes_with_its_account_and_fails_with_expected_and_found():
    account = expect_speedup(result(), what="fast_fn", reference_name="the loop", inputs="x (4, 4)", fix="vectorise")
    assert account.startswith("fast_fn: 2× the speed of the loop on cpu, 1 torch thread, threshold 1.5×.")
    with pytest.raises(CheckFailure) as failure:
        expect_speedup(result(speedup=1.2), what="fast_fn", reference_name="the loop", inputs="x (4, 4)",
                       fix="vectorise")
    text = str(failure.value)
    assert "fast_fn is not fast enough: 1.2× the speed of the loop" in text
    assert "at least 1.5× faster than the loop" in text and "vectorise" in text
    # The advice is the YAML hint's: without `fix` the failure has no Fix line, and the verdict stands.
    with pytest.raises(CheckFailure) as failure:
        expect_speedup(result(speedup=1.2), what="fast_fn", reference_name="the loop", inputs="x (4, 4)")
    assert "Fix:" not in str(failure.value) and "is not fast enough" in str(failure.value)


# -- charged_cpu: the caller's thread plus the other threads beyond the clock's lag ----------------


def test_charged_cpu_adds_other_threads_only_beyond_the_floor():
    assert charged_cpu((1.0, 5.0), (1.010, 5.010)) == pytest.approx(0.010)   # only the caller worked
    assert charged_cpu((1.0, 5.0), (1.010, 5.030)) == pytest.approx(0.030)   # 20 ms on other threads
    assert charged_cpu((1.0, 5.0), (1.010, 5.013), others_floor_s=0.004) == pytest.approx(0.010)  # within the lag
    assert charged_cpu((1.0, 5.0), (1.010, 5.015), others_floor_s=0.004) == pytest.approx(0.015)
    assert charged_cpu((1.0, 5.0), (1.010, 5.008)) == pytest.approx(0.010)   # a lagging process clock: never less


# -- measure_speedup, on the CPU clock -------------------------------------------------------------


def test_the_verdict_is_the_median_of_the_pair_ratios_so_one_outlier_does_not_move_it():
    # Warm-up 1 call, then 5 pairs; the student's third timed call is 4x slower than the others.
    r = measure(burner(2, 2, 2, 8, 2, 2, 2), burner(4))
    assert r.clock == CLOCK_CPU and r.pairs == 5 and len(r.ratios) == 5 and not r.remeasured
    assert r.ratio_min < 0.6  # the outlier pair is there ...
    assert 1.7 < r.speedup < 2.3 and r.passed  # ... and the median ignores it (a mean would be 1.7 or less)
    assert len(r.student_times) == len(r.reference_times) == 5
    assert r.student_s == pytest.approx(2 * MS, rel=0.2) and r.reference_s == pytest.approx(4 * MS, rel=0.2)


def test_a_median_near_the_threshold_is_measured_again_with_more_pairs():
    r = measure(burner(2), burner(4), threshold=2.1)  # about 2x: within 15% of 2.1
    assert r.remeasured and r.pairs == 5 + 4
    assert "re-measured because the first median was near the threshold" in r.summary()
    far = measure(burner(2), burner(4), threshold=1.2)
    assert not far.remeasured and far.pairs == 5


def test_a_clear_fail_stops_after_the_decisive_pairs():
    r = measure(burner(4), burner(2), threshold=3.0, repeats=12)  # about 0.5x against 3x
    assert r.pairs == DECISIVE_PAIRS and not r.passed and not r.too_slow
    assert r.stopped == f"stopped after {DECISIVE_PAIRS} pairs: every one was clearly below the threshold"


def test_a_call_past_the_slow_limit_is_stopped_and_fails():
    # The reference takes 1 ms: a 10x limit, raised to the 50 ms floor; the student's first timed call spins 2 s.
    started = time.monotonic()
    r = measure(burner(1, 2000), burner(1), slow_factor=10.0, threshold=0.5)
    assert time.monotonic() - started < 1.5  # interrupted, not waited for
    assert r.too_slow and not r.passed and r.pairs == 0
    assert r.stopped == "one call took over 10× the reference's time"
    assert r.summary().startswith("at most ")


def test_the_budget_ends_the_measurement_with_the_pairs_so_far():
    r = measure(burner(3), burner(6), budget_s=0.3, repeats=200, threshold=1.5)
    assert 0 < r.pairs < 200 and r.stopped == "the time budget of 0.3 s for this check was used up"
    assert not r.too_slow and 1.6 < r.speedup < 2.4  # the verdict of the pairs that were measured


def test_a_student_who_waits_off_the_cpu_is_judged_by_the_wall_clock():
    def sleeper(*args):
        time.sleep(0.01)  # no CPU time: by CPU seconds this would be "infinitely fast"

    r = measure(sleeper, burner(1), threshold=1.0)
    assert r.clock == CLOCK_WALL_IDLE and r.speedup < 0.5 and not r.passed


def test_more_than_one_torch_thread_uses_the_wall_clock():
    before = torch.get_num_threads()
    r = measure(burner(1), burner(2), threads=2, repeats=3)
    assert r.clock == CLOCK_WALL and r.threads == 2
    assert torch.get_num_threads() == before


def test_verify_sees_every_student_output_and_can_fail_the_check():
    seen = []

    def verify(args, out):
        seen.append(out)
        if len(seen) == 3:
            raise CheckFailure("stale result")

    with pytest.raises(CheckFailure, match="stale result"):
        measure(burner(1), burner(1), verify=verify)
    assert len(seen) == 3  # warm-up call, then the first two timed calls


def test_the_thread_count_a_student_sets_is_reported_and_undone():
    before = torch.get_num_threads()

    def greedy(*args):
        torch.set_num_threads(3)
        burn(MS)

    r = measure(greedy, burner(1), threshold=0.1, repeats=2)
    assert r.threads == 1 and r.threads_seen == 3
    assert torch.get_num_threads() == before


def test_the_call_clock_stops_a_loop_even_one_that_catches_the_interruption_and_restores_the_handler():
    """The timing probe uses the one limiter of grader.checks: a Python loop is stopped as SlowCall with its
    wall time, also when it catches the interruption and returns; the SIGALRM handler is restored."""
    import signal

    from grader.clocks import CallClock, SlowCall

    def spin():
        while True:
            pass

    def spin_and_swallow():
        try:
            spin()
        except BaseException:  # noqa: BLE001 - what a hostile submission does
            return torch.zeros(1)

    def handler(signum, frame):
        raise AssertionError("the previous handler ran")

    previous = signal.signal(signal.SIGALRM, handler)
    outer = signal.getitimer(signal.ITIMER_REAL)[0]  # pytest-timeout's own alarm, where it runs one
    try:
        clock = CallClock("cpu")
        for fn in (spin, spin_and_swallow):
            with pytest.raises(SlowCall) as stopped:
                clock.call(fn, (), 0.05)
            assert stopped.value.args[0] >= 0.05
            assert signal.getsignal(signal.SIGALRM) is handler
        seconds, own, _, out = clock.call(torch.ones, (3,), 5.0)
        assert out.tolist() == [1.0, 1.0, 1.0] and 0 <= seconds < 5.0
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        assert (left == 0.0) if outer == 0.0 else (outer - 30 < left <= outer)  # an outer timer goes on
    finally:
        signal.signal(signal.SIGALRM, previous)
