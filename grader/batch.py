"""`grader grade`: a whole class, unattended. Find submissions, skip unchanged ones, grade the rest
in parallel, and write every output as each result arrives, so a killed batch resumes where it was."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from . import __version__
from .assignment import Assignment
from .errors import OutputBusy, UnusableSubmission
from .export import FEEDBACK_FAILED, FeedbackRenderer, gradescope_json, gradescope_unusable, grades_csv, summary_html, write_atomic
from .gradebook import Gradebook
from .policy import POLICY_FILES
from .read import read_bytes, read_submission
from .discover import Entry, Found, discover, file_stem, scan, student_id  # noqa: F401 - importers of batch
from .results import SubmissionResult, unusable_input
from .safe_text import for_terminal, path_text

GONE = ("{n} student(s) graded in an earlier run are not in this class folder, so not in this run's grades.csv, "
        "index.json or LMS files (their history stays in gradebook.sqlite): {students}")
OUT_BUSY = ("{out}: another `grader grade` (pid {pid}) is writing this folder",
            "wait for it to finish, or give this run another --out")


def lock_out(out: Path):
    """Hold --out for this process: an OS lock (flock) on `out/.lock`, released by the kernel when
    the process ends however it ends, so a killed grader never leaves a stale lock. Keep the
    returned file open for as long as the run writes."""
    import fcntl

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip() or "unknown"
        f.close()
        message, tip = OUT_BUSY
        raise OutputBusy(message.format(out=out, pid=pid), tip) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    _remove_stale_temporaries(out)
    return f


# write_atomic's temporary files: `.{name}.` + mkstemp's 8 random characters + `.tmp`.
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def _remove_stale_temporaries(out: Path) -> None:
    """What a killed run left mid-write (write_atomic's temporary files): with --out held, no other
    grader is writing here, so every one of them is stale."""
    for path in out.rglob(".*.tmp"):
        if _TEMPORARY.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)


def rubric_fingerprint(assignment: Assignment) -> str:
    """Changes when any rubric file or the grader's version changes, so a regrade is due."""
    h = hashlib.sha256(__version__.encode())
    for path in sorted(assignment.rubrics_dir.rglob("*")):
        # The course policy changes final scores, not grading: a moved deadline regrades no one.
        if path.is_file() and "__pycache__" not in path.parts and path.name not in POLICY_FILES:
            h.update(path.relative_to(assignment.rubrics_dir).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


class Outputs:
    """Everything under --out; `record` writes one student's files, then commits the gradebook row."""

    def __init__(self, out: Path, assignment: Assignment, notes: Iterable[str] = (), semester=None):
        self.out = Path(out)
        self.semester = semester  # grader/semester.py: late policy, adjustments, LMS gradebooks
        self.out.mkdir(parents=True, exist_ok=True)
        self.assignment = assignment
        self.notes = list(notes)  # what discovery left out, for the summary
        self.rubrics = rubric_fingerprint(assignment)
        self.gradebook = Gradebook(self.out / "gradebook.sqlite")
        self._feedback = None
        self._feedback_lock = threading.Lock()
        self._latest = self.gradebook.latest()
        self._display: dict[str, str] = {}

    def fingerprint(self, entry: Entry) -> str:
        content = hashlib.sha256(read_bytes(entry.path)).hexdigest() if entry.problem is None else entry.problem
        return hashlib.sha256(f"{content}:{self.rubrics}".encode()).hexdigest()[:24]

    def paths(self, student: str) -> list[Path]:
        stem = file_stem(student)
        return [self.out / "results" / f"{stem}.json", self.out / "gradescope" / stem / "results.json",
                self.out / "feedback" / f"{stem}.html"]

    def is_current(self, entry: Entry) -> bool:
        self._display[entry.student] = entry.display or entry.student
        row = self._latest.get(entry.student)
        return (row is not None and row.fingerprint == self.fingerprint(entry)
                and all(p.exists() for p in self.paths(entry.student)))

    def record(self, entry: Entry, fingerprint: str, result: SubmissionResult | None, problem: str | None) -> None:
        results, gradescope, feedback = self.paths(entry.student)
        self._display[entry.student] = entry.display or entry.student
        submission = path_text(entry.path)  # storable even where the file name is not UTF-8
        if result is None:
            problem = path_text(problem)
            data = unusable_input(submission, problem)
            write_atomic(results, json.dumps(data, indent=1))
            write_atomic(gradescope, gradescope_unusable(problem))
            write_atomic(feedback, _plain_page(f"Your submission could not be graded: {problem}"))
            self.gradebook.add(entry.student, submission, None, fingerprint, data, "unusable")
            return
        result = dataclasses.replace(result, submission=submission)
        # One student's notebook can cost at most their own page (SPEC "Class folders"): whatever
        # the renderer or an exporter raises is reported with their result, and the batch goes on.
        try:
            page = self._render_feedback(entry, result)
        except Exception as e:  # noqa: BLE001 - any failure of a third-party renderer on student input
            why = f"{FEEDBACK_FAILED}: {type(e).__name__}: {str(e)[:300]}"
            result = dataclasses.replace(result, notes=(*result.notes, why))
            page = _plain_page(f"Your score is {result.score:g} / {result.max_score:g}; {why}. "
                               "The full results are in your results JSON.")
        data = result.to_dict()
        write_atomic(results, json.dumps(data, indent=1))
        write_atomic(gradescope, gradescope_json(result))
        write_atomic(feedback, page)
        self.gradebook.add(entry.student, submission, result.sha256, fingerprint, data, "graded")

    def _render_feedback(self, entry: Entry, result: SubmissionResult) -> str:
        with self._feedback_lock:  # nbconvert's exporter is not thread-safe
            if self._feedback is None:
                self._feedback = FeedbackRenderer()
            return self._feedback.render(read_submission(entry.path).notebook, result)

    def finish(self, entries: Iterable[Entry] = ()) -> None:
        """The class files describe the class found this run: a student graded before whose file is gone
        (withdrawn, renamed) is named in the summary and kept in the gradebook's history, not in the files
        a TA uploads."""
        entries = list(entries)
        latest = self.gradebook.latest()
        found = {e.student for e in entries}
        gone = [s for s in latest if entries and s not in found]
        rows = _out_of_the_class_max([row for s, row in latest.items() if s not in gone])
        notes = self.notes + ([GONE.format(n=len(gone), students=", ".join(gone))] if gone else [])
        ids = list(self.assignment.exercises)
        write_atomic(self.out / "grades.csv", grades_csv(rows, ids))
        write_atomic(self.out / "index.json", json.dumps(self.index(rows), indent=1, ensure_ascii=False))
        extra = self.semester.finish(rows, entries, self.gradebook) if self.semester else ""
        write_atomic(self.out / "summary.html", summary_html(rows, self.assignment.name, ids, notes) + extra)

    def index(self, rows) -> dict:
        """Each student id → their display name, submission and files: the output file names are
        derived (file_stem), so this is where a TA or a script turns one back into a student."""
        out = {}
        for row in rows:
            files = [p.relative_to(self.out).as_posix() for p in self.paths(row.student)]
            out[row.student] = {"display": self._display.get(row.student, row.student), "submission": row.submission,
                                "status": row.status, **dict(zip(("results", "gradescope", "feedback"), files))}
        return out

    def close(self) -> None:
        self.gradebook.close()


def _out_of_the_class_max(rows):
    """An unusable submission has no exercises to add up its points: it scores 0 out of what the graded ones
    are out of (0 of 0 is no grade; a spreadsheet divides by it). The gradebook keeps the row as recorded."""
    maximum = max((row.max_score for row in rows if row.status == "graded"), default=0)
    return [dataclasses.replace(row, max_score=maximum) if row.status != "graded" and not row.max_score else row
            for row in rows]


def _plain_page(text: str) -> str:
    return f"<!doctype html><meta charset='utf-8'><h1>Feedback</h1><p>{_html(text)}</p>"


def _html(text: str) -> str:
    import html

    return html.escape(text)


class Progress:
    """A bar with rate and ETA on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, total: int, stream=sys.stderr, every_s: float = 5.0):
        self.total, self.done, self.stream = total, 0, stream
        self.started = self.last = time.monotonic()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.every_s = every_s

    def step(self, label: str) -> None:
        self.done += 1
        now = time.monotonic()
        rate = self.done / max(now - self.started, 1e-9)
        eta = (self.total - self.done) / rate if rate else 0
        if self.tty:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                              f"{rate * 60:.1f}/min ETA {eta:4.0f}s {label[:30]:<30}")
            if self.done == self.total:
                self.stream.write("\n")
        elif now - self.last >= self.every_s or self.done == self.total:
            self.stream.write(f"graded {self.done}/{self.total} ({rate * 60:.1f}/min, ETA {eta:.0f} s)\n")
            self.last = now
        self.stream.flush()


# An executor grades entries and yields (entry, result or None, problem or None) as each finishes.
Executor = Callable[[list[Entry]], Iterator[tuple[Entry, "SubmissionResult | None", "str | None"]]]


def local_executor(grader) -> Executor:
    def run(entries: list[Entry]):
        def one(entry: Entry):
            try:
                return entry, grader.grade(entry.path), None
            except UnusableSubmission as e:
                return entry, None, str(e)

        with ThreadPoolExecutor(max_workers=grader.jobs) as pool:
            futures = [pool.submit(one, e) for e in entries]
            for f in as_completed(futures):
                yield f.result()

    return run


@dataclass
class BatchSummary:
    found: int
    graded: int
    skipped: int
    unusable: int
    duration_s: float


def grade_batch(entries: Iterable[Entry], outputs: Outputs, executor: Executor, force: bool = False,
                stream=sys.stderr) -> BatchSummary:
    started = time.monotonic()
    entries = list(entries)
    todo, skipped, unusable = [], 0, 0
    fingerprints = {}
    for entry in entries:
        try:
            if not force and outputs.is_current(entry):
                skipped += 1
                continue
            fingerprints[entry.student] = outputs.fingerprint(entry)
        except UnusableSubmission as e:  # not even its bytes can be read (a damaged zip member): only this student
            entry = dataclasses.replace(entry, problem=str(e))
            fingerprints[entry.student] = outputs.fingerprint(entry)
        if entry.problem is not None:
            outputs.record(entry, fingerprints[entry.student], None, entry.problem)
            unusable += 1
            continue
        todo.append(entry)
    progress = Progress(len(todo), stream)
    graded = 0
    for entry, result, problem in executor(todo):
        outputs.record(entry, fingerprints[entry.student], result, problem)
        if result is None:
            unusable += 1
        else:
            graded += 1
        progress.step(for_terminal(entry.student, one_line=True))
    outputs.finish(entries)
    return BatchSummary(len(entries), graded, skipped, unusable, round(time.monotonic() - started, 2))
