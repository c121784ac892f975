"""`grader assign`: solution regions become stubs; the committed student notebook is current."""

import nbformat
import pytest

from grader.assign import STUB_LINE, assign, stub_source
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
