"""Stage 2, extract: a notebook → per exercise, the code to load (SPEC "Submissions").

An exercise's module is the top-level imports, defs and classes of every other code cell,
in notebook order, then the exercise's own cells in full. Everything else of other cells
(training loops, plots, `assert torch.cuda.is_available()`) is never run.

This module picks each exercise's cells and words what grading did differently from Jupyter. Finding
an exercise's cells is grader.markers' job, reading a cell's text as Python grader.cell_python's, and
cutting a cell into the chunks that run grader.chunks'.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import nbformat

from .cell_python import (CONTEXT_NODES, DISPLAY_NOTE, DISPLAY_SOURCE, GET_IPYTHON_NOTE, GET_IPYTHON_SOURCE,
                          PYTHON_CELL_MAGICS, cell_magic, compile_error, defined_in_text, describe_syntax_error,
                          drop_top_level_await, magic_language, magic_name, parse_cell, strip_magics)
from .chunks import Chunk, context_chunks, own_chunks
from .errors import did_you_mean
from .markers import cell_label, exercise_id_of, loose_marker, marked_exercise, marker_elsewhere

# Importable from here as before (grader's stages, tests and bench import them from grader.extract).
__all__ = ["Chunk", "ExerciseSource", "extract_exercises", "exercise_id_of", "marked_exercise", "strip_magics",
           "MISSING_MESSAGE", "GET_IPYTHON_NOTE", "LOOSE_MARKER_NOTE", "SHADOWED", "REDEFINED"]

LOOSE_MARKER_NOTE = "{cell}'s marker line `{marker}` has more than the exercise id; it was read as `# exercise: {id}`"

MISSING_MESSAGE = "no cell marked `# exercise: {id}`"
CELL_MAGIC_KEPT = ("{cell} starts with the cell magic `{magic}`: grading uses its imports, defs and classes "
                   "without that line")
CELL_MAGIC_DROPPED = "{cell} was skipped: its cell magic `{magic}` makes it {language}, not Python{lost}"
AWAIT_REMOVED = ("{cell}: removed the IPython-only top-level `await` in {what}{more} (Python allows `await` only "
                 "inside an `async def`)")
SHADOWED = ("`{name}` is defined in {own}, marked `# exercise: {id}`, and again in {other} below it, which is not "
            "marked: grading uses {own}'s (in Jupyter the later one wins); put the code you want graded in {own}")
REDEFINED = ("`{name}` is defined in {first} and again in {later}, both marked `# exercise: {id}`: the later one, "
             "in {later}, is graded")
SYNTAX_DROPPED = "{cell} was skipped: it is not valid Python ({error}){lost}"
COMPILE_NOTE = ("`torch.compile` runs your code uncompiled here: its C++ compiler does not fit the grading sandbox's "
                "limits, so the code is graded, and timed, as the plain PyTorch it is written in")


@dataclass(frozen=True)
class ExerciseSource:
    exercise_id: str
    cells: tuple[int, ...]  # 1-based cell numbers of the exercise's own cells
    chunks: tuple[Chunk, ...] = ()
    notes: tuple[str, ...] = ()
    syntax_error: str | None = None
    detail: str | None = None  # why no cell counts as marked, when a marker sits elsewhere
    # Names other cells bind but grading does not run there: name -> (cell label, why), for NameErrors.
    elsewhere: dict = field(default_factory=dict, compare=False)

    @property
    def missing(self) -> bool:
        return not self.cells


def _lost(names: list[str]) -> str:
    if not names:
        return ""
    shown = ", ".join(f"`{n}`" for n in names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return f"; so {shown} {'is' if len(names) == 1 else 'are'} not defined for the exercises"


def _bound_by_statements(tree: ast.Module) -> list[str]:
    """Names that top-level statements other than imports, defs and classes bind (never run for context)."""
    names = []
    for stmt in tree.body:
        if isinstance(stmt, CONTEXT_NODES):
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.append(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
            elif isinstance(node, ast.alias):
                names.append((node.asname or node.name).split(".")[0])
    return names


def _uses_compile(trees) -> bool:
    """`torch.compile(...)`, `@torch.compile` or `from torch import compile` somewhere in these cells."""
    for tree in trees:
        for node in ast.walk(tree) if tree is not None else ():
            if (isinstance(node, ast.Attribute) and node.attr == "compile" and isinstance(node.value, ast.Name)
                    and node.value.id == "torch") or (isinstance(node, ast.ImportFrom) and node.module == "torch"
                                                     and any(a.name == "compile" for a in node.names)):
                return True
    return False


def _uses_builtin(own: list, name: str) -> bool:
    """An exercise cell uses IPython's builtin `name` (`display`, `get_ipython`) without defining or importing it."""
    used = bound = False
    for _, _, tree, _, _, _ in own:
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Name) and node.id == name:
                used |= isinstance(node.ctx, ast.Load)
                bound |= isinstance(node.ctx, ast.Store)
            elif isinstance(node, (ast.FunctionDef, ast.alias)) and name in (
                    getattr(node, "name", None), getattr(node, "asname", None)):
                bound = True
    return used and not bound


def _top_level_defs(tree: ast.Module | None) -> list[str]:
    return [n.name for n in (tree.body if tree is not None else ())
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _same_name_notes(parsed: list, ex_id: str) -> list[str]:
    """Where grading and Jupyter's top-to-bottom run pick different definitions of one name, or where the
    student may not know which was picked: a def of the exercise's cell again in a later unmarked cell (the
    stub kept, the answer written below), or in two marked cells."""
    notes = []
    first_own: dict[str, str] = {}
    seen_own = False
    for label, cell_ex, tree, *_ in parsed:
        for name in _top_level_defs(tree):
            if cell_ex == ex_id and name in first_own and first_own[name] != label:
                notes.append(REDEFINED.format(name=name, first=first_own[name], later=label, id=ex_id))
            elif cell_ex == ex_id:
                first_own.setdefault(name, label)
            elif seen_own and cell_ex is None and name in first_own:
                notes.append(SHADOWED.format(name=name, own=first_own[name], other=label, id=ex_id))
        seen_own |= cell_ex == ex_id
    return list(dict.fromkeys(notes))


def _definition_time_names(node: ast.AST) -> set[str]:
    """Names a def or class reads when it is defined: decorators, base classes and keywords, defaults."""
    parts = list(getattr(node, "decorator_list", []))
    if isinstance(node, ast.ClassDef):
        parts += node.bases + [k.value for k in node.keywords]
    else:
        parts += node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
    return {n.id for part in parts for n in ast.walk(part) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _unloadable(parsed: list, own_labels: set, missing: dict) -> dict[str, tuple[str, str]]:
    """Defs and classes of other cells that need, when defined, a name grading does not bind (`N = 4` above
    `@lru_cache(maxsize=N)`): the NameError of the def's own name then says why (issue 14)."""
    out = {}
    for label, _, tree, _, _, _ in parsed:
        if label in own_labels or tree is None:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                needed = sorted(n for n in _definition_time_names(node) if n in missing)
                if needed:
                    cell = missing[needed[0]][0]
                    out[node.name] = (label, f"its definition needs `{needed[0]}`, which {cell} assigns in a "
                                             "statement, and grading runs only the imports, defs and classes of "
                                             "other cells")
    return out


def extract_exercises(nb: nbformat.NotebookNode, exercise_ids) -> tuple[dict[str, ExerciseSource], tuple[str, ...]]:
    """Every exercise of the assignment, found or missing, and notebook-level notes."""
    exercise_ids = list(exercise_ids)
    notes: list[str] = []
    parsed = []  # (label, exercise id or None, tree, source, removed magics, syntax error)
    elsewhere: dict[tuple[str, str], str] = {}  # (cell, name) -> why grading does not run what binds it there
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        label = cell_label(index)
        ex_id = exercise_id_of(cell)
        if ex_id not in exercise_ids and (loose := loose_marker(cell, exercise_ids)) is not None:
            ex_id, line = loose
            notes.append(LOOSE_MARKER_NOTE.format(cell=label, marker=line[:80], id=ex_id))
        if ex_id is not None and ex_id not in exercise_ids:
            notes.append(
                f"{label} is marked `# exercise: {ex_id}`, which is not an exercise of this assignment"
                f"{did_you_mean(ex_id, exercise_ids)}; it was treated as an ordinary cell"
            )
            ex_id = None
        tree, source, removed, error = parse_cell(cell.source, label)
        magic = cell_magic(cell.source) if removed else None
        if ex_id is None and magic is not None:
            if magic_name(magic) in PYTHON_CELL_MAGICS:
                notes.append(CELL_MAGIC_KEPT.format(cell=label, magic=magic[:60]))
            else:
                lost = defined_in_text(cell.source)
                notes.append(CELL_MAGIC_DROPPED.format(cell=label, magic=magic[:60], language=magic_language(magic),
                                                       lost=_lost(lost)))
                for name in lost:
                    elsewhere.setdefault((label, name), f"its cell magic `{magic[:40]}` makes it not Python")
                tree, error = ast.parse(""), None
        # For the other exercises, every cell (another exercise's too) is context: what it binds but
        # grading does not run there explains a NameError.
        if tree is not None:
            for name in _bound_by_statements(tree):
                elsewhere.setdefault((label, name), "grading runs only the imports, defs and classes of other cells")
        elif error is not None:
            for name in defined_in_text(cell.source):
                elsewhere.setdefault((label, name), "that cell is not valid Python, so it was skipped")
        parsed.append((label, ex_id, tree, source, removed, error))
    out = {}
    for ex_id in exercise_ids:
        own = [p for p in parsed if p[1] == ex_id]
        if not own:
            out[ex_id] = ExerciseSource(ex_id, (), detail=marker_elsewhere(nb, ex_id))
            continue
        chunks: list[Chunk] = []
        ex_notes: list[str] = []
        if _uses_builtin(own, "display"):
            chunks.append(Chunk("IPython display", DISPLAY_SOURCE, False, "display"))
            ex_notes.append(DISPLAY_NOTE)
        for label, cell_ex, tree, source, removed, error in parsed:
            if cell_ex == ex_id:
                continue
            if error is not None:
                ex_notes.append(SYNTAX_DROPPED.format(cell=label, error=describe_syntax_error(error, label),
                                                      lost=_lost(defined_in_text(source))))
            elif tree is not None:
                chunks.extend(context_chunks(tree, source, label))
        if _uses_compile([p[2] for p in own] + [ast.parse(c.source) for c in chunks if c.filename.startswith("cell ")]):
            ex_notes.append(COMPILE_NOTE)
        if _uses_builtin(own, "get_ipython"):  # after other cells: IPython's own returns None outside a shell
            chunks.append(Chunk("IPython get_ipython", GET_IPYTHON_SOURCE, False, "get_ipython"))
            ex_notes.append(GET_IPYTHON_NOTE)
        syntax_error = None
        for label, _, tree, source, removed, error in own:
            for magic in removed:
                ex_notes.append(f"{label}: removed the IPython command `{magic[:80]}` (it is not Python)")
            if error is None and tree is not None:
                source, awaited = drop_top_level_await(source, tree)
                if awaited:
                    more = f" and {len(awaited) - 1} more" if len(awaited) > 1 else ""
                    ex_notes.append(AWAIT_REMOVED.format(cell=label, what=awaited[0], more=more))
                    tree = ast.parse(source, label)
            error = error or compile_error(source, label)
            if error is not None and syntax_error is None:
                syntax_error = describe_syntax_error(error, label)
            chunks.extend(own_chunks(tree, source, label) if error is None else [Chunk(label, source, True, label)])
        ex_notes += _same_name_notes(parsed, ex_id)
        own_labels = {p[0] for p in own}
        defined = {c.what.split()[-1] for c in chunks if not c.required and c.filename not in own_labels}
        missing_names: dict[str, tuple[str, str]] = {}
        for (label, name), why in elsewhere.items():
            if label not in own_labels and name not in defined:
                missing_names.setdefault(name, (label, why))
        for name, (label, why) in _unloadable(parsed, own_labels, missing_names).items():
            missing_names.setdefault(name, (label, why))
        out[ex_id] = ExerciseSource(
            ex_id,
            tuple(int(p[0].split()[1]) for p in own),
            tuple(chunks),
            tuple(ex_notes),
            syntax_error,
            elsewhere=missing_names,
        )
    return out, tuple(notes)
