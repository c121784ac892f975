"""A Jupyter cell's text read as Python: its lines as Python counts them, IPython's magics, shell
lines and top-level `await` turned into what a module can run, its syntax errors in words, and stand-ins
for IPython's builtins (`display`, `get_ipython`). Plain text and `ast`; no notebook, no exercise.

grader.extract assembles an exercise's module from cells read this way; grader.markers finds which
cell is which exercise's.
"""

from __future__ import annotations

import ast
import re

# A line IPython would rewrite: `%magic`, `!shell`, `x = !shell`, `x = %magic`.
# Also IPython's help (`obj?`, `obj??`, `?obj`) and its `/f x` autocall escape.
MAGIC_LINE = re.compile(r"^(\s*)(?:[%!]|[\w.,\s\[\]]+=\s*[%!]|\?{1,2}[\w.*]|[\w.*\[\]]+\?{1,2}\s*$|/\w)")
# What a paste from a web page or PDF leaves: a BOM or zero-width space at a line's start, U+00A0 before
# a comment (grader.markers.INVISIBLE reads a marker past them all).
ZERO_WIDTH = re.compile("^([ \t]*)[\ufeff\u200b\u2060]+", re.MULTILINE)
NBSP_BEFORE_COMMENT = re.compile(r"^[ \t\u00a0]*\u00a0[ \t\u00a0]*(?=#|$)", re.MULTILINE)
CONTEXT_NODES = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

TOP_LEVEL_AWAIT = ("top-level `await` runs only in Jupyter (IPython), not in a Python module: put it inside an "
                   "`async def`, or leave it out of the exercise's cell")
# Cell magics whose body is Python (IPython runs it, timed or captured): the body is kept.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "python", "python3", "pypy", "snakeviz"})
DISPLAY_NOTE = "`display(...)` is IPython's, not Python's: while grading, it prints the object's repr"
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


def python_lines(source: str) -> list[str]:
    """A cell's lines as Python's tokenizer counts them: only \\n, \\r\\n and \\r end a line.

    `str.splitlines()` also breaks at form feed, \\x0b, \\x1c-\\x1e, \\x85, U+2028 and U+2029, which may sit
    in a comment: line numbers would then differ from `ast`'s, and valid code be cut in the wrong place.
    """
    return normalise_newlines(source).split("\n")


def normalise_newlines(source: str) -> str:
    # What the tokenizer does itself (universal newlines): the compiled code is the same.
    return source.replace("\r\n", "\n").replace("\r", "\n")


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


def parse_cell(source: str, label: str) -> tuple[ast.Module | None, str, list[str], SyntaxError | None]:
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


def compile_error(source: str, label: str) -> SyntaxError | None:
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


def drop_top_level_await(source: str, tree: ast.Module) -> tuple[str, list[str]]:
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


DEFINITION = re.compile(r"^(?:async\s+def|def|class)\s+(\w+)")
ASSIGNMENT = re.compile(r"^(\w+)\s*(?::[^=]*)?=(?!=)")


def defined_in_text(source: str) -> list[str]:
    """The defs, classes and assignments at column 0 of a cell that cannot be parsed (line by line)."""
    names = []
    for line in python_lines(source):
        m = DEFINITION.match(line) or ASSIGNMENT.match(line)
        if m:
            names.append(m.group(1))
    return list(dict.fromkeys(names))


def magic_language(magic: str) -> str:
    name = magic_name(magic)
    return {"bash": "a shell script", "sh": "a shell script", "script": "a script", "html": "HTML",
            "javascript": "JavaScript", "js": "JavaScript", "writefile": "a file to write", "markdown": "Markdown",
            "latex": "LaTeX", "svg": "SVG", "sql": "SQL"}.get(name, f"`%%{name}` input")
