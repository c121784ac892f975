"""What a batch leaves for TAs and students: Gradescope JSON, feedback pages, grades.csv, a class summary.

Every file is written atomically (a temporary file, then rename): a killed grader leaves
either the old file or the new one, never half of one.

This module writes the files and holds the Gradescope JSON and grades.csv; the feedback's markdown is
grader.feedback_markdown's, the feedback page grader.feedback_page's, the class summary
grader.class_summary's (each importable from here as before).
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import tempfile
from pathlib import Path

from . import pictures
from .class_summary import FEEDBACK_FAILED, summary_html  # noqa: F401 - importable here
from .feedback_markdown import feedback_markdown  # noqa: F401
from .feedback_page import FeedbackRenderer, feedback_html  # noqa: F401
from .results import GRADED, PASSED, SKIPPED, SubmissionResult
from .safe_text import csv_cell


# The process's umask, read once while importing (setting it is the only way to read it, and not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would keep feedback pages from a web folder or other TAs
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- Gradescope ---------------------------------------------------------------------------------


def gradescope_json(result: SubmissionResult) -> str:
    """Gradescope's autograder results schema: a score and one entry per check."""
    tests = []
    for ex in result.exercises:
        if ex.status != GRADED:
            tests.append({"name": f"{ex.id}: {ex.status}", "score": 0.0, "max_score": ex.max_score,
                          "output": ex.error or "", "visibility": "visible", "status": "failed"})
            continue
        for c in ex.checks:
            if c.status == SKIPPED:
                continue
            tests.append({"name": f"{ex.id}: {c.name} [{c.id}]", "score": c.score, "max_score": c.max_score,
                          "output": c.message, "visibility": "visible",
                          "status": "passed" if c.status == PASSED else "failed", **_gradescope_picture(c)})
    return json.dumps({
        "score": result.score,
        "execution_time": result.duration_s,
        "output": f"torchgrade {result.grader_version}, torch {result.torch_version}, devices {', '.join(result.devices)}",
        "stdout_visibility": "hidden",
        "tests": tests,
    }, indent=1)


def _gradescope_picture(check) -> dict:
    """Where a check has a picture: its output as HTML (Gradescope's `output_format`), the message kept as text."""
    figure = pictures.check_picture_html(check.picture)
    if not figure:
        return {}
    return {"output": f"<pre>{html.escape(check.message)}</pre>{figure}", "output_format": "html"}


def gradescope_unusable(error: str) -> str:
    return json.dumps({"score": 0.0, "output": f"Your notebook could not be graded: {error}", "tests": []}, indent=1)


# -- class-level files --------------------------------------------------------------------------


def grades_csv(rows, exercise_ids: list[str]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([csv_cell(x) for x in ["student", *exercise_ids, "total", "max_total", "status", "submission"]])
    for row in rows:
        by_id = {e["id"]: e for e in row.result.get("exercises", [])}
        # Names come from student file names: `=HYPERLINK(...).ipynb` must stay text (csv_cell).
        w.writerow([csv_cell(x) for x in [row.student, *(by_id[x]["score"] if x in by_id else "" for x in exercise_ids),
                                          row.score, row.max_score, row.status, row.submission]])
    return out.getvalue()
