"""The floor: each exercise's rubric run on the student's module in one warm process, no sandbox.

What no grader can beat: the grader's own plugin (`grader._plugin.RubricPlugin`: the `student`,
`thresholds` and `calibration` fixtures, per-check seeding, each check's verdict and message), the
grader's own pytest arguments (`grader.forkserver.pytest_args`), its result channel and decoder, and its
scorer (`grader.score.score_exercise`) — but `pytest.main` in this process, no fork, no sandbox, no
integrity snapshot. Run as a process of its own:

    python bench/floor.py CLASS_JSON OUT_JSON [REPEAT PART PARTS]
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest

from common import children_cpu, load

from grader._plugin import RubricPlugin, _describe, seed_everything
from grader.channel import Channel, RunOutcome, decode
from grader.results import ERROR, FAILED


class FloorPlugin(RubricPlugin):
    """The worker's plugin, for a `pytest.main` of one rubric in this process: what a run reports goes
    over the grader's own channel into a temporary file, and is decoded as a worker decodes it."""

    def __init__(self, module: types.ModuleType, exercise, threads: int):
        super().__init__()
        self.module = module
        self.job = {"exercise_id": exercise.id, "thresholds": exercise.thresholds, "threads": threads, "seed": 0}
        self.token = secrets.token_hex(8)
        self._sink = tempfile.TemporaryFile()
        self.channel = Channel(self._sink.fileno(), self.token)

    def pytest_collection_finish(self, session):
        # No integrity snapshot: nothing here guards against student code (the floor measures the checks).
        self.items = list(session.items)
        from grader import checks

        self.channel.send("collected", checks=[_describe(item) for item in self.items], cuda=checks.cuda_available())

    def pytest_runtest_setup(self, item):
        from grader import checks

        if item.get_closest_marker("needs_cuda") and not checks.cuda_available():  # RubricPlugin.run does this
            pytest.skip(checks.NO_CUDA_REASON)
        super().pytest_runtest_setup(item)

    @pytest.fixture(scope="session")
    def calibration(self, request):
        """What a grading worker's calibration run measures (grader/calibration.py), once per process."""
        return {"threads": int(self.job["threads"]), **floor_calibration(request.session.items[0])}

    def _crash(self, reason: str) -> None:  # the worker's child exits here; the floor process goes on
        self.channel.send("crash", reason=reason)

    def outcome(self, timeout_s: float) -> RunOutcome:
        """The run's outcome as the worker decodes a child's channel (`grader.channel.decode`)."""

        self.channel.send("done", threads=int(self.job["threads"]))
        self._sink.seek(0)
        results = self._sink.read()
        self._sink.close()
        return decode(results, self.token, status=0, timed_out=False, timeout_s=timeout_s)


_FLOOR_CALIBRATIONS: dict[str, dict] = {}


def floor_calibration(item) -> dict:
    """The rubric's `calibrate` on the assignment's solution, as a worker's calibration run does it."""
    import torch

    from grader.assignment import load_assignment
    from grader.calibration import run_calibration, solution_chunks
    from grader.extract import Chunk

    rubric = str(item.path)
    if rubric not in _FLOOR_CALIBRATIONS:
        assignment = load_assignment(item.path.parent)
        exercise = item.path.stem.removeprefix("test_")
        chunks = [Chunk(**c) for c in solution_chunks(str(assignment.solution_notebook), exercise)]
        saved = sys.modules.get("student")
        solution, _ = load_student(chunks)
        if saved is not None:
            sys.modules["student"] = saved
        _FLOOR_CALIBRATIONS[rubric] = run_calibration([item], solution, torch.get_num_threads())
    return _FLOOR_CALIBRATIONS[rubric]


def load_student(chunks) -> tuple[types.ModuleType, str | None]:
    """The exercise's module as the grader builds it (without the child's notes and early exit)."""
    module = types.ModuleType("student")
    sys.modules["student"] = module
    for chunk in chunks:
        try:
            exec(compile(chunk.source, chunk.filename, "exec"), module.__dict__)
        except BaseException as e:  # noqa: BLE001 - student code
            if chunk.required:
                return module, f"{type(e).__name__}: {e}"
    return module, None


def run_rubric(module, exercise, rootdir: str, threads: int) -> FloorPlugin:
    """`pytest.main` on the exercise's rubric with the grader's arguments and plugin, in this process."""
    from grader.forkserver import pytest_args

    plugin = FloorPlugin(module, exercise, threads)
    seed_everything(0)
    pytest.main(pytest_args([str(exercise.rubric)], rootdir), plugins=[plugin])
    return plugin


def rubric_run(exercise, source, rootdir: str) -> dict:
    """Load the exercise's module (as the grader builds it) and run its rubric in this process, timed;
    then score it with the grader's scorer (untimed). `source`: the exercise's `ExerciseSource`."""
    import torch

    from grader.score import score_exercise

    threads = torch.get_num_threads()
    started, cpu0 = time.perf_counter(), time.process_time()
    seed_everything(0)
    module, error = load_student(source.chunks)
    plugin = None if error else run_rubric(module, exercise, rootdir, threads)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    if plugin is None:
        outcome = RunOutcome(collected=(), load_error=error)
    else:
        outcome = plugin.outcome(exercise.timeout_s)
    result = score_exercise(exercise, source, outcome, list(outcome.collected or ()), outcome.cuda)
    checks = {c.id: {"status": c.status, "duration_s": c.duration_s} for c in outcome.checks}
    return {"wall_s": wall, "cpu_s": cpu, "checks_s": sum(c["duration_s"] for c in checks.values()),
            "load_error": error, "checks": checks, "result": result}


def floor_main(manifest_path: Path, out_path: Path, repeat: int = 1, part: int = 0, parts: int = 1) -> None:
    """torch imported and warmed once, then every exercise of every submission (with `parts` > 1: of
    every `parts`-th submission from the `part`-th on), timed. stdout is silenced (pytest's progress
    dots); results go to out_path."""
    from grader.assignment import load_assignment

    manifest = json.loads(manifest_path.read_text())
    manifest["students"] = {s: plan for i, (s, plan) in enumerate(manifest["students"].items()) if i % parts == part}
    assignment = load_assignment(manifest["rubrics"])
    threads = assignment.cpu_threads
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    import torch

    torch.set_num_threads(threads)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    from grader import forkserver
    from grader.extract import extract_exercises
    from grader.read import read_submission

    t0 = time.perf_counter()
    forkserver.warm_up()  # the warm-up every grader worker pays once (torch._dynamo, gradcheck)
    warm_up_s = time.perf_counter() - t0
    torch.set_num_threads(threads)
    class_dir = manifest_path.parent / "class"
    rootdir = tempfile.mkdtemp(prefix="floor-root-")
    sources = {s: extract_exercises(read_submission(class_dir / f"{s}.ipynb").notebook, manifest["exercises"])[0]
               for s in manifest["students"]}
    # One untimed run per exercise: the rubric module is imported (and assert-rewritten) once, as any
    # warm process would; the first-run cost is recorded for the README.
    exercises = {ex_id: assignment.exercises[ex_id] for ex_id in manifest["exercises"]}
    first_runs = {}
    for ex_id, exercise in exercises.items():
        for s, plan in manifest["students"].items():
            if plan[ex_id] not in ("__hang__", "__syntax_error__"):
                first_runs[ex_id] = rubric_run(exercise, sources[s][ex_id], rootdir)["wall_s"]
                break
    rows = []
    for s, plan in manifest["students"].items():
        for ex_id, exercise in exercises.items():
            src = sources[s][ex_id]
            row = {"student": s, "exercise": ex_id, "variant": plan[ex_id]}
            if plan[ex_id] == "__hang__":
                row.update(floor_s=exercise.timeout_s, cpu_s=0.0, checks_s=0.0, score=0.0, max_score=None, note="hang: its timeout")
            elif src.syntax_error:
                row.update(floor_s=0.0, cpu_s=0.0, checks_s=0.0, score=0.0, max_score=None, note="does not compile: nothing to run")
            else:
                runs = [rubric_run(exercise, src, rootdir) for _ in range(repeat)]
                best = min(runs, key=lambda r: r["wall_s"])
                result = best["result"]
                row.update(floor_s=best["wall_s"], cpu_s=best["cpu_s"], checks_s=best["checks_s"], score=result.score,
                           max_score=result.max_score, load_error=best["load_error"],
                           failed=sorted(c.id for c in result.checks if c.status in (FAILED, ERROR)))
            rows.append(row)
    out_path.write_text(json.dumps({"warm_up_s": warm_up_s, "first_runs_s": first_runs, "threads": threads,
                                    "rows": rows}, indent=1))


def run_floor(work: Path, repeat: int = 1, parts: int = 1) -> dict:
    """The floor process; with `parts` > 1, that many floor processes at once, each a share of the class
    (what the rubrics' own compute costs when `parts` of them share the machine, as a grader's jobs do)."""
    from grader.assignment import load_assignment

    outs = [work / ("floor.json" if parts == 1 else f"floor-{parts}x-{k}.json") for k in range(parts)]
    threads = str(load_assignment(json.loads((work / "class.json").read_text())["rubrics"]).cpu_threads)
    # Set before the floor process imports torch (this module imports it with the grader's plugin).
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    before = load()
    cpu0, t0 = children_cpu(), time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(work / "class.json"),
                               str(out), str(repeat), str(k), str(parts)], env=env) for k, out in enumerate(outs)]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a floor process failed")
    parts_data = [json.loads(out.read_text()) for out in outs]
    order = {s: i for i, s in enumerate(json.loads((work / "class.json").read_text())["students"])}
    data = dict(parts_data[0])
    data["rows"] = sorted((r for d in parts_data for r in d["rows"]), key=lambda r: order[r["student"]])
    data["process_wall_s"] = time.perf_counter() - t0
    data["process_cpu_s"] = children_cpu() - cpu0
    data["load"] = [before, load()]
    return data


if __name__ == "__main__":
    floor_main(Path(sys.argv[1]), Path(sys.argv[2]), *(int(a) for a in sys.argv[3:6]))
