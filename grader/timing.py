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

Clocks. On a GPU every call is bracketed by CUDA events after `torch.cuda.synchronize()`. On the
CPU each call is bracketed by `time.perf_counter` (wall) and `time.process_time` (CPU seconds of
this process, all its threads). With one torch thread (the worker's default) the verdict uses the
CPU seconds: time the process spends descheduled because of other load on the machine does not
count, so a busy neighbour does not change verdicts (measured: pair ratios spread about half as
much as with the wall clock on a loaded 2-core machine), and extra threads a submission starts
count in full. A submission that waits (sleeps, or lets another process compute) would look fast
in CPU seconds; when the student's calls spend clearly more of their wall time off the CPU than
the reference's (`IDLE_LIMIT`), the wall clock is used instead. With more than one torch thread
the wall clock is used. The clock, the torch thread count and the device are part of the result
and of every failure message.

Every time, signal, gc and torch function used here is bound when this module is imported,
before any student code exists in the process: a submission that replaces `time.perf_counter`
or `torch.cuda.synchronize` later changes nothing here (and is detected by `grader.integrity`).
"""

from __future__ import annotations

import gc
import math
import signal
import time
from dataclasses import dataclass

import torch

from .checks import fail

# Our own references, taken before any student code is loaded.
_perf_counter = time.perf_counter
_process_time = time.process_time
_monotonic = time.monotonic
_get_num_threads = torch.get_num_threads
_cuda_synchronize = torch.cuda.synchronize
_cuda_Event = torch.cuda.Event
_event_record = torch.cuda.Event.record
_event_synchronize = torch.cuda.Event.synchronize
_event_elapsed_ms = torch.cuda.Event.elapsed_time
_cuda_device_name = torch.cuda.get_device_name
_torch_device = torch.device
_setitimer = signal.setitimer
_signal = signal.signal
_getsignal = signal.getsignal
_ITIMER_REAL = signal.ITIMER_REAL
_SIGALRM = signal.SIGALRM
_SIG_DFL = signal.SIG_DFL
_gc_disable = gc.disable
_gc_enable = gc.enable
_gc_isenabled = gc.isenabled
_isfinite = math.isfinite
_nan, _inf = math.nan, math.inf
_sorted, _len, _min, _max, _float, _int, _abs = sorted, len, min, max, float, int, abs
_BaseException, _isinstance = BaseException, isinstance

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

CLOCK_CPU = "CPU time of the grading process"
CLOCK_WALL = "wall clock"
CLOCK_WALL_IDLE = "wall clock (your calls waited off the CPU, so CPU time would flatter them)"
CLOCK_CUDA = "CUDA events"


class _SlowCall(BaseException):
    """Raised by our SIGALRM handler inside a student call that ran past its limit.

    A BaseException, so a student's `except Exception:` does not swallow it."""


class _Stop(Exception):
    """Measuring ends early: `reason` for the message; `too_slow` makes the verdict a fail."""

    def __init__(self, reason: str, too_slow: bool):
        super().__init__(reason)
        self.reason, self.too_slow = reason, too_slow


@dataclass(frozen=True)
class SpeedResult:
    """One measurement: `speedup` = median over pairs of (reference time / student time)."""

    speedup: float
    threshold: float
    device: str                     # "cpu", or "cuda (NVIDIA H100 80GB HBM3)"
    threads: int                    # torch intra-op threads during the measurement
    clock: str                      # which clock the verdict used (CLOCK_*)
    pairs: int                      # timed pairs the verdict is based on
    ratios: tuple[float, ...]       # every pair's ratio, in measuring order, by `clock`
    student_s: float                # median time of one student call (the slowest, if too slow)
    reference_s: float              # median time of one reference call
    remeasured: bool = False        # the first median was near the threshold: more pairs were run
    stopped: str = ""               # why measuring ended early ("" if it did not)
    too_slow: bool = False          # a student call ran past the slow-call limit: fails outright
    elapsed_s: float = 0.0          # wall time of the whole measurement, warm-up included

    @property
    def passed(self) -> bool:
        return not self.too_slow and self.pairs > 0 and _isfinite(self.speedup) and self.speedup >= self.threshold

    @property
    def ratio_min(self) -> float:
        return _min(self.ratios) if self.ratios else self.speedup

    @property
    def ratio_max(self) -> float:
        return _max(self.ratios) if self.ratios else self.speedup

    def where(self) -> str:
        if self.device != "cpu":
            return self.device
        return f"cpu, {self.threads} torch thread{'s' if self.threads != 1 else ''}"

    def summary(self) -> str:
        """The measured facts in one line, for a failure message or a report."""
        if self.too_slow:
            return (f"at most {self.speedup:.3g}× ({self.stopped}; one call of yours took over "
                    f"{_ms(self.student_s)}, one of the reference {_ms(self.reference_s)})")
        spread = f", pair ratios {self.ratio_min:.3g}–{self.ratio_max:.3g}" if self.pairs > 1 else ""
        more = ", re-measured because the first median was near the threshold" if self.remeasured else ""
        cut = f"; {self.stopped}" if self.stopped else ""
        return (f"{self.speedup:.3g}× (median of {self.pairs} interleaved pair{'s' if self.pairs != 1 else ''}"
                f"{spread}{more}; one call of yours {_ms(self.student_s)}, the reference "
                f"{_ms(self.reference_s)}, by {self.clock}{cut})")


def _ms(seconds: float) -> str:
    if not _isfinite(seconds):
        return "?"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _median(values) -> float:
    s = _sorted(values)
    n = _len(s)
    if not n:
        return _nan
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def describe_device(device) -> str:
    device = _torch_device(device)
    if device.type == "cuda":
        try:
            return f"cuda ({_cuda_device_name(device)})"
        except Exception:  # noqa: BLE001 - the name is decoration only
            return "cuda"
    return device.type


class _Clock:
    """Times one call on `device`: CUDA events after a synchronisation, or perf_counter + process_time."""

    def __init__(self, device):
        self.device = _torch_device(device)
        self.cuda = self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            _cuda_synchronize(self.device)

    def call(self, fn, args, limit_s: float | None):
        """(seconds, cpu seconds, output) of `fn(*args)`; raises _SlowCall(wall seconds) past `limit_s`.

        `seconds` is the CUDA-event time on a GPU, the wall time on the CPU."""
        self.sync()
        if self.cuda:
            start, end = _cuda_Event(enable_timing=True), _cuda_Event(enable_timing=True)
        armed, fired = [True], []

        def on_alarm(signum, frame):
            if armed:  # an alarm that arrives while we tidy up is ignored
                fired.append(True)
                raise _SlowCall()

        previous = None
        if limit_s is not None:
            previous = _getsignal(_SIGALRM)
            _signal(_SIGALRM, on_alarm)
            _setitimer(_ITIMER_REAL, _max(limit_s, 1e-3))
        gc_was_enabled = _gc_isenabled()
        _gc_disable()  # a collection inside one call would land on whoever happens to allocate
        c0 = _process_time()
        t0 = _perf_counter()
        try:
            if self.cuda:
                _event_record(start)
            out = fn(*args)
            if self.cuda:
                _event_record(end)
                _event_synchronize(end)
            wall = _perf_counter() - t0
            cpu = _process_time() - c0
            armed.clear()
        except _BaseException as e:
            wall = _perf_counter() - t0
            armed.clear()
            if fired or _isinstance(e, _SlowCall):
                raise _SlowCall(wall) from None
            raise
        finally:
            armed.clear()
            if limit_s is not None:
                _setitimer(_ITIMER_REAL, 0.0)
                _signal(_SIGALRM, previous if previous is not None else _SIG_DFL)
            if gc_was_enabled:
                _gc_enable()
        if fired:  # the alarm came as the call returned: it still took too long
            raise _SlowCall(wall)
        seconds = _event_elapsed_ms(start, end) / 1e3 if self.cuda else wall
        return seconds, cpu, out


def measure_speedup(student, reference, make_inputs, *, threshold: float, device="cpu",
                    verify=None, repeats: int = REPEATS, more_repeats: int = MORE_REPEATS,
                    warmup: int = WARMUP, near: float = NEAR, budget_s: float = BUDGET_S,
                    slow_factor: float = SLOW_FACTOR, first_call_s: float = FIRST_CALL_S) -> SpeedResult:
    """Measure how many times faster `student(*args)` is than `reference(*args)`.

    Both callables do the complete timed work (e.g. forward and backward) and must leave
    nothing queued on the device. `make_inputs()` returns a fresh argument tuple; it is called
    for every call, outside the timed region. `verify(args, output)` (optional) is called after
    every student call, also outside the timed region, and may fail the check (a wrong or stale
    result earns no speed verdict). Exceptions from the student's function propagate unchanged.
    """
    clock = _Clock(device)
    threads = _int(_get_num_threads())
    use_cpu_clock = not clock.cuda and threads == 1
    started = _monotonic()
    deadline = started + budget_s
    ref_calls: list[tuple[float, float]] = []   # (seconds, cpu seconds)
    stu_calls: list[tuple[float, float]] = []
    slow_calls: list[float] = []
    pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []  # (student, reference)
    slow = f"one call took over {slow_factor:g}× the reference's time"
    budget = f"the time budget of {budget_s:g} s for this check was used up"

    def run_reference() -> tuple[float, float]:
        args = make_inputs()
        seconds, cpu, _ = clock.call(reference, args, None)
        ref_calls.append((seconds, cpu))
        return seconds, cpu

    def run_student(first: bool) -> tuple[float, float]:
        args = make_inputs()
        limit = slow_factor * _median([c[0] for c in ref_calls])
        if first:
            limit = _max(limit, first_call_s)
        left = deadline - _monotonic()
        by_budget = left < limit
        limit = _max(MIN_LIMIT_S, _min(limit, left))
        try:
            seconds, cpu, out = clock.call(student, args, limit)
        except _SlowCall as e:
            slow_calls.append(e.args[0] if e.args else limit)
            raise _Stop(budget if by_budget else slow, too_slow=first or not by_budget) from None
        if verify is not None:
            verify(args, out)
        stu_calls.append((seconds, cpu))
        return seconds, cpu

    def choose_clock() -> tuple[str, list[float]]:
        """The clock of the verdict, and every pair's ratio by it."""
        if clock.cuda:
            return CLOCK_CUDA, [r[0] / s[0] for s, r in pairs]
        if use_cpu_clock and pairs:
            idle_s = _median([s[0] / _max(s[1], 1e-9) for s, _ in pairs])
            idle_r = _median([r[0] / _max(r[1], 1e-9) for _, r in pairs])
            if idle_s <= IDLE_LIMIT * idle_r:
                return CLOCK_CPU, [r[1] / _max(s[1], 1e-9) for s, r in pairs]
            return CLOCK_WALL_IDLE, [r[0] / s[0] for s, r in pairs]
        return CLOCK_WALL, [r[0] / s[0] for s, r in pairs]

    def result(stop: _Stop | None = None, remeasured: bool = False) -> SpeedResult:
        name, ratios = choose_clock()
        index = 1 if name == CLOCK_CPU else 0
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
            if _len(pairs) >= DECISIVE_PAIRS and _max(choose_clock()[1]) < threshold * (1.0 - near):
                raise _Stop(f"stopped after {_len(pairs)} pairs: every one was clearly below the threshold",
                            too_slow=False)

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
    first = _median(choose_clock()[1])
    if threshold > 0 and _abs(first / threshold - 1.0) < near:
        try:
            measure_pairs(more_repeats, repeats)
        except _Stop as stop:
            return result(stop, remeasured=True)
        return result(remeasured=True)
    return result()


def expect_speedup(result: SpeedResult, *, what: str, reference_name: str, inputs: str, fix: str) -> None:
    """Fail the check unless `result` passed; the message states ratio, threshold, threads, device."""
    if result.passed:
        return
    fail(
        f"{what} is not fast enough: {result.speedup:.3g}× the speed of {reference_name}, "
        f"the threshold on {result.where()} is {result.threshold:g}×",
        expected=f"forward+backward at least {result.threshold:g}× faster than {reference_name} "
                 f"(median of the per-pair time ratios)",
        found=result.summary(),
        where=f"{result.where()}; {inputs}, fresh random inputs for every timed call",
        fix=fix,
    )


__all__ = ["SpeedResult", "measure_speedup", "expect_speedup", "describe_device"]
