"""A `.zip` of submissions read in place: member names checked (no `..`, no absolute paths, no
duplicates), decoded as the tool that wrote them meant, and each member read with a size cap.
Nothing is unpacked to disk. A member's path is `<the zip's path>/<member name>`."""

from __future__ import annotations

import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import UnusableSubmission

MAX_MEMBERS = 20_000
# Zip-bomb guard: a member is read up to this many bytes, whatever its header claims.
MAX_MEMBER_BYTES = 50 * 1024 * 1024 + 1


@dataclass(frozen=True)
class Member:
    name: str            # NFC, "/"-separated, relative and free of ".." (checked)
    info: zipfile.ZipInfo
    problem: str | None = None  # why it cannot be read (duplicate name, encrypted)


def decoded_name(info: zipfile.ZipInfo) -> str:
    """The name as written. Without the UTF-8 flag, zipfile decodes as cp437; macOS's Archive
    Utility and many Unix tools store UTF-8 without the flag, so UTF-8 is tried first."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return unicodedata.normalize("NFC", name.replace("\\", "/"))


def unsafe_reason(name: str) -> str | None:
    """Why a member name could point outside the archive's own tree (zip-slip), if it could."""
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "a path with '..'"
    if "\x00" in name:
        return "a name with a NUL byte"
    return None


def list_members(path: Path) -> tuple[list[Member], list[str]]:
    """The archive's files (folders are implied by names), and notes on what was refused."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        return [], [f"{path}: ignored, not a readable zip ({e})"]
    notes = []
    if len(infos) > MAX_MEMBERS:
        notes.append(f"{path}: only the first {MAX_MEMBERS} of its {len(infos)} members were read")
        infos = infos[:MAX_MEMBERS]
    seen: dict[str, int] = {}
    members = []
    for info in infos:
        if info.is_dir():
            continue
        name = decoded_name(info)
        reason = unsafe_reason(name)
        if reason:
            notes.append(f"{path}: member {info.filename!r} ignored: {reason} could be written outside the folder")
            continue
        seen[name] = seen.get(name, 0) + 1
        members.append(Member(name, info))
    out = []
    for m in members:
        if seen[m.name] > 1:
            m = Member(m.name, m.info, f"the zip holds {seen[m.name]} members named {m.name!r}; which one is meant "
                                       "cannot be told")
        elif m.info.flag_bits & 0x1:
            m = Member(m.name, m.info, "the member is encrypted")
        out.append(m)
    return out, notes


def zip_of(path: Path) -> tuple[Path, str] | None:
    """(`archive.zip`, member name) when `path` names a member of a zip, else None."""
    for parent in Path(path).parents:
        if parent.suffix.lower() == ".zip" and parent.is_file():
            return parent, Path(path).relative_to(parent).as_posix()
    return None


def read_member(path: Path) -> bytes:
    """The bytes of `archive.zip/member`, at most MAX_MEMBER_BYTES of them."""
    archive, name = zip_of(path) or (None, None)
    if archive is None:
        raise UnusableSubmission(path, "no such file")
    members, _ = list_members(archive)
    found = [m for m in members if m.name == name]
    if not found:
        raise UnusableSubmission(path, "no such member in the zip")
    if found[0].problem:
        raise UnusableSubmission(path, found[0].problem)
    try:
        with zipfile.ZipFile(archive) as z, z.open(found[0].info) as f:
            return f.read(MAX_MEMBER_BYTES)
    except (zipfile.BadZipFile, zlib.error, OSError, RuntimeError, NotImplementedError, EOFError) as e:  # damaged data
        raise UnusableSubmission(path, f"cannot be read from the zip ({e})") from None
