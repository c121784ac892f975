"""Grading results as frozen data, and their JSON form (SPEC "Results", schema 1)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

SCHEMA = 1

# Exercise statuses (SPEC "Results").
GRADED, MISSING, TIMEOUT, CRASHED, ERROR = "graded", "missing", "timeout", "crashed", "error"
# Check statuses.
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"



def check_function(check_id: str) -> str:
    """"test_x" for the case "test_x[cpu-float32]": the rubric's function, which the YAML gives points to."""
    return check_id.split("[", 1)[0]

@dataclass(frozen=True)
class CheckResult:
    id: str
    name: str
    status: str
    score: float
    max_score: float
    message: str = ""
    duration_s: float = 0.0
    # Plain data for a picture of the mistake (`grader.pictures`: validated, bounded, never markup);
    # only on checks that did not pass, and left out of the JSON where there is none.
    picture: dict | None = dataclasses.field(default=None, hash=False)


@dataclass(frozen=True)
class ExerciseResult:
    id: str
    score: float
    max_score: float
    status: str
    error: str | None = None
    checks: tuple[CheckResult, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def failed_checks(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status in (FAILED, ERROR))


@dataclass(frozen=True)
class SubmissionResult:
    submission: str
    sha256: str
    assignment: str
    grader_version: str
    torch_version: str
    devices: tuple[str, ...]
    score: float
    max_score: float
    duration_s: float
    notes: tuple[str, ...] = ()
    exercises: tuple[ExerciseResult, ...] = ()
    torch_threads: int = 1
    schema: int = SCHEMA

    @property
    def full_marks(self) -> bool:
        return all(
            c.status in (PASSED, SKIPPED) for e in self.exercises for c in e.checks
        ) and all(e.status == GRADED for e in self.exercises)

    def exercise(self, exercise_id: str) -> ExerciseResult:
        for e in self.exercises:
            if e.id == exercise_id:
                return e
        raise KeyError(exercise_id)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for e in d["exercises"]:
            for c in e["checks"]:
                if c.get("picture") is None:
                    c.pop("picture", None)
        # Key order as in the SPEC: schema first.
        return {"schema": d.pop("schema"), **d}

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict) -> "SubmissionResult":
        d = dict(d)
        exercises = tuple(
            ExerciseResult(
                **{
                    **e,
                    "checks": tuple(CheckResult(**c) for c in e.get("checks", ())),
                    "notes": tuple(e.get("notes", ())),
                }
            )
            for e in d.pop("exercises", ())
        )
        return cls(
            **{
                **d,
                "devices": tuple(d.get("devices", ())),
                "notes": tuple(d.get("notes", ())),
                "exercises": exercises,
            }
        )


def unusable_input(submission: str, error: str) -> dict:
    """The JSON printed for a file that cannot be graded at all (SPEC: exit 2)."""
    return {"schema": SCHEMA, "submission": submission, "error": error}


__all__ = ["CheckResult", "ExerciseResult", "SubmissionResult", "unusable_input", "SCHEMA"]
