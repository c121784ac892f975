"""`grader grade --executor dask`: the same sandboxed grading, one Dask task per submission.

The client (the `grader grade` process, this module) stays the only writer of results: a Dask
worker gets a path and some plain settings, grades with a long-lived `Grader` of its own, and
answers with `SubmissionResult.to_dict()` (its side: `grader.dask_tasks`); nothing of the
student's is ever pickled (SPEC "Isolation and safety"). The submissions, the rubrics and this
package must be at the same paths on every worker (a shared filesystem), as usual for a Dask cluster.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid

from .assignment import Assignment
from .batch import Entry, Executor, rubric_fingerprint
from .dask_tasks import catalog_task, grade_task, merge_parts
from .errors import ConfigError, GraderCrash, UnusableSubmission
from .results import SubmissionResult

# How many worker deaths a task may witness before the scheduler gives up on it
# (`distributed.scheduler.allowed-failures`). Student code cannot kill its Dask worker (it runs
# in a sandboxed grandchild), so a death is the machine's doing (OOM killer, a pre-empted node):
# re-run, but not for ever, since every death also costs the tasks queued on that worker a try.
ALLOWED_FAILURES = 3
# The worker resource a check that needs CUDA asks for; workers declare it (`--resources GPU=1`).
GPU = "GPU"
# How often a batch with GPU tasks checks that some worker still declares a GPU.
GPU_WATCH_S = 30
# How long `--scheduler ADDR` waits for the first worker to connect.
CONNECT_TIMEOUT_S = 30
WORKERS_TIMEOUT_S = 120

LOST = ("the Dask workers grading it died {n} times (last: {worker}), most likely for reasons outside your code "
        "(the node ran out of memory, its job ended); ask your TA to grade it again")
TASK_FAILED = "grading {student} failed on a Dask worker: {error}"
TASK_FAILED_TIP = "`grader check {path}` grades it here and shows the error; run the same command again to resume"


# -- on the client -------------------------------------------------------------------------------


def gpu_exercises(assignment: Assignment, catalog: dict[str, list[dict]]) -> tuple[str, ...]:
    """Exercises with a check that needs CUDA (the rubric's marker, or `needs_gpu` in the YAML)."""
    return tuple(
        ex_id for ex_id, ex in assignment.exercises.items()
        if ex.needs_gpu or any(spec.needs_gpu for spec in ex.checks.values())
        or any(check.get("needs_cuda") for check in catalog.get(ex_id, ()))
    )


@dataclasses.dataclass(frozen=True)
class Part:
    """One Dask task of a submission: which exercises (None: all) and the worker resources it needs."""

    exercises: tuple[str, ...] | None
    resources: dict[str, int] | None


def _raise(answer: dict) -> None:
    cls = ConfigError if answer["error"] == "ConfigError" else GraderCrash
    raise cls(answer["message"], answer.get("tip", ""))


class DaskExecutor:
    """An `Executor` (see batch.py) that grades on a Dask cluster and yields each submission once,
    as soon as all its tasks are done; `requests` records what was submitted (student, Part)."""

    def __init__(self, client, assignment: Assignment, hidden=()):
        self.client = client
        self.assignment = assignment
        self.spec = {"rubrics": str(assignment.rubrics_dir), "fingerprint": rubric_fingerprint(assignment),
                     "hidden": [str(p) for p in hidden]}
        self._catalog: dict[str, list[dict]] | None = None
        self.parts: list[Part] | None = None
        self.requests: list[tuple[str, Part]] = []
        self.gpu_watch_s = GPU_WATCH_S

    def gpu_workers(self) -> list[str]:
        try:  # all workers: distributed 2025.7 to 2026.5 listed only five unless asked
            workers = self.client.scheduler_info(n_workers=-1)["workers"]
        except TypeError:  # before 2025.7: no such argument, and all workers listed
            workers = self.client.scheduler_info()["workers"]
        return sorted(addr for addr, w in workers.items() if (w.get("resources") or {}).get(GPU, 0) > 0)

    def catalog(self) -> dict[str, list[dict]]:
        if self._catalog is None:
            answer = self.client.submit(catalog_task, self.spec, key=f"rubrics-{uuid.uuid4().hex[:8]}").result()
            if "error" in answer:
                _raise(answer)
            self._catalog = answer["catalog"]
        return self._catalog

    def plan(self) -> list[Part]:
        """One task per submission, except on a cluster with GPU workers: there the exercises that
        need CUDA are a second task that asks for a GPU, and the rest run on any worker. Without GPU
        workers nothing asks for one (it would wait for ever), and the GPU checks are `skipped`."""
        if self.parts is None:
            ids = tuple(self.assignment.exercises)
            gpu = self.gpu_workers() and gpu_exercises(self.assignment, self.catalog())
            if not gpu:
                self.parts = [Part(None, None)]
            elif len(gpu) == len(ids):
                self.parts = [Part(None, {GPU: 1})]
            else:
                self.parts = [Part(tuple(e for e in ids if e not in gpu), None), Part(gpu, {GPU: 1})]
        return self.parts

    def __call__(self, entries: list[Entry]):
        from distributed import as_completed

        if not entries:
            return
        parts = self.plan()
        batch = uuid.uuid4().hex[:8]
        owner, futures = {}, []

        def submit(entry: Entry, i: int, resources, suffix: str = ""):
            part = parts[i]
            # Absolute: a worker's working directory is not ours.
            future = self.client.submit(
                grade_task, self.spec, str(entry.path.resolve()), list(part.exercises) if part.exercises else None,
                key=f"grade-{entry.student}-{i}-{batch}{suffix}", resources=resources, retries=0)
            owner[future.key] = (entry, i)
            futures.append(future)
            self.requests.append((entry.student, Part(part.exercises, resources)))
            return future

        for entry in entries:
            for i, part in enumerate(parts):
                submit(entry, i, part.resources)
        completed = as_completed(list(futures))
        rerouted: set[str] = set()
        stop = threading.Event()
        if any(part.resources for part in parts):
            threading.Thread(target=self._watch_gpus, args=(completed, owner, futures, rerouted, submit, stop),
                             name="torchgrade-gpu-watch", daemon=True).start()
        answers: dict[str, dict[int, dict]] = {}
        done: set[str] = set()
        try:
            for future in completed:
                entry, i = owner[future.key]
                if entry.student in done or future.key in rerouted:
                    continue  # ran twice (a worker died after finishing it, or rerouted): written once
                answer = self._answer(entry, future)
                future.release()
                if "error" in answer:
                    _raise(answer)
                got = answers.setdefault(entry.student, {})
                got[i] = answer
                if len(got) < len(parts):
                    continue
                done.add(entry.student)
                yield self._combine(entry, [got[k] for k in range(len(parts))], parts)
        finally:
            stop.set()
            pending = [f for f in futures if not f.done()]
            if pending and self.client.status == "running":  # stopped early: leave the cluster idle
                self.client.cancel(pending)

    def _watch_gpus(self, completed, owner, futures, rerouted, submit, stop) -> None:
        """If every GPU worker has left (a GPU job's time ran out), the tasks waiting for a GPU go to
        any worker instead, where their GPU checks are `skipped`: a batch never waits for ever."""
        while not stop.wait(self.gpu_watch_s):
            if self.gpu_workers():
                continue
            for future in list(futures):
                if future.done() or future.key in rerouted or not self.parts[owner[future.key][1]].resources:
                    continue
                rerouted.add(future.key)
                entry, i = owner[future.key]
                completed.add(submit(entry, i, None, suffix="-cpu"))
                future.cancel()

    def _answer(self, entry: Entry, future) -> dict:
        from distributed import KilledWorker

        if future.status == "error":
            exc = future.exception()
            if isinstance(exc, KilledWorker):
                return {"lost": LOST.format(n=exc.allowed_failures + 1, worker=exc.last_worker.address)}
            # A bug of the grader's own (the local executor would raise it too): stop, results so far are kept.
            raise GraderCrash(TASK_FAILED.format(student=entry.student, error=f"{type(exc).__name__}: {exc}"),
                              TASK_FAILED_TIP.format(path=entry.path)) from exc
        if future.status == "cancelled":
            raise GraderCrash(f"the Dask cluster lost the task {future.key} (the scheduler restarted or went away)",
                              "run the same command again: results already written are kept")
        return future.result()

    def _combine(self, entry: Entry, answers: list[dict], parts: list[Part]):
        for answer in answers:
            if "problem" in answer:  # worded as the local executor words it, with the path as given
                return entry, None, str(UnusableSubmission(entry.path, answer["problem"]))
        results = []
        for answer, part in zip(answers, parts):
            if "lost" in answer:
                try:
                    results.append(self._lost(entry, part, answer["lost"]))
                except UnusableSubmission as e:
                    return entry, None, str(e)
            else:
                results.append(SubmissionResult.from_dict(answer["result"]))
        result = merge_parts(results, list(self.assignment.exercises))
        return entry, dataclasses.replace(result, submission=str(entry.path)), None

    def _lost(self, entry: Entry, part: Part, reason: str) -> SubmissionResult:
        """What a submission whose workers kept dying gets: each exercise `crashed`, with the reason
        (STYLE "always write a result"); scored here, with the checks the rubrics list."""
        from . import __version__
        from .channel import RunOutcome
        from .extract import extract_exercises
        from .pipeline import torch_version
        from .read import read_submission
        from .score import score_exercise

        catalog = self.catalog()
        submission = read_submission(entry.path)
        sources, notes = extract_exercises(submission.notebook, self.assignment.exercises)
        exercises = tuple(
            score_exercise(ex, sources[ex.id], RunOutcome.worker_failed(reason), catalog[ex.id], False)
            for ex in self.assignment.exercises.values() if part.exercises is None or ex.id in part.exercises
        )
        return SubmissionResult(
            submission=str(entry.path), sha256=submission.sha256, assignment=self.assignment.name,
            grader_version=__version__, torch_version=torch_version(), devices=(),
            score=sum(e.score for e in exercises), max_score=sum(e.max_score for e in exercises), duration_s=0.0,
            notes=submission.notes + notes, exercises=exercises, torch_threads=self.assignment.cpu_threads,
        )


def dask_executor(assignment: Assignment, jobs: int, scheduler: str | None, hidden=()) -> tuple[Executor, callable]:
    """With no scheduler, a LocalCluster of `jobs` single-threaded worker processes (each under a
    nanny, which restarts it if it dies), closed by the closer; with `tcp://HOST:PORT`, a client of
    that running cluster (the closer only disconnects)."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--executor dask needs Dask's distributed scheduler, which is not installed",
                          "pip install 'dask[distributed]'") from None
    if scheduler is None:
        with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
            cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)

        def closer():
            client.close()
            cluster.close()
    else:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {e}",
                              "start one (`dask scheduler`, or a dask-jobqueue cluster) and pass the address it "
                              "prints, e.g. --scheduler tcp://10.0.0.5:8786") from None
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            client.close()
            raise ConfigError(f"no Dask worker joined the scheduler at {scheduler} within {WORKERS_TIMEOUT_S} s",
                              f"start workers: dask worker {scheduler} --nthreads 1 (add --resources GPU=1 on GPU "
                              "nodes)") from None
        closer = client.close
    return DaskExecutor(client, assignment, hidden), closer


__all__ = ["dask_executor", "DaskExecutor", "Part", "gpu_exercises", "ALLOWED_FAILURES", "GPU"]
