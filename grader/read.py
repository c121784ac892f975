"""Stage 1, read: bytes on disk → a validated nbformat-4 notebook, or one clear reason why not."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .errors import UnusableSubmission

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
DUPLICATE_IDS_NOTE = "some cells share an id (copied cells); nbformat gave them new ids, which changes nothing in grading"


@dataclass(frozen=True)
class Submission:
    path: Path
    sha256: str
    notebook: nbformat.NotebookNode
    notes: tuple[str, ...] = ()


def read_submission(path: Path | str) -> Submission:
    path = Path(path)
    data = read_bytes(path)
    sha256 = hashlib.sha256(data).hexdigest()
    notebook, notes = parse_notebook(path, data)
    return Submission(path, sha256, notebook, notes)


def read_bytes(path: Path) -> bytes:
    """A notebook file's bytes, or a zip member's when `path` is `archive.zip/member` (see archive.py)."""
    from .archive import read_member, zip_of

    if not _exists(path) and zip_of(path):
        return read_member(path)
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise UnusableSubmission(path, "is a folder, not a notebook file") from None
    except FileNotFoundError:
        raise UnusableSubmission(path, "no such file") from None
    except OSError as e:
        raise UnusableSubmission(path, f"cannot be read ({e.strerror})") from None


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except OSError:  # also a name too long for the file system: a zip member's may be
        return False
    return True


NOT_A_CELL = "JSON, but not a Jupyter notebook: cell {n} is not a cell (a {found}, not an object with a cell_type)"


def parse_notebook(path: Path, data: bytes) -> tuple[nbformat.NotebookNode, tuple[str, ...]]:
    tip = "submit the .ipynb file that Jupyter saved (File → Save), not an export or a copy"
    if not data.strip():
        raise UnusableSubmission(path, "the file is empty", tip)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise UnusableSubmission(path, f"the file is {len(data) >> 20} MB; notebooks over 50 MB are not graded",
                                 "clear the cell outputs (Edit → Clear All Outputs) and save again")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Windows Notepad saves one) is no reason to fail
    except UnicodeDecodeError as e:
        raise UnusableSubmission(path, f"not UTF-8 text (bad byte at offset {e.start})", tip) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise UnusableSubmission(path, f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})", tip) from None
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise UnusableSubmission(path, "JSON, but not a Jupyter notebook (no 'cells')", tip)
    cells = raw.get("cells")
    odd = next((i for i, c in enumerate(cells) if not isinstance(c, dict)), None) if isinstance(cells, list) else None
    if odd is not None:  # nbformat would only say "argument of type 'int' is not iterable"
        raise UnusableSubmission(path, NOT_A_CELL.format(n=odd + 1, found=type(cells[odd]).__name__), tip)
    notes = []
    # nbformat warns on stderr about duplicate or missing cell ids (copied cells, older editors) and repairs
    # them: harmless for grading, so said once as a note, never printed (issue 14).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            major = int(raw.get("nbformat", 0))
            if major < 4:
                notes.append(f"notebook format {major} upgraded to 4")
            nb = nbformat.reads(text, as_version=4)
        except Exception as e:  # nbformat raises many types for malformed input
            raise UnusableSubmission(path, f"not a readable Jupyter notebook ({_first_line(e)})", tip) from None
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError as e:
            # Jupyter itself opens mildly invalid notebooks; grade what the cells say, and say so.
            notes.append(f"notebook does not fully validate against nbformat 4: {_first_line(e)}")
    if any(type(w.message).__name__ == "DuplicateCellId" for w in caught):
        notes.append(DUPLICATE_IDS_NOTE)
    for cell in nb.cells:
        if not isinstance(cell.get("source"), str):
            raise UnusableSubmission(path, "a cell's source is not text", tip)
    return nb, tuple(notes)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
