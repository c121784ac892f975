"""Stage 2, extract: a notebook → per exercise, the code to load (SPEC "Submissions").

An exercise's module is the top-level imports, defs and classes of every other code cell,
in notebook order, then the exercise's own cells in full. Everything else of other cells
(training loops, plots, `assert torch.cuda.is_available()`) is never run.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import nbformat

from .errors import did_you_mean

MARKER = re.compile(r"^#\s*exercise\s*:\s*(\S+)\s*$", re.IGNORECASE)
TAG = re.compile(r"^exercise\s*:\s*(\S+)$", re.IGNORECASE)
# A line IPython would rewrite: `%magic`, `!shell`, `x = !shell`, `x = %magic`.
MAGIC_LINE = re.compile(r"^(\s*)(?:[%!]|[\w.,\s\[\]]+=\s*[%!])")
CONTEXT_NODES = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

MISSING_MESSAGE = "no cell marked `# exercise: {id}`"


@dataclass(frozen=True)
class Chunk:
    """One piece of code to execute; `filename` is what a traceback shows ("cell 12")."""

    filename: str
    source: str  # padded with blank lines so line numbers are those of the cell
    required: bool  # False: context from another cell, whose failure is only a note
    what: str  # for notes: "import graphviz", "def ptgraph"


@dataclass(frozen=True)
class ExerciseSource:
    exercise_id: str
    cells: tuple[int, ...]  # 1-based cell numbers of the exercise's own cells
    chunks: tuple[Chunk, ...] = ()
    notes: tuple[str, ...] = ()
    syntax_error: str | None = None

    @property
    def missing(self) -> bool:
        return not self.cells


def cell_label(index: int) -> str:
    return f"cell {index + 1}"


def exercise_id_of(cell: nbformat.NotebookNode) -> str | None:
    if cell.get("cell_type") != "code":
        return None
    for tag in cell.get("metadata", {}).get("tags", []) or []:
        m = TAG.match(str(tag).strip())
        if m:
            return m.group(1).lower()
    for line in cell.source.splitlines():
        if line.strip():
            m = MARKER.match(line.strip())
            return m.group(1).lower() if m else None
    return None


def strip_magics(source: str) -> tuple[str, list[str]]:
    """Replace IPython-only lines by `pass`, keeping line numbers; return the removed lines.

    Only called on a cell that does not parse as Python, so a `%` inside a string of a
    valid cell is never touched.
    """
    lines = source.splitlines()
    first = next((l for l in lines if l.strip()), "")
    if first.lstrip().startswith("%%"):
        return "", [first.strip()]
    removed = []
    for i, line in enumerate(lines):
        m = MAGIC_LINE.match(line)
        if m:
            removed.append(line.strip())
            lines[i] = m.group(1) + "pass"
    return "\n".join(lines), removed


def _parse_cell(source: str, label: str) -> tuple[ast.Module | None, str, list[str], SyntaxError | None]:
    try:
        return ast.parse(source, label), source, [], None
    except SyntaxError:
        pass
    stripped, removed = strip_magics(source)
    try:
        return ast.parse(stripped, label), stripped, removed, None
    except SyntaxError as e:
        return None, stripped, removed, e


def describe_syntax_error(e: SyntaxError, label: str) -> str:
    where = f"{label}, line {e.lineno}" if e.lineno else label
    text = f"{where}: {e.msg}"
    if e.text and e.text.strip():
        text += f": `{e.text.strip()[:120]}`"
    return text


def _pad(source_lines: list[str], first: int, last: int) -> str:
    """Lines first..last (1-based) of a cell, preceded by blank lines to keep numbering."""
    return "\n" * (first - 1) + "\n".join(source_lines[first - 1 : last]) + "\n"


def _context_chunks(tree: ast.Module, source: str, label: str) -> list[Chunk]:
    lines = source.splitlines()
    chunks = []
    for node in tree.body:
        if not isinstance(node, CONTEXT_NODES):
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            what = lines[node.lineno - 1].strip()
        else:
            kind = "class" if isinstance(node, ast.ClassDef) else "def"
            what = f"{kind} {node.name}"
        chunks.append(Chunk(label, _pad(lines, first, node.end_lineno), False, what))
    return chunks


def extract_exercises(nb: nbformat.NotebookNode, exercise_ids) -> tuple[dict[str, ExerciseSource], tuple[str, ...]]:
    """Every exercise of the assignment, found or missing, and notebook-level notes."""
    exercise_ids = list(exercise_ids)
    notes: list[str] = []
    parsed = []  # (label, exercise id or None, tree, source, removed magics, syntax error)
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        label = cell_label(index)
        ex_id = exercise_id_of(cell)
        if ex_id is not None and ex_id not in exercise_ids:
            notes.append(
                f"{label} is marked `# exercise: {ex_id}`, which is not an exercise of this assignment"
                f"{did_you_mean(ex_id, exercise_ids)}; it was treated as an ordinary cell"
            )
            ex_id = None
        tree, source, removed, error = _parse_cell(cell.source, label)
        parsed.append((label, ex_id, tree, source, removed, error))
    out = {}
    for ex_id in exercise_ids:
        own = [p for p in parsed if p[1] == ex_id]
        if not own:
            out[ex_id] = ExerciseSource(ex_id, ())
            continue
        chunks: list[Chunk] = []
        ex_notes: list[str] = []
        for label, cell_ex, tree, source, removed, error in parsed:
            if cell_ex == ex_id:
                continue
            if error is not None:
                ex_notes.append(f"{label} was skipped: it is not valid Python ({describe_syntax_error(error, label)})")
            elif tree is not None:
                chunks.extend(_context_chunks(tree, source, label))
        syntax_error = None
        for label, _, tree, source, removed, error in own:
            for magic in removed:
                ex_notes.append(f"{label}: removed the IPython command `{magic[:80]}` (it is not Python)")
            if error is not None and syntax_error is None:
                syntax_error = describe_syntax_error(error, label)
            chunks.append(Chunk(label, source, True, label))
        out[ex_id] = ExerciseSource(
            ex_id,
            tuple(int(p[0].split()[1]) for p in own),
            tuple(chunks),
            tuple(ex_notes),
            syntax_error,
        )
    return out, tuple(notes)
