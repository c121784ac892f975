"""The student's code inside a run: the module it runs in, and its lines in tracebacks.

Apart from the plugin because this is what the student's code touches directly (its namespace, its frames);
bound at import like the plugin, before student code exists, and watched by `grader.integrity`.
"""

from __future__ import annotations

import linecache
import traceback
import types

from . import checks

STUDENT_MODULE = "student"

_not_defined = checks.not_defined  # our own reference, taken before any student code exists


class StudentModule(types.ModuleType):
    """The namespace the student's cells run in, handed to the rubric as the `student` fixture.

    Reading a name the cells never defined fails the check by name, exactly as `need()` does
    (`student.make_leaves` -> "`make_leaves` is not defined"), never with a bare AttributeError; the
    failure is an AttributeError too (`checks.NotDefined`), so `getattr(student, name, None)` and
    `hasattr` answer as for any module. Dunder names keep Python's own AttributeError (copy, pickle,
    inspect probe them). A module-level `__getattr__` in the student's cells is asked first (PEP 562):
    it answers for the student's own names, as defining them would.
    """

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(f"module {STUDENT_MODULE!r} has no attribute {name!r}")
        _not_defined(name)


def student_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("cell ")]


def describe_exception(exc: BaseException, doing: str) -> str:
    """One line that says what happened, then only the student's own frames."""
    text = str(exc).strip().splitlines()
    head = f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
    frames = student_frames(exc)
    lines = [f"{head} was raised {doing} (not inside your cells' own lines; look at what your code returned)."]
    if frames:
        last = frames[-1]
        lines[0] = f"{doing[0].upper()}{doing[1:]}, your code raised {head} (at {last.filename}, line {last.lineno})."
        lines.append("Traceback (your cells only):")
        for f in frames[-6:]:
            lines.append(f"  {f.filename}, line {f.lineno}, in {f.name}")
            if f.line:
                lines.append(f"    {f.line.strip()}")
    elif len(text) > 1:
        lines.extend("  " + t for t in text[1:8])
    return "\n".join(lines)


def register_source(filename: str, source: str) -> None:
    """Let tracebacks show the student's lines (chunks of one cell are merged)."""
    new = [line + "\n" for line in source.split("\n")]  # the tokenizer's lines, not str.splitlines' (issue 14)
    old = linecache.cache.get(filename, (0, None, [], filename))[2]
    merged = [n if n.strip() else (old[i] if i < len(old) else n) for i, n in enumerate(new)]
    merged += old[len(new):]
    linecache.cache[filename] = (sum(map(len, merged)), None, merged, filename)
