"""Calibrated speed thresholds: the reference solution's own speed, measured where the grading happens.

SPEC "Rubrics": a timing threshold is calibrated on the machine that grades. A rubric that wants
it defines `calibrate(solution, threads) -> {device: record}` (its speed check's own measurement
of the reference solution against the reference), and the assignment YAML states the policy per
device (`grader.timing.ThresholdPolicy`).

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

MAX_AGE_S = 600.0   # a calibration older than this is measured again before the next run
MAX_RUNS = 200      # ... and so is one used for this many runs
CALIBRATION_FAILED = "the calibration run ended without a measurement: {why}"


DEVICES = ("cpu", "cuda")


def request(exercise, assignment) -> dict | None:
    """What a job of `exercise` carries so that its worker calibrates (None: fixed thresholds only).
    Checks the YAML's policies here, in the grader, so a bad one is a ConfigError naming the file."""
    from .errors import ConfigError
    from .timing import ThresholdPolicy

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
        notebook and exercise); `run(job) -> outcome` runs a child as for a student."""
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
        outcome = run({**job, "chunks": [], "calibration_run": True})
        data = outcome.get("calibration")
        if isinstance(data, dict) and "error" not in data:
            return data
        why = (data or {}).get("error") if isinstance(data, dict) else None
        why = why or outcome.get("load_error") or outcome.get("crash") or outcome.get("reason") \
            or outcome.get("worker_error") or "no result was reported"
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
