"""Stage 2: which cells belong to which exercise, what other cells contribute, magics."""

from pathlib import Path

import nbformat
import pytest

from conftest import build_notebook
from grader.extract import exercise_id_of, extract_exercises, strip_magics

LECTURE = Path(__file__).resolve().parents[2] / "shared" / "lecture" / "pytorch_introduction.ipynb"


def nb(*cells, tags=None, markdown=()):
    return build_notebook(cells, tags=tags, markdown=markdown)


@pytest.mark.parametrize("first_line", [
    "# exercise: views", "#exercise:views", "# Exercise : VIEWS", "   # EXERCISE:  Views  ", "\n\n# exercise: views",
])
def test_marker_variants_are_recognised(first_line):
    assert exercise_id_of(nbformat.v4.new_code_cell(first_line + "\nx = 1")) == "views"


@pytest.mark.parametrize("source", [
    "x = 1\n# exercise: views",          # not the first non-blank line
    "# exercise views",                  # no colon
    "# exercises: views",
    "print(1)  # exercise: views",
])
def test_marker_elsewhere_does_not_count(source):
    assert exercise_id_of(nbformat.v4.new_code_cell(source)) is None


def test_marker_in_markdown_or_raw_does_not_count():
    n = nb("# exercise: views", "import torch", markdown=(0,))
    n.cells.append(nbformat.v4.new_raw_cell("# exercise: views"))
    sources, _ = extract_exercises(n, ["views"])
    assert sources["views"].missing


def test_tag_marks_a_cell():
    sources, _ = extract_exercises(nb("import torch", "def f(): pass", tags={1: ["Exercise:Views"]}), ["views"])
    assert sources["views"].cells == (2,)


def test_several_cells_are_joined_in_order_after_context():
    n = nb("import torch", "# exercise: a\nx = 1", "def helper(): return 2\nhelper()", "# exercise: a\ny = x + 1")
    sources, _ = extract_exercises(n, ["a"])
    src = sources["a"]
    assert src.cells == (2, 4)
    kinds = [(c.filename, c.required, c.what) for c in src.chunks]
    assert kinds == [("cell 1", False, "import torch"), ("cell 3", False, "def helper"),
                     ("cell 2", True, "cell 2"), ("cell 4", True, "cell 4")]
    # Other cells' statements (the call `helper()`) are not run.
    assert "helper()" not in src.chunks[1].source.replace("def helper(): return 2", "")


def test_context_keeps_line_numbers_and_decorators():
    n = nb("x = 1\n\n@staticmethod\ndef f():\n    return 1\nprint(f)", "# exercise: a\npass")
    chunk = extract_exercises(n, ["a"])[0]["a"].chunks[0]
    assert chunk.source.splitlines()[2:5] == ["@staticmethod", "def f():", "    return 1"]
    assert chunk.source.splitlines()[:2] == ["", ""]


def test_magics_are_removed_with_a_note_and_lines_kept():
    n = nb("# exercise: a\n%timeit 1 + 1\n!pip install foo\nfiles = !ls\nfor i in range(2):\n    %time i\ny = 2")
    src = extract_exercises(n, ["a"])[0]["a"]
    assert src.syntax_error is None
    lines = src.chunks[0].source.splitlines()
    assert lines[1:4] == ["pass", "pass", "pass"] and lines[5] == "    pass" and lines[6] == "y = 2"
    assert len(src.notes) == 4 and "%timeit 1 + 1" in src.notes[0]


def test_percent_inside_a_string_of_a_valid_cell_is_untouched():
    code = 'text = """\n%not a magic\n"""'
    n = nb("# exercise: a\n" + code)
    assert code in extract_exercises(n, ["a"])[0]["a"].chunks[0].source


def test_cell_magic_drops_the_context_cell():
    assert strip_magics("%%time\nx = 1\n") == ("", ["%%time"])


def test_syntax_error_names_cell_and_line():
    n = nb("import torch", "# exercise: a\ndef f(:\n    pass")
    src = extract_exercises(n, ["a"])[0]["a"]
    assert src.syntax_error.startswith("cell 2, line 2:")


def test_broken_other_cell_is_a_note_not_an_error():
    n = nb("def broken(:", "# exercise: a\nx = 1")
    src = extract_exercises(n, ["a"])[0]["a"]
    assert src.syntax_error is None and "cell 1 was skipped" in src.notes[0]


def test_unknown_exercise_id_is_a_note_with_a_suggestion():
    _, notes = extract_exercises(nb("# exercise: lost_lef\nx = 1"), ["lost_leaf"])
    assert "did you mean 'lost_leaf'" in notes[0]


def test_lecture_notebook_implicit_cell_builds_without_running_the_rest():
    lecture = nbformat.read(str(LECTURE), as_version=4)
    for cell in lecture.cells:
        if cell.cell_type == "code" and cell.source.startswith("class Implicit("):
            cell.source = "# exercise: implicit_function\n" + cell.source
    src = extract_exercises(lecture, ["implicit_function"])[0]["implicit_function"]
    assert src.syntax_error is None and len(src.cells) == 1
    context = "".join(c.source for c in src.chunks if not c.required)
    assert "assert torch.cuda.is_available()" not in context
    assert "for no in range(100)" not in context          # the training loop
    assert "torch.autograd.grad(b2.sum(), a)" not in context  # the cell that raises on purpose
    whats = [c.what for c in src.chunks if not c.required]
    assert "import graphviz" in whats and "def ptgraph" in whats and "def lunif2" in whats
