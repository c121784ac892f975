"""`grader assign`: solution regions become stubs; the committed student notebook is current."""

import copy

import nbformat
import pytest

from grader.assign import CHECK_CELL, SETUP_CELL, STUB_LINE, add_check_cells, assign, make_student_notebook, stub_source
from grader.extract import exercise_id_of, extract_exercises

from conftest import write_notebook
from grader.errors import ConfigError


def test_region_becomes_raise_at_its_indentation():
    src = "# exercise: a\ndef f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"
    assert stub_source(src, "a", "nb") == "# exercise: a\ndef f(x):\n    " + STUB_LINE.format(id="a")


def test_stub_block_is_uncommented_in_place_of_the_region():
    src = ("def f(a):\n    ### BEGIN SOLUTION\n    b = a + 2\n    ### END SOLUTION\n    ### BEGIN STUB\n"
           "    # b = a + 1\n    #\n    # b += 1  # buggy\n    ### END STUB\n    return b")
    assert stub_source(src, "a", "nb") == "def f(a):\n    b = a + 1\n    \n    b += 1  # buggy\n    return b"


@pytest.mark.parametrize("src, words", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("### END SOLUTION", "without a `### BEGIN SOLUTION`"),
    ("### BEGIN SOLUTION\nx\n### END SOLUTION\n### BEGIN STUB\nx = 1\n### END STUB", "must be commented"),
])
def test_malformed_regions_name_the_line(src, words):
    with pytest.raises(ConfigError, match=words):
        stub_source(src, "a", "sol.ipynb, cell 3")


def test_committed_exercise_notebook_is_current(assignment):
    assert assign(assignment.solution_notebook, assignment.exercise_notebook, check_only=True), \
        "exercises/ is stale: run `grader assign` and commit"


def test_student_notebook_has_no_solution_and_no_outputs(assignment):
    nb = nbformat.read(str(assignment.exercise_notebook), as_version=4)
    text = "".join(c.source for c in nb.cells)
    assert "BEGIN SOLUTION" not in text and "END STUB" not in text
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_each_exercise_is_followed_by_its_check_cell(assignment):
    nb = nbformat.read(str(assignment.exercise_notebook), as_version=4)
    sources = [c.source for c in nb.cells]
    for ex_id in assignment.exercises:
        last = max(i for i, c in enumerate(nb.cells) if exercise_id_of(c) == ex_id)
        assert sources[last + 1] == CHECK_CELL.format(id=ex_id)
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert sources[first_code] == SETUP_CELL and sources.count(SETUP_CELL) == 1


def test_check_cells_are_added_once(assignment):
    nb = make_student_notebook(nbformat.read(str(assignment.solution_notebook), as_version=4), assignment.solution_notebook)
    again = copy.deepcopy(nb)
    add_check_cells(again)
    assert again == nb


def test_check_cells_are_never_run_by_the_grader(tmp_path, mini_assignment, mini_grader):
    """`grader.check(...)` is another cell's top-level call (not run); `import grader` is a context import
    that works in the sandbox (no "skipped import" note)."""
    nb = make_student_notebook(nbformat.read(str(mini_assignment.solution_notebook), as_version=4),
                               mini_assignment.solution_notebook)
    for cell in nb.cells:  # the student's answers
        if exercise_id_of(cell):
            cell.source = {"double": "# exercise: double\ndef double(x):\n    return 2 * x",
                           "square": "# exercise: square\ndef square(x):\n    return x ** 2"}[exercise_id_of(cell)]
    sources, _ = extract_exercises(nb, mini_assignment.exercises)
    chunks = [chunk.source for s in sources.values() for chunk in s.chunks]
    calls = [CHECK_CELL.format(id=ex_id) for ex_id in mini_assignment.exercises]
    assert calls[0] in "".join(c.source for c in nb.cells)
    assert not any(call in c for call in calls for c in chunks) and any("import grader" in c for c in chunks)
    path = tmp_path / "with_checks.ipynb"
    nbformat.write(nb, str(path))
    result = mini_grader.grade(path)
    assert result.full_marks, result
    assert not [n for e in result.exercises for n in e.notes if "grader" in n]


def test_a_check_inside_an_exercise_cell_is_harmless(tmp_path, mini_grader):
    """A student who writes the check into the exercise cell: it runs in the sandbox (exercise cells run
    in full), finds no notebook there, starts nothing and returns; the exercise is graded as usual."""
    path = write_notebook(tmp_path / "same_cell.ipynb", [
        "import grader",
        "# exercise: double\ndef double(x):\n    return 2 * x\ngrader.check('double')",
        "# exercise: square\ndef square(x):\n    return x ** 2\nprint(grader.check('square'))",
    ])
    result = mini_grader.grade(path)
    assert result.full_marks and result.score == 5, result
