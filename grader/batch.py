"""`grader grade`: a whole class, unattended. Find submissions, skip unchanged ones, grade the rest
in parallel, and write every output as each result arrives, so a killed batch resumes where it was."""

from __future__ import annotations

import hashlib
import json
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
from .errors import ConfigError, UnusableSubmission
from .export import FeedbackRenderer, gradescope_json, gradescope_unusable, grades_csv, summary_html, write_atomic
from .gradebook import Gradebook
from .lms import Identity
from .policy import POLICY_FILES
from .read import read_submission
from .results import SubmissionResult, unusable_input

SAFE_NAME = re.compile(r"[^A-Za-z0-9._@+-]+")


@dataclass(frozen=True)
class Entry:
    """One student's submission as found on disk, or why it cannot be graded."""

    student: str
    path: Path
    problem: str | None = None
    identity: "Identity | None" = None  # from an LMS download (grader/lms.py): display name, LATE flag, time


def discover(root: Path) -> list[Entry]:
    """`root/<student>.ipynb` or `root/<student>/<anything>.ipynb`: one notebook per student."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder of submissions")
    entries: dict[str, Entry] = {}
    for item in sorted(root.iterdir()):
        if item.name.startswith("."):
            continue
        if item.is_file() and item.suffix == ".ipynb":
            student = _student_id(item.stem)
            entries[student] = Entry(student, item)
        elif item.is_dir():
            student = _student_id(item.name)
            notebooks = sorted(p for p in item.rglob("*.ipynb")
                               if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("."))
            if len(notebooks) == 1:
                entries[student] = Entry(student, notebooks[0])
            elif not notebooks:
                entries[student] = Entry(student, item, f"{item}: no .ipynb notebook in this student's folder")
            else:
                names = ", ".join(str(p.relative_to(item)) for p in notebooks[:5])
                entries[student] = Entry(student, item, f"{item}: {len(notebooks)} notebooks ({names}); "
                                                        "a student's folder must hold exactly one")
    return list(entries.values())


def _student_id(name: str) -> str:
    return SAFE_NAME.sub("_", name).strip("._") or "student"


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

    def __init__(self, out: Path, assignment: Assignment, semester=None):
        self.out = Path(out)
        self.semester = semester  # grader/semester.py: late policy, adjustments, LMS gradebooks
        self.out.mkdir(parents=True, exist_ok=True)
        self.assignment = assignment
        self.rubrics = rubric_fingerprint(assignment)
        self.gradebook = Gradebook(self.out / "gradebook.sqlite")
        self._feedback = None
        self._feedback_lock = threading.Lock()
        self._latest = self.gradebook.latest()

    def fingerprint(self, entry: Entry) -> str:
        content = hashlib.sha256(entry.path.read_bytes()).hexdigest() if entry.problem is None else entry.problem
        return hashlib.sha256(f"{content}:{self.rubrics}".encode()).hexdigest()[:24]

    def paths(self, student: str) -> list[Path]:
        return [self.out / "results" / f"{student}.json", self.out / "gradescope" / student / "results.json",
                self.out / "feedback" / f"{student}.html"]

    def is_current(self, entry: Entry) -> bool:
        row = self._latest.get(entry.student)
        return (row is not None and row.fingerprint == self.fingerprint(entry)
                and all(p.exists() for p in self.paths(entry.student)))

    def record(self, entry: Entry, fingerprint: str, result: SubmissionResult | None, problem: str | None) -> None:
        results, gradescope, feedback = self.paths(entry.student)
        if result is None:
            data = unusable_input(str(entry.path), problem)
            write_atomic(results, json.dumps(data, indent=1))
            write_atomic(gradescope, gradescope_unusable(problem))
            write_atomic(feedback, f"<!doctype html><meta charset='utf-8'><h1>Feedback</h1><p>Your submission could "
                                   f"not be graded: {_html(problem)}</p>")
            self.gradebook.add(entry.student, str(entry.path), None, fingerprint, data, "unusable")
            return
        data = result.to_dict()
        write_atomic(results, json.dumps(data, indent=1))
        write_atomic(gradescope, gradescope_json(result))
        write_atomic(feedback, self._render_feedback(entry, result))
        self.gradebook.add(entry.student, str(entry.path), result.sha256, fingerprint, data, "graded")

    def _render_feedback(self, entry: Entry, result: SubmissionResult) -> str:
        with self._feedback_lock:  # nbconvert's exporter is not thread-safe
            if self._feedback is None:
                self._feedback = FeedbackRenderer()
            return self._feedback.render(read_submission(entry.path).notebook, result)

    def finish(self, entries: Iterable[Entry] = ()) -> None:
        rows = list(self.gradebook.latest().values())
        ids = list(self.assignment.exercises)
        write_atomic(self.out / "grades.csv", grades_csv(rows, ids))
        extra = self.semester.finish(rows, list(entries), self.gradebook) if self.semester else ""
        write_atomic(self.out / "summary.html", summary_html(rows, self.assignment.name, ids) + extra)

    def close(self) -> None:
        self.gradebook.close()


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
        if not force and outputs.is_current(entry):
            skipped += 1
            continue
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
        progress.step(entry.student)
    outputs.finish(entries)
    return BatchSummary(len(entries), graded, skipped, unusable, round(time.monotonic() - started, 2))
