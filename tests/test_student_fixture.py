"""The `student` fixture fails by name: a rubric that reads `student.double` where the cells define no
`double` fails that check exactly as `need(student, "double")` does, in a real run (worker, sandbox, plugin)."""

import shutil

import pytest

from conftest import MINI_RUBRICS, SQUARE_OK, exercise_notebook
from grader import Grader, load_assignment
from grader.checks import NOT_DEFINED

# Two checks that reach the same missing name two ways: as an attribute, and through need().
RUBRIC = '''"""Mini rubric: double(x), read from the student module directly."""

from grader.checks import need


def test_values(student):
    """double(3) == 6, read as student.double"""
    if not hasattr(student, "double"):  # getattr with a default and hasattr answer as for any module
        assert getattr(student, "double", "absent") == "absent"
    assert student.double(3) == 6


def test_tensor(student):
    """double(3) == 6, through need()"""
    assert need(student, "double")(3) == 6
'''


@pytest.fixture(scope="module")
def grader(tmp_path_factory):
    rubrics = tmp_path_factory.mktemp("course") / "rubrics"
    shutil.copytree(MINI_RUBRICS, rubrics)
    (rubrics / "test_double.py").write_text(RUBRIC)
    with Grader(load_assignment(rubrics), jobs=1) as g:
        yield g


def double_checks(grader, tmp_path, double: str) -> dict:
    result = grader.grade(exercise_notebook(tmp_path / "sub.ipynb", {"double": double, "square": SQUARE_OK}))
    return {c.id: c for c in result.exercise("double").checks}


@pytest.mark.parametrize("double", [
    pytest.param("def dubble(x):\n    return 2 * x", id="misspelt"),
    # A module-level __getattr__ (PEP 562) is asked first; where it gives up, the check still fails by name.
    pytest.param("def dubble(x):\n    return 2 * x\n\ndef __getattr__(name):\n    raise AttributeError(name)",
                 id="own-module-getattr"),
])
def test_reading_a_name_the_cells_never_defined_fails_as_need_does(grader, tmp_path, double):
    checks = double_checks(grader, tmp_path, double)
    attribute, needed = checks["test_values"], checks["test_tensor"]
    assert (attribute.status, needed.status) == ("failed", "failed")
    assert attribute.message.startswith(NOT_DEFINED.format(name="double") + ".\nExpected: a function named `double`")
    assert attribute.message == needed.message.split("\nHint: ", 1)[0]  # the same words; only test_tensor has a hint


def test_a_defined_name_is_read_as_before(grader, tmp_path):
    checks = double_checks(grader, tmp_path, "def double(x):\n    return 2 * x")
    assert [c.status for c in checks.values()] == ["passed", "passed"]
