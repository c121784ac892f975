"""LMS downloads in: who a Canvas or Moodle bulk-download file belongs to, and when it came in.
(The gradebooks that go back to the LMS are grader.lms_gradebook's.)

A TA's week starts with an LMS bulk download. Its file names carry the student (the LMS id, which
becomes the student's id everywhere in the outputs), the display name and, on Canvas, a LATE flag.

How each LMS names its files, with the sources of each format, is grader.lms_names'.

Neither download carries a submission time in its names: a zip entry's time (what the LMS stamped the file
with) is used, else the file's modification time; `Identity.time_source` says which.
"""

from __future__ import annotations

import shutil
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from .archive import decoded_name, unsafe_reason
from .errors import ConfigError
# LMS gradebooks out, importable from here as before (grader.semester, grader.adjust and tests use them).
from .lms_gradebook import (CANVAS_COLUMNS, CANVAS_POINTS_ROW, MOODLE_COLUMNS, MOODLE_DATE,  # noqa: F401
                            MOODLE_STATUS, ROSTER_TIP, RosterEntry, canvas_column, canvas_csv, load_roster,
                            moodle_csv, read_table)
from .lms_names import (CANVAS, CANVAS_ANON, CANVAS_NAME, MOODLE, MOODLE_NAME, RESUBMISSION,  # noqa: F401
                        Identity, parse_canvas, parse_moodle, resubmission_number)
from .read import MAX_NOTEBOOK_BYTES

TIME_ZIP, TIME_MTIME = "zip entry time", "file mtime"
IGNORED_PARTS = ("__MACOSX", ".ipynb_checkpoints")

LATEST_NOTE = "{n} notebooks were submitted; graded the latest ({chosen}), not {others}"
UNREADABLE_MEMBER = "{zip}: member {name}: cannot be read from the zip ({why})"
UNREADABLE_ERRORS = (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError, OSError)
NOT_CANVAS_NOTE = "ignored {name}: not a Canvas submission file (not named sortablename_userid_attachmentid_file)"
NOT_MOODLE_NOTE = "ignored {name}: not a Moodle submission (not named Full Name_participantid_assignsubmission_...)"
NOT_NOTEBOOK_NOTE = "ignored {name}: not a notebook"
NO_NOTEBOOK = "no .ipynb notebook among this student's files ({files}); submit the notebook itself"


@dataclass(frozen=True)
class _File:
    identity: Identity
    path: Path
    order: tuple  # later is larger: (attachment id) on Canvas, (resubmission number, name) elsewhere


def _ignored(parts: tuple[str, ...]) -> bool:
    """Residue of the TA's unzip or the student's Jupyter folder. Not `-checkpoint.ipynb`: every file of an
    LMS download is one the student uploaded, and it may be their only notebook (the saved one wins beside it)."""
    return any(p in IGNORED_PARTS or p.startswith(".") for p in parts)


def _checkpoint(f: "_File") -> bool:
    return f.identity.original_name.lower().endswith("-checkpoint.ipynb")


def stage(source: Path, staging: Path) -> tuple[Path, dict[str, datetime], dict[str, str]]:
    """A zip unpacked under `staging`, or the folder itself. Returns the folder and, for a zip, each member's
    stamped time (naive: zip times carry no zone) and why a member could not be unpacked (encrypted, damaged)."""
    source = Path(source)
    if source.is_dir():
        return source, {}, {}
    if not zipfile.is_zipfile(source):
        raise ConfigError(f"{source}: neither a folder nor a readable zip file of submissions"
                          f"{' (a truncated or damaged download?)' if source.suffix.lower() == '.zip' else ''}")
    target = Path(staging) / source.stem
    if target.exists():
        shutil.rmtree(target)
    times, broken = {}, {}
    with zipfile.ZipFile(source) as z:
        for info in z.infolist():
            name = decoded_name(info)  # a zip without the UTF-8 flag (macOS, old tools) spelled as meant
            parts = tuple(p for p in name.split("/") if p)
            if info.is_dir() or not parts or _ignored(parts) or unsafe_reason(name):
                continue
            dest = target.joinpath(*parts)
            rel = dest.relative_to(target).as_posix()
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)  # fails where `a` and `a/b` are both members
                with z.open(info) as src, open(dest, "wb") as dst:
                    # Never more than the reader accepts (plus a byte, so it says why): a zip bomb stays small here.
                    dst.write(src.read(MAX_NOTEBOOK_BYTES + 1))
            except UNREADABLE_ERRORS as e:  # one student's member: the file stays (empty), its entry says why
                if dest.parent.is_dir() and not dest.is_dir():
                    dest.write_bytes(b"")
                broken[rel] = UNREADABLE_MEMBER.format(zip=source, name=name, why=e)
            times[rel] = datetime(*info.date_time)
    return target, times, broken


def _file_time(path: Path, root: Path, zip_times: dict[str, datetime]) -> tuple[datetime, str]:
    stamped = zip_times.get(path.relative_to(root).as_posix())
    if stamped is not None:
        return stamped, TIME_ZIP
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc), TIME_MTIME


def _kept(root: Path, out: Path | None) -> list[Path]:
    from .discover import output_folder

    return [p for p in sorted(root.iterdir()) if not _ignored((p.name,)) and not output_folder(p, out)]


def _unwrap(root: Path, zip_times: dict[str, datetime], broken: dict[str, str], staging: Path,
            out: Path | None) -> tuple[Path, dict[str, datetime], dict[str, str]]:
    """The download inside what a TA made of it: a lone top folder (`submissions/`, unzipped and zipped
    again) or a lone zip in the zip (the download zipped again), one level each."""
    kept = _kept(root, out)
    if len(kept) == 1 and kept[0].is_dir() and not parse_moodle(kept[0].name):
        prefix = kept[0].name + "/"
        root = kept[0]
        zip_times, broken = ({k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)} for d in (zip_times, broken))
        kept = _kept(root, out)
    if len(kept) == 1 and kept[0].is_file() and kept[0].suffix.lower() == ".zip" and zipfile.is_zipfile(kept[0]):
        return stage(kept[0], Path(staging) / ".inner")
    return root, zip_times, broken


def _not_a_submission(p: Path) -> bool:
    """A file a TA keeps beside a download (roster, policy, notes): not a notebook, a folder or a zip,
    so never a student the plain-folder rules would have graded."""
    return p.is_file() and not p.name.lower().endswith((".ipynb", ".zip", ".ipynb.txt", ".ipynb.json"))


def _layout(items: list[Path], belongs, note: str, notes: list[str] | None) -> list[Path]:
    """The items of one LMS layout, in order, when every other item is no submission (a TA's roster,
    a PDF: noted as left out); [] when anything else would be lost by reading `items` this way."""
    matched = [p for p in items if belongs(p)]
    if not matched or not all(p in matched or _not_a_submission(p) for p in items):
        return []
    if notes is not None:
        notes.extend(note.format(name=p.name) for p in items if p not in matched)
    return matched


def _candidates(root: Path, zip_times: dict[str, datetime], out: Path | None = None,
                notes: list[str] | None = None) -> tuple[str | None, list[_File]]:
    """Every file of a Canvas or Moodle layout, or (None, []) when `root` is neither."""
    items = _kept(root, out)
    if not items:
        return None, []
    files = []
    canvas = _layout(items, lambda p: p.is_file() and parse_canvas(p.name), NOT_CANVAS_NOTE, notes)
    if canvas:
        for p in canvas:
            ident = parse_canvas(p.name)
            when, source = _file_time(p, root, zip_times)
            nfc = unicodedata.normalize("NFC", p.name)
            att = int((CANVAS_ANON.match(nfc) or CANVAS_NAME.match(nfc))["att"])
            files.append(_File(replace(ident, submitted_at=when, time_source=source), p, (att,)))
        return CANVAS, files
    moodle = _layout(items, lambda p: parse_moodle(p.name), NOT_MOODLE_NOTE, notes)
    if moodle:
        for p in moodle:
            ident = parse_moodle(p.name)
            inside = sorted(q for q in p.rglob("*") if q.is_file() and not _ignored(q.relative_to(p).parts)) \
                if p.is_dir() else [p]
            if not inside:  # a participant folder with nothing (left) in it: still a student of the class
                when, source = _file_time(p, root, zip_times)
                files.append(_File(replace(ident, submitted_at=when, time_source=source), p, (0, 0.0, "")))
            for q in inside:
                original = q.name if p.is_dir() else ident.original_name
                when, source = _file_time(q, root, zip_times)
                files.append(_File(replace(ident, submitted_at=when, time_source=source, original_name=original), q,
                                   (resubmission_number(original), when.timestamp(), original)))
        return MOODLE, files
    return None, []


def discover(source: Path, staging: Path, fallback=None, notes: list[str] | None = None):
    """The class in an LMS download (zip or folder) as batch entries keyed by LMS id. Anything else is
    `fallback(folder)` (the plain-folder rules; a zip unpacked first), or None without one. A student whose
    files hold no notebook is an unusable entry, so every student of the download appears in every output."""
    from .batch import Entry

    staged, zip_times, broken = stage(source, staging)
    out = Path(staging).parent.resolve()  # the staging folder is --out/.lms: --out is never a student
    root, zip_times, broken = _unwrap(staged, zip_times, broken, staging, out)
    lms, files = _candidates(root, zip_times, out, notes)
    if lms is None:
        if fallback:
            return fallback(staged)
        if staged != Path(source):  # a zip unpacked only to look: the plain-folder rules read it in place
            shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(Path(staging) / ".inner", ignore_errors=True)
        return None
    by_student: dict[str, list[_File]] = {}
    for f in files:
        by_student.setdefault(f.identity.student, []).append(f)
    entries = []
    for student, own in sorted(by_student.items()):
        own.sort(key=lambda f: f.order)
        notebooks = [f for f in own if f.identity.original_name.lower().endswith(".ipynb")]
        notebooks.sort(key=lambda f: (not _checkpoint(f), f.order))  # the last is graded: a saved one if any
        notes = [NOT_NOTEBOOK_NOTE.format(name=f.path.relative_to(root).as_posix()) for f in own if f not in notebooks]
        if not notebooks:
            names = ", ".join(f.path.relative_to(root).as_posix() for f in own)
            entries.append(Entry(student, own[-1].path, NO_NOTEBOOK.format(files=names),
                                 display=own[-1].identity.name, identity=replace(own[-1].identity, notes=tuple(notes))))
            continue
        chosen = notebooks[-1]
        if len(notebooks) > 1:
            notes.append(LATEST_NOTE.format(n=len(notebooks), chosen=chosen.path.name,
                                            others=", ".join(f.path.name for f in notebooks[:-1])))
        problem = broken.get(chosen.path.relative_to(root).as_posix())
        entries.append(Entry(student, chosen.path, problem, display=chosen.identity.name,
                             identity=replace(chosen.identity, notes=tuple(notes))))
    return entries


ZIP_NOT_HIDDEN = ("{zip} stays readable by student code (its folder also holds the grader or its Python): "
                  "move the zip into a folder of its own")


def folders_to_hide(source: Path) -> tuple[tuple[Path, ...], str | None]:
    """What student code must not read of the class: the folder, or for a zip the folder holding it (the
    sandbox hides folders, not files) unless that folder also holds what the grader itself runs from."""
    import importlib.util
    import sys

    source = Path(source).resolve()
    if not source.is_file():
        return (source,), None
    folder = source.parent
    spec = importlib.util.find_spec("torch")
    needed = [Path(sys.prefix), Path(sys.base_prefix), Path(__file__).resolve().parent.parent]
    if spec and spec.origin:
        needed.append(Path(spec.origin).resolve().parent)
    if any(Path(p).resolve().is_relative_to(folder) for p in needed):
        return (), ZIP_NOT_HIDDEN.format(zip=source)
    return (folder,), None
