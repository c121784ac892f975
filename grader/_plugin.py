"""The pytest side, inside one isolated run: hand the rubric the student's module, report each check.

Results leave over a private pipe with a per-run token; nothing the student prints or writes
is ever read as a result. Student code is loaded only after the rubric is collected and the
sandbox is closed (folders hidden, privileges dropped).
"""

from __future__ import annotations

import os
import random
import sys
import types

import numpy
import pytest
import torch

from . import checks, integrity, pictures
# The message kinds are written out in the sends below (grader.channel.KINDS): a module-level name could be
# rebound by student code in this process, a literal cannot.
from .channel import Channel
from .student_code import STUDENT_MODULE, StudentModule, describe_exception, register_source

MAX_MESSAGE = 4000
# A trace or profile function sees every line of the checks and can jump over a `fail(...)`
# (frame.f_lineno = ...), then remove itself before anyone looks: so the call itself is the verdict.
TRACING_EVENTS = frozenset({"sys.settrace", "sys.setprofile", "sys.monitoring.register_callback"})

# Our own references, taken before any student code exists (it may replace these).
_exit, _isinstance, _getattr = os._exit, isinstance, getattr
_random_seed, _numpy_seed = random.seed, numpy.random.seed
_torch_manual_seed, _cpu_generator = torch.manual_seed, torch.default_generator
_get_num_threads = torch.get_num_threads


def seed_everything(seed: int) -> None:
    """Every check starts from the same random state, whatever ran before it."""
    _random_seed(seed)
    _numpy_seed(seed)
    if checks.cuda_available():
        _torch_manual_seed(seed)  # every GPU's generator too
    else:
        # What torch.manual_seed does on a CPU-only machine, without the 1-2 ms it spends
        # queueing a lazy CUDA seeding with a formatted stack trace on every call.
        _cpu_generator.manual_seed(seed)


class RubricPlugin:
    """Lives in the warm worker's pytest session, collects the rubrics there once, and in each
    forked child runs one rubric's checks against that run's student module (`run`).

    Everything pytest does before the first check (configuration, plugins, importing the
    rubrics, the integrity snapshot) is paid once per worker, not once per run.
    """

    def __init__(self):
        self.job: dict = {}
        self.channel: Channel | None = None
        self.items: list = []
        self.by_rubric: dict[str, list] = {}  # real path of a rubric -> its checks
        self.collection_errors: list[str] = []
        self.module: types.ModuleType | None = None
        self.integrity: integrity.Snapshot | None = None
        self.outcomes: dict[str, dict] = {}
        self.running = "?"

    # -- in the worker: collection, once --------------------------------------------------------

    def pytest_configure(self, config):
        config.addinivalue_line("markers", "needs_cuda: the check needs a CUDA device")

    def pytest_collectreport(self, report):
        if report.failed:
            self.collection_errors.append(f"{report.nodeid}:\n{report.longreprtext}")

    def pytest_collection_finish(self, session):
        self.items = list(session.items)
        for item in self.items:
            self.by_rubric.setdefault(os.path.realpath(item.path), []).append(item)
        rubrics = {item.module.__name__: item.module for item in self.items if _getattr(item, "module", None)}
        # Before any student code exists; every child inherits it.
        self.integrity = integrity.Snapshot.take(tuple(rubrics.items()))

    # -- in a child: one run -------------------------------------------------------------------

    def run(self, job: dict, channel: Channel, close_sandbox) -> None:
        """Report the checks, close the sandbox, load the student's code, run the checks."""
        self.job, self.channel = job, channel
        items = self.items if job.get("collect_only") else self.by_rubric.get(os.path.realpath(job["rubric"]), [])
        cuda = checks.cuda_available()
        channel.send("collected", checks=[_describe(item) for item in items], cuda=cuda)
        if job.get("collect_only"):
            print("\n".join(self.collection_errors))
            channel.send("done")
            return
        if job.get("calibration_run"):  # the reference solution, read before the sandbox hides it
            from . import calibration

            job["chunks"] = calibration.solution_chunks(**job["calibrate"])
        channel.send("notes", notes=close_sandbox())
        seed_everything(job.get("seed", 0))
        _forbid_tracing(channel)
        if self.integrity is not None:
            self.integrity.arm()
        self.module = self._load_student()
        if job.get("calibration_run"):
            channel.send("calibration", data=calibration.run_calibration(items, self.module, _get_num_threads()))
            channel.send("done", threads=_get_num_threads())
            return
        if not cuda:  # reported as pytest would, without its per-check protocol around a skip
            gpu_only = [item for item in items if item.get_closest_marker("needs_cuda")]
            for item in gpu_only:
                channel.send("check", id=item.name, status="skipped", message=checks.NO_CUDA_REASON, duration_s=0.0)
            items = [item for item in items if item not in gpu_only]
        try:
            for i, item in enumerate(items):
                item.ihook.pytest_runtest_protocol(item=item, nextitem=items[i + 1] if i + 1 < len(items) else None)
        except (KeyboardInterrupt, pytest.exit.Exception) as e:
            # pytest lets these through every check (a session would stop): the run crashed.
            self._verify_integrity(f"during the check `{self.running}`")
            self._crash(f"{type(e).__name__} raised during the check `{self.running}`")
        self._verify_integrity("after the last check")
        channel.send("done", threads=_get_num_threads())  # what the run really used, after the student's code

    def _load_student(self) -> types.ModuleType:
        module = StudentModule(STUDENT_MODULE)
        module.__file__ = f"<{self.job['exercise_id']}>"
        sys.modules[STUDENT_MODULE] = module
        notes = []
        for chunk in self.job["chunks"]:
            register_source(chunk["filename"], chunk["source"])
            try:
                code = compile(chunk["source"], chunk["filename"], "exec")
                exec(code, module.__dict__)
            except (SystemExit, KeyboardInterrupt) as e:
                self._crash(f"{type(e).__name__} raised while loading your code ({chunk['filename']})")
            except BaseException as e:  # noqa: BLE001 - student code may raise anything
                if chunk["required"]:
                    self._verify_integrity("while your cells were loaded")
                    self.channel.send("notes", notes=notes)
                    self.channel.send("load_error", message=describe_exception(e, "while your cell was run"))
                    _exit(0)
                notes.append(
                    f"`{chunk['what']}` from {chunk['filename']} was skipped: "
                    f"{type(e).__name__}: {str(e).strip()[:200]}"
                )
        self.channel.send("notes", notes=notes)
        self._verify_integrity("while your cells were loaded")
        return module

    # -- what a rubric gets -----------------------------------------------------------------

    @pytest.fixture(scope="session")
    def student(self):
        return self.module

    @pytest.fixture(scope="session")
    def thresholds(self):
        return dict(self.job.get("thresholds") or {})

    @pytest.fixture(scope="session")
    def calibration(self):
        """This worker's measurement of the reference solution (`grader.calibration`), and the run's threads."""
        return {"threads": int(self.job.get("threads", 1)), **(self.job.get("calibration") or {})}

    # -- running and reporting each check ---------------------------------------------------

    def pytest_runtest_setup(self, item):
        # (Checks that need a GPU where there is none never get here: `run` reports them skipped.)
        seed_everything(self.job.get("seed", 0))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        record = self.outcomes.setdefault(item.nodeid, {"id": item.name, "status": "passed", "message": "", "duration_s": 0.0})
        record["duration_s"] += call.duration
        if call.when == "call":
            self._verify_integrity(f"during the check `{item.name}`")
        if call.excinfo is not None and _isinstance(call.excinfo.value, (SystemExit, KeyboardInterrupt)):
            self._crash(f"{call.excinfo.typename} raised during the check `{item.name}`")
        if report.passed and call.when == "call":  # a passed check's own account (e.g. the measured speed-up)
            record["message"] = "\n".join(str(v) for k, v in report.user_properties if k == checks.FEEDBACK)
        if report.skipped and record["status"] == "passed":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            record.update(status="skipped", message=reason.removeprefix("Skipped: "))
        elif report.failed and record["status"] in ("passed", "skipped"):
            record.update(_judge(call.excinfo, call.when))

    def pytest_runtest_logstart(self, nodeid, location):
        self.running = nodeid.rsplit("::", 1)[-1]

    def pytest_runtest_logfinish(self, nodeid, location):
        record = self.outcomes.pop(nodeid, None)
        if record is not None:
            self.channel.send("check", **record)

    def _verify_integrity(self, when: str) -> None:
        if self.integrity is None:
            return
        replaced = self.integrity.changed()
        if replaced:
            self.channel.send("tampering", replaced=replaced, when=when)
            _exit(0)

    def _crash(self, reason: str) -> None:
        self.channel.send("crash", reason=reason)
        _exit(0)


def _forbid_tracing(channel: Channel) -> None:
    """From now on, installing a trace or profile function ends the run as tampering.

    An audit hook cannot be removed once added (PEP 578), and it also sees the C-level
    PyEval_SetTrace that ctypes could reach. The hook holds its own references only.
    """
    send, events = channel.send, TRACING_EVENTS

    def hook(event, args):
        if event in events:
            send("tampering", replaced=[], called=[event], when="while your code ran")
            _exit(0)

    sys.addaudithook(hook)


def _judge(excinfo, when: str) -> dict:
    exc = excinfo.value
    if isinstance(exc, checks.CheckFailure):
        return {"status": "failed", "message": str(exc)[:MAX_MESSAGE], **_picture(exc)}
    if isinstance(exc, (AssertionError, pytest.fail.Exception)):
        text = "\n".join(str(exc).strip().splitlines()[:15])
        return {"status": "failed", "message": ("Check failed: " + text)[:MAX_MESSAGE]}
    doing = "while the check ran" if when == "call" else "while the check was prepared"
    return {"status": "error", "message": describe_exception(exc, doing)[:MAX_MESSAGE]}


def _picture(failure: BaseException) -> dict:
    """The failure's picture, bounded before it is sent (the grader validates it again when it arrives)."""
    data = _getattr(failure, "picture", None)
    if data is None:
        return {}
    try:
        return {"picture": pictures.clean(data)}
    except Exception:  # noqa: BLE001 - a picture that cannot be sent is left out; the verdict stands
        return {}


def _describe(item) -> dict:
    return {
        "rubric": item.path.stem,
        "id": item.name,
        "name": _first_line(item.function.__doc__) or item.name,
        "needs_cuda": item.get_closest_marker("needs_cuda") is not None,
    }


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0].strip()
