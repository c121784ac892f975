"""Which cell is which exercise's: the `# exercise: ID` marker (or a cell tag) on a code cell's first
line, read as forgivingly as a student writes it (a pasted BOM, Colab's form markup, `# exercise: views
(10 points)`), and where a marker sits that does not count.

SPEC "Submissions". grader.extract, the TA's tools (assign, export, validate) and the in-notebook service
(without torch) ask this module.
"""

from __future__ import annotations

import re

import nbformat

from .cell_python import python_lines

MARKER = re.compile(r"^#\s*exercise\s*:\s*(\S+)\s*$", re.IGNORECASE)
# A marker line with more than the id (`# exercise: views (10 points)`, `# exercise: `views``): counts when its
# first word is an exercise of the assignment.
LOOSE_MARKER = re.compile(r"^#\s*exercise\s*:\s*[`'\"]?([\w-]+)[`'\".:;,]*(?:\s.*)?$", re.IGNORECASE)
# Colab's form markup (`#@title`, `#@markdown`), which "Add a form" puts above everything in a cell.
COLAB_FORM = re.compile(r"^#\s*@(?:title|markdown)\b")
TAG = re.compile(r"^exercise\s*:\s*(\S+)$", re.IGNORECASE)
# What a paste from a web page or PDF leaves at the start of a line: BOM, zero-width and non-breaking spaces.
INVISIBLE = "\ufeff\u200b\u2060\u00a0"

MARKER_NOT_FIRST = "`{marker}` is on line {line} of {cell}; the marker must be the cell's first line"
MARKER_NOT_CODE = "`{marker}` is in a {kind} cell ({cell}); the marker must be the first line of a code cell"


def cell_label(index: int) -> str:
    return f"cell {index + 1}"


def exercise_id_of(cell: nbformat.NotebookNode) -> str | None:
    if cell.get("cell_type") != "code":
        return None
    for tag in cell.get("metadata", {}).get("tags", []) or []:
        m = TAG.match(str(tag).strip())
        if m:
            return m.group(1).lower()
    m = MARKER.match(_marker_line(cell.source))
    return m.group(1).lower() if m else None


def _marker_line(source: str) -> str:
    """Where a marker must be: the first non-blank line, past Colab's form markup."""
    return next((_bare(line) for line in python_lines(source) if _bare(line) and not COLAB_FORM.match(_bare(line))), "")


def _bare(line: str) -> str:
    """A line without surrounding whitespace, nor the invisible characters a paste may leave (BOM, U+200B)."""
    return line.strip().strip(INVISIBLE).strip()


def marked_exercise(cell: nbformat.NotebookNode, exercise_ids) -> str | None:
    """The exercise of `exercise_ids` a cell is marked for, as grading reads it (a loose marker included)."""
    ex_id = exercise_id_of(cell)
    if ex_id in exercise_ids:
        return ex_id
    loose = loose_marker(cell, list(exercise_ids))
    return loose[0] if loose else None


def loose_marker(cell: nbformat.NotebookNode, exercise_ids: list[str]) -> tuple[str, str] | None:
    """(id, line) when a code cell's first line is a marker with more than an id of `exercise_ids`."""
    if cell.get("cell_type") != "code":
        return None
    line = _marker_line(cell.source)
    m = LOOSE_MARKER.match(line)
    return (m.group(1).lower(), line) if m and m.group(1).lower() in exercise_ids else None


def marker_elsewhere(nb: nbformat.NotebookNode, ex_id: str) -> str | None:
    """Where a marker for `ex_id` sits that does not count: a later line, or a markdown or raw cell."""
    for index, cell in enumerate(nb.cells):
        for number, line in enumerate(python_lines(cell.get("source", "")), 1):
            m = MARKER.match(_bare(line))
            if not m or m.group(1).lower() != ex_id:
                continue
            if cell.get("cell_type") != "code":
                return MARKER_NOT_CODE.format(marker=line.strip(), kind=cell.get("cell_type"), cell=cell_label(index))
            return MARKER_NOT_FIRST.format(marker=line.strip(), line=number, cell=cell_label(index))
    return None
