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
import unicodedata
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from . import __version__
from .assignment import Assignment
from .errors import ConfigError, OutputBusy, UnusableSubmission
from .export import FEEDBACK_FAILED, FeedbackRenderer, gradescope_json, gradescope_unusable, grades_csv, summary_html, write_atomic
from .gradebook import Gradebook
from .read import read_bytes, read_submission
from .results import SubmissionResult, unusable_input
from .safe_text import for_terminal, path_text

# Download residue, never a student: folder or file names, and why each is ignored.
RESIDUE = {"__MACOSX": "macOS archive residue (resource forks), not a submission"}
HIDDEN = "a hidden file or folder (Jupyter's .ipynb_checkpoints, macOS's .DS_Store and ._ files)"
CHECKPOINT = "a Jupyter autosave copy (-checkpoint.ipynb), not the saved notebook"
SAME_ID = ("{n} submissions would {both} have the id {id!r}: {sources}. Each is graded under its own id, "
           "the name followed by where it came from")


@dataclass(frozen=True)
class Entry:
    """One student's submission as found: the id every output is keyed by, the notebook (a file,
    or `archive.zip/member`), or why it cannot be graded; `display` is the name shown to people
    (an LMS layer may set it apart from the id)."""

    student: str
    path: Path
    problem: str | None = None
    display: str = ""

    @property
    def file_stem(self) -> str:
        return file_stem(self.student)


@dataclass
class Found:
    """What `scan` found: the entries, and notes for the TA on everything it left out."""

    entries: list[Entry]
    notes: list[str]


def student_id(name: str) -> str:
    """The id of the submission a file or folder named `name` holds: the name as written, in
    Unicode's composed form (NFC: a Mac's decomposed "u" + diaeresis is the same "ü"), `.ipynb` dropped.
    Bytes that are not UTF-8 are kept visibly as `\\xNN`."""
    name = unicodedata.normalize("NFC", path_text(name))
    return name[: -len(".ipynb")] if name.lower().endswith(".ipynb") else name


def file_stem(student: str) -> str:
    """The name of a student's output files: readable, but never the same for two ids, even on a file
    system that ignores case or knows only ASCII, and short enough for any (a hash of the whole id).
    index.json maps each id to its files."""
    slug = re.sub(r"[^\w.-]+", "_", student, flags=re.ASCII).strip("._-")[:40] or "student"
    return f"{slug}-{hashlib.sha256(student.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


@dataclass(frozen=True)
class _Item:
    """A file or folder of a class, on disk or in a zip. `rel`: its path below the class folder."""

    name: str
    rel: str
    path: Path
    items: Callable[[], list["_Item"]] | None = None  # a folder's contents; None for a file
    problem: str | None = None


def _disk_items(folder: Path, rel: str = "") -> list[_Item]:
    out = []
    for p in sorted(folder.iterdir()):
        r = f"{rel}{p.name}"
        # Below the class folder a link to a folder is not followed (it could loop, or lead anywhere).
        if p.is_dir() and not (rel and p.is_symlink()):
            out.append(_Item(p.name, r, p, lambda p=p, r=r: _disk_items(p, r + "/")))
        elif p.is_file() or p.is_dir():
            out.append(_Item(p.name, r, p, None, None if p.is_file() else "a link to a folder, not followed"))
        else:  # a FIFO named like a notebook would block the reader forever; a dangling link
            out.append(_Item(p.name, r, p, None, "not a regular file"))
    return out


def _zip_items(archive: Path, rel: str, notes: list[str]) -> list[_Item]:
    from .archive import list_members

    members, refused = list_members(archive)
    notes.extend(refused)
    tree: dict = {}
    for m in members:
        *folders, name = m.name.split("/")
        node = tree
        for f in folders:
            node = node.setdefault(f, {}) if isinstance(node, dict) else node
        if isinstance(node, dict) and name not in node:
            node[name] = m
        else:  # `a` and `a/b`: a name that is both a file and a folder
            notes.append(f"{archive}: member {m.name!r} ignored: its name is taken by another member")

    def items(node: dict, prefix: str) -> list[_Item]:
        out = []
        for name, child in sorted(node.items()):
            path, r = archive / f"{prefix}{name}", f"{rel}/{prefix}{name}"
            if isinstance(child, dict):
                out.append(_Item(name, r, path, lambda c=child, p=f"{prefix}{name}/": items(c, p)))
            else:
                out.append(_Item(name, r, path, None, child.problem))
        return out

    return items(tree, "")


def _ignored(item: _Item) -> str | None:
    if item.name in RESIDUE:
        return RESIDUE[item.name]
    if item.name.startswith("."):
        return HIDDEN
    if item.items is None and item.name.endswith("-checkpoint.ipynb"):
        return CHECKPOINT
    return None


def scan(root: Path) -> Found:
    """`root/<student>.ipynb` or `root/<student>/<anything>.ipynb`, one notebook per student; a `.zip`
    (as root or in it) is read as a folder of such. Residue is left out with a note; two submissions
    that would share an id both get one of their own, with a note."""
    root = Path(root)
    notes: list[str] = []
    if root.is_file() and root.suffix.lower() == ".zip":
        top = _unwrap(_zip_items(root, root.name, notes))
    elif root.is_dir():
        try:
            top = _disk_items(root)
        except OSError as e:
            raise ConfigError(f"{root}: cannot be read ({e.strerror or e})") from None
    else:
        raise ConfigError(f"{root}: not a folder of submissions")
    candidates: list[tuple[str, _Item, Path, str | None]] = []
    inner_ignored: dict[str, int] = {}

    def take(items: list[_Item], in_zip: bool) -> None:
        for item in items:
            why = _ignored(item)
            if why:
                notes.append(f"ignored {item.rel}{'/' if item.items else ''}: {why}")
            elif item.items is not None:
                candidates.append((student_id(item.name), item, *_one_notebook(item, inner_ignored, notes)))
            elif item.name.lower().endswith(".ipynb"):
                candidates.append((student_id(item.name), item, item.path, item.problem))
            elif item.name.lower().endswith(".zip") and not in_zip:
                take(_unwrap(_zip_items(item.path, item.rel, notes)), True)
            else:
                notes.append(f"ignored {item.rel}: not a notebook, a folder or a zip")

    take(top, root.is_file())
    for why, n in inner_ignored.items():
        notes.append(f"ignored {n} file(s) or folder(s) inside students' folders: {why}")
    return Found(_distinct_ids(candidates, notes), notes)


def discover(root: Path) -> list[Entry]:
    return scan(root).entries


def _unwrap(items: list[_Item]) -> list[_Item]:
    """A zip of a class often holds one folder (`submissions/...`): its contents are the class.
    A lone folder with a single notebook is one student's, and stays."""
    kept = [i for i in items if not _ignored(i)]
    if len(kept) == 1 and kept[0].items is not None:
        inner = kept[0].items()
        if len([i for i in inner if not _ignored(i)]) > 1:
            return [i for i in items if i is not kept[0]] + inner
    return items


def _one_notebook(folder: _Item, ignored: dict[str, int], notes: list[str]) -> tuple[Path, str | None]:
    """The one notebook in a student's folder, looking into a zip they uploaded there too."""
    notebooks: list[_Item] = []

    def walk(item: _Item) -> None:
        for child in item.items():
            why = _ignored(child)
            if why:
                ignored[why] = ignored.get(why, 0) + 1
            elif child.items is not None:
                walk(child)
            elif child.name.lower().endswith(".ipynb"):
                notebooks.append(child)
            elif child.name.lower().endswith(".zip") and child.path.is_file():  # on disk: not a zip in a zip
                walk(_Item(child.name, child.rel, child.path, lambda c=child: _zip_items(c.path, c.rel, notes)))

    try:
        walk(folder)
    except OSError as e:
        return folder.path, f"{folder.path}: cannot be read ({e.strerror or e})"
    if len(notebooks) == 1:
        return notebooks[0].path, notebooks[0].problem
    if not notebooks:
        return folder.path, f"{folder.path}: no .ipynb notebook in this student's folder"
    names = ", ".join(n.rel.removeprefix(folder.rel + "/") for n in notebooks[:5])
    return folder.path, f"{folder.path}: {len(notebooks)} notebooks ({names}); a student's folder must hold exactly one"


def _source_name(rel: str) -> str:
    """A name for the note on a shared id: a name in decomposed form (a Mac's) looks the same as its
    composed twin, so its code points are spelled out."""
    if unicodedata.is_normalized("NFC", rel):
        return repr(rel)
    return f"{ascii(rel)} (decomposed Unicode, as a Mac writes it)"


def _distinct_ids(candidates, notes: list[str]) -> list[Entry]:
    groups: dict[str, list] = {}
    for c in candidates:
        groups.setdefault(c[0], []).append(c)
    taken = {sid for sid, group in groups.items() if len(group) == 1}
    entries = []
    for sid, group in groups.items():
        if len(group) == 1:
            _, item, path, problem = group[0]
            entries.append(Entry(sid, path, problem, sid))
            continue
        notes.append(SAME_ID.format(n=len(group), both="both" if len(group) == 2 else "all", id=sid,
                                    sources=", ".join(_source_name(item.rel) for _, item, _, _ in group)))
        for _, item, path, problem in group:
            new = f"{sid} ({unicodedata.normalize('NFC', item.rel)})"
            new, k = (new, 1) if new not in taken else (f"{new} #2", 2)
            while new in taken:
                k += 1
                new = f"{new.rsplit(' #', 1)[0]} #{k}"
            taken.add(new)
            entries.append(Entry(new, path, problem, sid))
    return entries


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
    return f


def rubric_fingerprint(assignment: Assignment) -> str:
    """Changes when any rubric file or the grader's version changes, so a regrade is due."""
    h = hashlib.sha256(__version__.encode())
    for path in sorted(assignment.rubrics_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(assignment.rubrics_dir).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


class Outputs:
    """Everything under --out; `record` writes one student's files, then commits the gradebook row."""

    def __init__(self, out: Path, assignment: Assignment, notes: Iterable[str] = ()):
        self.out = Path(out)
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

    def finish(self) -> None:
        rows = list(self.gradebook.latest().values())
        ids = list(self.assignment.exercises)
        write_atomic(self.out / "grades.csv", grades_csv(rows, ids))
        write_atomic(self.out / "summary.html", summary_html(rows, self.assignment.name, ids, self.notes))
        write_atomic(self.out / "index.json", json.dumps(self.index(rows), indent=1, ensure_ascii=False))

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
        progress.step(for_terminal(entry.student, one_line=True))
    outputs.finish()
    return BatchSummary(len(entries), graded, skipped, unusable, round(time.monotonic() - started, 2))
