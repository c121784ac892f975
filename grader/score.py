"""Stage 4, score: what a run reported + the YAML's points and hints → an ExerciseResult.

A check function's points are split across its cases that count on this run (`Exercise.case_points`)."""

from __future__ import annotations

import re

from .assignment import Exercise
from .channel import WORKER_FAILED, RunOutcome
from .errors import ConfigError, did_you_mean
from .extract import MISSING_MESSAGE, ExerciseSource
from .results import ERROR, FAILED, GRADED, MISSING, PASSED, SKIPPED, TIMEOUT, CheckResult, ExerciseResult
from .results import check_function

NOT_RUN = "not run: {why}"
SLOW_TOP_LEVEL = ("; no check had finished, and your exercise's cell runs {what} at its top level ({where}): that "
                  "runs on every grading too; put it under `if __name__ == \"__main__\":` (grading skips it) or in "
                  "another cell")
NAME_ELSEWHERE = "`{name}` is defined in {cell}, but {why}: move it into this exercise's cell, or into a function"
IPYTHON_NAME = ("`{name}` exists only inside Jupyter (IPython), not when grading: leave it out of the exercise's "
                "cell (use `print` to show values)")
IPYTHON_NAMES = frozenset({"get_ipython", "In", "Out", "_ih", "_oh", "_ii", "_iii"})
NAME_ERROR = re.compile(r"NameError: name '(\w+)' is not defined")
# A hint is about the maths of the exercise; these errors are about setting up the code, and say so themselves.
SETUP_ERROR = re.compile(r"\b(NameError|ImportError|ModuleNotFoundError)\b")


def validate_catalog(exercise: Exercise, collected: list[dict]) -> None:
    """Every check in the rubric has points in the YAML, and every YAML check exists."""
    names = {check_function(c["id"]) for c in collected}
    for name in sorted(names - set(exercise.checks)):
        raise ConfigError(
            f"{exercise.rubric}: the check `{name}` has no points in the assignment YAML "
            f"(exercises.{exercise.id}.checks){did_you_mean(name, exercise.checks)}"
        )
    for name in sorted(set(exercise.checks) - names):
        raise ConfigError(
            f"the assignment YAML lists exercises.{exercise.id}.checks.{name}, "
            f"but {exercise.rubric.name} has no such check{did_you_mean(name, names)}"
        )


def score_exercise(exercise: Exercise, source: ExerciseSource, outcome: RunOutcome | None,
                   catalog: list[dict], cuda: bool) -> ExerciseResult:
    """`outcome`: the exercise's run (None where there was none: missing, or a syntax error); its
    verdict (`RunOutcome.verdict`) decides the status, the YAML the points of each reported check."""
    notes = list(source.notes)
    if source.missing:
        missing = MISSING_MESSAGE.format(id=exercise.id) + (f"; {source.detail}" if source.detail else "")
        return _unscored(exercise, catalog, cuda, MISSING, missing, notes)
    if source.syntax_error:
        return _unscored(exercise, catalog, cuda, ERROR, f"your code does not compile: {source.syntax_error}", notes)
    if outcome.ended == WORKER_FAILED:  # no run to read: nothing of it is explained to the student
        return _unscored(exercise, catalog, cuda, *outcome.verdict, notes)
    notes += outcome.notes
    if outcome.output_dropped:
        notes.append(f"your code printed too much: {outcome.output_dropped:,} bytes of output past the first "
                     f"{len(outcome.output.encode()):,} were dropped")
    status, error = outcome.verdict
    error = explain_names(error, source)
    if status == TIMEOUT and not outcome.checks:
        error += _slow_top_level(source)
    reported = {c.id: c for c in outcome.checks}
    if status != GRADED:
        return _unscored(exercise, catalog, cuda, status, error, notes, reported)
    checks = []
    entries = outcome.collected or catalog
    shares = exercise.case_points([e["id"] for e in entries
                                   if getattr(reported.get(e["id"]), "status", None) != SKIPPED])
    for entry in entries:
        spec, points = exercise.check_spec(entry["id"]), shares.get(entry["id"], 0.0)
        r = reported.get(entry["id"])
        if r is None:
            checks.append(_check(entry, ERROR, 0.0, points, NOT_RUN.format(why="the checks ended early")))
            continue
        message = explain_names(r.message, source)
        if r.status in (FAILED, ERROR) and spec.hint and not SETUP_ERROR.search(message.split("\n", 1)[0]):
            message = f"{message}\nHint: {spec.hint}"
        if r.status == SKIPPED:
            checks.append(_check(entry, SKIPPED, 0.0, 0.0, message, r.duration_s))
        else:
            earned = points if r.status == PASSED else 0.0
            checks.append(_check(entry, r.status, earned, points, message, r.duration_s,
                                 r.picture if r.status != PASSED else None))
    return _exercise(exercise, GRADED, None, checks, notes)


def explain_names(message: str | None, source: ExerciseSource) -> str | None:
    """A NameError of a name another cell defines where grading does not run it, or of an IPython-only
    name, gets its cause and its fix (issue 14)."""
    if not message:
        return message
    m = NAME_ERROR.search(message)
    if m is None:
        return message
    name = m.group(1)
    if name in source.elsewhere:
        cell, why = source.elsewhere[name]
        return f"{message}\n{NAME_ELSEWHERE.format(name=name, cell=cell, why=why)}"
    if name in IPYTHON_NAMES:
        return f"{message}\n{IPYTHON_NAME.format(name=name)}"
    return message


def _slow_top_level(source: ExerciseSource) -> str:
    """Where the exercise's own cells loop at their top level (a training demo), for a time-out before any check."""
    import ast

    for chunk in source.chunks:
        if chunk.filename not in {f"cell {n}" for n in source.cells}:
            continue
        try:
            body = ast.parse(chunk.source).body
        except SyntaxError:
            continue
        loop = next((s for s in body if isinstance(s, (ast.For, ast.While, ast.AsyncFor))), None)
        if loop is not None:
            return SLOW_TOP_LEVEL.format(what="a loop", where=f"{chunk.filename}, line {loop.lineno}")
    return ""


def _unscored(exercise, catalog, cuda, status, error, notes, reported=None) -> ExerciseResult:
    reported = reported or {}
    checks = []
    shares = exercise.case_points([e["id"] for e in catalog if cuda or not e.get("needs_cuda")])
    for entry in catalog:
        points = shares.get(entry["id"], 0.0)
        if entry.get("needs_cuda") and not cuda:
            checks.append(_check(entry, SKIPPED, 0.0, 0.0, "needs a CUDA GPU, and none is present here"))
            continue
        r = reported.get(entry["id"])
        if r is not None and r.status != PASSED:
            checks.append(_check(entry, r.status if r.status != SKIPPED else ERROR, 0.0, points, r.message))
        else:
            checks.append(_check(entry, ERROR if status != MISSING else FAILED, 0.0, points,
                                 NOT_RUN.format(why=error.split("\n", 1)[0]) if status != MISSING else error))
    return _exercise(exercise, status, error, checks, notes)


def _check(entry, status, score, max_score, message, duration=0.0, picture=None) -> CheckResult:
    return CheckResult(entry["id"], entry.get("name", entry["id"]), status, float(score), float(max_score),
                       message, round(float(duration), 4), picture)


def _total(points) -> float:
    """A sum of shares (2 points over 3 cases): 2.0, not 1.9999999999999998."""
    return round(sum(points), 9)


def _exercise(exercise, status, error, checks, notes) -> ExerciseResult:
    return ExerciseResult(
        id=exercise.id,
        score=_total(c.score for c in checks),
        max_score=_total(c.max_score for c in checks),
        status=status,
        error=error,
        checks=tuple(checks),
        notes=tuple(dict.fromkeys(notes)),
    )


__all__ = ["score_exercise", "validate_catalog"]
