"""Calibrated speed thresholds: the reference solution's own speed, measured where the grading happens.

SPEC "Rubrics": a timing threshold is calibrated on the machine that grades. A rubric that wants
it defines `calibrate(solution, threads) -> {device: record}` (its speed check's own measurement
of the reference solution against the reference), and the assignment YAML states the policy per
device (`ThresholdPolicy`, here: reading it needs no torch, so the grader never imports it).

Where it runs, and why there. The measurement must be made on the same machine, by the same clock,
under the same limits as a student's run, yet the reference solution must never be in a student's
process (SPEC "Isolation and safety"): not imported, not as text in memory a student could read.
So each worker runs a *calibration run* of its own: a child forked exactly like a student's run
(same sandbox, RLIMIT_CPU and thread count, so the same clock behaviour), which reads the solution
notebook itself (before its sandbox hides `solutions/`), measures, reports plain numbers over the
private channel and exits. The worker, which every student run is forked from, only ever holds the
numbers and the notebook's path. The numbers go into each student job of that exercise
(`job["calibration"]`), so every run judges against the same measurement; they are refreshed
after `MAX_AGE_S` or `MAX_RUNS` runs, so a machine whose speed drifts (another tenant, a frequency
change) is re-measured, and never measured per student (about a second each time).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# Bound before any student code exists (the worker imports this module first): a submission that
# replaces `max` cannot move a threshold.
_max, _float = max, float

MAX_AGE_S = 600.0   # a calibration older than this is measured again before the next run
MAX_RUNS = 200      # ... and so is one used for this many runs
CALIBRATION_FAILED = "the calibration run ended without a measurement: {why}"


DEVICES = ("cpu", "cuda")


def request(exercise, assignment) -> dict | None:
    """What a job of `exercise` carries so that its worker calibrates (None: fixed thresholds only).
    Checks the YAML's policies here, in the grader, so a bad one is a ConfigError naming the file."""
    from .errors import ConfigError

    calibrated = False
    for device in DEVICES:
        if device in exercise.thresholds:
            try:
                policy = ThresholdPolicy.from_config(exercise.thresholds[device],
                                                     f"exercises.{exercise.id}.thresholds.{device}")
            except ValueError as e:
                raise ConfigError(f"{assignment.config_path}: {e}") from None
            calibrated = calibrated or policy.calibrated
    if not calibrated:
        return None
    if not assignment.solution_notebook.is_file():
        raise ConfigError(f"{assignment.config_path}: exercises.{exercise.id}.thresholds are calibrated against the "
                          f"reference solution, but {assignment.solution_notebook} does not exist",
                          "add the solution notebook, or give fixed thresholds (a number per device)")
    return {"notebook": str(assignment.solution_notebook), "exercise": exercise.id}


class Calibrations:
    """The worker's calibrations, by rubric: measured on first need, refreshed when stale."""

    def __init__(self, max_age_s: float = MAX_AGE_S, max_runs: int = MAX_RUNS, clock=time.monotonic):
        self.max_age_s, self.max_runs, self.clock = max_age_s, max_runs, clock
        self._held: dict[tuple, tuple[float, int, dict]] = {}  # key -> (measured at, runs served, data)

    def prepare(self, job: dict, run) -> dict:
        """`job` with `calibration` filled in, when it asks for one (`calibrate`: the solution's
        notebook and exercise); `run(job) -> RunOutcome` runs a child as for a student."""
        wanted = job.get("calibrate")
        if not wanted or job.get("calibration_run"):
            return job
        key = (job["rubric"], wanted["notebook"], wanted["exercise"], int(job.get("threads", 1)))
        held = self._held.get(key)
        now = self.clock()
        if held is None or now - held[0] > self.max_age_s or held[1] >= self.max_runs:
            held = (now, 0, self.measure(job, run))
        held = (held[0], held[1] + 1, held[2])
        self._held[key] = held
        return {**job, "calibration": {**held[2], "threads": int(job.get("threads", 1))}}

    @staticmethod
    def measure(job: dict, run) -> dict:
        """One calibration run: no student code (no chunks; the child reads the solution itself)."""
        outcome = run({**job, "chunks": [], "calibration_run": True})  # a grader.channel.RunOutcome
        data = outcome.calibration
        if isinstance(data, dict) and "error" not in data:
            return data
        why = (data or {}).get("error") if isinstance(data, dict) else None
        # `reason`: a time-out, a death, or the worker's own failure (RunOutcome.worker_failed).
        why = why or outcome.load_error or outcome.crash or outcome.reason or "no result was reported"
        return {"error": CALIBRATION_FAILED.format(why=str(why).strip().splitlines()[0][:300])}


def solution_chunks(notebook: str, exercise: str) -> list[dict]:
    """In the calibration run, before its sandbox closes: the solution's code for `exercise`, as
    the chunks a student job carries."""
    from .extract import extract_exercises
    from .read import read_submission

    sources, _ = extract_exercises(read_submission(notebook).notebook, [exercise])
    source = sources[exercise]
    if source.missing or source.syntax_error:
        raise ValueError(f"{notebook}: exercise {exercise}: {source.syntax_error or 'no marked cell'}")
    return [c.__dict__ for c in source.chunks]


def run_calibration(items, solution, threads: int) -> dict:
    """In the calibration run, after the solution was loaded: the rubric's `calibrate(solution, threads)`."""
    rubric = next((item.module for item in items if getattr(item, "module", None) is not None), None)
    calibrate = getattr(rubric, "calibrate", None)
    if calibrate is None:
        return {"error": "the rubric defines no `calibrate(solution, threads)`"}
    try:
        return dict(calibrate(solution, threads))
    except BaseException as e:  # noqa: BLE001 - reported as the calibration's failure
        return {"error": f"{type(e).__name__}: {str(e).strip()[:300]}"}


__all__ = ["Calibrations", "request", "solution_chunks", "run_calibration", "MAX_AGE_S", "MAX_RUNS"]


POLICY_KEYS = {"least", "share", "separable"}
NOT_SEPARABLE = ("this machine cannot tell the reference solution from {reference}: the reference solution "
                 "reached only {speedup:.3g}× its speed here (at least {separable:g}× is needed to judge yours), "
                 "so no speed verdict is given on {where}")
NO_CALIBRATION = "the reference solution's speed could not be measured here ({why}), so no speed verdict is given"


@dataclass(frozen=True)
class ThresholdPolicy:
    """How the assignment YAML sets one device's speed threshold (`exercises.<id>.thresholds.<device>`).

    A number: a fixed threshold. A mapping: calibrated on the grading machine, where the reference
    solution reached a speed-up R over the same reference, by the same clock; the threshold is then
    max(`least`, R ** `share`): clearly faster than the reference, and at least `share` of the reference
    solution's gain in log scale (0.5: the geometric mean of 1 and R). Where R < `separable` the machine
    cannot tell the reference solution from the reference: the check is skipped (SPEC "Rubrics")."""

    fixed: float | None = None
    least: float = 1.0
    share: float = 0.5
    separable: float = 1.0

    @classmethod
    def from_config(cls, value, where: str) -> "ThresholdPolicy":
        """From the YAML value at `where` ("exercises.beat_pdist.thresholds.cpu"); ValueError names it."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return cls(fixed=_float(value))
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a number (a fixed threshold) or a mapping with "
                             f"{', '.join(sorted(POLICY_KEYS))}, found {value!r}")
        for key in value:
            if key not in POLICY_KEYS:
                raise ValueError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(POLICY_KEYS))})")
        numbers = {k: value[k] for k in POLICY_KEYS if k in value}
        for key, number in numbers.items():
            if not isinstance(number, (int, float)) or isinstance(number, bool) or number <= 0:
                raise ValueError(f"{where}.{key}: expected a number > 0, found {number!r}")
        policy = cls(**{k: _float(v) for k, v in numbers.items()})
        if policy.share > 1:
            raise ValueError(f"{where}.share: at most 1 (the reference solution's whole gain), found {policy.share:g}")
        return policy

    @property
    def calibrated(self) -> bool:
        return self.fixed is None

    def threshold(self, reference_speedup: float | None) -> float:
        if self.fixed is not None:
            return self.fixed
        return _max(self.least, _float(reference_speedup) ** self.share)

    def describe(self) -> str:
        if self.fixed is not None:
            return f"a fixed threshold of {self.fixed:g}×"
        return (f"the larger of {self.least:g}× and the reference solution's speed-up to the power "
                f"{self.share:g}")

    def skip_reason(self, calibration: dict | None, reference: str, where: str) -> str | None:
        """Why no verdict can be given with this `calibration` (None: judge)."""
        if self.fixed is not None:
            return None
        if not calibration or "speedup" not in calibration:
            why = (calibration or {}).get("error") or "no calibration was run"
            return NO_CALIBRATION.format(why=why)
        if calibration["speedup"] < self.separable:
            return NOT_SEPARABLE.format(reference=reference, speedup=calibration["speedup"],
                                        separable=self.separable, where=where)
        return None
