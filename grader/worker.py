"""Stage 3, run: a warm worker that forks one sandboxed child per exercise and watches it.

The worker imports torch, pytest and the rubric helpers once (SPEC "Scale"), warms them up
with one intra-op thread (a fork after multi-threaded OpenMP work can deadlock), never
touches CUDA, and collects the rubrics in a pytest session of its own. Where that session
would run the checks, it serves jobs read as JSON lines on stdin: each job's child inherits
the collected session and runs just its rubric's checks. The worker runs no student code
itself, and kills each child and all it started.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import selectors
import shutil
import signal
import sys
import tempfile
import time

import pytest

from . import tempdirs
from .calibration import Calibrations

# Must precede the torch import: is_available() then asks NVML, not the CUDA driver.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

OUTPUT_CAP = 64 * 1024
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILL_GRACE_S = 0.5


def warm_up() -> None:
    import torch

    torch.set_num_threads(1)
    import numpy  # noqa: F401

    from . import _plugin, checks, integrity, timing  # noqa: F401

    # The first optimizer step imports torch._dynamo (about 1 s): pay it here, once.
    model = torch.nn.Sequential(torch.nn.Linear(1, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(torch.randn(4, 1)).pow(2).sum()
    loss.backward()
    opt.step()
    # torch.compile's default backend (inductor) compiles C++ for tens of seconds per input shape on a CPU,
    # and its precompiled header exceeds the sandbox's file-size limit: compiled code runs as the plain
    # PyTorch it is written in, graded on what it computes (issue 14; extraction tells the student).
    torch._dynamo.config.disable = True
    torch.autograd.gradcheck(lambda x: (x * x).sum(), torch.randn(3, dtype=torch.float64, requires_grad=True))


def settle() -> None:
    """Make the warm process cheap to fork, once, before its first child."""
    # Everything imported so far lives as long as the worker: a child's garbage collections
    # need not walk it (a full collection over torch took 0.5 s), nor touch its pages.
    gc.collect()
    gc.freeze()


# Forking copies one page-table entry per 4 KiB page of the worker's 220 MB (and exiting frees
# them): 19 ms per run. The C heap is in huge pages from the start (`pool.with_huge_pages`); once
# a worker has served this many runs, i.e. a batch, the rest of its memory (Python's object
# arenas) is collapsed into huge pages too, once, for about 0.25 s: then fork and exit take 5 ms.
COLLAPSE_AFTER_RUNS = 8
_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25
_HUGE_PAGE = 2 << 20


def collapse_to_huge_pages(min_bytes: int = 4 << 20) -> int:
    """Ask Linux (>= 6.1) to back this process's large anonymous regions with huge pages now;
    returns the bytes collapsed (0 where the kernel cannot: older, or huge pages disabled)."""
    import ctypes

    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps") as maps:
            regions = [line.split() for line in maps]
    except (OSError, AttributeError):  # not Linux
        return 0
    done = 0
    for fields in regions:
        if fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
            continue  # only private anonymous memory and the C heap, never a file or a stack
        start, end = (int(x, 16) for x in fields[0].split("-"))
        start, end = -(-start // _HUGE_PAGE) * _HUGE_PAGE, end // _HUGE_PAGE * _HUGE_PAGE
        if end - start >= min_bytes and madvise(start, end - start, _MADV_HUGEPAGE) == 0 \
                and madvise(start, end - start, _MADV_COLLAPSE) == 0:
            done += end - start
    return done


def pytest_args(rubrics: list[str], rootdir: str) -> list[str]:
    return [
        *rubrics, "-q", "-s", "-p", "no:cacheprovider", "-p", "no:stepwise", "-p", "no:warnings",
        # Its cleanup runs five full garbage collections (seconds with torch).
        "-p", "no:unraisableexception",
        # It would keep a duplicate of the worker's stderr that each child then closes.
        "-p", "no:faulthandler",
        # Not the pytest config of the repository the rubrics live in: its addopts may name plugins a grading
        # run does not load (this project's own `-n 2`), and its settings are not the grader's.
        "-c", os.devnull,
        "--noconftest", "--rootdir", rootdir, "-o", "python_files=test_*.py", "-o", "console_output_style=classic",
        "-W", "ignore",
    ]


# -- the child: one run of student code -------------------------------------------------------


def _child_main(job: dict, result_fd: int, output_fd: int, workdir: str, token: str) -> None:
    from . import _plugin, sandbox

    plugin = _SERVER.plugin

    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, 65536)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    channel = _plugin.Channel(result_fd, token)
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
        channel.send("crash", reason=f"{type(e).__name__} escaped the checks: {e}"[:500])
    sys.stdout.flush()
    sys.stderr.flush()


# -- the worker: supervise a child ------------------------------------------------------------


def run_job(job: dict) -> dict:
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
            _child_main(job, result_w, output_w, workdir, token)
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
    outcome = _interpret(watch, token, timeout)
    outcome["duration_s"] = round(time.monotonic() - started, 3)
    return outcome


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
                    if len(results) < 16 << 20:
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


def _interpret(watch: dict, token: str, timeout: float) -> dict:
    """Turn what came over the private pipe, and how the child ended, into an outcome.

    Only lines with the run's token count, and only in the order the plugin sends them: the
    list of checks first (sent before any student code existed), each of those checks at most
    once, nothing after "done". Anything else is recorded as forged (score.py: tampering).
    """
    out = {"collected": None, "checks": [], "notes": [], "load_error": None, "crash": None,
           "tampering": None, "done": False, "forged_lines": 0, "forged": []}
    expected, seen = set(), set()
    for line in watch["results"].splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            out["forged_lines"] += 1
            continue
        if not isinstance(msg, dict) or not secrets.compare_digest(str(msg.get("token", "")).encode(), token.encode()):
            out["forged_lines"] += 1
            continue
        try:
            problem = _take(out, msg, expected, seen)
        except (KeyError, TypeError, ValueError, AttributeError):
            problem = f"a malformed `{str(msg.get('kind'))[:40]}` message"
        if problem:
            out["forged"].append(problem)
    out["output"] = watch["output"]
    out["output_dropped"] = watch["dropped"]
    status = watch["status"]
    if watch["timed_out"]:
        out["ended"] = "timeout"
        out["reason"] = f"it was still running after {timeout:g} s (the exercise's time limit)"
    elif status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
        out["ended"] = "timeout"
        out["reason"] = "it used up its CPU-time limit"
    elif out["crash"] or out["load_error"] or out["tampering"] or out["done"]:
        out["ended"] = "reported"
    else:
        out["ended"] = "crashed"
        out["reason"] = _describe_exit(status)
    return out


def _take(out: dict, msg: dict, expected: set, seen: set) -> str | None:
    """Record one genuine-looking message; return why it cannot be the plugin's, if it cannot."""
    kind = msg.get("kind")
    if out["done"]:
        return f"a `{str(kind)[:40]}` message after the last check"
    if kind == "check":
        check_id = str(msg["id"])
        if check_id not in expected:
            return f"a result for `{check_id[:80]}`, which is not a check of this rubric"
        if check_id in seen:
            return f"a second result for `{check_id}`"
        seen.add(check_id)
        out["checks"].append({"id": check_id, "status": str(msg["status"]), "message": str(msg["message"]),
                              "duration_s": float(msg["duration_s"])})
        if msg.get("picture") is not None:
            _admit_picture(out, out["checks"][-1], msg["picture"])
    elif kind == "collected":
        if out["collected"] is not None:
            return "a second list of checks"
        out["collected"] = [dict(c) for c in msg["checks"]]
        expected.update(str(c["id"]) for c in out["collected"])
        out["cuda"] = bool(msg.get("cuda"))
    elif kind == "notes":
        out["notes"] += [str(n) for n in msg["notes"]]
    elif kind == "tampering":
        out["tampering"] = out["tampering"] or {"replaced": [str(r) for r in msg["replaced"]],
                                                "called": [str(c) for c in msg.get("called", ())],
                                                "when": str(msg["when"])}
    elif kind in ("load_error", "crash"):
        out[kind] = out[kind] or str(msg.get("message") or msg.get("reason"))
    elif kind == "done":
        out["done"] = True
        out["threads"] = int(msg.get("threads") or 0)
    elif kind == "calibration":
        out["calibration"] = dict(msg["data"])
    else:
        return f"a message of an unknown kind `{str(kind)[:40]}`"
    return None


def _admit_picture(out: dict, check: dict, data) -> None:
    """A check's picture, validated here, outside the sandbox, and within the run's budget; one that
    is not is left out with a note (the check's verdict and message are kept)."""
    from . import pictures

    try:
        picture = pictures.clean(data)
        size = pictures.encoded_size(picture)
        used = out.get("picture_bytes", 0)
        if used + size > pictures.MAX_RUN_PICTURE_BYTES:
            raise pictures.PictureError(f"the run's pictures would exceed {pictures.MAX_RUN_PICTURE_BYTES:,} bytes")
    except pictures.PictureError as e:
        out["notes"].append(pictures.DROPPED.format(check=check["id"][:80], why=e))
        return
    out["picture_bytes"] = used + size
    check["picture"] = picture


def _describe_exit(status: int | None) -> str:
    if status is None:
        return "the process vanished"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name
        if sig == signal.SIGKILL:
            return f"it was killed ({name}), most likely for going over the memory limit"
        if sig == signal.SIGSEGV:
            return f"it crashed with a segmentation fault ({name})"
        return f"it was ended by the signal {name}"
    return f"the process exited (exit code {os.WEXITSTATUS(status)}) before the checks finished, e.g. by os._exit()"


class _Server:
    """The worker's pytest session: it collects the rubrics once, then, where pytest would
    run the checks, serves jobs (JSON lines on stdin, one answer line each) until stdin ends."""

    def __init__(self, channel_out):
        from . import _plugin

        self.channel_out = channel_out
        self.plugin = _plugin.RubricPlugin()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        from . import sandbox

        settle()
        sandbox.set_subreaper()
        import torch

        if torch.cuda.is_initialized():  # a child forked from here could not use the GPU
            self.channel_out.write(json.dumps({"refused": [
                "CUDA was initialised while the rubrics were imported",
                "move GPU work in the rubrics (tensors on `cuda`, torch.cuda calls) from module level into the checks"]}) + "\n")
            return True
        self.channel_out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
        for served, line in enumerate(sys.stdin, 1):
            # Nothing of one run may still be alive in the worker when the next run is forked
            # from it (that student could read it): the answer is built and sent in a call of its own.
            self.channel_out.write(_answer(line) + "\n")
            if served == COLLAPSE_AFTER_RUNS:
                collapse_to_huge_pages()
        return True


def _answer(line: str) -> str:
    try:
        return json.dumps(run_job(_CALIBRATIONS.prepare(json.loads(line), run_job)))
    except Exception as e:  # noqa: BLE001 - reported to the grader as its own failure
        return json.dumps({"worker_error": f"{type(e).__name__}: {e}"})


_SERVER: _Server | None = None
_CALIBRATIONS = Calibrations()


def serve(rubrics: list[str], rootdir: str | None = None) -> None:
    """Warm up, collect `rubrics` in this process's pytest session, then serve jobs from stdin.
    `rootdir`: pytest's root, made (and removed) by the grader; a folder of our own otherwise."""
    global _SERVER
    from . import sandbox

    channel_out = os.fdopen(os.dup(1), "w", buffering=1)
    # Nothing else may write to our stdout: it is the grader's channel.
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    sandbox.die_with_parent()
    warm_up()
    # Third-party pytest plugins have no business in a grading run.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    _SERVER = _Server(channel_out)
    if rootdir:
        pytest.main(pytest_args(rubrics, rootdir), plugins=[_SERVER.plugin, _SERVER])
        return
    with tempfile.TemporaryDirectory(prefix="torchgrade-worker-") as rootdir:
        pytest.main(pytest_args(rubrics, rootdir), plugins=[_SERVER.plugin, _SERVER])


if __name__ == "__main__":
    args = sys.argv[1:]
    root = None
    if args[:1] == ["--root"]:
        root, args = args[1], args[2:]
    serve(args, root)
