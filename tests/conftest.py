"""Shared fixtures: real notebooks written with nbformat, and one warm Grader per test session."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from grader import Grader, load_assignment

REPO = Path(__file__).resolve().parent.parent
VARIANTS = Path(__file__).resolve().parent / "variants"
MINI_RUBRICS = Path(__file__).resolve().parent / "data" / "mini" / "rubrics"

DOUBLE_OK = "def double(x):\n    return 2 * x"
SQUARE_OK = "def square(x):\n    return x ** 2"


def build_notebook(cells, *, markdown=(), tags: dict[int, list[str]] | None = None) -> nbformat.NotebookNode:
    """Each string a code cell (or markdown, by index); `tags` by cell index."""
    nb = nbformat.v4.new_notebook()
    for i, source in enumerate(cells):
        cell = nbformat.v4.new_markdown_cell(source) if i in markdown else nbformat.v4.new_code_cell(source)
        if tags and i in tags:
            cell.metadata["tags"] = tags[i]
        nb.cells.append(cell)
    return nb


def write_notebook(path: Path, cells: list[str], *, markdown: tuple[int, ...] = (), tags: dict[int, list[str]] | None = None,
                   version: int = 4) -> Path:
    """A real notebook on disk (nbformat 4, or converted to an older `version`)."""
    nb = build_notebook(cells, markdown=markdown, tags=tags)
    if version != 4:
        nb = nbformat.convert(nb, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path), version=version)
    return path


def exercise_notebook(path: Path, exercises: dict[str, str], preamble: str = "import torch") -> Path:
    """A notebook with a preamble cell and one marked cell per exercise."""
    cells = [preamble] + [f"# exercise: {ex_id}\n{code}" for ex_id, code in exercises.items()]
    return write_notebook(path, cells)


@pytest.fixture(scope="session")
def assignment():
    return load_assignment()


@pytest.fixture(scope="session")
def grader(assignment):
    """Warm workers shared by the whole test session (torch imported once per worker)."""
    with Grader(assignment, jobs=2) as g:
        yield g


@pytest.fixture(scope="session")
def mini_assignment():
    """Two tiny exercises (`double`, `square`) with 3 s time limits: for the spine's own tests."""
    return load_assignment(MINI_RUBRICS)


@pytest.fixture(scope="session")
def mini_grader(mini_assignment):
    with Grader(mini_assignment, jobs=2) as g:
        yield g


# -- running the suite on two xdist workers (pyproject: addopts "-n 2 --dist loadgroup") -------------

# The longest single test: it goes first, so that it is not the last one running while the other worker idles.
LONGEST = "test_validate.py::test_bundled_assignment_validates"
BUNDLED = "bundled-grader"


# Before xdist's own hook, which turns each item's xdist_group mark into the scope it schedules by.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Which tests share an xdist worker. The tests that use the bundled assignment's warm `grader` run on
    one worker, so that its workers (each one's first grading of the bundled notebook costs seconds) start
    once, not once per xdist worker; so do the tests of a module that share a module-scoped fixture (a graded
    class, a Dask cluster, a kernel). Those go first, the longest test first of all; with `-n 0` only the
    order changes."""
    def group(item) -> str | None:
        if "grader" in item.fixturenames:
            return BUNDLED
        info = getattr(item, "_fixtureinfo", None)
        if info and any(d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs):
            return item.module.__name__
        return None

    groups = {}
    for item in items:
        groups[item] = group(item)
        if groups[item]:
            item.add_marker(pytest.mark.xdist_group(groups[item]))
    items.sort(key=lambda item: (not item.nodeid.endswith(LONGEST), groups[item] != BUNDLED, groups[item] is None))
