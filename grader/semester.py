"""From raw scores to what goes into the LMS: late policy, manual adjustments, LMS gradebooks.

Run at the end of every `grader grade` over the gradebook's cached raw results, so a moved deadline, a new
extension or a new adjustment changes the final scores without regrading anyone. Order per student:
exercise adjustments (on raw exercise scores) -> late penalty -> total adjustments.
"""

from __future__ import annotations

import getpass
import html
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .adjust import ADJUSTMENTS_FILE, Adjustment, load_adjustments
from .errors import ConfigError, did_you_mean
from .discover import file_stem
from .lms import CANVAS, MOODLE, Identity, canvas_csv, load_roster, moodle_csv
from .safe_text import csv_cell
from .policy import Lateness, Policy, find_policy, load_policy

FINAL_CSV, CANVAS_CSV, MOODLE_CSV = "final_grades.csv", "canvas_gradebook.csv", "moodle_grading_worksheet.csv"
SIMILARITY_HTML = "similarity.html"
LMS_STAGING = ".lms"  # under --out: a Canvas/Moodle zip unpacked (hidden from student code with the rest of --out)
BLOCK_START, BLOCK_END = "<!-- torchgrade:final -->", "<!-- /torchgrade:final -->"
UNKNOWN_EXTENSION = "{policy}: extensions.{student}: no student '{student}' in this class{close}"
NOT_APPLIED = "adjustment {change} of {exercise} not applied: that exercise has no graded score"
NO_CANVAS_NAME = ("a Canvas download needs the assignment's name for the gradebook column: give "
                  "--canvas-assignment NAME (and --canvas-assignment-id ID) or `canvas:` in the policy file")


@dataclass(frozen=True)
class SemesterOptions:
    policy: Path | None = None
    adjustments: Path | None = None
    roster: Path | None = None
    canvas_assignment: str | None = None
    canvas_assignment_id: str | None = None


@dataclass(frozen=True)
class Final:
    student: str
    name: str
    lms: str
    raw: float
    max_score: float
    final: float
    lateness: Lateness
    adjustments: tuple[Adjustment, ...] = ()
    exercise_scores: dict = field(default_factory=dict)  # after exercise adjustments
    notes: tuple[str, ...] = ()

    @property
    def submitted_at(self) -> datetime | None:
        return datetime.fromisoformat(self.lateness.submitted_at) if self.lateness.submitted_at else None

    @property
    def comment(self) -> str:
        """One line for the LMS's feedback comment."""
        parts = [f"torchgrade: {self.raw:g} / {self.max_score:g} points"]
        if self.lateness.credit < 1:
            parts.append(f"{self.lateness.hours_late:g} h late, {1 - self.lateness.credit:.0%} deducted")
        parts += [a.describe() for a in self.adjustments]
        parts.append(f"final {self.final:g}")
        return "; ".join(parts)

    def detail(self, policy: Policy | None = None) -> dict:
        applied = {"file": policy.source, "digest": policy.digest} if policy and policy.source else None
        return {"policy": applied, "lateness": self.lateness.__dict__, "exercises": self.exercise_scores,
                "adjustments": [a.describe() for a in self.adjustments], "notes": list(self.notes)}


class Semester:
    """The course's policy, the TA's adjustments and the LMS roster for one output folder."""

    def __init__(self, out: Path, rubrics_dir: Path, options: SemesterOptions = SemesterOptions()):
        self.out = Path(out)
        self.options = options
        self.policy: Policy = load_policy(find_policy(rubrics_dir, options.policy))
        self.roster = load_roster(options.roster)
        self.adjustments_path = options.adjustments or self.out / ADJUSTMENTS_FILE
        if options.adjustments is not None and not Path(options.adjustments).is_file():
            raise ConfigError(f"{options.adjustments}: no such adjustments file")
        self.adjustments: list[Adjustment] = []

    def check(self, entries, exercises) -> list[str]:
        """Before grading: a bad adjustment row or a missing Canvas assignment stops the run while nothing is
        lost yet. Returns warnings: an extension for an id not in the class is likely a typo that would leave
        the student it was meant for with a late penalty."""
        students = {e.student for e in entries}
        self.adjustments = load_adjustments(self.adjustments_path, students, set(exercises))
        if any(e.identity is not None and e.identity.lms == CANVAS for e in entries) and not self.canvas_name:
            raise ConfigError(NO_CANVAS_NAME)
        return [UNKNOWN_EXTENSION.format(policy=self.policy.source, student=s, close=did_you_mean(s, students))
                for s in sorted(self.policy.extensions) if s not in students]

    @property
    def canvas_name(self) -> str | None:
        return self.options.canvas_assignment or self.policy.canvas.get("assignment")

    def finals(self, rows, entries) -> list[Final]:
        by_student = {e.student: e for e in entries}
        finals = []
        for row in rows:
            entry = by_student.get(row.student)
            finals.append(self._final(row, entry))
        return finals

    def _final(self, row, entry) -> Final:
        identity: Identity | None = entry.identity if entry is not None else None
        scores = {x["id"]: [x["score"], x["max_score"]] for x in row.result.get("exercises", [])}
        own = [a for a in self.adjustments if a.student == row.student]
        unapplied = []
        for a in own:
            if a.exercise and a.exercise in scores:
                scores[a.exercise][0] = a.applied_to(scores[a.exercise][0], scores[a.exercise][1])
            elif a.exercise:  # an unusable submission has no exercise scores to adjust
                unapplied.append(NOT_APPLIED.format(change=a.change, exercise=a.exercise))
        raw, max_score = float(row.score), float(row.max_score)
        adjusted = sum(s for s, _ in scores.values()) if scores else raw
        when, source, flag = None, "", None
        if identity is not None:
            when, source, flag = identity.submitted_at, identity.time_source, identity.late
        elif entry is not None and entry.path.is_file():
            when, source = datetime.fromtimestamp(entry.path.stat().st_mtime, timezone.utc), "file mtime"
        lateness = self.policy.lateness(row.student, when, source, flag)
        final = self.policy.apply(adjusted, max_score, lateness)
        for a in own:
            if not a.exercise:
                final = a.applied_to(final, None)
        notes = tuple(identity.notes if identity else ()) + lateness.notes + tuple(unapplied)
        return Final(row.student, identity.name if identity else row.student, identity.lms if identity else "",
                     raw, max_score, round(final, 4), lateness, tuple(own), {k: v[0] for k, v in scores.items()}, notes)

    def finish(self, rows, entries, gradebook) -> str:
        """Every file of the semester workflow; returns the section the class summary shows."""
        from .export import write_atomic

        finals = self.finals(rows, entries)
        gradebook.sync_adjustments(self.adjustments)
        who = _who()
        for f in finals:
            gradebook.record_final(f.student, f.raw, f.max_score, f.final, f.detail(self.policy), who)
        write_atomic(self.out / FINAL_CSV, final_csv(finals))
        max_score = max((f.max_score for f in finals), default=0.0)
        kinds = {f.lms for f in finals}
        canvas_name = self.canvas_name
        canvas_id = self.options.canvas_assignment_id or self.policy.canvas.get("assignment_id")
        if canvas_name and (CANVAS in kinds or self.options.canvas_assignment):
            write_atomic(self.out / CANVAS_CSV, canvas_csv(finals, self.roster, canvas_name, canvas_id, max_score))
        if MOODLE in kinds:
            write_atomic(self.out / MOODLE_CSV, moodle_csv(finals, self.roster, max_score))
        for f in finals:
            page = self.out / "feedback" / f"{file_stem(f.student)}.html"
            if page.is_file():
                _set_block(page, feedback_block(f) if _worth_showing(f) else "")
        return summary_section(finals, (self.out / SIMILARITY_HTML).is_file())


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container: the history still says when
        return "unknown"


def _worth_showing(f: Final) -> bool:
    return bool(f.adjustments or f.lateness.credit < 1 or f.notes or f.lateness.extension)


def final_csv(finals) -> str:
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["student", "name", "lms", "raw", "max", "submitted_at", "time_source", "due", "hours_late",
                "late_credit", "adjustments", "final", "notes"])
    for f in finals:
        la = f.lateness
        w.writerow([csv_cell(f.student), csv_cell(f.name), f.lms, f"{f.raw:g}", f"{f.max_score:g}",
                    la.submitted_at or "", la.time_source, la.due, f"{la.hours_late:g}", f"{la.credit:g}",
                    csv_cell(" | ".join(a.describe() for a in f.adjustments)), f"{f.final:g}",
                    csv_cell(" | ".join(f.notes))])
    return out.getvalue()


def feedback_block(f: Final) -> str:
    e = html.escape
    la = f.lateness
    items = [f"<li>Graded score: {f.raw:g} / {f.max_score:g}</li>"]
    for a in f.adjustments:
        items.append(f"<li>Adjustment ({e(a.exercise or 'total')} {e(a.change)}): {e(a.comment)}"
                     f"{' — ' + e(a.who) if a.who else ''}</li>")
    if la.due:
        late = (f"{la.hours_late:g} h late: {1 - la.credit:.0%} deducted" if la.credit < 1 else "on time")
        items.append(f"<li>Due {e(la.due)}{' (' + e(la.extension) + ')' if la.extension else ''}; submitted "
                     f"{e(la.submitted_at or 'at an unknown time')} ({e(la.time_source)}): {late}</li>")
    items += [f"<li>Note: {e(n)}</li>" for n in f.notes]
    return (f"{BLOCK_START}<section style='border:2px solid #4a7ebb;padding:0.5em 1em;margin:1em'>"
            f"<h2>Final score: {f.final:g} / {f.max_score:g}</h2><ul>{''.join(items)}</ul></section>{BLOCK_END}")


_BLOCK = re.compile(re.escape(BLOCK_START) + ".*?" + re.escape(BLOCK_END), re.DOTALL)
_BODY = re.compile(r"<body[^>]*>|<meta charset=[^>]*>", re.IGNORECASE)  # the page of an unusable file has no body


def _set_block(page: Path, block: str) -> None:
    """The final-score block at the top of a feedback page, replaced in place on every run."""
    from .export import write_atomic

    text = page.read_text(encoding="utf-8")
    new = _BLOCK.sub("", text)
    if block:
        m = _BODY.search(new)
        at = m.end() if m else 0
        new = new[:at] + block + new[at:]
    if new != text:
        write_atomic(page, new)


def summary_section(finals, similarity: bool) -> str:
    e = html.escape
    parts = []
    if similarity:
        parts.append(f"<h2>Similarity</h2><p><a href='{SIMILARITY_HTML}'>Similarity report</a> (pairs of students "
                     "ranked by shared exercise code; it changes no score).</p>")
    changed = [f for f in finals if f.final != f.raw or f.adjustments or f.lateness.credit < 1]
    if changed:
        parts.append("<h2>Late penalties and adjustments</h2><table><tr><th>student</th><th>name</th><th>raw</th>"
                     "<th>hours late</th><th>credit</th><th>adjustments</th><th>final</th></tr>")
        for f in changed:
            adjustments = "<br>".join(e(a.describe()) for a in f.adjustments)
            parts.append(f"<tr><td>{e(f.student)}</td><td>{e(f.name)}</td><td>{f.raw:g}</td>"
                         f"<td>{f.lateness.hours_late:g}</td><td>{f.lateness.credit:.0%}</td><td>{adjustments}</td>"
                         f"<td>{f.final:g}</td></tr>")
        parts.append("</table>")
    return "\n".join(parts)
