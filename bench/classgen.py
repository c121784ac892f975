"""The benchmark's class: seeded notebooks built from tests/variants/, with exactly one hang and one syntax error."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

from common import REPO

# Variants that loop forever by design (`*never_stops*`: the rubric stops them per call, after its own
# time limit) are left out of the draw: the class has exactly one hang, the `while True` student, so
# that the floor's "a hang costs its timeout" is exact.
EXCLUDED_VARIANTS = {("implicit_function", "solver_never_stops")}
P_CORRECT = 0.55
HANG_CODE = "while True:\n    pass\n"
NB_METADATA = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
               "language_info": {"name": "python"}}


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
