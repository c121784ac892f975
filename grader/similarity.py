"""Similarity: which students share exercise code, as a report for a person to judge. Never a score.

Each student's own exercise cells (grader/extract.py) are fingerprinted with copydetect: k-grams of the code
tokenised with names, strings and comments normalised away, as MOSS does (Schleimer, Wilkerson, Aiken, "Winnowing",
SIGMOD 2003; here with window 1, see GUARANTEE_CHARS). The stub's own code (exercises/<assignment>.ipynb) is
removed first, its lines and its k-grams, so the skeleton every student starts from is not flagged. Pairs are
ranked by the share of the smaller submission's code found in the other.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import warnings
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from .assignment import Assignment
from .errors import ConfigError, UnusableSubmission
from .export import write_atomic
from .extract import extract_exercises
from .gradebook import Gradebook
from .read import read_submission
from .safe_text import for_terminal
from .semester import FINAL_CSV, SIMILARITY_HTML

NOISE_CHARS = 25  # matches shorter than this (in normalised code) are ignored: `for i in range(n):` is not copying
# Window 1: every k-gram is kept. copydetect hashes with Python's hash(), salted per process, so winnowing's
# choice of fingerprints (and the report) would differ from run to run; exercise code is small enough to keep all.
GUARANTEE_CHARS = NOISE_CHARS
TABLE_PAIRS, DETAIL_PAIRS = 300, 50  # a class of 200 has 19,900 pairs: the report shows the top ones
NO_GRADEBOOK = "{out}: no gradebook.sqlite here; run `grader grade SUBMISSIONS --out {out}` first"
LINK_START, LINK_END = "<!-- torchgrade:similarity -->", "<!-- /torchgrade:similarity -->"
NO_COPYDETECT = ("`grader similarity` needs the copydetect package, which is not installed",
                 "pip install 'torchgrade[similarity]'")


@dataclass(frozen=True)
class PairExercise:
    exercise: str
    overlap: int  # tokens of the first student's code also in the second's
    share_a: float
    share_b: float
    slices_a: object  # copydetect's 2xN start/end offsets of the matched code in each student's own text
    slices_b: object


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    score: float  # overlapping tokens over the smaller student's fingerprinted tokens, 0..1
    exercises: tuple[PairExercise, ...] = ()


@dataclass(frozen=True)
class Report:
    path: Path
    students: int
    pairs: int
    ranked: tuple[Pair, ...] = ()
    notes: tuple[str, ...] = ()
    top_lines: tuple[str, ...] = field(default=())


def _own_code(notebook, exercise_ids) -> dict[str, str]:
    sources, _ = extract_exercises(notebook, exercise_ids)
    return {ex_id: "\n".join(c.source.strip("\n") for c in src.chunks if c.required)
            for ex_id, src in sources.items() if not src.missing}


def _fingerprint(code: str, name: str, boilerplate=None):
    from copydetect import CodeFingerprint

    return CodeFingerprint(name, NOISE_CHARS, GUARANTEE_CHARS - NOISE_CHARS + 1, boilerplate=boilerplate,
                           language="python", fp=io.StringIO(code))


def _blank_lines(code: str, stub_lines: set[str]) -> str:
    """The stub's own lines as spaces: k-grams cannot straddle starter code and the student's code (which
    would make two students who only filled in the stub look alike), and offsets stay those of `code`."""
    return "\n".join(" " * len(line) if line.strip() in stub_lines else line for line in code.split("\n"))


def compare(codes: dict[str, dict[str, str]], stub: dict[str, str]) -> list[Pair]:
    """All pairs of students, ranked; `codes[student][exercise]` is that student's own code."""
    from copydetect import compare_files

    exercises = sorted({ex for own in codes.values() for ex in own})
    prints: dict[str, dict[str, object]] = {s: {} for s in codes}
    for ex in exercises:
        boiler = list(_fingerprint(stub[ex], "stub.py").hashes) if stub.get(ex) else None
        stub_lines = {line.strip() for line in stub.get(ex, "").splitlines() if line.strip()}
        for student, own in codes.items():
            if own.get(ex, "").strip():
                prints[student][ex] = _fingerprint(_blank_lines(own[ex], stub_lines), f"{student}.py", boiler)
    pairs = []
    for a, b in combinations(sorted(codes), 2):
        found, overlap_total = [], 0
        cover_a = sum(max(p.token_coverage, 0) for p in prints[a].values())
        cover_b = sum(max(p.token_coverage, 0) for p in prints[b].values())
        for ex in exercises:
            fa, fb = prints[a].get(ex), prints[b].get(ex)
            if fa is None or fb is None or fa.token_coverage == 0 or fb.token_coverage == 0:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                overlap, (share_a, share_b), (slices_a, slices_b) = compare_files(fa, fb)
            if overlap == 0:
                continue
            overlap_total += int(overlap)
            found.append(PairExercise(ex, int(overlap), float(share_a), float(share_b), slices_a, slices_b))
        smaller = min(cover_a, cover_b)
        score = min(1.0, overlap_total / smaller) if smaller else 0.0
        pairs.append(Pair(a, b, score, tuple(sorted(found, key=lambda x: -x.overlap))))
    pairs.sort(key=lambda p: (-p.score, p.a, p.b))
    return pairs


def similarity_report(out: Path, assignment: Assignment, top: int = 10, min_score: float = 0.0) -> Report:
    """Reads the class from OUT's gradebook (the notebooks it graded), writes OUT/similarity.html."""
    out = Path(out)
    if not (out / "gradebook.sqlite").is_file():
        raise ConfigError(NO_GRADEBOOK.format(out=out))
    try:
        import copydetect  # noqa: F401 - an optional dependency: say so before reading the class
    except ImportError:
        raise ConfigError(NO_COPYDETECT[0], NO_COPYDETECT[1]) from None
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # copydetect logs per file
    gradebook = Gradebook(out / "gradebook.sqlite")
    try:
        rows = list(gradebook.latest().values())
    finally:
        gradebook.close()
    rows = [row for row in rows if row.student in _class_of_last_run(out, rows)]
    ids = list(assignment.exercises)
    notes, codes = [], {}
    for row in rows:
        if row.status != "graded":
            continue
        try:
            codes[row.student] = _own_code(read_submission(row.submission).notebook, ids)
        except UnusableSubmission as e:
            notes.append(f"{row.student}: not compared: {e}")
    stub = {}
    if assignment.exercise_notebook.is_file():
        stub = _own_code(read_submission(assignment.exercise_notebook).notebook, ids)
    else:
        notes.append(f"no stub notebook {assignment.exercise_notebook}: shared starter code is not subtracted")
    ranked = compare(codes, stub)
    names = _names(out)
    shown = [p for p in ranked if p.score > min_score]
    path = out / SIMILARITY_HTML
    write_atomic(path, render_html(assignment.name, shown, names, codes, notes))
    _link_from_summary(out)
    lines = tuple(f"{p.score:6.1%}  {for_terminal(p.a, one_line=True)}  {for_terminal(p.b, one_line=True)}" for p in shown[:top])
    return Report(path, len(codes), len(ranked), tuple(shown), tuple(notes), lines)


def _class_of_last_run(out: Path, rows) -> set[str]:
    """The students the last `grader grade` found (index.json): the gradebook also remembers students
    graded before in this OUT (gone since, or another week's class) whose notebooks may still be on disk."""
    try:
        return set(json.loads((out / "index.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {row.student for row in rows}


def _names(out: Path) -> dict[str, str]:
    """Display names from the last `grader grade` (LMS downloads carry them), else none."""
    path = out / FINAL_CSV
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        return {r["student"]: r["name"] for r in csv.DictReader(f) if r.get("name") and r["name"] != r["student"]}


def highlighted(code: str, slices) -> str:
    """The student's code, escaped, with the matched parts in <mark> (offsets are those of `code`: the stub's
    lines were blanked, not removed)."""
    from copydetect.utils import highlight_overlap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return highlight_overlap(code, slices, "<mark>", "</mark>", escape_html=True)[0]


def render_html(assignment: str, pairs: list[Pair], names: dict[str, str], codes: dict[str, dict[str, str]],
                notes: list[str]) -> str:
    e = html.escape
    students = len(codes)

    def who(s: str) -> str:
        return e(s) + (f" ({e(names[s])})" if s in names else "")

    parts = [f"<!doctype html><meta charset='utf-8'><title>{e(assignment)}: similarity</title>",
             "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:left;vertical-align:top}"
             "table{border-collapse:collapse}pre{background:#f6f6f6;padding:6px;max-width:48em;overflow:auto}"
             "mark{background:#ffd27f}</style>",
             f"<h1>{e(assignment)}: similarity of exercise code</h1>",
             f"<p>{students} students, {len(pairs)} pairs sharing code beyond the stub. Overlap is the share of the "
             "smaller submission's code (names normalised, comments ignored) also found in the other. This report "
             "changes no score: read the code before you conclude anything.</p>"]
    parts += [f"<p>Note: {e(n)}</p>" for n in notes]
    parts.append("<table><tr><th>#</th><th>overlap</th><th>student</th><th>student</th><th>exercises</th></tr>")
    if len(pairs) > TABLE_PAIRS:
        parts.append(f"<p>The {TABLE_PAIRS} pairs of most overlap are listed, the first {DETAIL_PAIRS} with their code.</p>")
    for i, p in enumerate(pairs[:TABLE_PAIRS], 1):
        exs = ", ".join(f"{e(x.exercise)} {max(x.share_a, x.share_b):.0%}" for x in p.exercises)
        parts.append(f"<tr><td><a href='#pair{i}'>{i}</a></td><td>{p.score:.0%}</td><td>{who(p.a)}</td>"
                     f"<td>{who(p.b)}</td><td>{exs}</td></tr>")
    parts.append("</table>")
    for i, p in enumerate(pairs[:DETAIL_PAIRS], 1):
        parts.append(f"<h2 id='pair{i}'>{i}. {who(p.a)} and {who(p.b)}: {p.score:.0%}</h2>")
        for x in p.exercises:
            parts.append(f"<h3>{e(x.exercise)}: {x.overlap} tokens; {x.share_a:.0%} of {e(p.a)}'s, "
                         f"{x.share_b:.0%} of {e(p.b)}'s</h3><table><tr><th>{e(p.a)}</th><th>{e(p.b)}</th></tr>"
                         f"<tr><td><pre>{highlighted(codes[p.a][x.exercise], x.slices_a)}</pre></td>"
                         f"<td><pre>{highlighted(codes[p.b][x.exercise], x.slices_b)}</pre></td></tr></table>")
    return "\n".join(parts)


def _link_from_summary(out: Path) -> None:
    """summary.html links the report at once (the next `grader grade` writes the link itself too)."""
    summary = out / "summary.html"
    if not summary.is_file():
        return
    text = summary.read_text(encoding="utf-8")
    if f"href='{SIMILARITY_HTML}'" in text:
        return
    write_atomic(summary, text + f"\n{LINK_START}<h2>Similarity</h2><p><a href='{SIMILARITY_HTML}'>Similarity "
                              f"report</a> (it changes no score).</p>{LINK_END}")
