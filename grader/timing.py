"""Timing checks: how much faster a student's function is than a reference, measured fairly.

SPEC "Rubrics", timing checks. One measurement is:

1. warm-up: each function runs once or twice untimed-for-the-verdict (lazy initialisation,
   allocator, cuBLAS handles), the student's first call already under the slow-call limit;
2. timed pairs in the order A B B A A B ... (A the student's function, B the reference), so
   a slow drift of the machine's speed (another process, a frequency change) hits both alike;
3. every timed call gets FRESH inputs from `make_inputs()`, made outside the timed region, so
   a result cached on the input (its `data_ptr`, its `id`, a global) never helps;
4. the verdict is the median of the per-pair ratios `reference time / student time`; when it
   lies within `near` (15 %) of the threshold, more pairs are measured and all pairs count;
5. a time budget: a student call that takes `slow_factor` times the reference is stopped (a
   SIGALRM interrupts Python-level loops) and the verdict is a fail; the measurement also ends
   when `budget_s` is used (the verdict is then the median of the pairs so far), and after
   `DECISIVE_PAIRS` pairs that are all clearly below the threshold. A slow submission fails in
   seconds instead of running into the exercise's timeout.

The clocks live in grader.clocks, the result and its texts in grader.speed_verdict; the names they
export are importable from here as before (rubrics and tests import them from grader.timing).
Every function this module calls is bound when it is imported, before any student code exists in the
process: a submission that replaces `time.monotonic` or `torch.set_num_threads` later changes nothing
here (and is detected by `grader.integrity`).
"""

from __future__ import annotations

import math
import time

import torch

from .calibration import NO_CALIBRATION, NOT_SEPARABLE, ThresholdPolicy  # noqa: F401 - rubrics import them here
from .clocks import (CLOCK_CPU, CLOCK_CUDA, CLOCK_WALL, CLOCK_WALL_IDLE, FINE_DRIFT_S,  # noqa: F401 - importable here
                     PROBE_CPU_S, CallClock, SlowCall, charged_cpu, cpu_sample, describe_device, probe_cpu_clock)
from .speed_verdict import SpeedResult, calibration_record, expect_speedup, timing_picture  # noqa: F401

# Our own references, taken before any student code is loaded.
_set_num_threads = torch.set_num_threads
_monotonic = time.monotonic
_get_num_threads = torch.get_num_threads
_nan, _inf = math.nan, math.inf
_sorted, _len, _min, _max, _float, _int, _abs = sorted, len, min, max, float, int, abs

# Defaults, overridable per call (a rubric states its own if it needs to).
REPEATS = 15            # timed pairs of the first measurement
MORE_REPEATS = 30       # extra pairs when the first median is near the threshold
WARMUP = 2              # calls of each function before timing (not part of the verdict)
NEAR = 0.15             # "near the threshold": |median / threshold - 1| < NEAR
BUDGET_S = 8.0          # the whole measurement, warm-up included
SLOW_FACTOR = 10.0      # a student call longer than this many reference calls is stopped
FIRST_CALL_S = 2.0      # the student's first call may take this long whatever the reference
MIN_LIMIT_S = 0.05      # never stop a call earlier than this (timer resolution, tiny inputs)
DECISIVE_PAIRS = 5      # after this many pairs, all clearly below the threshold: stop (a clear fail)
IDLE_LIMIT = 1.5        # student's (wall / CPU) over the reference's above this: judge by wall clock


class _Stop(Exception):
    """Measuring ends early: `reason` for the message; `too_slow` makes the verdict a fail."""

    def __init__(self, reason: str, too_slow: bool):
        super().__init__(reason)
        self.reason, self.too_slow = reason, too_slow



def _median(values) -> float:
    s = _sorted(values)
    n = _len(s)
    if not n:
        return _nan
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])



def measure_speedup(student, reference, make_inputs, *, threshold: float, device="cpu",
                    verify=None, repeats: int = REPEATS, more_repeats: int = MORE_REPEATS,
                    warmup: int = WARMUP, near: float = NEAR, budget_s: float = BUDGET_S,
                    slow_factor: float = SLOW_FACTOR, first_call_s: float = FIRST_CALL_S,
                    threads: int | None = None, reference_speedup: float | None = None,
                    policy: str = "") -> SpeedResult:
    """Measure how many times faster `student(*args)` is than `reference(*args)`.

    Both callables do the complete timed work (e.g. forward and backward) and must leave
    nothing queued on the device. `make_inputs()` returns a fresh argument tuple; it is called
    for every call, outside the timed region. `verify(args, output)` (optional) is called after
    every student call, warm-up included, also outside the timed region, and may fail the check
    (a wrong or stale result earns no speed verdict). Exceptions from the student's function
    propagate unchanged. `threads`: the torch thread count every call starts with (default: the
    count now), whatever the student's code set before. `reference_speedup` and `policy` only
    travel into the result (where the threshold came from).
    """
    before = _int(_get_num_threads())
    threads = _int(threads if threads is not None else before)
    clock = CallClock(device)
    use_cpu_clock = not clock.cuda and threads == 1
    started = _monotonic()
    deadline = started + budget_s
    ref_calls: list[tuple[float, float]] = []   # (seconds, cpu seconds)
    stu_calls: list[tuple[float, float]] = []
    slow_calls: list[float] = []
    pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []  # (student, reference)
    seen = [threads]
    slow = f"one call took over {slow_factor:g}× the reference's time"
    budget = f"the time budget of {budget_s:g} s for this check was used up"

    def set_threads() -> None:
        if _get_num_threads() != threads:
            _set_num_threads(threads)

    def run_reference() -> tuple[float, float]:
        args = make_inputs()
        set_threads()
        # Our own code on one thread: its calling thread's CPU time is all of its work.
        seconds, own, _, _ = clock.call(reference, args, None)
        ref_calls.append((seconds, own))
        return seconds, own

    def run_student(first: bool) -> tuple[float, float]:
        args = make_inputs()
        limit = slow_factor * _median([c[0] for c in ref_calls])
        if first:
            limit = _max(limit, first_call_s)
        left = deadline - _monotonic()
        by_budget = left < limit
        limit = _max(MIN_LIMIT_S, _min(limit, left))
        set_threads()
        try:
            seconds, _, cpu, out = clock.call(student, args, limit)
        except SlowCall as e:
            slow_calls.append(e.args[0] if e.args else limit)
            raise _Stop(budget if by_budget else slow, too_slow=first or not by_budget) from None
        finally:
            seen.append(_int(_get_num_threads()))
        if verify is not None:
            verify(args, out)
        stu_calls.append((seconds, cpu))
        return seconds, cpu

    def choose_clock() -> tuple[str, int]:
        """The clock of the verdict, and the index of its time in a call record."""
        if clock.cuda:
            return CLOCK_CUDA, 0
        if use_cpu_clock and pairs:
            idle_s = _median([s[0] / _max(s[1], 1e-9) for s, _ in pairs])
            idle_r = _median([r[0] / _max(r[1], 1e-9) for _, r in pairs])
            if idle_s <= IDLE_LIMIT * idle_r:
                return CLOCK_CPU, 1
            return CLOCK_WALL_IDLE, 0
        return CLOCK_WALL, 0

    def pair_ratios() -> list[float]:
        index = choose_clock()[1]
        return [r[index] / _max(s[index], 1e-9) for s, r in pairs]

    def result(stop: _Stop | None = None, remeasured: bool = False) -> SpeedResult:
        name, index = choose_clock()
        ratios = pair_ratios()
        ref_s = _median([c[index] for c in ref_calls])
        too_slow = bool(stop and stop.too_slow) or not ratios
        if too_slow:  # the verdict is a fail; report the best ratio the student could have had
            worst = _max(slow_calls + [c[0] for c in stu_calls]) if (slow_calls or stu_calls) else _inf
            speedup = _median([c[0] for c in ref_calls]) / worst if worst > 0 else 0.0
            if ratios:
                speedup = _min(speedup, _median(ratios))
            student_s, ref_s = worst, _median([c[0] for c in ref_calls])
        else:
            speedup = _median(ratios)
            student_s = _median([s[index] for s, _ in pairs])
        return SpeedResult(
            speedup=_float(speedup), threshold=_float(threshold), device=describe_device(device),
            threads=threads, clock=name, pairs=_len(ratios), ratios=tuple(ratios),
            student_s=student_s, reference_s=ref_s, remeasured=remeasured,
            stopped=stop.reason if stop else "", too_slow=too_slow, elapsed_s=_monotonic() - started,
            student_times=tuple(s[index] for s, _ in pairs), reference_times=tuple(r[index] for _, r in pairs),
            resolution_s=clock.resolution_s, threads_seen=_max(seen),
            reference_speedup=None if reference_speedup is None else _float(reference_speedup), policy=policy,
        )

    def measure_pairs(count: int, start: int) -> None:
        for p in range(start, start + count):
            if _monotonic() > deadline:
                raise _Stop(budget, too_slow=False)
            if p % 2 == 0:  # A B, then B A: each function goes first half the time
                s = run_student(False)
                r = run_reference()
            else:
                r = run_reference()
                s = run_student(False)
            pairs.append((s, r))
            # A clear fail needs no more pairs: every ratio so far is well below the threshold.
            if _len(pairs) >= DECISIVE_PAIRS and _max(pair_ratios()) < threshold * (1.0 - near):
                raise _Stop(f"stopped after {_len(pairs)} pairs: every one was clearly below the threshold",
                            too_slow=False)

    try:
        try:
            # 1. warm-up (the reference first, so the student's first call has a limit to go by)
            for w in range(_max(1, warmup)):
                run_reference()
                run_student(first=(w == 0))
            # Warm-up times are not part of the verdict (the last reference call sets the limits).
            del ref_calls[:-1], stu_calls[:]
            # 2.-3. interleaved pairs on fresh inputs
            measure_pairs(repeats, 0)
        except _Stop as stop:
            return result(stop)
        # 4. near the threshold: more pairs, and the median of all of them
        first = _median(pair_ratios())
        if threshold > 0 and _abs(first / threshold - 1.0) < near:
            try:
                measure_pairs(more_repeats, repeats)
            except _Stop as stop:
                return result(stop, remeasured=True)
            return result(remeasured=True)
        return result()
    finally:
        if _get_num_threads() != before:  # as the student's code left it: the run reports what it used
            _set_num_threads(before)



__all__ = ["SpeedResult", "ThresholdPolicy", "measure_speedup", "expect_speedup", "describe_device",
           "calibration_record", "timing_picture", "cpu_sample", "charged_cpu", "probe_cpu_clock"]
