"""The grader's folders in the temp directory: named after the process that owns them, removed by
that process's parent when it ends however it ends, and swept at the next start if even the
parent was killed (`kill -9` of the grader itself)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

WORKER_PREFIX = "torchgrade-worker-"  # + the grader's pid: the worker's pytest root
RUN_PREFIX = "torchgrade-run-"        # + the worker's pid: one run's working folder
CHECK_PREFIX = "torchgrade-check-"    # + the in-notebook service's pid: the notebooks it was sent (Colab)


def worker_dir() -> str:
    """A new worker's folder, owned by this (the grader's) process."""
    return tempfile.mkdtemp(prefix=f"{WORKER_PREFIX}{os.getpid()}-")


def run_dir() -> str:
    """A run's folder, owned by this (the worker's) process."""
    return tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-")


def check_dir() -> str:
    """The in-notebook service's folder, owned by this (the service's) process: the kernel may SIGKILL it,
    so a later grader's `sweep_stale` removes what its `close` could not."""
    return tempfile.mkdtemp(prefix=f"{CHECK_PREFIX}{os.getpid()}-")


def remove_worker_dirs(root: str, worker_pid: int) -> None:
    """After a worker ended (answered, killed or crashed): its folder, and any run folder it left."""
    shutil.rmtree(root, ignore_errors=True)
    for p in Path(tempfile.gettempdir()).glob(f"{RUN_PREFIX}{worker_pid}-*"):
        shutil.rmtree(p, ignore_errors=True)


def sweep_stale() -> int:
    """Remove this user's grader folders whose owning process is gone; returns how many."""
    removed = 0
    for prefix in (WORKER_PREFIX, RUN_PREFIX, CHECK_PREFIX):
        for p in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
            pid = p.name[len(prefix):].split("-", 1)[0]
            try:
                mine = p.lstat().st_uid == os.getuid()
            except OSError:
                continue
            if mine and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:  # a killed worker whose parent was killed too is a zombie until init reaps it: dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
