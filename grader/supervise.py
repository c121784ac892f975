"""In the warm worker: fork one sandboxed run, watch it, kill it and all it started, read its outcome.

`run_isolated` is the run stage's one entry: it forks a child (`grader.child`) with a result pipe
and an output pipe, reads both (output capped) until the child is gone or its time is up, kills and
reaps every process of the run (the worker is a child subreaper), removes its scratch folder, and
decodes what the run reported (`grader.channel.decode`). The worker runs no student code itself.
"""

from __future__ import annotations

import os
import secrets
import selectors
import shutil
import signal
import time

from . import tempdirs
from .channel import MAX_RESULT_BYTES, RunOutcome, decode
from .child import child_main  # loaded once, in the worker, not by each child

OUTPUT_CAP = 64 * 1024
KILL_GRACE_S = 0.5


def run_isolated(job: dict, plugin) -> RunOutcome:
    """Run `job` in a sandboxed child forked from this process, whose pytest session `plugin` lives in."""
    started = time.monotonic()
    timeout = float(job.get("timeout_s", 60))
    workdir = tempdirs.run_dir()  # named after this worker: the grader removes it if we are killed
    token = secrets.token_hex(16)
    result_r, result_w = os.pipe()
    output_r, output_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(result_r)
            os.close(output_r)
            child_main(job, plugin, result_w, output_w, workdir, token)
        finally:
            os._exit(0)
    os.close(result_w)
    os.close(output_w)
    watch = None
    try:
        watch = _watch(pid, result_r, output_r, started + timeout)
    finally:
        _kill_descendants(pid, reaped=watch is not None)
        os.close(result_r)
        os.close(output_r)
        shutil.rmtree(workdir, ignore_errors=True)
    return decode(watch["results"], token, status=watch["status"], timed_out=watch["timed_out"], timeout_s=timeout,
                  output=watch["output"], output_dropped=watch["dropped"],
                  duration_s=round(time.monotonic() - started, 3))


def _watch(pid: int, result_r: int, output_r: int, deadline: float) -> dict:
    """Read both pipes until the child is gone, or kill it at the deadline; the child is reaped on return."""
    sel = selectors.DefaultSelector()
    pidfd = os.pidfd_open(pid)
    for fd in (result_r, output_r, pidfd):
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    results, output, dropped = bytearray(), bytearray(), 0
    status, timed_out, exited_at, killed = None, False, None, False
    open_pipes = {result_r, output_r}
    try:
        while True:
            now = time.monotonic()
            if status is None and not timed_out and now >= deadline:
                _kill_run(pid)
                timed_out = killed = True
            if status is not None and (not open_pipes or now - exited_at > KILL_GRACE_S):
                break  # pipes may be held open by something the child left behind
            wait = max(0.0, min(deadline - now, 0.5)) if status is None else KILL_GRACE_S
            for key, _ in sel.select(wait):
                fd = key.fd
                if fd == pidfd:
                    # Whatever it started dies with it (so the pipes close now, not after the grace),
                    # and before the reaping: until then its pid, group and user id stay its own.
                    if not killed:
                        _kill_run(pid)
                        killed = True
                    _, status = os.waitpid(pid, 0)
                    exited_at = time.monotonic()
                    sel.unregister(pidfd)
                    continue
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    open_pipes.discard(fd)
                elif fd == result_r:
                    if len(results) < MAX_RESULT_BYTES:
                        results += chunk
                else:
                    room = OUTPUT_CAP - len(output)
                    output += chunk[:room]
                    dropped += max(0, len(chunk) - room)
    finally:
        sel.close()
        os.close(pidfd)
    return {"status": status, "timed_out": timed_out, "results": bytes(results),
            "output": output.decode("utf-8", "replace"), "dropped": dropped}


def _kill_run(pid: int) -> None:
    """Kill the child's process group and, as root, every process of the run's own user.

    Only while the child is not yet reaped: afterwards its pid, and so its group and user id,
    may already belong to another run.
    """
    from . import sandbox

    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    ids = sandbox.run_ids(pid)
    if ids is not None:
        sandbox.kill_user(ids[0])


def _kill_descendants(pid: int, reaped: bool) -> None:
    """Kill and reap the whole run (unless _watch did), then every orphan it left (they were
    re-parented to us, the subreaper; all are dead already where the run had a user of its own)."""
    if not reaped:
        _kill_run(pid)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    me = os.getpid()
    for _ in range(50):
        orphans = _children_of(me)
        if not orphans:
            break
        for child in orphans:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap()
        time.sleep(0.01)
    _reap()


def _children_of(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == parent and fields[0] != b"Z":
            found.append(int(entry))
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
