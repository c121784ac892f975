"""The nbgrader side of the comparison: a course built from the benchmark's class, `nbgrader autograde`
timed, its scores read back. Each test cell runs the same rubric in the notebook's kernel (bench/nbcheck.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from classgen import NB_METADATA, variants_of
from common import ASSIGNMENT_NAME, BENCH, children_cpu, load, log


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
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'torchgrade-bench'\n"
        "# ExecutePreprocessor/Execute timeout: nbgrader's default (30 s per cell) is kept.\n")

    def cells_for(codes: dict[str, str]):
        cells = [nb_cell(nbformat, "import torch", grade=False, solution=False, locked=True, grade_id="imports")]
        for ex_id in assignment.exercises:
            points = max_points[ex_id]  # per check case, as torchgrade counts them (skipped cases excepted)
            cells.append(nb_cell(nbformat, f"# exercise: {ex_id}\n{codes[ex_id]}", grade=False, solution=True,
                                 locked=False, grade_id=f"{ex_id}_code"))
            test = (f"# test: {ex_id}\nimport sys\nsys.path.insert(0, {str(BENCH)!r})\nimport nbcheck\n"
                    f"nbcheck.run({ex_id!r}, globals(), {manifest['rubrics']!r})")
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
