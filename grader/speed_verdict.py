"""The verdict of a speed check: `SpeedResult` (one measurement as plain data), its texts for the
student, `expect_speedup` (the pass or fail with its account), and the data of its feedback picture.

grader.timing measures; this module words what was measured. Every builtin it uses is bound at import,
before any student code exists (module docstring of grader.clocks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .checks import fail
from .clocks import CLOCK_CPU

_isfinite = math.isfinite
_min, _max = min, max


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



def calibration_record(result: SpeedResult) -> dict:
    """What a calibration run reports of its measurement (plain data, in the student's job)."""
    return {"speedup": result.speedup, "pairs": result.pairs, "clock": result.clock, "device": result.device,
            "resolution_s": result.resolution_s, "solution_s": result.student_s, "reference_s": result.reference_s,
            "ratio_min": result.ratio_min, "ratio_max": result.ratio_max}


def expect_speedup(result: SpeedResult, *, what: str, reference_name: str, inputs: str, fix: str | None = None) -> str:
    """Fail the check unless `result` passed; the message states ratio, threshold, threads, device (the advice on
    how to be faster is the check's YAML hint; `fix` only for advice that depends on what was measured).
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

