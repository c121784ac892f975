"""Which of this repository's assignments a notebook belongs to.

`grader check autograd_tricks.ipynb` and `grader.check("hvp")` in that notebook must grade it against
`autograd_tricks`, not report every `pytorch_intro` exercise missing: without `--rubrics`, the assignment is
the bundled one whose exercise ids the notebook's marked cells name most often (the bundled default when
none or a tie). Markers, not notebook metadata: they survive a student copying cells into a fresh notebook.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .assignment import BUNDLED_RUBRICS, REPO_ROOT, load_assignment
from .errors import ConfigError

ASSIGNMENTS_DIR = REPO_ROOT / "assignments"  # further assignments, each laid out like the repository's root


def bundled_rubrics() -> list[Path]:
    """The rubrics folders shipped with the package: the default first, then `assignments/*/rubrics`."""
    extra = sorted(p / "rubrics" for p in ASSIGNMENTS_DIR.iterdir()) if ASSIGNMENTS_DIR.is_dir() else []
    return [BUNDLED_RUBRICS, *[p for p in extra if p.is_dir()]]


def _courses() -> list[tuple[Path, set[str]]]:
    found = []
    for rubrics in bundled_rubrics():
        try:
            found.append((rubrics, set(load_assignment(rubrics).exercises)))
        except ConfigError:
            continue  # a broken course is reported when it is graded by name, not here
    return found


def rubrics_for_notebook(path: Path | str | None, exercise_id: str | None = None) -> Path | None:
    """The bundled rubrics folder for the notebook at `path` (and `grader.check(exercise_id)`); None for the
    default, or when unreadable: the grading that follows says what is wrong with the file."""
    from .extract import exercise_id_of
    from .read import read_submission

    courses = _courses()
    if exercise_id:  # `grader.check("hvp")` names its course, when one course alone has that exercise
        having = [rubrics for rubrics, ids in courses if exercise_id in ids]
        if len(having) == 1:
            return None if having[0] == BUNDLED_RUBRICS else having[0]
    try:
        nb = read_submission(path).notebook
    except Exception:  # noqa: BLE001 - reported by the grading itself, with the file's name
        return None
    marked = Counter(i for i in map(exercise_id_of, nb.cells) if i)
    if not marked:
        return None
    best, best_count, tie = None, 0, False
    for rubrics, ids in courses:
        count = sum(n for i, n in marked.items() if i in ids)
        if count > best_count:
            best, best_count, tie = rubrics, count, False
        elif count == best_count and count:
            tie = True
    return None if tie or best == BUNDLED_RUBRICS else best
