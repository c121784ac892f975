"""The clocks of a speed check: how long one call took, on a GPU by CUDA events, on the CPU by the wall
clock and by the CPU time charged to it (`CallClock.call`, `cpu_sample`, `charged_cpu`, `probe_cpu_clock`).

grader.timing runs the measurement protocol (pairs, medians, budget) on top of these; this module only
reads clocks, so the subtle part (which CPU clock can be trusted inside the sandbox) reads on its own.

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
kernel where that does not hold, the difference is noise of up to a tick either way: `CallClock`
probes how far the two clocks drift apart while only the calling thread works, and charges the
other threads only beyond that (`others_floor_s`, reported). The reference (our own code, one
torch thread) is charged its calling thread only, so a student thread that burns CPU while the
reference runs cannot make the reference look slow.

Every time, signal, gc and torch function used here (and in grader.timing) is bound when this module is imported,
before any student code exists in the process: a submission that replaces `time.perf_counter`
or `torch.cuda.synchronize` later changes nothing here (and is detected by `grader.integrity`).
"""

from __future__ import annotations

import gc
import time

import torch

from .checks.probes import time_limit as _time_limit

# Our own references, taken before any student code is loaded.
_perf_counter = time.perf_counter
_process_time = time.process_time
_thread_time = time.thread_time
_cuda_synchronize = torch.cuda.synchronize
_cuda_Event = torch.cuda.Event
_event_record = torch.cuda.Event.record
_event_synchronize = torch.cuda.Event.synchronize
_event_elapsed_ms = torch.cuda.Event.elapsed_time
_cuda_device_name = torch.cuda.get_device_name
_torch_device = torch.device
_gc_disable = gc.disable
_gc_enable = gc.enable
_gc_isenabled = gc.isenabled
_max, _abs = max, abs

PROBE_CPU_S = 0.005     # how long `CallClock` watches the process clock against the thread clock
FINE_DRIFT_S = 50e-6    # drift below this while probing: the process clock follows the thread clock

CLOCK_CPU = "CPU time of the calling thread and of any other thread of the run"
CLOCK_WALL = "wall clock"
# No parentheses in a clock's name: `grader validate` masks a measurement's account by its parentheses, and
# which clock judged may differ between two gradings of the same code on a loaded machine.
CLOCK_WALL_IDLE = "wall clock, as your calls waited off the CPU and CPU time would flatter them"
CLOCK_CUDA = "CUDA events"


class SlowCall(BaseException):
    """A student call ran past its limit (`grader.checks.time_limit` stopped it); carries the wall seconds.

    A BaseException, so a student's `except Exception:` does not swallow it."""


class _NoLimit:
    """A call without a limit (the reference's)."""

    ran_out = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_LIMIT = _NoLimit()



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


class CallClock:
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
        SlowCall(wall seconds) past `limit_s`. `seconds` is the CUDA-event time on a GPU, the wall
        time on the CPU; "own" is the calling thread's CPU time, "all" adds the other threads'."""
        self.sync()
        if self.cuda:
            start, end = _cuda_Event(enable_timing=True), _cuda_Event(enable_timing=True)
        # The one limiter of grader.checks: its SIGALRM stops a Python-level loop, and it knows when the
        # call ran out even if the student's code caught the interruption and went on.
        limit = _time_limit(_max(limit_s, 1e-3)) if limit_s is not None else _NO_LIMIT
        gc_was_enabled = _gc_isenabled()
        _gc_disable()  # a collection inside one call would land on whoever happens to allocate
        wall = 0.0
        try:
            with limit:
                c0 = cpu_sample()
                t0 = _perf_counter()
                try:
                    if self.cuda:
                        _event_record(start)
                    out = fn(*args)
                    if self.cuda:
                        _event_record(end)
                        _event_synchronize(end)
                    c1 = cpu_sample()
                finally:
                    wall = _perf_counter() - t0
        finally:
            if gc_was_enabled:
                _gc_enable()
        if limit.ran_out:  # also when the alarm came as the call returned: it still took too long
            raise SlowCall(wall)
        seconds = _event_elapsed_ms(start, end) / 1e3 if self.cuda else wall
        return seconds, c1[0] - c0[0], charged_cpu(c0, c1, self.others_floor_s), out

