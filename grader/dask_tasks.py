"""What runs on a Dask worker for `grader grade --executor dask` (`grader.distributed` is the client's side).

A task gets a path and some plain settings, grades with this process's long-lived `Grader` (torch
imported once per worker, not per submission), and answers with plain data: a
`SubmissionResult.to_dict()`, the reason a file is unusable, or a grader error; nothing of the
student's is ever pickled (SPEC "Isolation and safety"). Kept apart from the client's code because it
runs in another process, on another machine, with its own state (`_graders`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
from pathlib import Path

from .assignment import load_assignment
from .errors import GraderError, UnusableSubmission
from .results import SubmissionResult

NOT_SHARED = ("the Dask worker {worker} cannot see {path}: the submissions, the rubrics and the grader must be at "
              "the same paths on every worker")
NOT_SHARED_TIP = "put them on a filesystem every node mounts (your home or project folder on a cluster), run from there"


_graders: dict[tuple, "_Held"] = {}
_graders_lock = threading.Lock()


@dataclasses.dataclass
class _Held:
    grader: object
    users: int = 0


def _worker_threads() -> int:
    try:
        from distributed import get_worker

        return max(1, get_worker().state.nthreads)
    except (ImportError, ValueError):  # not on a Dask worker (called directly)
        return 1


class _borrow:
    """This process's Grader for `spec`, created on first use and kept warm between tasks and
    batches (torch is imported once per worker, not per submission). A rubric change or another
    assignment retires the idle graders of the old one, so a long-lived cluster does not pile them up."""

    def __init__(self, spec: dict):
        self.key = (spec["rubrics"], spec["fingerprint"])
        self.spec = spec

    def __enter__(self):
        from .pipeline import Grader

        with _graders_lock:
            held = _graders.get(self.key)
            if held is None:
                for key, old in list(_graders.items()):
                    if old.users == 0:
                        old.grader.close()
                        del _graders[key]
                grader = Grader(load_assignment(self.spec["rubrics"]), jobs=_worker_threads())
                held = _graders[self.key] = _Held(grader)
            held.users += 1
        try:
            held.grader.catalog()
        except BaseException:
            self.__exit__()
            raise
        # The folders this batch hides from student code are the batch's, not the worker's: a
        # shallow copy shares the warm pool and the catalogue and never closes them.
        view = copy.copy(held.grader)
        view.hidden = tuple(Path(p) for p in self.spec["hidden"])
        return view

    def __exit__(self, *exc):
        with _graders_lock:
            _graders[self.key].users -= 1


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _as_error(e: GraderError) -> dict:
    return {"error": type(e).__name__, "message": str(e), "tip": e.tip}


def _in_zip(path: str) -> bool:
    """`archive.zip/member`, with the archive there: read_submission reads the member."""
    from .archive import zip_of

    return zip_of(Path(path)) is not None


def grade_task(spec: dict, path: str, exercises: list[str] | None) -> dict:
    """A Dask task: grade one submission (or some of its exercises) here. Plain data in and out:
    {"result": SubmissionResult.to_dict()}, {"problem": why the file is unusable}, or {"error": ...}
    for a failure of the grader itself."""
    if not os.path.exists(path) and not _in_zip(path):
        # Not the student's fault: never record "no such file" as an unusable submission.
        return {"error": "GraderCrash", "message": NOT_SHARED.format(worker=_worker_name(), path=path),
                "tip": NOT_SHARED_TIP}
    try:
        with _borrow(spec) as grader:
            if exercises is None:
                result = grader.grade(path)
            else:
                result = merge_parts([grader.grade(path, only=ex_id) for ex_id in exercises], exercises)
    except UnusableSubmission as e:
        return {"problem": e.problem}
    except GraderError as e:
        return _as_error(e)
    return {"result": result.to_dict()}


def catalog_task(spec: dict) -> dict:
    """A Dask task: the rubrics' checks as this worker's Grader collects them (plain dicts)."""
    try:
        with _borrow(spec) as grader:
            return {"catalog": grader.catalog()}
    except GraderError as e:
        return _as_error(e)


def merge_parts(parts: list[SubmissionResult], order) -> SubmissionResult:
    """One SubmissionResult from results that each graded some exercises of the same notebook."""
    if len(parts) == 1:
        return parts[0]
    by_id = {e.id: e for part in parts for e in part.exercises}
    exercises = tuple(by_id[ex_id] for ex_id in order if ex_id in by_id)
    return dataclasses.replace(
        parts[0],
        devices=tuple(dict.fromkeys(d for part in parts for d in part.devices)),
        score=sum(e.score for e in exercises),
        max_score=sum(e.max_score for e in exercises),
        duration_s=round(sum(part.duration_s for part in parts), 3),
        exercises=exercises,
    )


__all__ = ["grade_task", "catalog_task", "merge_parts", "NOT_SHARED"]
