"""What the timing clock resolves inside a sandboxed run, where RLIMIT_CPU arms the process CPU timer.

Each check reports its numbers as its feedback (`grader.checks.FEEDBACK`), for tests/test_timing.py."""

import resource
import time

import torch

from grader.checks import FEEDBACK, fail, need
from grader.timing import CLOCK_CPU, measure_speedup


def steps(clock, count=5, limit_s=0.2):
    """The first `count` steps of `clock` while this thread spins (seconds)."""
    found, prev = [], clock()
    deadline = time.perf_counter() + limit_s
    while len(found) < count and time.perf_counter() < deadline:
        now = clock()
        if now != prev:
            found.append(now - prev)
            prev = now
    return found


def test_cpu_limit_is_armed(record_property):
    """RLIMIT_CPU is set in the run, and what process_time does then"""
    soft, _ = resource.getrlimit(resource.RLIMIT_CPU)
    if soft == resource.RLIM_INFINITY:
        fail("no CPU-time limit in the run", expected="RLIMIT_CPU set by the sandbox", found="unlimited")
    process = steps(time.process_time)
    record_property(FEEDBACK, f"rlimit_cpu={soft} process_time_step_ms={max(process) * 1e3:.4f}")


def test_clock_resolves(student, record_property):
    """the speed check's clock resolves sub-millisecond calls"""
    spin = need(student, "spin")
    result = measure_speedup(lambda n: spin(n), lambda n: spin(2 * n), lambda: (20000,), threshold=0.0,
                             repeats=9, threads=1)
    if result.clock != CLOCK_CPU:
        fail("the speed check did not use the CPU clock", expected=CLOCK_CPU, found=result.clock)
    times = ",".join(f"{t * 1e3:.4f}" for t in result.student_times)
    record_property(FEEDBACK, f"resolution_ms={result.resolution_s * 1e3:.4f} speedup={result.speedup:.4f} "
                              f"student_ms={times} threads={torch.get_num_threads()}")
