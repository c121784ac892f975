"""In the forked child, before and around the student's code: the sandbox a run is set up in.

The child inherits the warm worker's pytest session. It points its stdout and stderr at the
output pipe, keeps only the result pipe of the worker's descriptors, enters its namespaces, scrubs
its environment, and hands the plugin a `close_sandbox` that runs once the checks are reported
(before any student code exists): freeze the host's files, a fresh scratch folder, hide the private
folders, set the limits, drop privileges. Then the plugin loads the student's code and runs the checks.
"""

from __future__ import annotations

import os
import sys

from .channel import CRASH, Channel

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_main(job: dict, plugin, result_fd: int, output_fd: int, workdir: str, token: str) -> None:
    """One run of `job` in this (just forked) process, reported over `result_fd` with `token`."""
    from . import sandbox

    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, 65536)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    channel = Channel(result_fd, token)
    notes = [] if job.get("collect_only") else sandbox.enter_namespaces()
    threads = int(job.get("threads", 1))
    os.environ.clear()
    os.environ.update(sandbox.scrubbed_environment(workdir, threads))
    sandbox.forget_initial_environment()
    os.chdir(workdir)
    import torch

    torch.set_num_threads(threads)

    def close_sandbox() -> list[str]:
        # Runs once the checks are reported: from here on, only student-visible state.
        out = list(notes)
        ids = sandbox.run_ids()
        hidden = list(job.get("private_dirs", ()))
        if ids is not None and not notes:
            out += sandbox.freeze_host_files()
            python = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
            # Of this package's folder only the package (not the repository's tests or .git beside it).
            package = os.path.join(PACKAGE_PARENT, "grader")
            paths = [p for p in sys.path if os.path.realpath(p or ".") != os.path.realpath(PACKAGE_PARENT)]
            sandbox.fresh_scratch(workdir, ids, keep=[*python, *paths, package])
            os.chdir(workdir)
            sandbox.bridge_to([*sys.path, *python, PACKAGE_PARENT])
            hidden += sandbox.SYSTEM_HIDDEN
        out += sandbox.hide_folders(hidden)
        sandbox.set_limits(int(job.get("memory_mb", 4096)), float(job.get("cpu_s", 120)))
        sandbox.drop_privileges(ids)
        return out

    try:
        plugin.run(job, channel, close_sandbox)
    except BaseException as e:  # noqa: BLE001
        channel.send(CRASH, reason=f"{type(e).__name__} escaped the checks: {e}"[:500])
    sys.stdout.flush()
    sys.stderr.flush()
