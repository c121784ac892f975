"""A cell cut into the chunks an exercise's module runs: of another cell only its imports, defs and classes
(context, whose failure is a note), of the exercise's own cell everything, its imports and GPU demo apart.

Each chunk keeps the cell's line numbers, so a traceback points at the student's line. grader.extract
decides which cells an exercise takes; this module, how each is cut.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from .cell_python import CONTEXT_NODES, python_lines


@dataclass(frozen=True)
class Chunk:
    """One piece of code to execute; `filename` is what a traceback shows ("cell 12")."""

    filename: str
    source: str  # padded with blank lines so line numbers are those of the cell
    required: bool  # False: context from another cell, whose failure is only a note
    what: str  # for notes: "import graphviz", "def ptgraph"


def _pad(source_lines: list[str], first: int, last: int) -> str:
    """Lines first..last (1-based) of a cell, preceded by blank lines to keep numbering."""
    return "\n" * (first - 1) + "\n".join(source_lines[first - 1 : last]) + "\n"


def context_chunks(tree: ast.Module, source: str, label: str) -> list[Chunk]:
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


def own_chunks(tree: ast.Module | None, source: str, label: str) -> list[Chunk]:
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
