"""Where the grader's time goes: cheap probes of its stages, one sandboxed run taken apart, and the
same checks in a worker's child against the floor process (bench/README.md, "job probe").

The job probe (`run_job_probe`) wraps timers around private steps of the sandbox, the plugin, the
integrity check and the worker's watch, in a process of its own (grader/ itself is unchanged): its
"Steps of one lost_leaf run" table is in RESULTS.md. When those private names change it fails, and the
batch benchmark reports "probes failed" and prints the rest. Run as a process of its own:

    python bench/probes.py OUT_JSON RUNS
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from classgen import notebook, variants_of
from common import SINGLE_EXERCISE, load
from floor import rubric_run


def stage_probes(work: Path, assignment, torchgrade: dict, jobs: int) -> dict:
    """Worker start-up, the collection job, and the cost of writing one student's outputs (results JSON,
    Gradescope JSON, feedback page, gradebook row)."""
    from grader.batch import Entry, Outputs
    from grader.export import FeedbackRenderer
    from grader.pipeline import Grader
    from grader.read import read_submission
    from grader.results import SubmissionResult

    probes = {"load": [load()]}
    # Worker start-up: python + torch + warm-up, `jobs` of them in parallel as the batch starts them.
    t0 = time.perf_counter()
    g = Grader(assignment, jobs=jobs)
    for w in list(g.pool._workers):
        w.wait_ready()
    probes["workers_ready_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    g.catalog()
    probes["collect_job_s"] = time.perf_counter() - t0
    g.close()
    # Writing one student's outputs, as grade_batch does after each result arrives.
    out = work / "probe-outputs"
    shutil.rmtree(out, ignore_errors=True)
    outputs = Outputs(out, assignment)
    renderer = FeedbackRenderer()
    parts = {"record_s": [], "feedback_s": [], "gradebook_s": []}
    for student, data in torchgrade["results"].items():
        if "exercises" not in data:
            continue
        result = SubmissionResult.from_dict(data)
        entry = Entry(student, work / "class" / f"{student}.ipynb")
        t0 = time.perf_counter()
        outputs.record(entry, outputs.fingerprint(entry), result, None)
        parts["record_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        renderer.render(read_submission(entry.path).notebook, result)
        parts["feedback_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        outputs.gradebook.add(student, str(entry.path), result.sha256, "probe", data, "graded")
        parts["gradebook_s"].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    outputs.finish()
    probes["finish_s"] = time.perf_counter() - t0
    outputs.close()
    for k, v in parts.items():
        probes[k.replace("_s", "_median_s")] = statistics.median(v[1:] or v)
        probes[k.replace("_s", "_first_s")] = v[0]
    probes["load"].append(load())
    return probes


STAMP = "@@T"


def job_probe_main(out_path: Path, runs: int) -> None:
    """Runs as its own process, set up as a grader worker is (the warm-up, then the rubrics collected in a
    pytest session of its own), but instead of serving jobs from stdin it calls `grader.supervise.run_isolated`
    (fork, sandbox, checks, kill) on each exercise of one correct submission, `runs` times; for
    SINGLE_EXERCISE it also times the steps of a run with timers wrapped around them."""
    import resource

    from functools import partial

    from grader import _plugin, forkserver, integrity, sandbox, supervise
    from grader.assignment import load_assignment
    from grader.calibration import Calibrations
    from grader.extract import extract_exercises
    from grader.hugepages import collapse_to_huge_pages
    from grader.pipeline import job_for as make_job

    assignment = load_assignment()
    cells = ["import torch"] + [f"# exercise: {ex_id}\n{variants_of(ex_id)[0][0][1]}" for ex_id in assignment.exercises]
    sources = extract_exercises(notebook(cells), assignment.exercises)[0]
    jobs = {ex_id: make_job(ex, sources[ex_id], assignment, assignment.cpu_threads)
            for ex_id, ex in assignment.exercises.items()}

    def stamp(label: str) -> None:  # in the child, fd 2 is the captured output the worker hands back
        os.write(2, f"{STAMP} {label} {time.monotonic():.6f}\n".encode())

    def stamped(owner, name: str) -> None:
        real = getattr(owner, name)

        def wrapper(*a, **k):
            stamp(name + ">")
            try:
                return real(*a, **k)
            finally:
                stamp(name + "<")

        setattr(owner, name, wrapper)

    for name in ("enter_namespaces", "freeze_host_files", "drop_privileges"):
        stamped(sandbox, name)
    for name in ("run", "_load_student"):
        stamped(_plugin.RubricPlugin, name)
    real_changed = integrity.Snapshot.changed

    def changed(self):
        t0 = time.monotonic()
        try:
            return real_changed(self)
        finally:
            os.write(2, f"{STAMP} integrity+ {time.monotonic() - t0:.6f}\n".encode())

    integrity.Snapshot.changed = changed
    watch_returned = [0.0]
    real_watch = supervise._watch

    def watch(*a, **k):
        try:
            return real_watch(*a, **k)
        finally:
            watch_returned[0] = time.monotonic()

    supervise._watch = watch

    def children_cpu_s() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    class Probe(forkserver.Server):
        @pytest.hookimpl(tryfirst=True)
        def pytest_runtestloop(self, session):
            forkserver.settle()
            collapse_to_huge_pages()  # as a worker does once it has served a few runs of a batch
            sandbox.set_subreaper()
            per_exercise, phases = {}, []
            calibrations = Calibrations()
            run = partial(supervise.run_isolated, plugin=self.plugin)
            for ex_id, job in jobs.items():
                job = calibrations.prepare(job, run)  # as the worker serves a job (calibrated thresholds)
                rows = []
                for _ in range(runs):
                    cpu0, t0 = children_cpu_s(), time.monotonic()
                    out = run(job)
                    t1 = time.monotonic()
                    rows.append({"wall_s": t1 - t0, "cpu_s": children_cpu_s() - cpu0,
                                 "checks_s": sum(c.duration_s for c in out.checks), "ended": out.ended})
                    if ex_id == SINGLE_EXERCISE:
                        phases.append(_phases(out.output, t0, watch_returned[0], t1, rows[-1]["checks_s"]))
                per_exercise[ex_id] = {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "cpu_s", "checks_s")}
                per_exercise[ex_id]["ended"] = sorted({r["ended"] for r in rows})
            names = list(phases[0]) if phases else []
            out_path.write_text(json.dumps({
                "exercises": per_exercise, "runs": runs, "load": load(),
                "phases": {n: statistics.median(p[n] for p in phases if n in p) for n in names}}, indent=1))
            return True

    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    forkserver.warm_up()
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    probe = Probe(channel_out=None)
    with tempfile.TemporaryDirectory(prefix="jobprobe-root-") as rootdir:
        pytest.main(forkserver.pytest_args([str(e.rubric) for e in assignment.exercises.values()], rootdir),
                    plugins=[probe.plugin, probe])


def _phases(output: str, forked: float, watch_returned: float, returned: float, checks_s: float) -> dict:
    t, integrity_s = {}, 0.0
    for line in output.splitlines():
        if line.startswith(STAMP + " "):
            _, label, value = line.split()
            if label == "integrity+":
                integrity_s += float(value)
            else:
                t[label] = float(value)
    loop = t["run<"] - t["_load_student<"]
    return {
        "fork -> the child's first sandbox step": t["enter_namespaces>"] - forked,
        "namespaces, environment, report the checks": t["freeze_host_files>"] - t["enter_namespaces>"],
        "close the sandbox (read-only mounts, scratch, hidden folders, limits, user)": t["drop_privileges<"] - t["freeze_host_files>"],
        "load the student's cells (and an integrity check)": t["_load_student<"] - t["_load_student>"],
        "the checks, pytest's protocol around them, integrity checks": loop,
        "... of which the checks themselves (pytest durations)": checks_s,
        "... of which integrity checks (one per check)": integrity_s,
        "... the rest: pytest's per-check protocol, seeding, reports": loop - checks_s - integrity_s,
        "last check -> child reaped, its user killed (exit, kill helper)": watch_returned - t["run<"],
        "-> run_isolated returns (scratch removed, result decoded)": returned - watch_returned,
        "total (the worker's run_isolated)": returned - forked,
    }


def run_job_probe(work: Path, runs: int = 9) -> dict:
    from grader.hugepages import with_huge_pages

    out = work / "jobprobe.json"
    before = load()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), str(out), str(runs)], check=True,
                   stdout=subprocess.DEVNULL, env=with_huge_pages(dict(os.environ)))
    data = json.loads(out.read_text())
    data["load_before"] = before
    return data


def child_vs_floor(exercise_id: str, runs: int) -> str:
    """The solution's cell for one exercise, graded `runs` times by a real worker (`WorkerPool`, one
    fork per run) and run as many times by the floor's in-process `rubric_run`, alternately: are the
    checks themselves slower in a sandboxed child?"""
    from grader import forkserver
    from grader.assignment import load_assignment
    from grader.extract import extract_exercises
    from grader.pipeline import job_for as make_job
    from grader.pool import WorkerPool
    from grader.read import read_submission

    assignment = load_assignment()
    exercise = assignment.exercises[exercise_id]
    source = extract_exercises(read_submission(assignment.solution_notebook).notebook, assignment.exercises)[0][exercise_id]
    job = make_job(exercise, source, assignment, assignment.cpu_threads)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    pool = WorkerPool(1, [str(e.rubric) for e in assignment.exercises.values()])
    import torch

    forkserver.warm_up()
    torch.set_num_threads(assignment.cpu_threads)
    saved = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # pytest's progress dots
    try:
        root = tempfile.mkdtemp(prefix="floor-root-")
        rubric_run(exercise, source, root)  # the rubric's import, untimed
        child, floor = [], []
        for _ in range(runs):
            child.append(sum(c.duration_s for c in pool.run(job).checks))
            floor.append(rubric_run(exercise, source, root)["checks_s"])
    finally:
        pool.close()
        os.dup2(saved, 1)
    c, f = statistics.median(child), statistics.median(floor)
    return (f"{exercise_id}, the solution's cell, {runs} alternating runs, load {load()}: checks (pytest durations) "
            f"in a worker's child {c:.3f} s, in the floor process {f:.3f} s (median); child / floor = {c / f:.2f}")


if __name__ == "__main__":
    job_probe_main(Path(sys.argv[1]), int(sys.argv[2]))
