"""The walls around one run of student code: limits, identity, namespaces, environment.

Called in a freshly forked child, before any student code exists in the process. What the
OS does not allow here is skipped and reported, never silently assumed (README "Security model").
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC, MS_PRIVATE, MS_RDONLY, MS_NOSUID, MS_NODEV = 0x4000, 0x40000, 0x1, 0x2, 0x4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1

FILE_SIZE_LIMIT = 64 * 1024 * 1024
SCRATCH_SIZE = "256m"  # each private tmpfs (/tmp, /var/tmp, /dev/shm): RAM, so bounded
PROCESS_LIMIT = 128  # per user id, and each run has its own: threads count too on Linux
# Each run gets a user id of its own, so one run can neither signal nor read another's
# processes and files, and the process limit is per run, not per machine.
RUN_UID_BASE = 200000
PR_SET_NO_NEW_PRIVS = 38
MS_BIND = 0x1000
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def set_subreaper() -> None:
    """Orphans of our runs (double forks, setsid) become our children, so we can kill them."""
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


def die_with_parent() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def is_root() -> bool:
    return os.geteuid() == 0


def run_ids() -> tuple[int, int] | None:
    """The unprivileged user and group this run's student code gets (None: not root)."""
    if not is_root():
        return None
    uid = RUN_UID_BASE + os.getpid()
    return uid, uid


def enter_namespaces() -> list[str]:
    """A private mount table (to hide folders) and an empty network (no interfaces up)."""
    notes = []
    if not is_root():
        return ["not running as root: no network or mount namespace; student code has the grader's network and file access"]
    try:
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare")
        # Mounts made from now on must never propagate back to the host.
        _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    except OSError as e:
        notes.append(f"namespaces unavailable ({e}); student code keeps network access")
    return notes


def fresh_scratch(workdir: str, ids: tuple[int, int] | None) -> None:
    """Private, empty, size-bounded /tmp, /var/tmp and /dev/shm: nothing leaks between runs."""
    for path in SCRATCH_DIRS:
        if os.path.isdir(path):
            _check(_libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                               f"size={SCRATCH_SIZE},mode=1777".encode()), f"mount tmpfs on {path}")
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    if ids is not None:
        os.chown(workdir, *ids)


def bridge_to(paths) -> None:
    """Make `paths` (the Python installation, torch, ...) reachable for the run's user.

    A folder on the way that other users cannot enter (`/root` is 0700 where Python was
    installed with pyenv) is replaced, in our mount namespace only, by an empty tmpfs
    holding just the entries on the way, bind-mounted from the real folder.
    """
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


def hide_folders(paths) -> list[str]:
    """Mount an empty read-only tmpfs over each folder (only inside our mount namespace)."""
    notes = []
    for path in paths:
        if not os.path.isdir(path):
            continue
        rc = _libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, b"size=4k")
        if rc != 0:
            notes.append(f"could not hide {path}: {os.strerror(ctypes.get_errno())}")
    return notes


def set_limits(memory_mb: int, cpu_s: float) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (int(cpu_s) + 1, int(cpu_s) + 2))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    resource.setrlimit(resource.RLIMIT_NPROC, (PROCESS_LIMIT, PROCESS_LIMIT))
    # torch maps a lot of address space at import: the limit is what we have plus the budget.
    limit = _address_space_bytes() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # A write past the file-size limit should fail with EFBIG, not kill the run silently.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _address_space_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def drop_privileges(ids: tuple[int, int] | None) -> None:
    # No setuid program (su, sudo) can give privileges back.
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if ids is None:
        return
    uid, gid = ids
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def scrubbed_environment(workdir: str, threads: int) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        # torch's compile caches default to shared folders; keep them per run.
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(workdir, ".cache", "inductor"),
        "TRITON_CACHE_DIR": os.path.join(workdir, ".cache", "triton"),
        "XDG_CACHE_HOME": os.path.join(workdir, ".cache"),
        "MPLCONFIGDIR": os.path.join(workdir, ".cache", "matplotlib"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for keep in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"):
        if keep in os.environ:
            env[keep] = os.environ[keep]
    return env
