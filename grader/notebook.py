"""`grader.check("lost_leaf")` in a notebook: find the saved notebook, grade it in a warm service, show the answer.

The student's kernel only finds the notebook and asks; grading happens in the grading service
(`grader/service.py`, a process of its own) exactly as `grader check` grades, so nothing the student ran
in the kernel can change the verdict, and the kernel never imports torch for it. The service starts
with the first check (not at `import grader`: importing stays free of processes, and a kernel that
never checks pays nothing) and is reused by every later check of the kernel; it ends with the kernel.

This module holds the answer and the kernel's handle on the service; which notebook to grade is
grader.kernel_notebook's to find.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .errors import GraderCrash, GraderError
# Which notebook: importable from here as before (tests ask `notebook.notebook_from_server`).
from .kernel_notebook import (GONE_NOTEBOOK, LOOPBACK, NAME_IT, NO_FILE, NO_NOTEBOOK,  # noqa: F401
                              locate_notebook, notebook_from_server, ran_cells)
from .results import SubmissionResult

PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
RUBRICS_ENV = "TORCHGRADE_RUBRICS"  # a course's rubrics folder, for every check of the kernel
START_TIMEOUT_S = 180
# Beyond the exercises' own time limits, what one answer may take before the service counts as hung.
ANSWER_SLACK_S = 60

UNSAVED = "you ran code for `{id}` that is not in the saved file: save with Ctrl+S, then check again"
SERVICE_FAILED = "the grading service stopped: {why}"
CRASH_TIP = "check again; if it keeps failing, run `grader check NOTEBOOK` in a terminal and show its output to your TA"


@dataclass(frozen=True)
class CheckAnswer:
    """What `grader.check` returns: the result, what was graded, and how Jupyter shows it."""

    graded: str  # the notebook file, or "Colab notebook NAME"
    result: SubmissionResult | None = None
    sha256: str = ""
    saved_at: float | None = None  # the file's mtime when it was graded
    unsaved: tuple[str, ...] = ()
    feedback_html: str = ""
    error: str | None = None
    tip: str = ""

    @property
    def score(self) -> float:
        return self.result.score if self.result else 0.0

    @property
    def max_score(self) -> float:
        return self.result.max_score if self.result else 0.0

    @property
    def full_marks(self) -> bool:
        return self.result is not None and self.result.full_marks

    def what_was_graded(self) -> str:
        what = f"Graded {self.graded}"
        if self.saved_at is not None:
            what += f", saved {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.saved_at))}"
        if self.sha256:
            what += f" (sha256 {self.sha256[:12]})"
        return what

    def __str__(self) -> str:
        if self.error:  # one line and the fix, never a traceback; a long tip (pytest's output) is in the HTML
            tip = self.tip.strip().splitlines()[0] if self.tip.strip() else ""
            return f"grader.check: {self.error.strip().splitlines()[0]}" + (f"\n  {tip}" if tip else "")
        from .report import render_text

        lines = [self.what_was_graded()]
        lines += [f"WARNING {UNSAVED.format(id=ex)}" for ex in self.unsaved]
        return "\n".join(lines + ["", render_text(self.result)])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        e = html.escape
        if self.error:
            first, _, rest = str(self).partition("\n")
            tip = f"<br><span style='opacity:.8'>{e(rest.strip())}</span>" if rest else ""
            more = (self.error + "\n" + self.tip).strip()
            details = (f"<details><summary>details</summary><pre>{e(more)}</pre></details>"
                       if more.count("\n") > 1 else "")
            return (f"<div class='torchgrade-answer' style='border-left:4px solid #c0392b;padding:4px 10px'>"
                    f"<b>grader.check</b>: {e(first.removeprefix('grader.check: '))}{tip}{details}</div>")
        r = self.result
        colour = "#2e7d32" if r.full_marks else "#c0392b"
        parts = [f"<div class='torchgrade-answer' style='border-left:4px solid {colour};padding:4px 10px'>",
                 f"<p style='font-size:1.15em;margin:.2em 0'><b>Score: {r.score:g} / {r.max_score:g}</b></p>",
                 f"<p style='opacity:.75;margin:.2em 0'>{e(self.what_was_graded())}</p>"]
        for ex in self.unsaved:
            parts.append(f"<p style='background:rgba(255,193,7,.25);padding:4px 8px'>⚠ {e(UNSAVED.format(id=ex))}</p>")
        parts += [self.feedback_html, "</div>"]
        return "\n".join(parts)


def check(exercise_id: str, notebook: str | os.PathLike | None = None,
          rubrics: str | os.PathLike | None = None) -> CheckAnswer:
    """Grade exercise `exercise_id` of the saved notebook this kernel belongs to (or `notebook`)."""
    return _check(str(exercise_id), notebook, rubrics)


def check_all(notebook: str | os.PathLike | None = None, rubrics: str | os.PathLike | None = None) -> CheckAnswer:
    """Grade every exercise of the saved notebook this kernel belongs to (or `notebook`)."""
    return _check(None, notebook, rubrics)


def _check(only: str | None, notebook, rubrics) -> CheckAnswer:
    from .courses import rubrics_for_notebook

    args = f'"{only}", ' if only else ""
    try:
        target = locate_notebook(notebook, args)
        rubrics = rubrics or os.environ.get(RUBRICS_ENV) or rubrics_for_notebook(target.get("notebook"), only)
        service = _service(str(Path(rubrics).expanduser().resolve()) if rubrics else None)
        answer = service.ask({"only": only, "ran": ran_cells() if "notebook" in target else [], **target},
                             only)
    except GraderError as e:
        return CheckAnswer(graded="", error=str(e), tip=e.tip)
    except Exception as e:  # noqa: BLE001 - a student at midnight gets one line, not our traceback
        return CheckAnswer(graded="", error=f"the grader itself failed: {type(e).__name__}: {e}", tip=CRASH_TIP)
    graded = target.get("notebook") or f"Colab notebook {target.get('name') or ''}".strip()
    if not answer["ok"]:
        return CheckAnswer(graded=graded, error=answer["error"], tip=answer.get("tip", ""))
    result = SubmissionResult.from_dict(answer["result"])
    return CheckAnswer(graded=graded, result=result, sha256=result.sha256, saved_at=answer.get("mtime"),
                       unsaved=tuple(answer.get("unsaved", ())), feedback_html=answer["html"])


# -- the service ---------------------------------------------------------------------------------------


class _Service:
    """The kernel's handle on one grading service process (grader/service.py)."""

    def __init__(self, rubrics: str | None):
        env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.stderr = tempfile.TemporaryFile()
        # Its own session: an interrupt of the kernel (SIGINT to the kernel's process group) must not stop it.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "grader.service", str(os.getpid()), rubrics or ""],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, env=env, text=True, bufsize=1,
            start_new_session=True,
        )
        self.hello: dict | None = None
        self.next_id = 0
        self.lock = threading.Lock()  # one question at a time on the pipe

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _line(self, timeout: float) -> dict:
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.kill()
                raise GraderCrash(SERVICE_FAILED.format(why=f"no answer within {timeout:.0f} s"),
                                  "check again: a fresh service starts")
        line = self.proc.stdout.readline()
        if not line:
            raise GraderCrash(SERVICE_FAILED.format(why=self._death()), "check again: a fresh service starts")
        return json.loads(line)

    def _death(self) -> str:
        code = self.proc.wait()
        self.stderr.seek(0)
        tail = [line for line in self.stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return f"exit code {code}" + (f": {tail[-1].strip()[:300]}" if tail else "")

    def ready(self) -> dict:
        if self.hello is None:
            hello = self._line(START_TIMEOUT_S)
            if hello.get("refused"):
                self.kill()
                raise GraderCrash(*hello["refused"])
            self.hello = hello
        return self.hello

    def ask(self, request: dict, only: str | None) -> dict:
        with self.lock:
            return self._ask(request, only)

    def _ask(self, request: dict, only: str | None) -> dict:
        limits = self.ready()["exercises"]
        self.next_id += 1
        request = {**request, "id": self.next_id}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        limit = {ex.lower(): s for ex, s in limits.items()}.get(only.strip().lower(), 60) if only else None
        timeout = (limit if only else sum(limits.values())) + ANSWER_SLACK_S
        while True:  # an answer to a check that was interrupted (Ctrl+C in the kernel) arrives first
            answer = self._line(timeout)
            if answer.get("id") == self.next_id:
                return answer

    def pids(self) -> list[int]:
        return [self.proc.pid, *(self.hello or {}).get("workers", [])]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


_services: dict[str | None, _Service] = {}  # one per rubrics folder, for the kernel's lifetime
_services_lock = threading.Lock()
# The service dies with the thread that started it (PR_SET_PDEATHSIG): start it from one that lives as
# long as the kernel, not from whichever thread runs a cell.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchgrade-check")


def _service(rubrics: str | None) -> _Service:
    with _services_lock:
        service = _services.get(rubrics)
        if service is None or not service.alive():
            service = _services[rubrics] = _spawner.submit(_Service, rubrics).result()
        return service


def service_pids() -> list[int]:
    """The processes of this kernel's grading services (the services and their workers): for tests."""
    with _services_lock:
        return [pid for s in _services.values() if s.alive() for pid in s.pids()]
