"""The grading pipeline, written once: read → extract → run → score (→ report, in the CLI)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import __version__
from .assignment import Assignment, Exercise
from .calibration import request as calibration_request
from .channel import WORKER_FAILED
from .errors import ConfigError, GraderCrash
from .extract import ExerciseSource, extract_exercises
from .pool import WorkerPool
from .read import read_submission
from .results import SubmissionResult
from .score import score_exercise, validate_catalog

COLLECT_TIMEOUT_S = 120


def torch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "unknown"


def job_for(exercise: Exercise, source: ExerciseSource, assignment: Assignment, threads: int,
            hidden: tuple[Path, ...] = ()) -> dict:
    """The job a worker runs for one exercise: plain data, nothing of the student's executed here."""
    return {
        "exercise_id": exercise.id,
        "rubric": str(exercise.rubric),
        "chunks": [c.__dict__ for c in source.chunks],
        "timeout_s": exercise.timeout_s,
        "cpu_s": exercise.timeout_s * 2 + 10,
        "memory_mb": exercise.memory_mb,
        "threads": threads,
        "thresholds": exercise.thresholds,
        "private_dirs": [str(p) for p in (*assignment.private_dirs, *hidden)],
        "seed": 0,
        "calibrate": calibration_request(exercise, assignment),
    }


class Grader:
    """An assignment, its check catalogue, and warm workers: grades one notebook at a time
    (call `grade` from several threads to use several workers)."""

    def __init__(self, assignment: Assignment, jobs: int | None = None, threads: int | None = None,
                 hidden: tuple[Path, ...] = ()):
        self.assignment = assignment
        self.jobs = jobs or os.cpu_count() or 1
        self.threads = threads or assignment.cpu_threads
        self.hidden = tuple(hidden)
        self.pool = WorkerPool(self.jobs, [str(e.rubric) for e in assignment.exercises.values()])
        self._catalog: dict[str, list[dict]] | None = None
        self._catalog_lock = threading.Lock()  # concurrent grade() calls collect it once, not once each
        self.cuda = False

    def catalog(self) -> dict[str, list[dict]]:
        """The checks of every rubric, collected once (needed for missing or crashed exercises)."""
        with self._catalog_lock:
            return self._collect_catalog()

    def _collect_catalog(self) -> dict[str, list[dict]]:
        if self._catalog is None:
            answer = self.pool.run({"collect_only": True, "timeout_s": COLLECT_TIMEOUT_S})
            if answer.ended == WORKER_FAILED or answer.collected is None:
                raise GraderCrash(
                    f"could not collect the rubrics in {self.assignment.rubrics_dir}: "
                    f"{answer.reason or 'no checks reported'}",
                    "run `pytest --collect-only` on that folder to see the error" + _tail(answer.output),
                )
            self.cuda = answer.cuda
            catalog = {ex_id: [] for ex_id in self.assignment.exercises}
            for item in answer.collected:
                catalog[item["rubric"].removeprefix("test_")].append(item)
            for ex_id, exercise in self.assignment.exercises.items():
                if not catalog[ex_id]:
                    # Usually the rubric failed to import: pytest's own report says why.
                    raise ConfigError(f"{exercise.rubric}: no checks could be collected",
                                      "run `pytest --collect-only` on it to see the error" + _tail(answer.output))
                validate_catalog(exercise, catalog[ex_id])
            self._catalog = catalog
        return self._catalog

    @property
    def devices(self) -> tuple[str, ...]:
        return ("cpu", "meta", "cuda") if self.cuda else ("cpu", "meta")

    def grade(self, path: Path | str, only: str | None = None) -> SubmissionResult:
        started = time.monotonic()
        submission = read_submission(path)  # raises UnusableSubmission
        exercises = [e for e in self.assignment.exercises.values() if only in (None, e.id)]
        sources, notes = extract_exercises(submission.notebook, self.assignment.exercises)
        self.pool.reserve(sum(not sources[e.id].missing and not sources[e.id].syntax_error for e in exercises))
        catalog = self.catalog()

        threads_used = []  # torch threads each run really had at its end (the student may change them)

        def grade_one(exercise: Exercise):
            source = sources[exercise.id]
            outcome = None
            if not source.missing and not source.syntax_error:
                outcome = self.pool.run(job_for(exercise, source, self.assignment, self.threads, self.hidden))
                threads_used.append(outcome.threads)
            return score_exercise(exercise, source, outcome, catalog[exercise.id], self.cuda)

        with ThreadPoolExecutor(max_workers=self.jobs) as ex:
            results = tuple(ex.map(grade_one, exercises))
        return SubmissionResult(
            submission=str(path),
            sha256=submission.sha256,
            assignment=self.assignment.name,
            grader_version=__version__,
            torch_version=torch_version(),
            devices=self.devices,
            score=sum(r.score for r in results),
            max_score=sum(r.max_score for r in results),
            duration_s=round(time.monotonic() - started, 3),
            notes=submission.notes + notes,
            exercises=results,
            torch_threads=max(threads_used, default=0) or self.threads,
        )

    def close(self) -> None:
        self.pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _tail(output: str) -> str:
    output = output.strip()
    return f"; its output ended with:\n{output[-1500:]}" if output else ""
