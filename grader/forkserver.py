"""The warm worker: a process that imports torch and collects the rubrics once, then forks every run.

The worker imports torch, pytest and the rubric helpers once (SPEC "Scale"), warms them up
with one intra-op thread (a fork after multi-threaded OpenMP work can deadlock), never
touches CUDA, and collects the rubrics in a pytest session of its own. Where that session
would run the checks, it serves jobs read as JSON lines on stdin, one answer line each (a
`RunOutcome.to_dict()`): each job's child inherits the collected session and runs just its
rubric's checks (`grader.supervise.run_isolated`). The pool starts it as `python -m grader.worker`.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
from functools import partial

import pytest

from .calibration import Calibrations
from .channel import RunOutcome
from .hugepages import COLLAPSE_AFTER_RUNS, collapse_to_huge_pages
from .supervise import run_isolated

# Must precede the torch import: is_available() then asks NVML, not the CUDA driver.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")


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


class Server:
    """The worker's pytest session: it collects the rubrics once, then, where pytest would
    run the checks, serves jobs (JSON lines on stdin, one answer line each) until stdin ends."""

    def __init__(self, channel_out):
        from . import _plugin

        self.channel_out = channel_out
        self.plugin = _plugin.RubricPlugin()
        self.calibrations = Calibrations()

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
            self.channel_out.write(self.answer(line) + "\n")
            if served == COLLAPSE_AFTER_RUNS:
                collapse_to_huge_pages()
        return True

    def answer(self, line: str) -> str:
        """The answer line to one job line: the run's outcome, or the worker's own failure."""
        run = partial(run_isolated, plugin=self.plugin)
        try:
            return json.dumps(run(self.calibrations.prepare(json.loads(line), run)).to_dict())
        except Exception as e:  # noqa: BLE001 - reported to the grader as its own failure
            return json.dumps(RunOutcome.worker_failed(f"{type(e).__name__}: {e}").to_dict())


def serve(rubrics: list[str], rootdir: str | None = None) -> None:
    """Warm up, collect `rubrics` in this process's pytest session, then serve jobs from stdin.
    `rootdir`: pytest's root, made (and removed) by the grader; a folder of our own otherwise."""
    from . import sandbox

    channel_out = os.fdopen(os.dup(1), "w", buffering=1)
    # Nothing else may write to our stdout: it is the grader's channel.
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    sandbox.die_with_parent()
    warm_up()
    # Third-party pytest plugins have no business in a grading run.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    server = Server(channel_out)
    if rootdir:
        pytest.main(pytest_args(rubrics, rootdir), plugins=[server.plugin, server])
        return
    with tempfile.TemporaryDirectory(prefix="torchgrade-worker-") as rootdir:
        pytest.main(pytest_args(rubrics, rootdir), plugins=[server.plugin, server])
