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
CPU each call is bracketed by `time.perf_counter` (wall) and by `cpu_sample()` (CPU seconds, see
below). With one torch thread (the worker's default) the verdict uses the CPU seconds: time the
process spends descheduled because of other load on the machine does not count, so a busy
neighbour does not change verdicts, and extra threads a submission starts count in full. A
submission that waits (sleeps, or lets another process compute) would look fast in CPU seconds;
when the student's calls spend clearly more of their wall time off the CPU than the reference's
(`IDLE_LIMIT`), the wall clock is used instead. With more than one torch thread the wall clock is
used. The clock, the torch thread count and the device are part of the result and of every message.

Which CPU clock (issue 12). `time.process_time()` (CLOCK_PROCESS_CPUTIME_ID) is exact until a
process CPU timer is armed; the sandbox arms one (RLIMIT_CPU), and from then on Linux answers the
process clock from the timer's group counters, which advance once per scheduler tick: 4 ms steps
for calls of 8-16 ms, so ratios snapped to 1x, 1.33x, 1.5x. The per-thread clock of the calling
thread (CLOCK_THREAD_CPUTIME_ID) still resolves the work to the microsecond, and with one torch
thread the whole forward and CPU backward run on that thread. A submission must not gain by
starting threads, so a call is charged

    caller thread's CPU delta + max(0, process CPU delta - caller thread's CPU delta)

the second term being the other threads' CPU (its own threads, torch's intra-op pool if it raised
the thread count, threads that ended during the call: the process clock keeps their time, a
listing of /proc/self/task would lose them). The process clock is read right after the thread
clock: reading a thread's clock brings the scheduler's account of it up to date, group counters
included, so on Linux the caller's share of the process clock is exact too and the difference is
the other threads' time alone (checked: within microseconds for a single-threaded call). On a
kernel where that does not hold, the difference is noise of up to a tick either way: `_Clock`
probes how far the two clocks drift apart while only the calling thread works, and charges the
other threads only beyond that (`others_floor_s`, reported). The reference (our own code, one
torch thread) is charged its calling thread only, so a student thread that burns CPU while the
reference runs cannot make the reference look slow.

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

from .calibration import NO_CALIBRATION, NOT_SEPARABLE, ThresholdPolicy  # noqa: F401 - rubrics import them here
from .checks import fail

# Our own references, taken before any student code is loaded.
_perf_counter = time.perf_counter
_process_time = time.process_time
_thread_time = time.thread_time
_set_num_threads = torch.set_num_threads
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
PROBE_CPU_S = 0.005     # how long `_Clock` watches the process clock against the thread clock
FINE_DRIFT_S = 50e-6    # drift below this while probing: the process clock follows the thread clock

CLOCK_CPU = "CPU time of the calling thread and of any other thread of the run"
CLOCK_WALL = "wall clock"
# No parentheses in a clock's name: `grader validate` masks a measurement's account by its parentheses, and
# which clock judged may differ between two gradings of the same code on a loaded machine.
CLOCK_WALL_IDLE = "wall clock, as your calls waited off the CPU and CPU time would flatter them"
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
    """One measurement: `speedup` = median over pairs of (reference time / student time).

    Plain data throughout (a feedback picture can be drawn from `student_times`, `reference_times`
    and `threshold`); `reference_speedup` is what the reference solution achieved against the same
    reference on this machine (calibration), when the threshold was derived from it."""

    speedup: float
    threshold: float
    device: str                     # "cpu", or "cuda (NVIDIA H100 80GB HBM3)"
    threads: int                    # torch intra-op threads during the measurement (the configured count)
    clock: str                      # which clock the verdict used (CLOCK_*)
    pairs: int                      # timed pairs the verdict is based on
    ratios: tuple[float, ...]       # every pair's ratio, in measuring order, by `clock`
    student_s: float                # median time of one student call (the slowest, if too slow)
    reference_s: float              # median time of one reference call
    remeasured: bool = False        # the first median was near the threshold: more pairs were run
    stopped: str = ""               # why measuring ended early ("" if it did not)
    too_slow: bool = False          # a student call ran past the slow-call limit: fails outright
    elapsed_s: float = 0.0          # wall time of the whole measurement, warm-up included
    student_times: tuple[float, ...] = ()    # per pair, seconds of the student's call, by `clock`
    reference_times: tuple[float, ...] = ()  # per pair, seconds of the reference's call, by `clock`
    resolution_s: float = 0.0       # the clock's step as probed here (CPU: how finely it resolves a call)
    threads_seen: int = 0           # the most torch threads found set after a student call
    reference_speedup: float | None = None   # the reference solution's own speed-up here (calibration)
    policy: str = ""                # how `threshold` was chosen, in words

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
                f"{_ms(self.reference_s)}, by {self.clock_text()}{cut})")

    def clock_text(self) -> str:
        if self.clock == CLOCK_CPU and self.resolution_s > 0:
            return f"{self.clock}, resolving {_ms(self.resolution_s)}"
        return self.clock

    def threshold_text(self) -> str:
        """Where the threshold comes from: "1.3× (..., the reference solution reached 1.69× here)"."""
        if self.reference_speedup is None:
            return f"{self.threshold:.3g}×"
        return (f"{self.threshold:.3g}× ({self.policy}; the reference solution reached "
                f"{self.reference_speedup:.3g}× here)")


def _ms(seconds: float) -> str:
    if not _isfinite(seconds):
        return "?"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
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


def cpu_sample() -> tuple[float, float]:
    """(CPU seconds of the calling thread, CPU seconds of the process), the thread clock read first
    (module docstring: reading it brings the process clock up to date with this thread)."""
    return _thread_time(), _process_time()


def charged_cpu(start: tuple[float, float], end: tuple[float, float], others_floor_s: float = 0.0) -> float:
    """CPU seconds of a call from two `cpu_sample()`s: the calling thread's, plus the other threads'
    when they exceed `others_floor_s` (how far the process clock may lag the thread clock here)."""
    own = end[0] - start[0]
    others = (end[1] - start[1]) - own
    return own + others if others > others_floor_s else own


def probe_cpu_clock(duration_s: float = PROBE_CPU_S) -> tuple[float, float]:
    """(resolution, others_floor) of the CPU clock here, watched for `duration_s` of busy work on
    this thread alone. The resolution is the largest step of the calling thread's clock between two
    samples; the floor is 0 when the process clock followed the thread clock within FINE_DRIFT_S,
    else 1.5 times its largest lag (a scheduler tick or more: other threads then count beyond it)."""
    start = prev = cpu_sample()
    drift = step = 0.0
    while prev[0] - start[0] < duration_s:
        now = cpu_sample()
        drift = _max(drift, _abs((now[1] - start[1]) - (now[0] - start[0])))
        step = _max(step, now[0] - prev[0])
        prev = now
    return step, (0.0 if drift <= FINE_DRIFT_S else 1.5 * _max(drift, 0.004))


class _Clock:
    """Times one call on `device`: CUDA events after a synchronisation, or perf_counter + `cpu_sample`."""

    def __init__(self, device):
        self.device = _torch_device(device)
        self.cuda = self.device.type == "cuda"
        self.resolution_s, self.others_floor_s = (0.0, 0.0) if self.cuda else probe_cpu_clock()

    def sync(self) -> None:
        if self.cuda:
            _cuda_synchronize(self.device)

    def call(self, fn, args, limit_s: float | None):
        """(seconds, own cpu seconds, all threads' cpu seconds, output) of `fn(*args)`; raises
        _SlowCall(wall seconds) past `limit_s`. `seconds` is the CUDA-event time on a GPU, the wall
        time on the CPU; "own" is the calling thread's CPU time, "all" adds the other threads'."""
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
        c0 = cpu_sample()
        t0 = _perf_counter()
        try:
            if self.cuda:
                _event_record(start)
            out = fn(*args)
            if self.cuda:
                _event_record(end)
                _event_synchronize(end)
            wall = _perf_counter() - t0
            c1 = cpu_sample()
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
        return seconds, c1[0] - c0[0], charged_cpu(c0, c1, self.others_floor_s), out


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
    clock = _Clock(device)
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
        except _SlowCall as e:
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


# -- thresholds: fixed, or calibrated on the grading machine ---------------------------------------

# (ThresholdPolicy, how the YAML sets a threshold, lives in calibration.py: the grader reads it without torch.)


def calibration_record(result: SpeedResult) -> dict:
    """What a calibration run reports of its measurement (plain data, in the student's job)."""
    return {"speedup": result.speedup, "pairs": result.pairs, "clock": result.clock, "device": result.device,
            "resolution_s": result.resolution_s, "solution_s": result.student_s, "reference_s": result.reference_s,
            "ratio_min": result.ratio_min, "ratio_max": result.ratio_max}


def expect_speedup(result: SpeedResult, *, what: str, reference_name: str, inputs: str, fix: str) -> str:
    """Fail the check unless `result` passed; the message states ratio, threshold, threads, device.
    On a pass, returns the same account for the feedback (SPEC: the ratio is shown on a pass too)."""
    if result.passed:
        return (f"{what}: {result.speedup:.3g}× the speed of {reference_name} on {result.where()}, "
                f"threshold {result.threshold_text()}.\nMeasured: {result.summary()}")
    fail(
        f"{what} is not fast enough: {result.speedup:.3g}× the speed of {reference_name}, "
        f"the threshold on {result.where()} is {result.threshold_text()}",
        expected=f"forward+backward at least {result.threshold:.3g}× faster than {reference_name} "
                 f"(median of the per-pair time ratios)",
        found=result.summary(),
        where=f"{result.where()}; {inputs}, fresh random inputs for every timed call",
        fix=fix,
        picture=timing_picture(result, reference_name),
    )


def timing_picture(result: SpeedResult, reference_name: str) -> dict | None:
    """The measurement the verdict came from, as plain data for the feedback picture (grader.pictures):
    every timed pair of calls, the median ratio and the threshold."""
    pairs = [(s, r) for s, r in zip(result.student_times, result.reference_times) if _isfinite(s) and _isfinite(r)]
    if not pairs:
        return None
    caption = f"median of {len(pairs)} interleaved pairs, by {result.clock} on {result.where()}"
    if result.reference_speedup is not None:
        caption += f"; the reference solution reached {result.reference_speedup:.3g}x here"
    short = reference_name.split(" (", 1)[0].removeprefix("the ")  # "torch.pdist version": a label, not a sentence
    return {"kind": "timing", "title": f"your calls against the {short}", "caption": caption,
            "student_label": "yours", "reference_label": short,
            "student_s": [s for s, _ in pairs], "reference_s": [r for _, r in pairs],
            "ratio": result.speedup, "threshold": result.threshold}


__all__ = ["SpeedResult", "ThresholdPolicy", "measure_speedup", "expect_speedup", "describe_device",
           "calibration_record", "timing_picture", "cpu_sample", "charged_cpu", "probe_cpu_clock"]
