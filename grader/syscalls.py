"""The system calls the sandbox makes through the C library (prctl, unshare, mount), errno turned into an
OSError that names the call; and whether we run as root (only root can build the walls).

Shared by grader.sandbox (identity, limits) and grader.mounts (the file system walls).
"""

from __future__ import annotations

import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)


def check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def is_root() -> bool:
    return os.geteuid() == 0
