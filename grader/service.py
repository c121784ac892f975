"""The grading service behind `grader.check` in a notebook: a warm Grader in a process of its own.

The student's kernel starts it (`python -m grader.service KERNEL_PID [RUBRICS]`) and talks to it in
JSON lines over its stdin/stdout, never pickle: a request names the saved notebook (or carries its
content, on Colab) and the cells the kernel ran; the answer is the SubmissionResult of SPEC "Results",
its feedback HTML, what was graded and which exercises the kernel ran unsaved code for. Grading is
`Grader.grade`, exactly as `grader check` does it: the student's code never runs in their kernel, nor
here, only in the sandboxed children of the Grader's worker.

It ends with the kernel: its stdin closes (EOF) when the kernel exits, and PR_SET_PDEATHSIG kills it
if the kernel is killed; its worker, in turn, dies with it. It never touches CUDA, nor does the worker.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

from . import tempdirs

# What `python -m grader.service` needs beyond the kernel's own `import grader`.
GRADING_MODULES = ("torch", "pytest", "numpy")
NOT_INSTALLED = ("`{module}` is not installed in the Python that runs this notebook ({python}), "
                 "so the grader cannot run there")
NOT_INSTALLED_TIP = "install the grader with its dependencies into the kernel's environment: %pip install torchgrade"


def normalized(source: str) -> str:
    """Cell text as compared for unsaved edits: trailing blanks and blank edges do not count."""
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def unsaved_exercises(notebook, ran: list[str], exercise_ids) -> list[str]:
    """The exercises for which the kernel's most recent run of a marked cell is not in the saved notebook.

    `ran` are the cell sources the kernel executed, oldest first. An exercise with k saved cells is
    compared on the k most recent distinct sources the kernel ran for it: an older version of a cell
    that was run, edited, run again and saved is not "unsaved".
    """
    from nbformat.v4 import new_code_cell

    from .extract import marked_exercise

    saved: dict[str, set[str]] = {ex: set() for ex in exercise_ids}
    counts = dict.fromkeys(exercise_ids, 0)
    for cell in notebook.cells:
        ex = marked_exercise(cell, exercise_ids)
        if ex in saved:
            saved[ex].add(normalized(cell.source))
            counts[ex] += 1
    runs: dict[str, list[str]] = {ex: [] for ex in exercise_ids}
    for source in ran:
        ex = marked_exercise(new_code_cell(source), exercise_ids)
        if ex in runs:
            runs[ex].append(normalized(source))
    out = []
    for ex in exercise_ids:
        recent: list[str] = []
        for source in reversed(runs[ex]):
            if source not in recent:
                recent.append(source)
            if len(recent) >= max(1, counts[ex]):
                break
        if any(source not in saved[ex] for source in recent):
            out.append(ex)
    return out


def _safe_name(name: str) -> str:
    name = re.sub(r"[^\w.\- ]", "_", Path(name or "notebook").name)[:100] or "notebook"
    return name if name.endswith(".ipynb") else name + ".ipynb"


class Service:
    """One assignment's warm Grader (one worker) and the requests of one kernel."""

    def __init__(self, rubrics: str | None):
        from .assignment import load_assignment
        from .pipeline import Grader

        self.assignment = load_assignment(rubrics)
        self.grader = Grader(self.assignment, jobs=1)
        self.grader.catalog()  # the worker started, torch imported, the rubrics collected: warm
        self.scratch = tempdirs.check_dir()

    def hello(self) -> dict:
        return {"ready": True, "pid": os.getpid(), "workers": [w.proc.pid for w in self.grader.pool._workers],
                "exercises": {ex.id: ex.timeout_s for ex in self.assignment.exercises.values()}}

    def answer(self, request: dict) -> dict:
        from .errors import ConfigError, GraderError, did_you_mean

        only = request.get("only")
        if only is not None:  # as a marker's id is: `grader.check("Lost_Leaf")` checks `lost_leaf`
            only = {ex.lower(): ex for ex in self.assignment.exercises}.get(str(only).strip().lower(), only)
        try:
            if only is not None and only not in self.assignment.exercises:
                raise ConfigError(f"no exercise '{only}' in {self.assignment.name}"
                                  f"{did_you_mean(str(only), self.assignment.exercises)}",
                                  f"the exercises are: {', '.join(self.assignment.exercises)}")
            return {"ok": True, **self._grade(request, only)}
        except GraderError as e:
            return {"ok": False, "error": str(e), "tip": e.tip}

    def _grade(self, request: dict, only: str | None) -> dict:
        from .export import feedback_html
        from .read import read_submission

        if request.get("content") is not None:  # Colab: there is no file, grade what the notebook holds now
            path = Path(self.scratch) / _safe_name(request.get("name") or "")
            path.write_text(request["content"], encoding="utf-8")
            mtime = None
        else:
            path = Path(request["notebook"])
            mtime = path.stat().st_mtime if path.is_file() else None
        submission = read_submission(path)
        result = self.grader.grade(path, only=only)
        if result.sha256 != submission.sha256:  # saved again while it was graded: compare with what was graded
            submission = read_submission(path)
        if mtime is None:  # name what the student knows, not our scratch file
            result = dataclasses.replace(result, submission=f"Colab notebook {request.get('name') or ''}".strip())
        ids = [only] if only else list(self.assignment.exercises)
        unsaved = [] if mtime is None else unsaved_exercises(submission.notebook, request.get("ran") or [], ids)
        return {"result": result.to_dict(), "html": feedback_html(result), "mtime": mtime, "unsaved": unsaved}

    def close(self) -> None:
        self.grader.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


def missing_module() -> str | None:
    """The first module grading needs that this Python cannot import (without importing it: torch is slow)."""
    for module in GRADING_MODULES:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):
            return module
    return None


def main(argv: list[str]) -> int:
    from . import sandbox
    from .errors import GraderError

    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # only this process's answers go to the kernel

    def send(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")

    kernel = int(argv[0])
    sandbox.die_with_parent()
    if os.getppid() != kernel:  # the kernel died before we could ask to die with it
        return 0
    module = missing_module()
    if module:
        send({"refused": [NOT_INSTALLED.format(module=module, python=sys.executable), NOT_INSTALLED_TIP]})
        return 1
    try:
        service = Service(argv[1] if len(argv) > 1 and argv[1] else None)
    except GraderError as e:
        send({"refused": [str(e), e.tip]})
        return 1
    try:
        send(service.hello())
        for line in sys.stdin:  # ends when the kernel closes its end: it has exited
            request = json.loads(line)
            try:
                send({"id": request.get("id"), **service.answer(request)})
            except Exception as e:  # noqa: BLE001 - the kernel shows it as one line; the service lives on
                send({"id": request.get("id"), "ok": False,
                      "error": f"the grader itself failed: {type(e).__name__}: {e}", "tip": ""})
    finally:
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
