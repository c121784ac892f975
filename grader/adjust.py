"""Manual adjustments: a TA's CSV of points added, taken or overridden, applied on every run.

The file (`OUT/adjustments.csv` by default, or `grader grade --adjustments FILE`) is an input, never
written by the grader, so no regrade (`--force` included) can lose it:

    student,exercise,change,comment,who
    4711,views,+2,"diagonal() is a view; the rubric missed it",ta-anna
    4712,,=45,"excused: illness, see mail of 3 Dec",prof
    4713,beat_pdist,-3,copied timing code,ta-ben

`exercise` blank means the total (applied after the late penalty); `change` is a delta (`+2`, `-1.5`) or an
override (`=N`). Exercise adjustments are applied to the raw exercise score (kept within 0..max) before
the late penalty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, did_you_mean
from .lms import read_table

COLUMNS = ("student", "exercise", "change", "comment", "who")
CHANGE = re.compile(r"^\s*(?P<op>=|[+-])?\s*(?P<value>\d+(?:\.\d+)?)\s*$")
ADJUSTMENTS_FILE = "adjustments.csv"
TIP = "columns: student,exercise,change,comment,who; change is +N, -N or =N; exercise blank for the total"


@dataclass(frozen=True)
class Adjustment:
    student: str
    exercise: str  # "" for the total
    change: str  # as written: "+2", "=45"
    comment: str
    who: str
    line: int

    @property
    def is_override(self) -> bool:
        return self.change.lstrip().startswith("=")

    @property
    def value(self) -> float:
        m = CHANGE.match(self.change)
        sign = -1.0 if m["op"] == "-" else 1.0
        return sign * float(m["value"])

    def applied_to(self, score: float, max_score: float | None) -> float:
        new = self.value if self.is_override else score + self.value
        # an exercise stays within its points; a total may get a bonus above the maximum, never below zero
        return max(new, 0.0) if max_score is None else min(max(new, 0.0), max_score)

    def describe(self) -> str:
        what = self.exercise or "total"
        return f"{what} {self.change}: {self.comment} ({self.who})" if self.who else f"{what} {self.change}: {self.comment}"


def load_adjustments(path: Path | None, students=None, exercises=None) -> list[Adjustment]:
    """Every row checked before anything is graded: a bad row names its file and line."""
    if path is None or not Path(path).is_file():
        return []
    path = Path(path)
    reader = read_table(path, "the adjustments", TIP)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in ("student", "change") if c not in header]
    if missing:
        raise ConfigError(f"{path}: line 1: the header lacks {', '.join(missing)}", TIP)
    out = []
    for row in reader:
        line = reader.line_num
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not any(row.values()):
            continue
        student, exercise, change = row.get("student", ""), row.get("exercise", ""), row.get("change", "")
        where = f"{path}: line {line}"
        if not student:
            raise ConfigError(f"{where}: no student", TIP)
        if not CHANGE.match(change):
            raise ConfigError(f"{where}: change '{change}' is not +N, -N or =N", TIP)
        if students is not None and student not in students:
            raise ConfigError(f"{where}: no student '{student}' in this class{did_you_mean(student, students)}", TIP)
        if exercise and exercises is not None and exercise not in exercises:
            raise ConfigError(f"{where}: no exercise '{exercise}'{did_you_mean(exercise, exercises)}", TIP)
        out.append(Adjustment(student, exercise, change.strip(), row.get("comment", ""), row.get("who", ""), line))
    return out
