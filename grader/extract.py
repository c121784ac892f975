"""Stage 2, extract: a notebook → per exercise, the code to load (SPEC "Submissions").

An exercise's module is the top-level imports, defs and classes of every other code cell,
in notebook order, then the exercise's own cells in full. Everything else of other cells
(training loops, plots, `assert torch.cuda.is_available()`) is never run.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import nbformat

from .errors import did_you_mean

MARKER = re.compile(r"^#\s*exercise\s*:\s*(\S+)\s*$", re.IGNORECASE)
# A marker line with more than the id (`# exercise: views (10 points)`, `# exercise: `views``): counts when its
# first word is an exercise of the assignment.
LOOSE_MARKER = re.compile(r"^#\s*exercise\s*:\s*[`'\"]?([\w-]+)[`'\".:;,]*(?:\s.*)?$", re.IGNORECASE)
LOOSE_MARKER_NOTE = "{cell}'s marker line `{marker}` has more than the exercise id; it was read as `# exercise: {id}`"
# Colab's form markup (`#@title`, `#@markdown`), which "Add a form" puts above everything in a cell.
COLAB_FORM = re.compile(r"^#\s*@(?:title|markdown)\b")
TAG = re.compile(r"^exercise\s*:\s*(\S+)$", re.IGNORECASE)
# A line IPython would rewrite: `%magic`, `!shell`, `x = !shell`, `x = %magic`.
# Also IPython's help (`obj?`, `obj??`, `?obj`) and its `/f x` autocall escape.
MAGIC_LINE = re.compile(r"^(\s*)(?:[%!]|[\w.,\s\[\]]+=\s*[%!]|\?{1,2}[\w.*]|[\w.*\[\]]+\?{1,2}\s*$|/\w)")
# What a paste from a web page or PDF leaves at the start of a line: BOM, zero-width and non-breaking spaces.
INVISIBLE = "\ufeff\u200b\u2060\u00a0"
ZERO_WIDTH = re.compile("^([ \t]*)[\ufeff\u200b\u2060]+", re.MULTILINE)
NBSP_BEFORE_COMMENT = re.compile(r"^[ \t\u00a0]*\u00a0[ \t\u00a0]*(?=#|$)", re.MULTILINE)
CONTEXT_NODES = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

MISSING_MESSAGE = "no cell marked `# exercise: {id}`"
MARKER_NOT_FIRST = "`{marker}` is on line {line} of {cell}; the marker must be the cell's first line"
MARKER_NOT_CODE = "`{marker}` is in a {kind} cell ({cell}); the marker must be the first line of a code cell"
CELL_MAGIC_KEPT = ("{cell} starts with the cell magic `{magic}`: grading uses its imports, defs and classes "
                   "without that line")
CELL_MAGIC_DROPPED = "{cell} was skipped: its cell magic `{magic}` makes it {language}, not Python{lost}"
TOP_LEVEL_AWAIT = ("top-level `await` runs only in Jupyter (IPython), not in a Python module: put it inside an "
                   "`async def`, or leave it out of the exercise's cell")
AWAIT_REMOVED = ("{cell}: removed the IPython-only top-level `await` in {what}{more} (Python allows `await` only "
                 "inside an `async def`)")
SHADOWED = ("`{name}` is defined in {own}, marked `# exercise: {id}`, and again in {other} below it, which is not "
            "marked: grading uses {own}'s (in Jupyter the later one wins); put the code you want graded in {own}")
REDEFINED = ("`{name}` is defined in {first} and again in {later}, both marked `# exercise: {id}`: the later one, "
             "in {later}, is graded")
SYNTAX_DROPPED = "{cell} was skipped: it is not valid Python ({error}){lost}"
COMPILE_NOTE = ("`torch.compile` runs your code uncompiled here: its C++ compiler does not fit the grading sandbox's "
                "limits, so the code is graded, and timed, as the plain PyTorch it is written in")
DISPLAY_NOTE = "`display(...)` is IPython's, not Python's: while grading, it prints the object's repr"
# Cell magics whose body is Python (IPython runs it, timed or captured): the body is kept.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "python", "python3", "pypy", "snakeviz"})
GET_IPYTHON_NOTE = ("`get_ipython()` is IPython's, not Python's: while grading, the magics and commands you run "
                    "through it do nothing")
GET_IPYTHON_SOURCE = (
    "class _IPythonWhileGrading:\n"
    "    \"\"\"get_ipython(), while grading: a shell whose magics and commands do nothing (as `%magic` lines).\"\"\"\n"
    "    def __getattr__(self, name):\n"
    "        return lambda *args, **kwargs: None\n"
    "\n"
    "\n"
    "def get_ipython():\n"
    "    return _IPythonWhileGrading()\n"
)
# Stand-ins for IPython's builtins an exercise cell may call (only `display` has a harmless meaning here).
DISPLAY_SOURCE = (
    "def display(*objs, **kwargs):\n"
    "    \"\"\"IPython's display(), while grading: print each object's repr (bounded).\"\"\"\n"
    "    for obj in objs:\n"
    "        print(repr(obj)[:2000])\n"
)


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
    detail: str | None = None  # why no cell counts as marked, when a marker sits elsewhere
    # Names other cells bind but grading does not run there: name -> (cell label, why), for NameErrors.
    elsewhere: dict = field(default_factory=dict, compare=False)

    @property
    def missing(self) -> bool:
        return not self.cells


def cell_label(index: int) -> str:
    return f"cell {index + 1}"


def python_lines(source: str) -> list[str]:
    """A cell's lines as Python's tokenizer counts them: only \\n, \\r\\n and \\r end a line.

    `str.splitlines()` also breaks at form feed, \\x0b, \\x1c-\\x1e, \\x85, U+2028 and U+2029, which may sit
    in a comment: line numbers would then differ from `ast`'s, and valid code be cut in the wrong place.
    """
    return normalise_newlines(source).split("\n")


def normalise_newlines(source: str) -> str:
    # What the tokenizer does itself (universal newlines): the compiled code is the same.
    return source.replace("\r\n", "\n").replace("\r", "\n")


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
    loose = _loose_marker(cell, list(exercise_ids))
    return loose[0] if loose else None


def _loose_marker(cell: nbformat.NotebookNode, exercise_ids: list[str]) -> tuple[str, str] | None:
    """(id, line) when a code cell's first line is a marker with more than an id of `exercise_ids`."""
    if cell.get("cell_type") != "code":
        return None
    line = _marker_line(cell.source)
    m = LOOSE_MARKER.match(line)
    return (m.group(1).lower(), line) if m and m.group(1).lower() in exercise_ids else None


def cell_magic(source: str) -> str | None:
    """The cell magic (`%%time`, `%%bash`) on the cell's first non-blank line, if any."""
    first = next((line for line in python_lines(source) if line.strip()), "")
    return first.strip() if first.lstrip().startswith("%%") else None


def magic_name(magic: str) -> str:
    return magic.lstrip("%").split(maxsplit=1)[0].lower() if magic.lstrip("%").strip() else ""


def strip_magics(source: str) -> tuple[str, list[str]]:
    """Replace IPython-only lines by `pass` (a cell magic's line by a blank one), keeping line numbers;
    return the removed lines. A cell whose cell magic makes it another language is returned empty.

    Only called on a cell that does not parse as Python, so a `%` inside a string of a
    valid cell is never touched.
    """
    lines = python_lines(source)
    removed = []
    magic = cell_magic(source)
    if magic is not None:
        if magic_name(magic) not in PYTHON_CELL_MAGICS:
            return "", [magic]
        index = next(i for i, line in enumerate(lines) if line.strip())
        lines[index] = ""
        removed.append(magic)
    for i, line in enumerate(lines):
        m = MAGIC_LINE.match(line)
        if m:
            removed.append(line.strip())
            lines[i] = m.group(1) + "pass"
    return "\n".join(lines), removed


def _parse_cell(source: str, label: str) -> tuple[ast.Module | None, str, list[str], SyntaxError | None]:
    source = normalise_newlines(source)
    try:
        return ast.parse(source, label), source, [], None
    except SyntaxError:
        pass
    # What the student sees: a zero-width character (BOM) at a line's start is dropped, and U+00A0 before a
    # comment (a pasted marker) becomes a space. U+00A0 in code's indentation stays an error, as in Jupyter.
    source = ZERO_WIDTH.sub(r"\1", source)
    source = NBSP_BEFORE_COMMENT.sub(lambda m: " " * len(m.group()), source)
    stripped, removed = strip_magics(source)
    try:
        return ast.parse(stripped, label), stripped, removed, None
    except SyntaxError as e:
        return None, stripped, removed, e


def _compile_error(source: str, label: str) -> SyntaxError | None:
    """What `ast.parse` accepts but `compile` refuses (`await` or `return` outside a function, a misplaced
    `from __future__`): found here, so it is said as the cell's syntax error, not as a failure while loading."""
    try:
        compile(source, label, "exec", dont_inherit=True)
    except SyntaxError as e:
        if not e.text and e.lineno:  # the compiler's errors (unlike the parser's) come without the line
            lines = python_lines(source)
            e.text = lines[e.lineno - 1] if e.lineno <= len(lines) else None
        return e
    except ValueError:  # e.g. a NUL character; the worker reports it when it loads the cell
        return None
    return None


def _drop_top_level_await(source: str, tree: ast.Module) -> tuple[str, list[str]]:
    """Top-level statements with an `await` outside any `async def` (IPython's autoawait runs them, Python
    cannot) become `pass`, keeping line numbers, as a magic's line does; return the source and what went."""
    lines = python_lines(source)
    removed = []
    for stmt in tree.body:
        if isinstance(stmt, CONTEXT_NODES) or not _awaits_outside_functions(stmt):
            continue
        removed.append(f"`{lines[stmt.lineno - 1].strip()[:60]}` (line {stmt.lineno})")
        indent = lines[stmt.lineno - 1][: stmt.col_offset]
        lines[stmt.lineno - 1 : stmt.end_lineno] = [indent + "pass"] + [""] * (stmt.end_lineno - stmt.lineno)
    return ("\n".join(lines), removed) if removed else (source, [])


def _awaits_outside_functions(node: ast.AST) -> bool:
    if isinstance(node, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
        return True
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
        return False
    return any(_awaits_outside_functions(child) for child in ast.iter_child_nodes(node))


def describe_syntax_error(e: SyntaxError, label: str) -> str:
    where = f"{label}, line {e.lineno}" if e.lineno else label
    text = f"{where}: {e.msg}"
    if e.text and e.text.strip():
        text += f": `{e.text.strip()[:120]}`"
    if "'await' outside" in e.msg:
        text += f"; {TOP_LEVEL_AWAIT}"
    return text


def _pad(source_lines: list[str], first: int, last: int) -> str:
    """Lines first..last (1-based) of a cell, preceded by blank lines to keep numbering."""
    return "\n" * (first - 1) + "\n".join(source_lines[first - 1 : last]) + "\n"


def _context_chunks(tree: ast.Module, source: str, label: str) -> list[Chunk]:
    lines = python_lines(source)
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


DEFINITION = re.compile(r"^(?:async\s+def|def|class)\s+(\w+)")
ASSIGNMENT = re.compile(r"^(\w+)\s*(?::[^=]*)?=(?!=)")


def _defined_in_text(source: str) -> list[str]:
    """The defs, classes and assignments at column 0 of a cell that cannot be parsed (line by line)."""
    names = []
    for line in python_lines(source):
        m = DEFINITION.match(line) or ASSIGNMENT.match(line)
        if m:
            names.append(m.group(1))
    return list(dict.fromkeys(names))


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


def _marker_elsewhere(nb: nbformat.NotebookNode, ex_id: str) -> str | None:
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


def _own_chunks(tree: ast.Module | None, source: str, label: str) -> list[Chunk]:
    """An exercise cell, required in full, except its imports and its demo from the first top-level statement
    that names CUDA on (`a, b = make_leaves('cuda')`, written on Colab with a GPU): each of those is a chunk
    of its own whose failure is a note, so that grading on a machine without a GPU or without pandas judges
    the functions, not the demo or an unused import. Line numbers are kept."""
    body = tree.body if tree is not None else []
    first = next((i for i, stmt in enumerate(body) if not isinstance(stmt, CONTEXT_NODES)
                  and "cuda" in (ast.get_source_segment(source, stmt) or "")), len(body))
    spans = [(min([s.lineno] + [d.lineno for d in getattr(s, "decorator_list", [])]), s.end_lineno) for s in body]

    def optional(i: int, stmt: ast.stmt) -> bool:
        # An import the grading machine lacks (pandas, tqdm on Colab) costs only what needs it, as elsewhere.
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            return getattr(stmt, "module", None) != "__future__"
        return i >= first and not isinstance(stmt, CONTEXT_NODES)

    if not any(optional(i, stmt) for i, stmt in enumerate(body)) or any(
            a[1] >= b[0] for a, b in zip(spans, spans[1:])):  # `a = 1; b = 2` on one line: keep the cell whole
        return [Chunk(label, source, True, label)]
    lines = python_lines(source)
    groups: list[tuple[bool, list[int]]] = []  # (required, statement indices), in order
    for i, stmt in enumerate(body):
        required = not optional(i, stmt)
        if required and groups and groups[-1][0]:
            groups[-1][1].append(i)
        else:
            groups.append((required, [i]))
    # `from __future__` governs a compile unit: each piece gets it, on its own line (before any statement).
    future = [i for i, stmt in enumerate(body) if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"]
    chunks = []
    for required, members in groups:
        keep = [""] * len(lines)
        for i in sorted(set(future) | set(members)):
            keep[spans[i][0] - 1 : spans[i][1]] = lines[spans[i][0] - 1 : spans[i][1]]
        if members[0] == 0:  # the marker and comments above the first statement, as written
            keep[: spans[0][0] - 1] = lines[: spans[0][0] - 1]
        text = "\n".join(keep[: spans[members[-1]][1]]) + "\n"
        what = label if required else lines[spans[members[0]][0] - 1].strip()[:60]
        chunks.append(Chunk(label, text, required, what))
    return chunks


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
        if ex_id not in exercise_ids and (loose := _loose_marker(cell, exercise_ids)) is not None:
            ex_id, line = loose
            notes.append(LOOSE_MARKER_NOTE.format(cell=label, marker=line[:80], id=ex_id))
        if ex_id is not None and ex_id not in exercise_ids:
            notes.append(
                f"{label} is marked `# exercise: {ex_id}`, which is not an exercise of this assignment"
                f"{did_you_mean(ex_id, exercise_ids)}; it was treated as an ordinary cell"
            )
            ex_id = None
        tree, source, removed, error = _parse_cell(cell.source, label)
        magic = cell_magic(cell.source) if removed else None
        if ex_id is None and magic is not None:
            if magic_name(magic) in PYTHON_CELL_MAGICS:
                notes.append(CELL_MAGIC_KEPT.format(cell=label, magic=magic[:60]))
            else:
                lost = _defined_in_text(cell.source)
                notes.append(CELL_MAGIC_DROPPED.format(cell=label, magic=magic[:60], language=_language(magic),
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
            for name in _defined_in_text(cell.source):
                elsewhere.setdefault((label, name), "that cell is not valid Python, so it was skipped")
        parsed.append((label, ex_id, tree, source, removed, error))
    out = {}
    for ex_id in exercise_ids:
        own = [p for p in parsed if p[1] == ex_id]
        if not own:
            out[ex_id] = ExerciseSource(ex_id, (), detail=_marker_elsewhere(nb, ex_id))
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
                                                      lost=_lost(_defined_in_text(source))))
            elif tree is not None:
                chunks.extend(_context_chunks(tree, source, label))
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
                source, awaited = _drop_top_level_await(source, tree)
                if awaited:
                    more = f" and {len(awaited) - 1} more" if len(awaited) > 1 else ""
                    ex_notes.append(AWAIT_REMOVED.format(cell=label, what=awaited[0], more=more))
                    tree = ast.parse(source, label)
            error = error or _compile_error(source, label)
            if error is not None and syntax_error is None:
                syntax_error = describe_syntax_error(error, label)
            chunks.extend(_own_chunks(tree, source, label) if error is None else [Chunk(label, source, True, label)])
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


def _language(magic: str) -> str:
    name = magic_name(magic)
    return {"bash": "a shell script", "sh": "a shell script", "script": "a script", "html": "HTML",
            "javascript": "JavaScript", "js": "JavaScript", "writefile": "a file to write", "markdown": "Markdown",
            "latex": "LaTeX", "svg": "SVG", "sql": "SQL"}.get(name, f"`%%{name}` input")
