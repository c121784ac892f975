#!/usr/bin/env python3
"""Batch-grading benchmark of torchgrade (issue 5, item 6); bench/README.md says what each number means.

    python bench/batch_bench.py                 # class of 40: floor, `grader grade`, nbgrader, table
    python bench/batch_bench.py --skip-nbgrader # without the nbgrader part (about 5 minutes less)
    python bench/batch_bench.py --single        # `grader check` on one exercise vs `import torch` vs its floor
    python bench/batch_bench.py --add-nohang    # after a run: the same class without the hang student
    python bench/batch_bench.py --redo-nbgrader # after a run: nbgrader measured again
    python bench/batch_bench.py --report-only   # the table of the last run again

Everything it writes goes under --work (default bench/out/, git-ignored); the table is printed and
also saved as <work>/table.md, the raw numbers as <work>/raw.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_WORK = BENCH / "out"
DEFAULT_VENV = BENCH / ".venv-nbgrader"
ASSIGNMENT_NAME = "pytorch_intro"
# Variants that loop forever by design (`*never_stops*`: the rubric stops them per call, after its own
# time limit) are left out of the draw: the class has exactly one hang, the `while True` student, so
# that the floor's "a hang costs its timeout" is exact.
EXCLUDED_VARIANTS = {("implicit_function", "solver_never_stops")}
P_CORRECT = 0.55
HANG_CODE = "while True:\n    pass\n"
SINGLE_EXERCISE = "lost_leaf"
NB_METADATA = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
               "language_info": {"name": "python"}}
# The same pytest arguments the grader's sandboxed child uses (grader/worker.py).
PYTEST_ARGS = ["-q", "-s", "-p", "no:cacheprovider", "-p", "no:stepwise", "-p", "no:warnings", "--noconftest",
               "-o", "python_files=test_*.py", "-o", "console_output_style=classic", "-W", "ignore"]


def load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished, reaped descendant of this process so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load()}] {msg}", file=sys.stderr, flush=True)


# -- 1. the class -----------------------------------------------------------------------------------


def variants_of(exercise_id: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(correct, buggy) variants of an exercise as (name, code), from tests/variants/<id>/."""
    import yaml

    folder = REPO / "tests" / "variants" / exercise_id
    correct, buggy = [], []
    for py in sorted(folder.glob("*.py")):
        if (exercise_id, py.stem) in EXCLUDED_VARIANTS or "never_stops" in py.stem:
            continue
        meta_path = py.with_suffix(".yml")
        meta = yaml.safe_load(meta_path.read_text()) if meta_path.exists() else {}
        (buggy if (meta or {}).get("fails") else correct).append((py.stem, py.read_text()))
    if not correct:
        raise SystemExit(f"{folder}: no correct variant (fails: []) to build a class from")
    return correct, buggy


def break_syntax(code: str) -> str:
    """The first `def ...:` line without its colon: a SyntaxError, like a student's typo."""
    lines = code.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*(def|class)\s", line) and line.rstrip().endswith(":"):
            lines[i] = line.rstrip()[:-1]
            break
    broken = "\n".join(lines) + "\n"
    try:
        compile(broken, "<broken>", "exec")
    except SyntaxError:
        return broken
    return "def oops(:\n    pass\n" + code


def notebook(cells: list[str]):
    import nbformat

    nb = nbformat.v4.new_notebook(metadata=NB_METADATA)
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    return nb


def generate(work: Path, assignment, n: int, seed: int) -> dict:
    """<work>/class/<student>.ipynb and <work>/class.json (who got which variant), deterministically."""
    import nbformat

    rng = random.Random(seed)
    ids = list(assignment.exercises)
    pool = {ex: variants_of(ex) for ex in ids}
    special = rng.sample(range(n), 2) if n >= 2 else [0, None]
    hang_i, syntax_i = special
    # The hang goes where the time limit is smallest (the same exercise for every grader compared).
    hang_ex = min(ids, key=lambda e: assignment.exercises[e].timeout_s)
    syntax_ex = rng.choice(ids)
    class_dir = work / "class"
    shutil.rmtree(class_dir, ignore_errors=True)
    class_dir.mkdir(parents=True)
    students = {}
    for i in range(n):
        student = f"student{i + 1:02d}"
        plan, cells = {}, ["import torch"]
        for ex in ids:
            correct, buggy = pool[ex]
            name, code = rng.choice(correct if (rng.random() < P_CORRECT or not buggy) else buggy)
            if i == hang_i and ex == hang_ex:
                name, code = "__hang__", HANG_CODE + code
            elif i == syntax_i and ex == syntax_ex:
                name, code = "__syntax_error__", break_syntax(code)
            plan[ex] = name
            cells.append(f"# exercise: {ex}\n{code}")
        nbformat.write(notebook(cells), class_dir / f"{student}.ipynb")
        students[student] = plan
    manifest = {"seed": seed, "n": n, "exercises": ids, "students": students,
                "hang": [f"student{hang_i + 1:02d}", hang_ex],
                "syntax_error": [f"student{syntax_i + 1:02d}", syntax_ex] if syntax_i is not None else None,
                "rubrics": str(assignment.rubrics_dir)}
    (work / "class.json").write_text(json.dumps(manifest, indent=1))
    return manifest


# -- 2. the floor: the rubrics' own compute, in one warm process, no sandbox --------------------------


class FloorPlugin:
    """grader/_plugin.py's fixtures and per-check seeding, without sandbox, channel or integrity checks."""

    def __init__(self, module, thresholds: dict):
        self.module, self._thresholds = module, thresholds
        self.checks: dict[str, dict] = {}

    def pytest_configure(self, config):
        config.addinivalue_line("markers", "needs_cuda: the check needs a CUDA device")

    @pytest.fixture(scope="session")
    def student(self):
        return self.module

    @pytest.fixture(scope="session")
    def thresholds(self):
        return dict(self._thresholds)

    @pytest.fixture(scope="session")
    def calibration(self, request):
        """What a grading worker's calibration run measures (grader/calibration.py), once per process."""
        return {"threads": 1, **floor_calibration(request.session.items[0])}

    def pytest_runtest_setup(self, item):
        from grader import checks
        from grader._plugin import seed_everything

        if item.get_closest_marker("needs_cuda") and not checks.cuda_available():
            pytest.skip(checks.NO_CUDA_REASON)
        seed_everything(0)

    def pytest_runtest_logreport(self, report):
        rec = self.checks.setdefault(report.nodeid.rsplit("::", 1)[-1], {"status": "passed", "duration_s": 0.0})
        rec["duration_s"] += report.duration
        if report.skipped and rec["status"] == "passed":
            rec["status"] = "skipped"
        elif report.failed:
            rec["status"] = "failed"


_FLOOR_CALIBRATIONS: dict[str, dict] = {}


def floor_calibration(item) -> dict:
    """The rubric's `calibrate` on the assignment's solution, as a worker's calibration run does it."""
    from grader.assignment import load_assignment
    from grader.calibration import run_calibration, solution_chunks
    import torch

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
    module = types.ModuleType("student")
    sys.modules["student"] = module
    for chunk in chunks:
        try:
            exec(compile(chunk.source, chunk.filename, "exec"), module.__dict__)
        except BaseException as e:  # noqa: BLE001 - student code
            if chunk.required:
                return module, f"{type(e).__name__}: {e}"
    return module, None


# pytest >= 8.4 ends every session with gc.collect() x5 (unraisableexception plugin): over the ~300,000
# objects of a process with torch and torch._dynamo imported that is the biggest single cost of a short
# run, and it is pytest's, not the rubric's; the floor leaves it out (the job probe shows its price).
FLOOR_EXTRA_ARGS = ["-p", "no:unraisableexception"]


def rubric_run(exercise, chunks, rootdir: str) -> dict:
    """Load the exercise's module (as the grader builds it) and run its rubric in this process."""
    from grader._plugin import seed_everything

    started, cpu0 = time.perf_counter(), time.process_time()
    seed_everything(0)
    module, error = load_student(chunks)
    plugin = FloorPlugin(module, exercise.thresholds)
    if error is None:
        pytest.main([str(exercise.rubric), *PYTEST_ARGS, *FLOOR_EXTRA_ARGS, "--rootdir", rootdir], plugins=[plugin])
    wall = time.perf_counter() - started
    return {"wall_s": wall, "cpu_s": time.process_time() - cpu0, "checks_s": sum(c["duration_s"] for c in plugin.checks.values()),
            "load_error": error, "checks": plugin.checks}


def score_of(exercise, checks: dict) -> tuple[float, float]:
    score = max_score = 0.0
    for check_id, rec in checks.items():
        spec = exercise.check_spec(check_id)
        if spec is None or rec["status"] == "skipped":
            continue
        max_score += spec.points
        score += spec.points if rec["status"] == "passed" else 0.0
    return score, max_score


def floor_main(manifest_path: Path, out_path: Path, repeat: int = 1, part: int = 0, parts: int = 1) -> None:
    """Runs in a process of its own (`_floor`): torch imported and warmed once, then every exercise of
    every submission (with `parts` > 1: of every `parts`-th submission from the `part`-th on), timed.
    stdout is silenced (pytest's progress dots); results go to out_path."""
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
    from grader import worker
    from grader.extract import extract_exercises
    from grader.read import read_submission

    t0 = time.perf_counter()
    worker.warm_up()  # the warm-up every grader worker pays once (torch._dynamo, gradcheck)
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
                first_runs[ex_id] = rubric_run(exercise, sources[s][ex_id].chunks, rootdir)["wall_s"]
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
                runs = [rubric_run(exercise, src.chunks, rootdir) for _ in range(repeat)]
                best = min(runs, key=lambda r: r["wall_s"])
                score, max_score = score_of(exercise, best["checks"])
                row.update(floor_s=best["wall_s"], cpu_s=best["cpu_s"], checks_s=best["checks_s"], score=score, max_score=max_score,
                           load_error=best["load_error"],
                           failed=sorted(k for k, v in best["checks"].items() if v["status"] == "failed"))
            rows.append(row)
    out_path.write_text(json.dumps({"warm_up_s": warm_up_s, "first_runs_s": first_runs, "threads": threads,
                                    "rows": rows}, indent=1))


def run_floor(work: Path, repeat: int = 1, parts: int = 1) -> dict:
    """The floor process; with `parts` > 1, that many floor processes at once, each a share of the class
    (what the rubrics' own compute costs when `parts` of them share the machine, as a grader's jobs do)."""
    outs = [work / ("floor.json" if parts == 1 else f"floor-{parts}x-{k}.json") for k in range(parts)]
    before = load()
    cpu0, t0 = children_cpu(), time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_floor", str(work / "class.json"),
                               str(out), str(repeat), str(k), str(parts)]) for k, out in enumerate(outs)]
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


# -- 3. torchgrade ------------------------------------------------------------------------------------


def run_torchgrade(work: Path, jobs: int, rubrics: str | None, class_dir: Path | None = None,
                   name: str = "torchgrade") -> dict:
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["grader", "grade", str(class_dir or work / "class"), "--out", str(out), "--jobs", str(jobs), "--force"]
    if rubrics:
        cmd += ["--rubrics", rubrics]
    before = load()
    start_epoch = time.time()
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    results = {}
    mtimes = []
    for path in sorted((out / "results").glob("*.json")):
        mtimes.append(path.stat().st_mtime - start_epoch)
        results[path.stem] = json.loads(path.read_text())
    return {"wall_s": wall, "cpu_s": cpu, "load": [before, load()], "first_result_s": min(mtimes), "last_result_s": max(mtimes),
            "results": results, "stdout": proc.stdout.strip()}


# -- 4. nbgrader ---------------------------------------------------------------------------------------

NBCHECK = r'''
"""Run one rubric of torchgrade against a notebook's globals, inside the notebook's own kernel.

nbgrader's test cell for exercise X is `nbcheck.run("X", globals())`: the same pytest rubric, run with
the floor's own plugin and scoring (`batch_bench.FloorPlugin`, `score_of`: `student` = a module holding
the notebook's names, `thresholds` from the YAML, the same per-check seeding) and torch thread count. The cell's value is the points earned (nbgrader's
partial credit); the failed checks are printed, like nbgrader's feedback would show them.
"""
import os, sys, types

sys.path[:0] = [{repo!r}, {bench!r}]
os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
import torch  # noqa: E402
from grader.assignment import load_assignment  # noqa: E402

ASSIGNMENT = load_assignment({rubrics!r})
torch.set_num_threads(ASSIGNMENT.cpu_threads)
ARGS = {args!r}


def run(exercise_id, namespace):
    import pytest
    from batch_bench import FloorPlugin, score_of  # the floor's own plugin and scoring
    from grader._plugin import seed_everything

    exercise = ASSIGNMENT.exercises[exercise_id]
    module = types.ModuleType("student")
    module.__dict__.update({{k: v for k, v in namespace.items() if not k.startswith("_")}})
    sys.modules["student"] = module
    plugin = FloorPlugin(module, exercise.thresholds)
    seed_everything(0)
    pytest.main([str(exercise.rubric), *ARGS, "--rootdir", os.getcwd()], plugins=[plugin])
    for name, check in plugin.checks.items():
        if check["status"] == "failed":
            print("FAILED", name)
    return score_of(exercise, plugin.checks)[0]
'''


def nb_cell(nbformat, source: str, **nbgrader):
    cell = nbformat.v4.new_code_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = {"schema_version": 3, **nbgrader}
    return cell


def build_nbgrader_course(work: Path, manifest: dict, assignment, max_points: dict[str, float]) -> Path:
    """<work>/nbgrader: source/ (the reference notebook with a hidden test cell per exercise), and
    submitted/<student>/pytorch_intro/ (the class's notebooks, the same cells and metadata)."""
    import nbformat

    course = work / "nbgrader"
    shutil.rmtree(course, ignore_errors=True)
    (course / "source" / ASSIGNMENT_NAME).mkdir(parents=True)
    # The same pytest arguments as the floor (and the grader's child): pytest's end-of-session
    # gc.collect() x5 is left out for nbgrader too.
    (course / "nbcheck.py").write_text(NBCHECK.format(repo=str(REPO), bench=str(BENCH), rubrics=manifest["rubrics"],
                                                      args=PYTEST_ARGS + FLOOR_EXTRA_ARGS))
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'torchgrade-bench'\n"
        "# ExecutePreprocessor/Execute timeout: nbgrader's default (30 s per cell) is kept.\n")

    def cells_for(codes: dict[str, str]):
        cells = [nb_cell(nbformat, "import torch", grade=False, solution=False, locked=True, grade_id="imports")]
        for ex_id, exercise in assignment.exercises.items():
            points = max_points[ex_id]  # per check case, as torchgrade counts them (skipped cases excepted)
            cells.append(nb_cell(nbformat, f"# exercise: {ex_id}\n{codes[ex_id]}", grade=False, solution=True,
                                 locked=False, grade_id=f"{ex_id}_code"))
            test = (f"# test: {ex_id}\nimport sys\nsys.path.insert(0, {str(course)!r})\nimport nbcheck\n"
                    f"nbcheck.run({ex_id!r}, globals())")
            cells.append(nb_cell(nbformat, test, grade=True, solution=False, locked=True,
                                 grade_id=f"{ex_id}_test", points=points))
        nb = nbformat.v4.new_notebook(metadata=NB_METADATA)
        nb.cells = cells
        return nb

    reference = {ex: variants_of(ex)[0][0][1] for ex in assignment.exercises}
    nbformat.write(cells_for(reference), course / "source" / ASSIGNMENT_NAME / f"{ASSIGNMENT_NAME}.ipynb")
    for student in manifest["students"]:
        src = nbformat.read(work / "class" / f"{student}.ipynb", as_version=4)
        codes = {}
        for cell in src.cells[1:]:
            first, _, rest = cell.source.partition("\n")
            codes[first.split(":", 1)[1].strip()] = rest
        folder = course / "submitted" / student / ASSIGNMENT_NAME
        folder.mkdir(parents=True)
        nbformat.write(cells_for(codes), folder / f"{ASSIGNMENT_NAME}.ipynb")
        (folder / "timestamp.txt").write_text("2026-01-15 12:00:00.000000 UTC")
    return course


def run_nbgrader(work: Path, manifest: dict, assignment, venv: Path, floor: dict) -> dict:
    if not (venv / "bin" / "nbgrader").exists():
        raise SystemExit(f"no nbgrader in {venv}: python3 -m venv {venv} && {venv}/bin/pip install nbgrader "
                         "torch==2.13.0 pytest pyyaml numpy   (or run with --skip-nbgrader)")
    max_points = {ex: max((r["max_score"] or 0.0) for r in floor["rows"] if r["exercise"] == ex)
                  for ex in assignment.exercises}
    course = build_nbgrader_course(work, manifest, assignment, max_points)
    env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    env.pop("PYTHONPATH", None)
    nbg = str(venv / "bin" / "nbgrader")
    t0 = time.perf_counter()
    gen = subprocess.run([nbg, "generate_assignment", ASSIGNMENT_NAME, "--force"], cwd=course, env=env,
                         capture_output=True, text=True)
    generate_s = time.perf_counter() - t0
    if gen.returncode != 0:
        raise SystemExit(f"nbgrader generate_assignment failed:\n{gen.stdout[-2000:]}\n{gen.stderr[-4000:]}")
    before = load()
    cpu0, t0 = children_cpu(), time.perf_counter()
    auto = subprocess.run([nbg, "autograde", ASSIGNMENT_NAME, "--force"], cwd=course, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    (work / "nbgrader_autograde.log").write_text(auto.stdout + auto.stderr)
    if auto.returncode != 0:
        log(f"nbgrader autograde exited {auto.returncode}; see {work / 'nbgrader_autograde.log'}")
    scores = nbgrader_scores(course / "gradebook.db")
    timeouts = len(re.findall(r"(?i)timed? ?out|CellTimeoutError", auto.stdout + auto.stderr))
    return {"wall_s": wall, "cpu_s": cpu, "generate_s": generate_s, "load": [before, load()], "returncode": auto.returncode,
            "scores": scores, "timeout_mentions": timeouts, "kind": "nbgrader autograde"}


def nbgrader_scores(db: Path) -> dict[str, float]:
    import sqlite3

    if not db.exists():
        return {}
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT s.student_id, SUM(COALESCE(g.manual_score, g.auto_score, 0)) "
            "FROM grade g JOIN submitted_notebook n ON g.notebook_id = n.id "
            "JOIN submitted_assignment s ON n.assignment_id = s.id GROUP BY s.student_id").fetchall()
    except sqlite3.Error:
        return {}
    finally:
        con.close()
    return {student: float(score or 0) for student, score in rows}


# -- 5. where the time goes (cheap probes of the grader's stages) ----------------------------------------


def stage_probes(work: Path, assignment, torchgrade: dict, jobs: int) -> dict:
    """Worker start-up, the collection job, and the cost of writing one student's outputs (results JSON,
    Gradescope JSON, feedback page, gradebook row)."""
    from grader.batch import Entry, Outputs
    from grader.pipeline import Grader
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
        outputs._render_feedback(entry, result)
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


# -- 5b. one sandboxed exercise run, taken apart (timers monkeypatched here only; grader/ is unchanged) -----

STAMP = "@@T"


def job_probe_main(out_path: Path, runs: int) -> None:
    """Runs as its own process, set up as a grader worker is (the warm-up, then the rubrics collected in a
    pytest session of its own), but instead of serving jobs from stdin it calls `grader.worker.run_job`
    (fork, sandbox, checks, kill) on each exercise of one correct submission, `runs` times; for
    SINGLE_EXERCISE it also times the steps of a run with timers wrapped around them."""
    import resource

    from grader import _plugin, integrity, sandbox, worker
    from grader.assignment import load_assignment
    from grader.extract import extract_exercises
    from grader.pipeline import run_job as make_job

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
    real_watch = worker._watch

    def watch(*a, **k):
        try:
            return real_watch(*a, **k)
        finally:
            watch_returned[0] = time.monotonic()

    worker._watch = watch

    def children_cpu_s() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    class Probe(worker._Server):
        @pytest.hookimpl(tryfirst=True)
        def pytest_runtestloop(self, session):
            worker.settle()
            worker.collapse_to_huge_pages()  # as a worker does once it has served a few runs of a batch
            sandbox.set_subreaper()
            per_exercise, phases = {}, []
            for ex_id, job in jobs.items():
                rows = []
                for _ in range(runs):
                    cpu0, t0 = children_cpu_s(), time.monotonic()
                    out = worker.run_job(job)
                    t1 = time.monotonic()
                    rows.append({"wall_s": t1 - t0, "cpu_s": children_cpu_s() - cpu0,
                                 "checks_s": sum(c["duration_s"] for c in out["checks"]), "ended": out["ended"]})
                    if ex_id == SINGLE_EXERCISE:
                        phases.append(_phases(out["output"], t0, watch_returned[0], t1, rows[-1]["checks_s"]))
                per_exercise[ex_id] = {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "cpu_s", "checks_s")}
                per_exercise[ex_id]["ended"] = sorted({r["ended"] for r in rows})
            names = list(phases[0]) if phases else []
            out_path.write_text(json.dumps({
                "exercises": per_exercise, "runs": runs, "load": load(),
                "phases": {n: statistics.median(p[n] for p in phases if n in p) for n in names}}, indent=1))
            return True

    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    worker.warm_up()
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    worker._SERVER = probe = Probe(channel_out=None)
    with tempfile.TemporaryDirectory(prefix="jobprobe-root-") as rootdir:
        pytest.main(worker.pytest_args([str(e.rubric) for e in assignment.exercises.values()], rootdir),
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
        "-> run_job returns (scratch removed, result parsed)": returned - watch_returned,
        "total (worker's run_job)": returned - forked,
    }


def run_job_probe(work: Path, runs: int = 9) -> dict:
    from grader.pool import with_huge_pages

    out = work / "jobprobe.json"
    before = load()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "_jobprobe", str(out), str(runs)], check=True,
                   stdout=subprocess.DEVNULL, env=with_huge_pages(dict(os.environ)))
    data = json.loads(out.read_text())
    data["load_before"] = before
    return data


def job_probe_table(probe: dict) -> str:
    lines = [f"One sandboxed exercise run (`grader.worker.run_job` in a process set up as a worker), one correct "
             f"submission, median of {probe['runs']} runs; load {probe['load_before']} -> {probe['load']}", "",
             "| exercise | run wall | CPU (child + helpers) | checks (pytest durations) | overhead (wall - checks) |",
             "| --- | --- | --- | --- | --- |"]
    for ex_id, r in probe["exercises"].items():
        lines.append(f"| {ex_id} | {r['wall_s']:.3f} s | {r['cpu_s']:.3f} s | {r['checks_s']:.3f} s "
                     f"| {r['wall_s'] - r['checks_s']:.3f} s |")
    lines += ["", f"Steps of one {SINGLE_EXERCISE} run, median:", "", "| step | wall |", "| --- | --- |"]
    for name, value in probe["phases"].items():
        lines.append(f"| {name} | {value * 1000:.1f} ms |")
    return "\n".join(lines)

# -- the table -----------------------------------------------------------------------------------------


def order_bound(rows: list[dict], jobs: int) -> float:
    """The batch wall of a grader with `jobs` workers and no overhead at all that takes the runs in
    `grader grade`'s order (student by student, exercises in the YAML's order), each run going to the
    first free worker: a run that starts late (the hang in the last student) cannot be hidden."""
    free = [0.0] * jobs
    for r in rows:
        i = free.index(min(free))
        free[i] += r["floor_s"]
    return max(free)


def summarize(manifest, floor, tg, nbg, probes, jobs, nohang=None, floor_parallel=None) -> str:
    n = manifest["n"]
    rows = floor["rows"]
    hang_timeout = manifest_timeout(manifest, floor)
    sum_floor = sum(r["floor_s"] for r in rows)
    hang_student = manifest["hang"][0]
    sum_floor_no_hang = sum(r["floor_s"] for r in rows if r["student"] != hang_student)
    checks_floor = sum(r["checks_s"] for r in rows)
    grader_checks = sum(c["duration_s"] for d in tg["results"].values() for e in d.get("exercises", ())
                        for c in e["checks"])
    grader_sub = sum(d.get("duration_s", 0) for d in tg["results"].values())
    hang_sub = tg["results"].get(hang_student, {}).get("duration_s", 0)
    # Without the hang: the other submissions' own grading times, shared over the jobs (an estimate).
    wall = tg["wall_s"]
    lines = []
    add = lines.append
    add("| quantity | value |")
    add("| --- | --- |")
    add(f"| submissions x exercises | {n} x {len(manifest['exercises'])} ({', '.join(manifest['exercises'])}) |")
    add(f"| jobs (`--jobs`) | {jobs} |")
    add(f"| torchgrade batch wall (`grader grade --force`) | {wall:.1f} s (load {tg['load'][0]} -> {tg['load'][1]}) |")
    add(f"| per-submission wall = batch wall x jobs / n | {wall * jobs / n:.2f} s |")
    add(f"| sum of floors (in-process rubric runs; hang = its {manifest_timeout(manifest, floor):g} s timeout) "
        f"| {sum_floor:.1f} s (load {floor['load'][0]} -> {floor['load'][1]}) |")
    add(f"| floor / jobs | {sum_floor / jobs:.1f} s |")
    add(f"| **ratio batch wall / (floor / jobs)**, target <= 1.25 | **{wall / (sum_floor / jobs):.2f}** |")
    per_student = {}
    for r in rows:
        per_student[r["student"]] = per_student.get(r["student"], 0.0) + r["floor_s"]
    bound = max(sum_floor / jobs, max(per_student.values()))
    add(f"| bound for any grader: max(floor / jobs, the longest submission's floor) | {bound:.1f} s "
        f"(batch wall / bound: {wall / bound:.2f}) |")
    in_order = order_bound(rows, jobs)
    add(f"| bound for a grader without any overhead that grades in `grader grade`'s order (student by student, "
        f"each run to the first free of {jobs} workers; the floors above) | {in_order:.1f} s = {in_order / (sum_floor / jobs):.2f} "
        f"x floor / jobs (batch wall / this bound: {wall / in_order:.2f}) |")
    if floor_parallel:
        par_rows = floor_parallel["rows"]
        sum_par = sum(r["floor_s"] for r in par_rows)
        checks_par = sum(r["checks_s"] for r in par_rows)
        add(f"| sum of floors measured {jobs} at a time ({jobs} floor processes at once, each a share of the class) "
            f"| {sum_par:.1f} s ({sum_par / sum_floor:.2f} x the floors measured alone; their checks {checks_par:.1f} s) "
            f"(load {floor_parallel['load'][0]} -> {floor_parallel['load'][1]}) |")
        par_order = order_bound(par_rows, jobs)
        add(f"| the same bound with the floors measured {jobs} at a time | {par_order:.1f} s "
            f"(**batch wall / this bound: {wall / par_order:.2f}**, the grader's own overhead) |")
    add(f"| sum of floors without the hang student | {sum_floor_no_hang:.1f} s |")
    cpu_floor = sum(r.get("cpu_s", 0.0) for r in rows)

    def cpu_ratio(cpu):  # the hang spins for up to its timeout: how much CPU it got depends on the load
        return f"{max(cpu - hang_timeout, 0) / cpu_floor:.2f} .. {cpu / cpu_floor:.2f}"

    add(f"| CPU: torchgrade, all its processes (`grader`, workers, sandboxed children; the hang's spinning "
        f"included, at most {hang_timeout:g} s) | {tg['cpu_s']:.1f} s |")
    add(f"| CPU: floors without the hang (in-process rubric runs) | {cpu_floor:.1f} s |")
    add(f"| **CPU ratio torchgrade / floors** (load-robust view; range: hang's spinning counted as {hang_timeout:g} s .. 0 s) "
        f"| **{cpu_ratio(tg['cpu_s'])}** |")
    add(f"| sum of per-check pytest durations, floor process (setup+call+teardown) | {checks_floor:.1f} s |")
    add(f"| sum of check `duration_s` in grader's results (cross-check) | {grader_checks:.1f} s |")
    add(f"| sum of submission `duration_s` in grader's results | {grader_sub:.1f} s (hang student {hang_sub:.1f} s) |")
    add(f"| time to first result written (worker start-up + collection + first submission) "
        f"| {tg['first_result_s']:.1f} s |")
    if nbg:
        label = nbg["kind"]
        add(f"| {label} total (sequential, one kernel per notebook) | {nbg['wall_s']:.1f} s "
            f"(load {nbg['load'][0]} -> {nbg['load'][1]}) |")
        add(f"| {label} per notebook | {nbg['wall_s'] / n:.2f} s |")
        add(f"| **throughput torchgrade / nbgrader** (wall), target >= 5 | **{nbg['wall_s'] / wall:.1f}x** |")
        add(f"| CPU: nbgrader autograde, all its processes (kernels included) | {nbg['cpu_s']:.1f} s |")
        add(f"| CPU ratio nbgrader / torchgrade | {nbg['cpu_s'] / tg['cpu_s']:.1f}x |")
    if nohang:
        nw = nohang["wall_s"]
        cpu_nohang_floor = sum(r.get("cpu_s", 0.0) for r in rows if r["student"] != hang_student)
        add(f"| torchgrade on the {n - 1} notebooks without the hang: batch wall | {nw:.1f} s "
            f"(load {nohang['load'][0]} -> {nohang['load'][1]}) |")
        add(f"| ... ratio to their floors / jobs ({sum_floor_no_hang:.1f} s / {jobs}); CPU ratio to their floors' CPU "
            f"| **{nw / (sum_floor_no_hang / jobs):.2f}**; {nohang['cpu_s']:.1f} s / {cpu_nohang_floor:.1f} s = "
            f"**{nohang['cpu_s'] / cpu_nohang_floor:.2f}** |")
        add(f"| ... time to first result | {nohang['first_result_s']:.1f} s |")
    if probes:
        add(f"| probe: {jobs} workers ready (python + torch + warm-up, in parallel) | {probes['workers_ready_s']:.2f} s |")
        add(f"| probe: collection job (all rubrics, one sandboxed child) | {probes['collect_job_s']:.2f} s |")
        add(f"| probe: writing one student's outputs (median; of which feedback page / gradebook row) "
            f"| {probes['record_median_s']:.3f} s ({probes['feedback_median_s']:.3f} / {probes['gradebook_median_s']:.3f}); "
            f"first {probes['record_first_s']:.2f} s |")
    return "\n".join(lines)


def manifest_timeout(manifest, floor) -> float:
    return next((r["floor_s"] for r in floor["rows"] if r["variant"] == "__hang__"), 0.0)


def agreement(manifest, floor, tg, nbg) -> str:
    """Do the three graders give the same scores? (Same checks, so they should, timing checks aside.)"""
    floor_scores = {}
    for r in floor["rows"]:
        floor_scores[r["student"]] = floor_scores.get(r["student"], 0.0) + r["score"]
    tg_scores = {s: d.get("score") for s, d in tg["results"].items()}
    diff_tg = [s for s in floor_scores if abs((tg_scores.get(s) or 0) - floor_scores[s]) > 1e-6]
    out = [f"scores: floor process vs torchgrade differ for {len(diff_tg)}/{len(floor_scores)} students"
           + (f" ({', '.join(f'{s}: {floor_scores[s]:g} vs {tg_scores.get(s)}' for s in diff_tg[:8])})" if diff_tg else "")]
    if nbg and nbg.get("scores"):
        nb_scores = nbg["scores"]
        diff_nb = [s for s in floor_scores if abs(nb_scores.get(s, -1) - floor_scores[s]) > 1e-6]
        out.append(f"scores: floor process vs nbgrader differ for {len(diff_nb)}/{len(floor_scores)} students"
                   + (f" ({', '.join(f'{s}: {floor_scores[s]:g} vs {nb_scores.get(s)}' for s in diff_nb[:8])})"
                      if diff_nb else ""))
    return "\n".join(out)


# -- --child-vs-floor: the same checks in a worker's child and in the floor process, alternately ---------


def child_vs_floor(exercise_id: str, runs: int) -> str:
    """The solution's cell for one exercise, graded `runs` times by a real worker (`WorkerPool`, one
    fork per run) and run as many times by the floor's in-process `rubric_run`, alternately: are the
    checks themselves slower in a sandboxed child?"""
    from grader import worker
    from grader.assignment import load_assignment
    from grader.extract import extract_exercises
    from grader.pipeline import run_job as make_job
    from grader.pool import WorkerPool
    from grader.read import read_submission

    assignment = load_assignment()
    exercise = assignment.exercises[exercise_id]
    source = extract_exercises(read_submission(assignment.solution_notebook).notebook, assignment.exercises)[0][exercise_id]
    job = make_job(exercise, source, assignment, assignment.cpu_threads)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    pool = WorkerPool(1, [str(e.rubric) for e in assignment.exercises.values()])
    import torch

    worker.warm_up()
    torch.set_num_threads(assignment.cpu_threads)
    saved = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # pytest's progress dots
    try:
        root = tempfile.mkdtemp(prefix="floor-root-")
        rubric_run(exercise, source.chunks, root)  # the rubric's import, untimed
        child, floor = [], []
        for _ in range(runs):
            child.append(sum(c["duration_s"] for c in pool.run(job)["checks"]))
            floor.append(rubric_run(exercise, source.chunks, root)["checks_s"])
    finally:
        pool.close()
        os.dup2(saved, 1)
    c, f = statistics.median(child), statistics.median(floor)
    return (f"{exercise_id}, the solution's cell, {runs} alternating runs, load {load()}: checks (pytest durations) "
            f"in a worker's child {c:.3f} s, in the floor process {f:.3f} s (median); child / floor = {c / f:.2f}")


# -- --single: `grader check` on one exercise, next to `import torch` and that exercise's floor ------------


def single(work: Path, repeat: int) -> str:
    import nbformat

    from grader.assignment import load_assignment

    work.mkdir(parents=True, exist_ok=True)
    assignment = load_assignment()
    if SINGLE_EXERCISE not in assignment.exercises:
        raise SystemExit(f"{SINGLE_EXERCISE} is not in {assignment.config_path}")
    name, code = variants_of(SINGLE_EXERCISE)[0][0]
    one = work / "single"
    shutil.rmtree(one, ignore_errors=True)
    (one / "class").mkdir(parents=True)
    nbformat.write(notebook(["import torch", f"# exercise: {SINGLE_EXERCISE}\n{code}"]), one / "class" / "one.ipynb")
    # A one-exercise class for the floor machinery: only lost_leaf is timed (the others are absent).
    manifest = {"seed": 0, "n": 1, "exercises": [SINGLE_EXERCISE], "students": {"one": {SINGLE_EXERCISE: name}},
                "hang": [None, None], "syntax_error": None, "rubrics": str(assignment.rubrics_dir)}
    (one / "class.json").write_text(json.dumps(manifest))

    def timed(cmd) -> list[float]:
        walls = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
        return walls

    results = {}
    load0 = load()
    results["python -c 'import torch'"] = timed([sys.executable, "-c", "import torch"])
    results["grader check one.ipynb (default --jobs)"] = timed(["grader", "check", str(one / "class" / "one.ipynb")])
    results["grader check one.ipynb --jobs 1"] = timed(["grader", "check", str(one / "class" / "one.ipynb"),
                                                        "--jobs", "1"])
    floor = run_floor(one, repeat=5)
    row = next(r for r in floor["rows"] if r["exercise"] == SINGLE_EXERCISE)
    lines = [f"--single on this machine ({os.cpu_count()} cores); load {load0} -> {load()}; "
             f"exercise {SINGLE_EXERCISE} ({name}), {repeat} runs each, median [min]", "",
             "| what | wall |", "| --- | --- |"]
    for what, walls in results.items():
        lines.append(f"| `{what}` | {statistics.median(walls):.2f} s [{min(walls):.2f}] |")
    lines.append(f"| {SINGLE_EXERCISE} floor: its rubric in a warm process (best of 5) | {row['floor_s']:.3f} s |")
    lines.append(f"| ... of which the checks themselves (pytest setup+call+teardown) | {row['checks_s']:.3f} s |")
    lines.append(f"| ... the first run in a fresh warm process (rubric import + assert rewrite) "
                 f"| {floor['first_runs_s'][SINGLE_EXERCISE]:.3f} s |")
    lines.append(f"| worker warm-up after `import torch` (torch._dynamo, gradcheck) | {floor['warm_up_s']:.2f} s |")
    text = "\n".join(lines)
    (work / "single.md").write_text(text + "\n")
    (work / "single.json").write_text(json.dumps({"walls": results, "floor": floor}, indent=1))
    return text


# -- main ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "_jobprobe":
        job_probe_main(Path(argv[1]), int(argv[2]))
        return 0
    if argv and argv[0] == "_floor":
        floor_main(Path(argv[1]), Path(argv[2]), *(int(a) for a in argv[3:6]))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help="work folder (default bench/out/)")
    p.add_argument("-n", "--students", type=int, default=40)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--rubrics", default=None, help="another rubrics folder (default: the bundled assignment)")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the benchmark-only nbgrader virtualenv")
    p.add_argument("--skip-nbgrader", action="store_true")
    p.add_argument("--skip-probes", action="store_true", help="skip the per-stage probes")
    p.add_argument("--single", action="store_true", help="only the one-exercise `grader check` comparison")
    p.add_argument("--report-only", action="store_true", help="print the table of the last run in --work again")
    p.add_argument("--redo-nbgrader", action="store_true", help="after a run: measure nbgrader again, keep the rest")
    p.add_argument("--add-nohang", action="store_true",
                   help="after a run: grade the same class without the hang student, add it to the table")
    p.add_argument("--repeat", type=int, default=3, help="--single: runs of each command")
    p.add_argument("--child-vs-floor", nargs="+", metavar="EXERCISE",
                   help="only: the solution's checks in a worker's child vs in the floor process, 8 runs each")
    args = p.parse_args(argv)
    work = args.work.resolve()
    if args.single:
        print(single(work, args.repeat))
        return 0
    if args.child_vs_floor:
        for exercise_id in args.child_vs_floor:
            print(child_vs_floor(exercise_id, 8))
        return 0
    if args.report_only:
        return report(work)
    if args.add_nohang:
        return add_nohang(work)
    if args.redo_nbgrader:
        return redo_nbgrader(work, args.venv)
    from grader.assignment import load_assignment

    work.mkdir(parents=True, exist_ok=True)
    # One snapshot of the rubrics for all three measurements (other people edit rubrics/ meanwhile).
    source = Path(args.rubrics).resolve() if args.rubrics else REPO / "rubrics"
    snapshot = work / "assignment" / "rubrics"
    shutil.rmtree(snapshot.parent, ignore_errors=True)
    shutil.copytree(source, snapshot, ignore=shutil.ignore_patterns("__pycache__"))
    args.rubrics = str(snapshot)
    assignment = load_assignment(snapshot)
    log(f"generating {args.students} notebooks ({', '.join(assignment.exercises)}) in {work / 'class'}")
    manifest = generate(work, assignment, args.students, args.seed)
    log("floor: every exercise of every submission in one warm process")
    floor = run_floor(work)
    floor_parallel = None
    if args.jobs > 1:
        log(f"floor, {args.jobs} processes at once, each a share of the class")
        floor_parallel = run_floor(work, parts=args.jobs)
    log(f"torchgrade: grader grade --jobs {args.jobs}")
    tg = run_torchgrade(work, args.jobs, args.rubrics)
    nbg = None
    if not args.skip_nbgrader:
        log("nbgrader: generate_assignment + autograde")
        nbg = run_nbgrader(work, manifest, assignment, args.venv, floor)
    probes = jobprobe = None
    if not args.skip_probes:
        try:
            log("probes: worker start-up, collection job, outputs per student")
            probes = stage_probes(work, assignment, tg, args.jobs)
            log("probes: one sandboxed exercise run taken apart")
            jobprobe = run_job_probe(work)
        except Exception as e:  # noqa: BLE001 - the main table matters more than the probes
            log(f"probes failed: {type(e).__name__}: {e}")
    raw = {"manifest": manifest, "floor": floor, "floor_parallel": floor_parallel, "torchgrade": tg, "nbgrader": nbg,
           "probes": probes, "jobprobe": jobprobe, "jobs": args.jobs, "seed": args.seed}
    (work / "raw.json").write_text(json.dumps(raw, default=str))
    return report(work)


def redo_nbgrader(work: Path, venv: Path) -> int:
    from grader.assignment import load_assignment

    raw = json.loads((work / "raw.json").read_text())
    assignment = load_assignment(work / "assignment" / "rubrics")
    log("nbgrader again: generate_assignment + autograde")
    raw.setdefault("nbgrader_earlier", []).append(raw.get("nbgrader"))
    raw["nbgrader"] = run_nbgrader(work, raw["manifest"], assignment, venv, raw["floor"])
    (work / "raw.json").write_text(json.dumps(raw, default=str))
    return report(work)


def add_nohang(work: Path) -> int:
    """`grader grade` on the class without the hanging student: the grader's overhead without the
    hang's 30 s tail (which no grader can shorten), against the floors of the same notebooks."""
    raw = json.loads((work / "raw.json").read_text())
    hang = raw["manifest"]["hang"][0]
    folder = work / "class-nohang"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for nb in sorted((work / "class").glob("*.ipynb")):
        if nb.stem != hang:
            shutil.copy(nb, folder / nb.name)
    log(f"torchgrade without {hang}: grader grade --jobs {raw['jobs']}")
    raw["nohang"] = run_torchgrade(work, raw["jobs"], str(work / "assignment" / "rubrics"), class_dir=folder,
                                   name="torchgrade-nohang")
    (work / "raw.json").write_text(json.dumps(raw, default=str))
    return report(work)


def report(work: Path) -> int:
    """The table from <work>/raw.json (`--report-only` rebuilds it without measuring again)."""
    raw = json.loads((work / "raw.json").read_text())
    manifest, floor, tg, nbg = raw["manifest"], raw["floor"], raw["torchgrade"], raw["nbgrader"]
    probes, jobprobe, jobs = raw["probes"], raw["jobprobe"], raw["jobs"]

    class args:  # noqa: N801 - the names the lines below use
        pass

    args.jobs, args.seed = jobs, raw["seed"]
    table = summarize(manifest, floor, tg, nbg, probes, args.jobs, raw.get("nohang"), raw.get("floor_parallel"))
    for earlier in raw.get("nbgrader_earlier") or ():
        if earlier:
            table += (f"\n\nAn earlier nbgrader run on the same course, its test cells calling pytest without "
                      f"`-p no:unraisableexception` (so with pytest's gc.collect() x5 per test cell): "
                      f"{earlier['wall_s']:.1f} s, {earlier['wall_s'] / manifest['n']:.2f} s per notebook, "
                      f"CPU {earlier['cpu_s']:.1f} s (load {earlier['load'][0]} -> {earlier['load'][1]}); "
                      f"{earlier['wall_s'] / tg['wall_s']:.1f}x torchgrade's batch wall.")
    if jobprobe:
        table += "\n\n" + job_probe_table(jobprobe)
    head = (f"torchgrade batch benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
            f"seed {args.seed}; hang: {manifest['hang'][0]}/{manifest['hang'][1]}, syntax error: "
            f"{(manifest['syntax_error'] or ['-', '-'])[0]}/{(manifest['syntax_error'] or ['-', '-'])[1]}")
    text = f"{head}\n\n{table}\n\n{agreement(manifest, floor, tg, nbg)}"
    print(text)
    (work / "table.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
