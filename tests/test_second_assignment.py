"""The second assignment, assignments/autograd_tricks (issue 18): `grader validate` full, its private folders hidden."""

import os

import pytest

from conftest import REPO, exercise_notebook
from grader import Grader, load_assignment
from grader.assign import assign
from grader.validate import load_variants, render_table, validate

COURSE = REPO / "assignments" / "autograd_tricks"
PRIVATE_FILES = [COURSE / "solutions" / "autograd_tricks.ipynb", COURSE / "rubrics" / "test_ste_round.py",
                 COURSE / "rubrics" / "autograd_tricks.yml"]
BUNDLED_PRIVATE_FILES = [REPO / "solutions" / "pytorch_intro.ipynb", REPO / "rubrics" / "test_lost_leaf.py"]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="without root the grader cannot hide folders "
                                                           "(README 'Security model')")


@pytest.fixture(scope="module")
def course():
    return load_assignment(COURSE / "rubrics")


@pytest.fixture(scope="module")
def course_grader(course):
    with Grader(course, jobs=2) as g:
        yield g


def test_second_assignment_validates(course, course_grader):
    """`grader validate --rubrics assignments/autograd_tricks/rubrics` (cmd_validate's own call): solution full
    marks, stub zero, every variant as declared, on the module's warm workers."""
    verdicts = validate(course, course_grader, COURSE / "tests" / "variants")
    surprises = [v for v in verdicts if not v.ok]
    assert not surprises, render_table(surprises)
    assert {v.kind for v in verdicts} == {"solution", "stub", "variant", "alternative"}
    assert sum(v.kind == "solution" for v in verdicts) == len(course.exercises) == 3
    assert sum(v.kind in ("variant", "alternative") for v in verdicts) == len(
        load_variants(COURSE / "tests" / "variants", course))
    assert assign(course.solution_notebook, course.exercise_notebook, check_only=True), \
        "exercises/autograd_tricks.ipynb is not what `grader assign --rubrics assignments/autograd_tricks/rubrics` writes"


def readable_from_student_code(grader, tmp_path, paths) -> list[str]:
    """The paths that code in a submission of `ste_round` could open (it reports them as its error)."""
    code = f"""\
readable = []
for path in {[str(p) for p in paths]!r}:
    try:
        with open(path, "rb") as f:
            f.read(1)
        readable.append(path)
    except OSError:
        pass


def ste_round(x):
    raise RuntimeError(f"READABLE {{readable}}")
"""
    result = grader.grade(exercise_notebook(tmp_path / "probe.ipynb", {"ste_round": code}), only="ste_round")
    message = result.exercise("ste_round").checks[0].message
    assert "READABLE" in message, message
    return [str(p) for p in paths if str(p) in message]


@needs_root
def test_its_rubrics_and_solutions_are_hidden_from_student_code(course_grader, tmp_path):
    assert all(p.is_file() for p in PRIVATE_FILES)
    assert readable_from_student_code(course_grader, tmp_path, PRIVATE_FILES) == []


# Hidden as well: every course's private folders in this repository, and the variants (week 1 cannot read week 3).
ALSO_HIDDEN = {
    "the other course's rubrics and solutions": BUNDLED_PRIVATE_FILES,
    "correct alternatives among the variants": [COURSE / "tests" / "variants" / "ste_round" / "ok_autograd_function.py",
                                                REPO / "tests" / "variants" / "lost_leaf" / "ok_empty_normal.py"],
}


@needs_root
@pytest.mark.parametrize("what", ALSO_HIDDEN)
def test_other_solutions_in_the_repository_are_hidden_too(course_grader, tmp_path, what):
    assert all(p.is_file() for p in ALSO_HIDDEN[what])
    assert readable_from_student_code(course_grader, tmp_path, ALSO_HIDDEN[what]) == []


def test_a_notebook_is_graded_against_the_assignment_its_exercises_belong_to(tmp_path):
    """Without --rubrics, `grader check` picks the bundled assignment whose exercises the notebook marks: the
    student notebook of autograd_tricks is not 'every pytorch_intro exercise missing'."""
    import json
    import subprocess
    import sys

    from grader.courses import bundled_rubrics, rubrics_for_notebook

    assert COURSE / "rubrics" in bundled_rubrics()
    assert rubrics_for_notebook(COURSE / "exercises" / "autograd_tricks.ipynb") == COURSE / "rubrics"
    assert rubrics_for_notebook(REPO / "exercises" / "pytorch_intro.ipynb") is None  # the default
    assert rubrics_for_notebook(tmp_path / "no_such.ipynb") is None  # unreadable: the grading says why
    # grader.check("hvp") in a kernel (a Colab notebook has no file): the one course with that exercise.
    assert rubrics_for_notebook(None, "hvp") == COURSE / "rubrics"
    assert rubrics_for_notebook(None, "lost_leaf") is None
    # One cell of each: a tie is the default, never a guess.
    mixed = exercise_notebook(tmp_path / "mixed.ipynb", {"lost_leaf": "def make_leaves(d, dtype=None): pass",
                                                         "hvp": "def hvp(f, x, v): pass"})
    assert rubrics_for_notebook(mixed) is None

    out = subprocess.run([sys.executable, "-m", "grader", "check", "--format", "json", "--exercise", "ste_round",
                          str(COURSE / "solutions" / "autograd_tricks.ipynb")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    result = json.loads(out.stdout)
    assert (out.returncode, result["assignment"], result["score"]) == (0, "autograd_tricks", result["max_score"])
    assert [e["id"] for e in result["exercises"]] == ["ste_round"]


def test_grading_the_bundled_course_hides_this_course_too():
    """Week 1's run cannot read week 3's answers: the same folders are hidden whichever course is graded."""
    hidden = set(load_assignment().private_dirs)
    assert {COURSE / "rubrics", COURSE / "solutions", COURSE / "tests" / "variants",
            REPO / "rubrics", REPO / "solutions", REPO / "tests" / "variants"} <= hidden
    assert hidden == set(load_assignment(COURSE / "rubrics").private_dirs)
