"""Find a class's submissions: one notebook per student, in a folder or a `.zip`, each with an id
that no other submission shares (SPEC "Command line", class folders). `student_id` decides an id
from a name, `file_stem` the name of a student's output files; download residue is left out with
a note for the TA."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import ConfigError
from .safe_text import path_text

if TYPE_CHECKING:
    from .lms import Identity

# Download residue, never a student: folder or file names, and why each is ignored.
RESIDUE = {"__MACOSX": "macOS archive residue (resource forks), not a submission"}
HIDDEN = "a hidden file or folder (Jupyter's .ipynb_checkpoints, macOS's .DS_Store and ._ files)"
CHECKPOINT = "a Jupyter autosave copy (-checkpoint.ipynb), not the saved notebook"
OUTPUT_FOLDER = "the output folder of `grader grade` (it holds {mark}), not a student"
THIS_OUT = "this run's --out folder, not a student"
OUTPUT_MARK = "gradebook.sqlite"  # every --out folder holds one (grader/batch.py)
ZIP_IN_ZIP = "a zip inside a zip is not read: unzip the outer zip and grade the folder"
# A browser's "Save as" or an LMS preview adds an extension: the notebook is there, under a name no one grades.
SAVED_AS = re.compile(r"(?i)^(?P<stem>.+\.ipynb)\.(txt|json)$")
EXTRA_EXTENSION = "{path}: saved as '{name}', not as a notebook (.ipynb): rename it to {stem}"
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
    identity: "Identity | None" = None  # from an LMS download (grader/lms.py): display name, LATE flag, time

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


def output_folder(path: Path, out: Path | None = None) -> str | None:
    """Why a folder on disk is grader output, not submissions: this run's --out (resolved), or an
    earlier run's (--out inside the class folder, renamed or not)."""
    if not path.is_dir():
        return None
    if out is not None and path.resolve() == out:
        return THIS_OUT
    if (path / OUTPUT_MARK).is_file():
        return OUTPUT_FOLDER.format(mark=OUTPUT_MARK)
    return None


def _ignored(item: _Item, out: Path | None = None) -> str | None:
    why = item.items is not None and output_folder(item.path, out)
    if why:
        return why
    if item.name in RESIDUE:
        return RESIDUE[item.name]
    if item.name.startswith("."):
        return HIDDEN
    if item.items is None and item.name.endswith("-checkpoint.ipynb"):
        return CHECKPOINT
    return None


def scan(root: Path, out: Path | None = None) -> Found:
    """`root/<student>.ipynb` or `root/<student>/<anything>.ipynb`, one notebook per student; a `.zip`
    (as root or in it) is read as a folder of such. Residue is left out with a note; two submissions
    that would share an id both get one of their own, with a note. `out`, this run's output folder,
    and any earlier one are never students, wherever they are."""
    root = Path(root)
    out = Path(out).resolve() if out is not None else None
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
            why = _ignored(item, out)
            if why:
                notes.append(f"ignored {item.rel}{'/' if item.items else ''}: {why}")
            elif item.items is not None:
                candidates.append((student_id(item.name), item, *_one_notebook(item, inner_ignored, notes, out)))
            elif item.name.lower().endswith(".ipynb"):
                candidates.append((student_id(item.name), item, item.path, _named(item)))
            elif SAVED_AS.match(item.name):
                candidates.append((student_id(SAVED_AS.match(item.name)["stem"]), item, item.path, _saved_as(item)))
            elif item.name.lower().endswith(".zip") and not in_zip:
                take(_unwrap(_zip_items(item.path, item.rel, notes)), True)
            elif item.name.lower().endswith(".zip"):
                notes.append(f"ignored {item.rel}: {ZIP_IN_ZIP}")
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


def _one_notebook(folder: _Item, ignored: dict[str, int], notes: list[str],
                  out: Path | None = None) -> tuple[Path, str | None]:
    """The one notebook in a student's folder, looking into a zip they uploaded there too."""
    notebooks: list[_Item] = []
    saved_as: list[_Item] = []

    def walk(item: _Item) -> None:
        for child in item.items():
            why = _ignored(child, out)
            if why:
                ignored[why] = ignored.get(why, 0) + 1
            elif child.items is not None:
                walk(child)
            elif child.name.lower().endswith(".ipynb"):
                notebooks.append(child)
            elif SAVED_AS.match(child.name):
                saved_as.append(child)
            elif child.name.lower().endswith(".zip") and child.path.is_file():  # on disk: not a zip in a zip
                walk(_Item(child.name, child.rel, child.path, lambda c=child: _zip_items(c.path, c.rel, notes)))

    try:
        walk(folder)
    except OSError as e:
        return folder.path, f"{folder.path}: cannot be read ({e.strerror or e})"
    if len(notebooks) == 1:
        return notebooks[0].path, _named(notebooks[0])
    if not notebooks and len(saved_as) == 1:
        return saved_as[0].path, _saved_as(saved_as[0])
    if not notebooks:
        return folder.path, f"{folder.path}: no .ipynb notebook in this student's folder"
    names = ", ".join(n.rel.removeprefix(folder.rel + "/") for n in notebooks[:5])
    return folder.path, f"{folder.path}: {len(notebooks)} notebooks ({names}); a student's folder must hold exactly one"


def _saved_as(item: _Item) -> str:
    return EXTRA_EXTENSION.format(path=item.path, name=item.name, stem=SAVED_AS.match(item.name)["stem"])


def _named(item: _Item) -> str | None:
    return item.problem and f"{item.path}: {item.problem}"


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
            new = base = f"{sid} ({unicodedata.normalize('NFC', item.rel)})"
            k = 1
            while new in taken:  # one name in both Unicode forms: the same text twice
                k += 1
                new = f"{base} #{k}"
            taken.add(new)
            entries.append(Entry(new, path, problem, sid))
    return entries
