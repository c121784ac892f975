"""Constructed results for the unit layer (tests/test_report_unit.py, tests/test_export_unit.py): the
frozen dataclasses of grader/results.py, filled in by hand, so a renderer is tested without a worker."""

from __future__ import annotations

from grader.results import GRADED, CheckResult, ExerciseResult, SubmissionResult


def check(check_id: str, status: str, points: float = 1.0, message: str = "", name: str | None = None,
          picture: dict | None = None) -> CheckResult:
    """A check worth `points`, earning them where it passed; a skipped check is worth nothing."""
    worth = 0.0 if status == "skipped" else points
    return CheckResult(check_id, name or check_id.split("[", 1)[0].removeprefix("test_").replace("_", " "),
                       status, worth if status == "passed" else 0.0, worth, message, 0.01, picture)


def exercise(exercise_id: str, *checks: CheckResult, status: str = GRADED, error: str | None = None,
             notes: tuple[str, ...] = ()) -> ExerciseResult:
    return ExerciseResult(exercise_id, sum(c.score for c in checks), sum(c.max_score for c in checks), status,
                          error, tuple(checks), notes)


def submission(*exercises: ExerciseResult, name: str = "alice.ipynb", notes: tuple[str, ...] = ()) -> SubmissionResult:
    return SubmissionResult(submission=name, sha256="0" * 64, assignment="pytorch_intro", grader_version="1.2.3",
                            torch_version="2.13.0", devices=("cpu", "meta"),
                            score=sum(e.score for e in exercises), max_score=sum(e.max_score for e in exercises),
                            duration_s=12.34, notes=notes, exercises=exercises)


def timing_picture() -> dict:
    """A speed check's picture as grader.timing.timing_picture makes it."""
    return {"kind": "timing", "title": "your calls against the reference", "caption": "median of 2 pairs",
            "student_label": "yours", "reference_label": "reference", "student_s": [0.02, 0.021],
            "reference_s": [0.02, 0.02], "ratio": 0.98, "threshold": 1.6}
