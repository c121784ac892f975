"""The shape of every failure message: `fail`, `need`, and the `CheckFailure` they raise."""

from __future__ import annotations

_getattr = getattr  # our own reference, taken before any student code exists

# The `record_property` name under which a passed check leaves its feedback (the measured speed-up).
FEEDBACK = "feedback"


class CheckFailure(AssertionError):
    """A check failed; the message is written for the student, and shown as is."""

    picture: dict | None = None  # plain data for `grader.pictures`, attached by `with_picture`


def fail(verdict: str, *, expected=None, found=None, where=None, tolerance=None, fix=None, picture=None,
         kind: type = CheckFailure):
    """Fail the check; `picture`: plain data for `grader.pictures` (e.g. a timing measured for the verdict)."""
    lines = [verdict.rstrip(".") + "."]
    if expected is not None:
        lines.append(f"Expected: {expected}")
    if found is not None:
        lines.append(f"Found:    {found}")
    if where is not None:
        lines.append(f"Where:    {where}")
    if tolerance is not None:
        lines.append(f"Tolerance: {tolerance}")
    if fix:
        lines.append(f"Fix: {fix}")
    failure = kind("\n".join(lines))
    failure.picture = picture
    raise failure


class NotDefined(CheckFailure, AttributeError):
    """The student's cells define no such name. A check failure with the name in its verdict, and an
    AttributeError, so that `getattr(student, name, default)`, `hasattr` and pickle's search of
    `sys.modules` see a plain missing attribute."""


NOT_DEFINED = "`{name}` is not defined"


def need(student, name: str, what: str = "function"):
    """The student's `name`, or a failure that names it (never `'NoneType' is not callable`)."""
    obj = _getattr(student, name, None)
    if obj is None:
        not_defined(name, what)
    return obj


def not_defined(name: str, what: str = "function"):
    """Fail the check because the student's cells define no `name` (`need`, and reading it from `student`)."""
    fail(
        NOT_DEFINED.format(name=name),
        expected=f"a {what} named `{name}` in the exercise's cell",
        found="no such name after running your cell",
        fix=f"define `{name}` in the cell marked for this exercise (check the spelling)",
        kind=NotDefined,
    )
