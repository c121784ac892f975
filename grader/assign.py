"""`grader assign`: the student notebook is the solution notebook with its solution regions stubbed.

A region between `### BEGIN SOLUTION` and `### END SOLUTION` becomes `raise NotImplementedError`,
unless a `### BEGIN STUB` ... `### END STUB` block of commented lines follows it: then those
lines, uncommented, are the stub (for exercises that repair the lecture's buggy code).
After each exercise comes a cell that checks it (`grader.check("ID")`, as Otter does), and before the
first code cell one `import grader`: grading ignores both (no exercise marker; another cell's top-level
calls never run, and `import grader` is the grader's own package).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

from .errors import ConfigError
from .extract import exercise_id_of

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_STUB, END_STUB = "### BEGIN STUB", "### END STUB"
STUB_LINE = 'raise NotImplementedError("{id}: replace this line with your code")'
CHECK_CELL = 'grader.check("{id}")'
SETUP_CELL = 'import grader  # grader.check("ID") grades this notebook as saved: save (Ctrl+S), then check'


def stub_source(source: str, exercise_id: str, where: str) -> str:
    lines = source.splitlines()
    out: list[str] = []
    i = 0

    def bad(problem: str, at: int) -> ConfigError:
        return ConfigError(f"{where}, line {at + 1}: {problem}")

    while i < len(lines):
        line = lines[i]
        marker = line.strip()
        if marker in (END, BEGIN_STUB, END_STUB):
            raise bad(f"`{marker}` without a `{BEGIN}` before it", i)
        if marker != BEGIN:
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == END), None)
        if end is None:
            raise bad(f"`{BEGIN}` is never closed by `{END}`", i)
        if any(lines[j].strip() == BEGIN for j in range(i + 1, end)):
            raise bad("solution regions cannot nest", i)
        i = end + 1
        if i < len(lines) and lines[i].strip() == BEGIN_STUB:
            stub_end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == END_STUB), None)
            if stub_end is None:
                raise bad(f"`{BEGIN_STUB}` is never closed by `{END_STUB}`", i)
            for j in range(i + 1, stub_end):
                out.append(_uncomment(lines[j], lambda problem, j=j: bad(problem, j)))
            i = stub_end + 1
        else:
            out.append(indent + STUB_LINE.format(id=exercise_id))
    return "\n".join(out)


def _uncomment(line: str, bad) -> str:
    stripped = line.lstrip()
    if not stripped:
        return line
    if not stripped.startswith("#"):
        raise bad("lines of a stub block must be commented out (`# code`), so the solution notebook does not run them")
    indent = line[: len(line) - len(stripped)]
    body = stripped[1:]
    return indent + (body[1:] if body.startswith(" ") else body)


def make_student_notebook(solution: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    nb = copy.deepcopy(solution)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        ex_id = exercise_id_of(cell)
        if ex_id is not None:
            cell.source = stub_source(cell.source, ex_id, f"{path}, cell {index + 1}")
        elif BEGIN in cell.source:
            raise ConfigError(f"{path}, cell {index + 1}: a solution region outside an exercise cell")
    add_check_cells(nb)
    return nb


def add_check_cells(nb: nbformat.NotebookNode) -> None:
    """A check cell after each exercise's last cell, `import grader` before the first code cell; cells
    with fixed ids, so that `grader assign --check` compares equal, and none where the author wrote one."""
    last_of = {exercise_id_of(cell): i for i, cell in enumerate(nb.cells)}
    last_of.pop(None, None)
    for ex_id, i in sorted(last_of.items(), key=lambda item: -item[1]):
        source = CHECK_CELL.format(id=ex_id)
        following = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
        if following is None or following.source.strip() != source:
            nb.cells.insert(i + 1, _code_cell(source, f"check-{ex_id}"))
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    if code and not any(re.match(r"\s*import\s+grader\b", nb.cells[i].source) for i in code):
        nb.cells.insert(code[0], _code_cell(SETUP_CELL, "grader-setup"))


def _code_cell(source: str, cell_id: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.id = cell_id[:64]
    return cell


def assign(solution_path: Path, exercise_path: Path, check_only: bool = False) -> bool:
    """Write the student notebook; with `check_only`, only say whether the written one is current."""
    solution = nbformat.read(str(solution_path), as_version=4)
    text = nbformat.writes(make_student_notebook(solution, solution_path)) + "\n"
    current = exercise_path.read_text(encoding="utf-8") if exercise_path.exists() else None
    if check_only:
        return current == text
    exercise_path.parent.mkdir(parents=True, exist_ok=True)
    exercise_path.write_text(text, encoding="utf-8")
    return current == text
