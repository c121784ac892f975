"""LMS gradebooks out: the class's final points as the file Canvas or Moodle imports (Canvas' gradebook
CSV, Moodle's offline grading worksheet), names and ids taken from the LMS's own roster export.

grader.lms reads the LMS's downloads in; this module writes what goes back. `read_table` reads any
CSV a person exported or edited (the roster here, the TA's adjustments in grader.adjust).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .safe_text import csv_cell

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_ROW = "    Points Possible"  # Canvas' export writes it so, indented; its import skips it
MOODLE_COLUMNS = ("Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                  "Grade can be changed", "Last modified (submission)", "Last modified (grade)", "Feedback comments")
MOODLE_STATUS = "Submitted for grading - Graded"
MOODLE_DATE = "%A, %d %B %Y, %I:%M %p"  # Moodle's strftimedatetime, as its worksheet shows dates
ROSTER_TIP = ("export it from the LMS: Canvas Grades > Export (Student, ID, SIS User ID, SIS Login ID, Section), "
              "or Moodle's grading worksheet / participants (Identifier or ID number, Full name, Email address)")


@dataclass(frozen=True)
class RosterEntry:
    name: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    email: str = ""


def _uncell(text: str) -> str:
    """A roster cell as the LMS meant it: a `'` we (or the LMS) put before a formula character removed."""
    return text[1:] if text[:2] in ("'=", "'+", "'-", "'@") else text


def read_table(path: Path, what: str, tip: str):
    """A CSV a person exported or edited (Excel's BOM tolerated), as a DictReader, or an error naming the file."""
    import csv
    import io

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read {what}: {e}", tip) from None
    return csv.DictReader(io.StringIO(text, newline=""))


def load_roster(path: Path | None) -> dict[str, RosterEntry]:
    """An LMS roster or gradebook export, by LMS id (Canvas `ID`, Moodle `Participant N` -> `N`)."""
    if path is None:
        return {}
    path = Path(path)
    reader = read_table(path, "the roster", ROSTER_TIP)
    fields = set(reader.fieldnames or ())
    roster = {}
    if {"Student", "ID"} <= fields:
        for row in reader:
            student = (row.get("Student") or "").strip()
            if student == CANVAS_POINTS_ROW.strip() or not (row.get("ID") or "").strip():
                continue
            roster[row["ID"].strip()] = RosterEntry(_uncell(student), _uncell(row.get("SIS User ID") or ""),
                                                    _uncell(row.get("SIS Login ID") or ""),
                                                    _uncell(row.get("Section") or ""))
    elif "Identifier" in fields:
        for row in reader:
            ident = (row.get("Identifier") or "").strip()
            key = ident.split()[-1] if ident else ""
            if key:
                roster[key] = RosterEntry(_uncell(row.get("Full name") or ""), email=_uncell(row.get("Email address") or ""))
    else:
        raise ConfigError(f"{path}: line 1: not a roster this grader knows (columns {', '.join(sorted(fields))})",
                          ROSTER_TIP)
    return roster


def canvas_column(name: str, assignment_id) -> str:
    """Canvas matches an imported column to an assignment by `Name (id)`; without an id it creates one."""
    return f"{name} ({assignment_id})" if assignment_id not in (None, "") else name


def canvas_csv(finals, roster: dict[str, RosterEntry], assignment: str, assignment_id, max_score: float) -> str:
    """Canvas' gradebook import: its own export's header and id columns, then the assignment's points."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([*CANVAS_COLUMNS, canvas_column(assignment, assignment_id)])
    w.writerow([CANVAS_POINTS_ROW, "", "", "", "", f"{max_score:g}"])
    for f in finals:
        r = roster.get(f.student, RosterEntry())
        anonymous = f.student.startswith("anon_")
        w.writerow([csv_cell(r.name or f.name), "" if anonymous else csv_cell(f.student), csv_cell(r.sis_user_id),
                    csv_cell(r.sis_login_id), csv_cell(r.section), f"{f.final:g}"])
    return out.getvalue()


def moodle_csv(finals, roster: dict[str, RosterEntry], max_score: float) -> str:
    """Moodle's offline grading worksheet: matched by `Identifier`; Grade and Feedback comments are read back."""
    import csv
    import html
    import io

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(MOODLE_COLUMNS)
    for f in finals:
        r = roster.get(f.student, RosterEntry())
        submitted = f.submitted_at.strftime(MOODLE_DATE) if f.submitted_at else "-"
        w.writerow([f"Participant {f.student}", csv_cell(r.name or f.name), csv_cell(r.email), MOODLE_STATUS,
                    f"{f.final:.2f}", f"{max_score:.2f}", "Yes", submitted, "-", csv_cell(html.escape(f.comment))])
    return out.getvalue()
