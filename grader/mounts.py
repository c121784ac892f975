"""The file system and network walls of a run, built in its own mount namespace: a private mount table
and an empty network (`enter_namespaces`), every host mount read-only, fresh size-bounded scratch folders,
folders of other users' work hidden, and a path kept open to the run's own Python.

Called in a freshly forked child, before any student code exists (grader.sandbox has the rest of the
walls: identity, limits, environment). Nothing here ever changes the host's mount table.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re

from .syscalls import check as _check
from .syscalls import is_root
from .syscalls import libc as _libc

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
MS_REC, MS_PRIVATE, MS_RDONLY, MS_NOSUID, MS_NODEV = 0x4000, 0x40000, 0x1, 0x2, 0x4
MS_NOEXEC, MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 0x8, 0x20, 0x400, 0x800, 0x200000
# Per-mount options as /proc/self/mountinfo lists them; a read-only remount must keep them.
MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
               "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
MS_BIND = 0x1000

SCRATCH_SIZE = "256m"  # each private tmpfs (/tmp, /var/tmp, /dev/shm): RAM, so bounded
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
# Host folders a run never needs: daemons' sockets (a connect() ignores read-only mounts) and locks.
SYSTEM_HIDDEN = ("/run",)

_private_mounts: list[int] = []  # pid that entered its own mount namespace (a fork does not inherit the fact)


def enter_namespaces() -> list[str]:
    """A private mount table (to hide folders), an empty network (no interfaces up), and private
    System V IPC and POSIX message queues (so no shared segment outlives a run or links two)."""
    notes = []
    if not is_root():
        return ["not running as root: no network or mount namespace; student code has the grader's network and file access"]
    try:
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC), "unshare")
        # Mounts made from now on must never propagate back to the host.
        _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
        _private_mounts.append(os.getpid())
    except OSError as e:
        notes.append(f"namespaces unavailable ({e}); student code keeps network access")
    return notes


def freeze_host_files() -> list[str]:
    """Every mount read-only, in our namespace only: the private scratch folders mounted next are
    then the only places a run can write (no /run/lock, no world-writable folder of the host, no
    repository or output folder left writable by mistake)."""
    _require_private_mounts()
    notes = []
    with open("/proc/self/mountinfo", "rb") as f:
        mounts = [line.split() for line in f]
    for fields in mounts:
        target = _unescape(fields[4])
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        for option in fields[5].decode().split(","):
            flags |= MOUNT_FLAGS.get(option, 0)
        if _libc.mount(None, target, None, flags, None) != 0:
            err = ctypes.get_errno()
            if err != errno.ENOENT:  # a mount point that vanished or is hidden by another mount
                notes.append(f"could not make {os.fsdecode(target)} read-only: {os.strerror(err)}")
    return notes


def _unescape(field: bytes) -> bytes:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (`\\040`)."""
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field)


def fresh_scratch(workdir: str, ids: tuple[int, int] | None, keep=()) -> None:
    """Private, empty, size-bounded /tmp, /var/tmp and /dev/shm: nothing leaks between runs.

    `keep`: what the run's Python needs (its installation, site-packages, this package). Where one
    lies inside a scratch folder (a virtual environment or a clone in /tmp), it is bound back, read-only,
    into the fresh one: otherwise a lazily imported module, `sys.executable` or `import grader` would
    vanish mid-run, and a correct notebook would score 0 only because of where the grader is installed."""
    _require_private_mounts()
    for path in SCRATCH_DIRS:
        if os.path.isdir(path):
            kept = _inside(path, keep, workdir)
            fds = {p: os.open(p, os.O_PATH) for p in kept}  # reachable after the tmpfs covers them
            _check(_libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                               f"size={SCRATCH_SIZE},mode=1777".encode()), f"mount tmpfs on {path}")
            for target, fd in fds.items():
                os.makedirs(target, mode=0o755, exist_ok=True)
                _check(_libc.mount(f"/proc/self/fd/{fd}".encode(), os.fsencode(target), None, MS_BIND | MS_REC, None),
                       f"bind {target}")
                _check(_libc.mount(None, os.fsencode(target), None,
                                   MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None),
                       f"make {target} read-only")
                os.close(fd)
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    if ids is not None:
        os.chown(workdir, *ids)


def _inside(scratch: str, paths, workdir: str) -> list[str]:
    """The outermost of `paths` strictly inside `scratch`: never the scratch folder itself, nor a
    folder holding the run's working folder (that would bring the host's scratch files back)."""
    scratch = os.path.realpath(scratch)
    work = os.path.realpath(workdir)
    found = set()
    for p in paths:
        if not p or not os.path.isdir(p):
            continue
        real = os.path.realpath(p)
        if not real.startswith(scratch + os.sep) or work == real or work.startswith(real + os.sep):
            continue
        found.add(real)
    return sorted(p for p in found if not any(p.startswith(q + os.sep) for q in found))


def bridge_to(paths) -> None:
    """Make `paths` (the Python installation, torch, ...) reachable for the run's user.

    A folder on the way that other users cannot enter (`/root` is 0700 where Python was
    installed with pyenv) is replaced, in our mount namespace only, by an empty tmpfs
    holding just the entries on the way, bind-mounted from the real folder.
    """
    _require_private_mounts()
    blocked: dict[str, set[str]] = {}
    for path in {os.path.realpath(p) for p in paths if p and os.path.exists(p)}:
        parts = path.strip("/").split("/")
        for depth in range(len(parts)):
            folder = "/" + "/".join(parts[:depth])
            if not os.stat(folder).st_mode & 0o001:
                blocked.setdefault(folder, set()).add(parts[depth])
                break
    for folder, names in sorted(blocked.items()):
        if folder == "/":
            continue
        keep = {n: os.open(os.path.join(folder, n), os.O_PATH) for n in names}
        _check(_libc.mount(b"tmpfs", folder.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755,size=64k"),
               f"mount tmpfs on {folder}")
        for name, fd in keep.items():
            target = os.path.join(folder, name)
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.mkdir(target)
            else:
                open(target, "w").close()
            _check(_libc.mount(f"/proc/self/fd/{fd}".encode(), target.encode(), None, MS_BIND | MS_REC, None),
                   f"bind {target}")
            os.close(fd)


def _require_private_mounts() -> None:
    if not in_private_mount_namespace():
        raise OSError("refusing to change mounts outside a private mount namespace")


def in_private_mount_namespace() -> bool:
    """True only in the process that made its own, non-propagating mount table."""
    return os.getpid() in _private_mounts


def hide_folders(paths) -> list[str]:
    """Mount an empty read-only tmpfs over each folder (only inside our mount namespace)."""
    if not in_private_mount_namespace():
        # Never mount anything in the host's table: it would hide the folders from everyone.
        return [f"could not hide {p}: no private mount namespace" for p in paths if os.path.isdir(p)]
    notes = []
    for path in paths:
        if not os.path.isdir(path):
            continue
        rc = _libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, b"size=4k")
        if rc != 0:
            notes.append(f"could not hide {path}: {os.strerror(ctypes.get_errno())}")
    return notes
