"""The walls around one run of student code: limits, identity, namespaces, environment.

Called in a freshly forked child, before any student code exists in the process. What the
OS does not allow here is skipped and reported, never silently assumed (README "Security model").

The file system and network walls (namespaces, read-only mounts, scratch folders, hidden folders) are
grader.mounts'; this module holds the run's identity, limits, killing and environment, and every name
the worker uses is importable from here (`sandbox.hide_folders`, ...).
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal

# The file system walls, importable from here as before (the worker calls them as `sandbox.X`).
from .mounts import (MOUNT_FLAGS, SCRATCH_DIRS, SCRATCH_SIZE, SYSTEM_HIDDEN, bridge_to,  # noqa: F401
                     enter_namespaces, freeze_host_files, fresh_scratch, hide_folders, in_private_mount_namespace)
from .syscalls import check as _check
from .syscalls import is_root
from .syscalls import libc as _libc

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1

FILE_SIZE_LIMIT = 64 * 1024 * 1024
PROCESS_LIMIT = 128  # per user id, and each run has its own: threads count too on Linux
# Each run gets a user id of its own, so one run can neither signal nor read another's
# processes and files, and the process limit is per run, not per machine.
RUN_UID_BASE = 200000
PR_SET_NO_NEW_PRIVS = 38


def set_subreaper() -> None:
    """Orphans of our runs (double forks, setsid) become our children, so we can kill them."""
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


def die_with_parent() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def run_ids(pid: int | None = None) -> tuple[int, int] | None:
    """The unprivileged user and group of the run whose child is `pid` (default: this process);
    None when not root."""
    if not is_root():
        return None
    uid = RUN_UID_BASE + (pid or os.getpid())
    return uid, uid


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


def forget_initial_environment() -> None:
    """Blank the environment block the worker was started with.

    `os.environ.clear()` only unlinks the variables; their text (a CI token, a cloud key) stays
    in the block the kernel set up at exec, where student code could read it back with ctypes.
    Called after the environment was replaced, so nothing points into the block any more.
    """
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rfind(b")") + 2 :].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end (stat fields 50, 51)
    except (OSError, ValueError, IndexError):
        return
    if 0 < start < end:
        ctypes.memset(start, 0, end - start)


# The kill helper, started without copying the worker: fork() of a process holding torch
# costs 10-15 ms, posix_spawn (vfork and exec) of these two small programs 2-3 ms.
_SETPRIV, _SH = shutil.which("setpriv", path="/usr/bin:/bin"), shutil.which("sh", path="/usr/bin:/bin")


def kill_user(uid: int) -> None:
    """SIGKILL every process of a run's user at once: kill(-1) as that user.

    The kernel walks the process list under a lock that fork() also needs, so no fork bomb
    can add a process the signal misses. A helper process takes the user's identity (the
    worker must stay root); a run's own kill(-1) can only end the helper, and then we retry.
    """
    for _ in range(5):
        status = _kill_as(uid)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return


def _kill_as(uid: int) -> int:
    """Run kill(-1) as `uid` in a helper; its wait status (0: done)."""
    if _SETPRIV and _SH:
        helper = os.posix_spawn(_SETPRIV, [
            "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
            _SH, "-c", "kill -9 -1 2>/dev/null; exit 0"], {"PATH": "/usr/bin:/bin"})
        _, status = os.waitpid(helper, 0)
        if os.WIFSIGNALED(status) or os.WEXITSTATUS(status) == 0:
            return status  # done, or killed by the run (the caller tries again)
        # setpriv itself failed (a system that does not allow it): do it by fork
    helper = os.fork()
    if helper == 0:  # pragma: no cover - runs in the helper
        done = 1
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass  # no process of that user left
            done = 0
        finally:
            os._exit(done)
    _, status = os.waitpid(helper, 0)
    return status


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
        # The run's user has no passwd entry: getpass.getuser() (torch's default cache folders) asks these first.
        "USER": "student",
        "LOGNAME": "student",
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
