"""Run one rubric of torchgrade against a notebook's globals, inside the notebook's own kernel (nbgrader's side).

nbgrader's test cell for exercise X is `nbcheck.run("X", globals(), RUBRICS)`: the same pytest rubric, run
by the floor's plugin (bench/floor.py: the grader's own plugin and arguments, `student` = a module holding
the notebook's names, `thresholds` from the YAML, the same per-check seeding), one torch thread, scored by
the grader's scorer. The cell's value is the points earned (nbgrader's partial credit); the failed checks
are printed, like nbgrader's feedback would show them.
"""

from __future__ import annotations

import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

_ASSIGNMENTS: dict = {}


def run(exercise_id: str, namespace: dict, rubrics: str) -> float:
    import torch
    from floor import run_rubric

    from grader.assignment import load_assignment
    from grader.extract import ExerciseSource
    from grader.results import ERROR, FAILED
    from grader.score import score_exercise

    if rubrics not in _ASSIGNMENTS:
        _ASSIGNMENTS[rubrics] = load_assignment(rubrics)
    assignment = _ASSIGNMENTS[rubrics]
    torch.set_num_threads(assignment.cpu_threads)
    exercise = assignment.exercises[exercise_id]
    module = types.ModuleType("student")
    module.__dict__.update({k: v for k, v in namespace.items() if not k.startswith("_")})
    sys.modules["student"] = module
    plugin = run_rubric(module, exercise, os.getcwd(), assignment.cpu_threads)
    outcome = plugin.outcome(exercise.timeout_s)
    result = score_exercise(exercise, ExerciseSource(exercise_id, cells=(1,)), outcome, list(outcome.collected or ()),
                            outcome.cuda)
    for check in result.checks:
        if check.status in (FAILED, ERROR):
            print("FAILED", check.id)
    return result.score
