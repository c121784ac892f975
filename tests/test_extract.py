"""Stage 2: which cells belong to which exercise, what other cells contribute, magics."""

from pathlib import Path

import nbformat
import pytest

from conftest import build_notebook
from grader.extract import GET_IPYTHON_NOTE, LOOSE_MARKER_NOTE, REDEFINED, SHADOWED, exercise_id_of, extract_exercises, strip_magics

# The lecture's own notebook (a copy of shared/lecture/, so that a fresh clone tests it too).
LECTURE = Path(__file__).resolve().parent / "data" / "lecture" / "pytorch_introduction.ipynb"


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


def test_python_cell_magic_keeps_the_body_and_its_line_numbers():
    assert strip_magics("%%time\nx = 1\n") == ("\nx = 1\n", ["%%time"])


# -- issue 14: extraction agrees with Python on what a line is ------------------------------------
# str.splitlines() also breaks at these; Python's tokenizer only at \n, \r\n and \r.
ODD_BREAKS = ["\u2028", "\u2029", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\r", "\r\n"]


@pytest.mark.parametrize("brk", ODD_BREAKS, ids=[repr(b) for b in ODD_BREAKS])
@pytest.mark.parametrize("where", ["comment", "blank line"])
def test_odd_line_breaks_in_another_cell_keep_its_defs(brk, where):
    helper = ("import math\n# a note" + brk + "# more of the note\n" if where == "comment"
              else "import math\n" + (brk if brk in "\r\n" else "# x" + brk) + "\n")
    helper += "\n\ndef square_norms(x):\n    return math.fsum(v * v for v in x)\n\nclass K:\n    pass\n"
    src = extract_exercises(nb(helper, "# exercise: a\nz = square_norms([1.0, 2.0])"), ["a"])[0]["a"]
    assert [c.what for c in src.chunks if not c.required] == ["import math", "def square_norms", "class K"]
    assert not src.notes
    module = {}
    for chunk in src.chunks:
        exec(compile(chunk.source, chunk.filename, "exec"), module)
    assert module["z"] == 5.0


def test_odd_line_break_in_the_exercise_cell_keeps_tracebacks_on_the_right_line():
    n = nb("# exercise: a\n# note\u2028more\nx = 1\nraise ValueError")
    chunk = extract_exercises(n, ["a"])[0]["a"].chunks[0]
    with pytest.raises(ValueError) as info:
        exec(compile(chunk.source, chunk.filename, "exec"), {})
    assert info.traceback[-1].lineno + 1 == 4  # pytest counts from 0
    assert chunk.source.split("\n")[3] == "raise ValueError"


def test_cell_magic_on_a_helper_cell_keeps_its_defs_with_a_note():
    n = nb("import torch", "%%time\ndef square_norms(x):\n    return (x * x).sum(1)\nsquare_norms(torch.ones(2, 2))",
           "# exercise: a\ny = square_norms")
    sources, notes = extract_exercises(n, ["a"])
    whats = [c.what for c in sources["a"].chunks if not c.required]
    assert whats == ["import torch", "def square_norms"]
    assert any("cell 2" in note and "%%time" in note for note in notes), notes


@pytest.mark.parametrize("magic", ["%%bash", "%%html", "%%writefile helper.py", "%%javascript"])
def test_cell_magic_that_is_not_python_drops_the_cell_with_a_note(magic):
    n = nb("import torch", magic + "\ndef f():\n    pass", "# exercise: a\nx = 1")
    sources, notes = extract_exercises(n, ["a"])
    assert [c.what for c in sources["a"].chunks if not c.required] == ["import torch"]
    assert any(note.startswith("cell 2") and magic.split()[0] in note and "not Python" in note for note in notes), notes


def test_a_skipped_cell_names_the_definitions_it_takes_along():
    n = nb("def good():\n    pass\n\ndef square_norms(x)\n    return x\n\nclass Model:\n    pass", "# exercise: a\nx = 1")
    src = extract_exercises(n, ["a"])[0]["a"]
    assert "cell 1 was skipped" in src.notes[0]
    assert "`good`" in src.notes[0] and "`square_norms`" in src.notes[0] and "`Model`" in src.notes[0]


def test_names_bound_by_statements_of_other_cells_are_known_with_their_cell():
    n = nb("import torch\nHIDDEN = 10\nfor i in range(3):\n    pass\ntry:\n    import graphviz\nexcept ImportError:\n    pass",
           "# exercise: a\nx = HIDDEN")
    src = extract_exercises(n, ["a"])[0]["a"]
    assert src.elsewhere["HIDDEN"][0] == "cell 1" and src.elsewhere["graphviz"][0] == "cell 1"
    assert "i" in src.elsewhere and "torch" not in src.elsewhere


def test_marker_on_a_later_line_is_pointed_at():
    n = nb("import torch", "x = 1", "%%time\n# exercise: views\ndef diagonal(t):\n    return t.diagonal()")
    src = extract_exercises(n, ["views"])[0]["views"]
    assert src.missing
    assert src.detail == "`# exercise: views` is on line 2 of cell 3; the marker must be the cell's first line"


def test_marker_in_a_markdown_cell_is_pointed_at():
    n = nb("# exercise: views", "import torch", markdown=(0,))
    assert "markdown cell (cell 1)" in extract_exercises(n, ["views"])[0]["views"].detail


def test_display_is_provided_when_the_exercise_uses_it():
    src = extract_exercises(nb("import torch", "# exercise: a\ndisplay(1, 'x')\nz = 2"), ["a"])[0]["a"]
    module = {}
    for chunk in src.chunks:
        exec(compile(chunk.source, chunk.filename, "exec"), module)
    assert module["z"] == 2 and any("display" in note for note in src.notes)
    plain = extract_exercises(nb("import torch", "# exercise: a\nz = 2"), ["a"])[0]["a"]
    assert all("display" not in c.source for c in plain.chunks)


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


def test_names_bound_in_another_exercise_cell_are_known_too():
    n = nb("import torch", "# exercise: a\nSCALE = 3\ndef f():\n    return SCALE", "# exercise: b\ny = SCALE")
    sources, _ = extract_exercises(n, ["a", "b"])
    assert sources["b"].elsewhere["SCALE"][0] == "cell 2"
    assert "SCALE" not in sources["a"].elsewhere  # its own cell binds it


# -- QA (issue 14): what editors and copy-paste put into real cells ------------------------------------------


@pytest.mark.parametrize("first_line", ["\ufeff# exercise: views", "\u00a0# exercise: views", "\u200b# exercise: views",
                                        "#\u00a0exercise:\u00a0views\u00a0"])
def test_marker_with_bom_or_non_breaking_space_is_recognised_and_compiles(first_line):
    """A marker pasted from a web page or PDF (BOM, U+00A0, U+200B) counts, and the cell still compiles."""
    sources, _ = extract_exercises(nb("import torch", first_line + "\ndef diagonal(t):\n    return t.diagonal()\n"),
                                   ["views"])
    views = sources["views"]
    assert views.cells == (2,) and views.syntax_error is None
    own = [c for c in views.chunks if c.required]
    compile(own[0].source, own[0].filename, "exec")  # raises on a stray U+00A0/U+FEFF


@pytest.mark.parametrize("line", ["torch.pdist?", "torch.pdist??", "?torch.pdist", "??torch.nn.Linear",
                                  "    x.shape?", "/print 1"])
def test_help_and_autocall_lines_are_ipython_only(line):
    """`obj?`, `?obj`, `obj??` (IPython help) and `/f x` (autocall) are removed like magics, in any cell."""
    code = f"import torch\n{line}\ndef f():\n    return 1\n"
    if line.startswith(" "):
        code = f"import torch\nif True:\n{line}\ndef f():\n    return 1\n"
    stripped, removed = strip_magics(code)
    assert removed == [line.strip()]
    compile(stripped, "cell", "exec")
    sources, _ = extract_exercises(nb("import torch", "# exercise: views\n" + code), ["views"])
    assert sources["views"].syntax_error is None


def test_exercise_cell_that_parses_but_does_not_compile_is_a_syntax_error():
    """`ast.parse` accepts `return` outside a function; `compile` does not: said as the cell's syntax error."""
    sources, _ = extract_exercises(nb("import torch", "# exercise: views\nx = 1\nreturn x\n"), ["views"])
    assert sources["views"].syntax_error == "cell 2, line 3: 'return' outside function: `return x`"


def test_top_level_await_is_removed_like_a_magic():
    """IPython runs a top-level `await` (autoawait); Python does not: the statement is removed with a note, as
    `%timeit` is, and the rest of the cell is graded."""
    code = ("# exercise: views\nimport asyncio\nawait asyncio.sleep(0)\nif True:\n    await asyncio.sleep(0)\n"
            "def diagonal(t):\n    return t.diagonal()\n\n\nasync def later():\n    await asyncio.sleep(0)\n")
    views = extract_exercises(nb("import torch", code), ["views"])[0]["views"]
    assert views.syntax_error is None
    own = [c for c in views.chunks if c.required][0]
    compile(own.source, own.filename, "exec")
    assert own.source.splitlines()[5] == "def diagonal(t):"  # line numbers kept
    assert "await asyncio.sleep(0)" in own.source.splitlines()[10]  # inside `async def`: kept
    assert [n for n in views.notes if "await" in n] == [
        "cell 2: removed the IPython-only top-level `await` in `await asyncio.sleep(0)` (line 3) and 1 more "
        "(Python allows `await` only inside an `async def`)"]


def test_def_whose_decorator_needs_a_skipped_assignment_is_explained():
    """`@lru_cache(maxsize=N)` with `N = 4` above it: the def cannot be made without running `N = 4`, which
    grading does not run; a NameError of the def's name says so (not just "not defined")."""
    sources, _ = extract_exercises(nb("import torch\nimport functools",
                                      "N = 4\n@functools.lru_cache(maxsize=N)\ndef shape():\n    return (5,)\n",
                                      "# exercise: views\ndef diagonal(t):\n    return t.diagonal()\n"), ["views"])
    cell, why = sources["views"].elsewhere["shape"]
    assert cell == "cell 2" and "`N`" in why


def test_solution_written_below_the_marked_stub_is_named():
    """The stub kept in the marked cell and the solution written in a new cell below: in Jupyter the later def
    wins, in grading the marked cell's; the note says which was graded and what to do."""
    stub = "# exercise: views\ndef diagonal(t):\n    raise NotImplementedError\n"
    views = extract_exercises(nb("import torch", stub, "def diagonal(t):\n    return t.diagonal()\n"), ["views"])[0]["views"]
    assert SHADOWED.format(name="diagonal", own="cell 2", other="cell 3", id="views") in views.notes
    # a helper of the same name *above* the marked cell is replaced in Jupyter too: nothing to say
    above = extract_exercises(nb("import torch\ndef diagonal(t):\n    return t", stub), ["views"])[0]["views"]
    assert not [n for n in above.notes if "diagonal" in n]


def test_an_exercise_marked_twice_says_which_definition_is_graded():
    first = "# exercise: views\ndef diagonal(t):\n    return t.diagonal()\n"
    second = "# Exercise: views\ndef diagonal(t):\n    raise NotImplementedError\n"
    views = extract_exercises(nb("import torch", first, second), ["views"])[0]["views"]
    assert views.cells == (2, 3)
    assert REDEFINED.format(name="diagonal", first="cell 2", later="cell 3", id="views") in views.notes


def test_exercise_cell_demo_from_its_first_gpu_line_on_is_optional():
    """Top-level statements from the first that names CUDA on are each a chunk of their own that may fail
    (a machine without a GPU); defs and imports stay required, line numbers are kept."""
    code = ("# exercise: views\nimport torch\nx = torch.ones(2, 2)\ndef diagonal(t):\n    return t.diagonal()\n"
            "y = x.cuda()\nprint(y)\ndef later(t):\n    return t\n")
    chunks = extract_exercises(nb("import torch", code), ["views"])[0]["views"].chunks
    own = [(c.required, c.what) for c in chunks if c.filename == "cell 2"]
    assert own == [(False, "import torch"), (True, "cell 2"), (False, "y = x.cuda()"), (False, "print(y)"),
                   (True, "cell 2")]  # an import too may fail where grading runs (pandas on Colab)
    lines = [c.source.split("\n") for c in chunks if c.filename == "cell 2"]
    assert lines[1][3] == "def diagonal(t):" and lines[2][5] == "y = x.cuda()" and lines[4][7] == "def later(t):"
    assert lines[0][0] == "# exercise: views" and lines[1][0] == ""
    assert "y = x.cuda()" not in chunks[-1].source
    # no GPU line: the cell is one required chunk, as before
    plain = extract_exercises(nb("import torch", "# exercise: views\nprint(1)\n"), ["views"])[0]["views"].chunks
    assert [(c.required, c.what) for c in plain if c.filename == "cell 2"] == [(True, "cell 2")]


@pytest.mark.parametrize("first_line", ["# exercise: views  (10 points)", "# exercise: views # done", "# exercise: views.",
                                        "# exercise: `views`", "# Exercise: 'Views':", "# exercise: views - my answer"])
def test_marker_with_more_than_a_known_id_counts_and_says_how_it_was_read(first_line):
    """A student annotates the marker line; its first word is an exercise of the assignment: it counts, and a
    note says how it was read (before, "no cell marked" while the marker was right there)."""
    sources, notes = extract_exercises(nb("import torch", first_line + "\ndef diagonal(t):\n    return t.diagonal()\n"),
                                       ["views", "lost_leaf"])
    assert sources["views"].cells == (2,)
    assert notes == (LOOSE_MARKER_NOTE.format(cell="cell 2", marker=first_line, id="views"),)


@pytest.mark.parametrize("first_line", ["# Exercise: implement the function below", "# exercise: try views yourself"])
def test_prose_after_exercise_colon_is_not_a_marker(first_line):
    sources, notes = extract_exercises(nb("import torch", first_line + "\nx = 1\n"), ["views"])
    assert sources["views"].missing and not [n for n in notes if "read as" in n]


def test_from_future_applies_to_every_piece_of_a_split_exercise_cell():
    """`from __future__ import annotations` after the marker governs the whole cell, also when its imports and
    GPU demo are run as pieces of their own (a def annotated with a name defined later must load)."""
    code = ("# exercise: views\nfrom __future__ import annotations\nimport torch\n\n\ndef diagonal(t: Later) -> Later:\n"
            "    return t.diagonal()\n\n\nprint(diagonal(torch.ones(2, 2).cuda()))\n\n\ndef again(t: Later):\n    return t\n")
    chunks = [c for c in extract_exercises(nb("import torch", code), ["views"])[0]["views"].chunks if c.filename == "cell 2"]
    assert [c.required for c in chunks] == [True, False, True, False, True]
    namespace = {}
    for chunk in chunks:
        try:
            exec(compile(chunk.source, chunk.filename, "exec"), namespace)
        except (AssertionError, RuntimeError):  # no GPU here: the demo's failure is the worker's note
            assert not chunk.required
    assert namespace["diagonal"].__annotations__ == {"t": "Later", "return": "Later"}
    assert namespace["again"].__annotations__ == {"t": "Later"}


def test_get_ipython_in_an_exercise_cell_gets_a_do_nothing_shell():
    """`get_ipython().run_line_magic("matplotlib", "inline")` is a magic written as Python: like `%matplotlib`,
    it does nothing while grading (with a note), instead of a NameError that costs the exercise."""
    code = "# exercise: views\nget_ipython().run_line_magic('matplotlib', 'inline')\nip = get_ipython()\nip.system('ls')\n"
    views = extract_exercises(nb("import torch", code), ["views"])[0]["views"]
    assert GET_IPYTHON_NOTE in views.notes
    namespace = {}
    for chunk in views.chunks:
        exec(compile(chunk.source, chunk.filename, "exec"), namespace)
    assert namespace["ip"].run_cell("1/0") is None
    # imported in another cell: IPython's own returns None outside a shell, so the stand-in comes after it
    other = extract_exercises(nb("from IPython import get_ipython", code), ["views"])[0]["views"]
    assert [c.what for c in other.chunks][-2:] == ["get_ipython", "cell 2"]
    # imported in the exercise's own cell: left alone
    own = extract_exercises(nb("import torch", code.replace("\n", "\nfrom IPython import get_ipython\n", 1)),
                            ["views"])[0]["views"]
    assert GET_IPYTHON_NOTE not in own.notes


@pytest.mark.parametrize("head", ["#@title Default title text\n", '# @title Views { display-mode: "form" }\n',
                                  "#@title Views\n#@markdown Write the three functions.\n"])
def test_colab_form_title_above_the_marker_is_transparent(head):
    """Colab's "Add a form" puts `#@title` as a cell's first line: form markup, not code; the marker below it
    counts (any other line above the marker still does not)."""
    assert exercise_id_of(nbformat.v4.new_code_cell(head + "# exercise: views\nx = 1")) == "views"
    assert exercise_id_of(nbformat.v4.new_code_cell("# my title\n# exercise: views\nx = 1")) is None
