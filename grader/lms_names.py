"""What a Canvas or Moodle download's file names say: the student's LMS id, the display name, Canvas'
LATE flag and the original file name (`parse_canvas`, `parse_moodle`, an `Identity`).

Formats (no official specification is published; these follow what the LMSs write):
- Canvas "Download Submissions" zip (or the folder it unpacks to), one file per attachment:
  `sortablename_[LATE_]<user_id>_<attachment_id>_<original name>`; `sortablename` is the student's
  "Last, First" lower-cased with everything but letters and digits removed (`doejane`, `müllerjürgen`);
  under anonymous grading `anon_<anonymous_id>_[LATE_]<attachment_id>_<original name>`; a resubmission of
  the same original name gets `-1`, `-2` before the extension. Sources: Canvas'
  `app/models/submission.rb` / content-zipper naming as seen in the wild, e.g. the README of
  github.com/mikewesthad/canvas-unzipper (`smithbob_340934_208490284_BobsWork.zip`) and of
  github.com/TimHanneman/Canvas_submission_sort ("an extra field if the assignment was submitted late and if the
  assignment was resubmitted multiple times a number is added at the end of the filename, but before the file
  extension").
- Moodle (mod/assign "Download all submissions"): a folder per participant
  `Full Name_<participantid>_assignsubmission_file_/` holding the files (Moodle >= 3.x with "download
  submissions in folders"), or the older flat form `Full Name_<participantid>_assignsubmission_file_<file>`.
  The participant id is what Moodle's grading worksheet calls `Participant <id>`. Source: Moodle's
  `mod/assign/locallib.php` (`download_submissions`, prefix `fullname_uniqueid_plugin_`).

grader.lms reads a whole download (a zip or folder) with these.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

CANVAS, MOODLE = "canvas", "moodle"

# Letters and digits only (Canvas strips the rest), any script.
CANVAS_NAME = re.compile(r"^(?P<sortable>[^\W_]*)_(?:(?P<late>LATE)_)?(?P<uid>\d+)_(?P<att>\d+)_(?P<file>.+)$", re.DOTALL)
CANVAS_ANON = re.compile(r"^anon_(?P<anon>[A-Za-z0-9]+)_(?:(?P<late>LATE)_)?(?P<att>\d+)_(?P<file>.+)$", re.DOTALL)
MOODLE_NAME = re.compile(r"^(?P<name>.+)_(?P<pid>\d+)_assignsubmission_(?P<plugin>[a-z]+)(?:_(?P<file>.*))?$", re.DOTALL)
# (DOTALL: a newline is legal in a Linux file name.)
RESUBMISSION = re.compile(r"^(?P<stem>.+?)-(?P<n>\d+)$")


@dataclass(frozen=True)
class Identity:
    """Who a submission belongs to according to the LMS, and when it was submitted."""

    lms: str  # canvas | moodle | "" (a plain folder)
    student: str  # the LMS id: Canvas user id, `anon_<id>`, Moodle participant id
    name: str  # the display name as the download spells it
    late: bool | None = None  # Canvas' LATE flag; None where the LMS does not say
    submitted_at: datetime | None = None
    time_source: str = ""
    original_name: str = ""
    notes: tuple[str, ...] = field(default=())


def parse_canvas(name: str) -> Identity | None:
    """The identity a Canvas download file name carries, or None if it is not one. A name as a Mac
    hands it back (decomposed: "u" + a combining diaeresis) is the same name."""
    name = unicodedata.normalize("NFC", name)
    m = CANVAS_ANON.match(name)
    if m:
        return Identity(CANVAS, f"anon_{m['anon']}", f"anon_{m['anon']}", bool(m["late"]), original_name=m["file"])
    m = CANVAS_NAME.match(name)
    if m and m["sortable"] != "anon":  # a name of no letters or digits at all leaves Canvas an empty sortable name
        return Identity(CANVAS, m["uid"], m["sortable"] or m["uid"], bool(m["late"]), original_name=m["file"])
    return None


def parse_moodle(name: str) -> Identity | None:
    name = unicodedata.normalize("NFC", name)
    m = MOODLE_NAME.match(name)
    if not m:
        return None
    return Identity(MOODLE, m["pid"], m["name"], None, original_name=m["file"] or "")


def resubmission_number(original: str) -> int:
    m = RESUBMISSION.match(Path(original).stem)
    return int(m["n"]) if m else 0
