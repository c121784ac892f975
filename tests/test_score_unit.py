"""Unit layer for grader/score.py: a run's outcome + the YAML's points → an ExerciseResult, without workers.

The outcome is built the way the worker builds it: token-bearing lines decoded by `channel.decode`
(with a wait status and a timed-out flag instead of a child), so the outcome cannot drift from
the real one. Points come from the mini assignment's YAML (tests/data/mini/rubrics/mini.yml)."""

from __future__ import annotations

import json
import signal

import pytest

from conftest import MINI_RUBRICS
from grader import load_assignment
from grader.channel import RunOutcome, decode
from grader.extract import ExerciseSource
from grader.results import CRASHED, ERROR, FAILED, GRADED, MISSING, PASSED, SKIPPED, TIMEOUT
from grader.score import score_exercise

TOKEN = "t0ken"
HINT = "Lecture: most operations work on tensors as on numbers."  # mini.yml, double.test_tensor


@pytest.fixture(scope="module")
def mini():
    return load_assignment(MINI_RUBRICS)


def catalog(rubric: str, *ids: str, cuda_only: tuple[str, ...] = ()) -> list[dict]:
    """What the plugin's "collected" message lists (grader/_plugin.py `_describe`)."""
    return [{"rubric": rubric, "id": i, "name": f"the {i} check", "needs_cuda": i in cuda_only} for i in ids]


def check(check_id: str, status: str, message: str = "", duration_s: float = 0.01) -> dict:
    return {"kind": "check", "id": check_id, "status": status, "message": message, "duration_s": duration_s}


def outcome(collected: list[dict], *messages: dict, done: bool = True, status: int | None = 0,
            timed_out: bool = False, timeout: float = 6.0, raw: tuple[bytes, ...] = (), output: str = "",
            dropped: int = 0) -> RunOutcome:
    """`channel.decode` of the lines a plugin would have sent: collected, `messages`, done."""
    sent = [{"kind": "collected", "checks": collected, "cuda": False}, *messages]
    if done:
        sent.append({"kind": "done", "threads": 1})
    lines = [json.dumps({"token": TOKEN, **m}).encode() for m in sent] + list(raw)
    return decode(b"\n".join(lines) + b"\n", TOKEN, status=status, timed_out=timed_out, timeout_s=timeout,
                  output=output, output_dropped=dropped)


def present(exercise_id: str, **kw) -> ExerciseSource:
    return ExerciseSource(exercise_id, cells=(2,), **kw)


def grade(mini, exercise_id: str, out: RunOutcome | None, cat: list[dict], source: ExerciseSource | None = None,
          cuda: bool = False):
    ex = mini.exercises[exercise_id]
    return score_exercise(ex, source or present(exercise_id), out, cat, cuda)


def by_id(result) -> dict:
    return {c.id: c for c in result.checks}


def test_points_come_from_the_yaml_and_a_failure_gets_its_hint(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    out = outcome(cat, check("test_values", PASSED), check("test_tensor", FAILED, "double(tensor) is wrong"))
    result = grade(mini, "double", out, cat)
    checks = by_id(result)
    assert (result.status, result.score, result.max_score, result.error) == (GRADED, 2.0, 3.0, None)
    assert (checks["test_values"].score, checks["test_values"].max_score) == (2.0, 2.0)
    assert (checks["test_tensor"].score, checks["test_tensor"].max_score) == (0.0, 1.0)
    assert checks["test_tensor"].message == f"double(tensor) is wrong\nHint: {HINT}"
    assert checks["test_values"].message == ""  # a pass gets no hint
    assert checks["test_tensor"].name == "the test_tensor check"


def test_a_setup_error_gets_no_maths_hint(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    message = "NameError: name 'torch' is not defined"
    out = outcome(cat, check("test_values", PASSED), check("test_tensor", ERROR, message))
    assert by_id(grade(mini, "double", out, cat))["test_tensor"].message == message


def test_a_parametrized_check_splits_its_points_across_its_cases(mini):
    cat = catalog("test_double", "test_values[int]", "test_values[float]", "test_tensor")
    out = outcome(cat, check("test_values[int]", PASSED), check("test_values[float]", FAILED, "no"),
                  check("test_tensor", PASSED))
    result = grade(mini, "double", out, cat)
    checks = by_id(result)
    assert (checks["test_values[int]"].score, checks["test_values[int]"].max_score) == (1.0, 1.0)
    assert (checks["test_values[float]"].score, checks["test_values[float]"].max_score) == (0.0, 1.0)
    assert (result.score, result.max_score) == (2.0, 3.0)  # test_values is worth its 2 points, however many cases


def test_a_skipped_case_leaves_its_share_to_the_other_cases(mini):
    """A GPU case skipped on a CPU machine: the function keeps its points, split over the cases that ran."""
    cases = ("test_values[cpu]", "test_values[meta]", "test_values[cuda]")
    cat = catalog("test_double", *cases, "test_tensor", cuda_only=("test_values[cuda]",))
    out = outcome(cat, check("test_values[cpu]", PASSED), check("test_values[meta]", FAILED, "wrong on meta"),
                  check("test_values[cuda]", SKIPPED, "needs a CUDA GPU"), check("test_tensor", PASSED))
    checks = by_id(grade(mini, "double", out, cat))
    assert [(checks[c].score, checks[c].max_score) for c in cases] == [(1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]
    on_gpu = outcome(cat, *(check(c, PASSED) for c in cases), check("test_tensor", PASSED))
    result = grade(mini, "double", on_gpu, cat, cuda=True)
    assert [by_id(result)[c].max_score for c in cases] == pytest.approx([2 / 3] * 3)
    assert (result.score, result.max_score) == (3.0, 3.0)  # the same 3 points as on the CPU, summed exactly


def test_shares_that_do_not_add_up_in_floating_point_still_total_the_yaml_points(mini):
    cases = [f"test_values[{d}-{t}]" for d in ("cpu", "meta", "cuda") for t in ("float32", "float64")]
    cat = catalog("test_double", *cases)
    result = grade(mini, "double", outcome(cat, *(check(c, PASSED) for c in cases)), cat, cuda=True)
    assert sum(c.max_score for c in result.checks) != 2.0  # 6 x 1/3 in floating point
    assert (result.score, result.max_score) == (2.0, 2.0)


def test_a_check_whose_every_case_is_skipped_is_worth_nothing(mini):
    cat = catalog("test_double", "test_values[a]", "test_values[b]", "test_tensor")
    out = outcome(cat, check("test_values[a]", SKIPPED, "this machine cannot judge it"),
                  check("test_values[b]", SKIPPED, "this machine cannot judge it"), check("test_tensor", PASSED))
    result = grade(mini, "double", out, cat)
    assert [(c.score, c.max_score) for c in result.checks] == [(0.0, 0.0), (0.0, 0.0), (1.0, 1.0)]
    assert (result.score, result.max_score) == (1.0, 1.0)


def test_an_unscored_exercise_splits_points_over_the_cases_this_machine_would_run(mini):
    """A crash: every case is worth its share and earns nothing; GPU cases count only where there is a GPU."""
    cat = catalog("test_double", "test_values[cpu]", "test_values[cuda]", "test_tensor",
                  cuda_only=("test_values[cuda]",))
    crash = outcome(cat, {"kind": "crash", "reason": "RecursionError in the plugin"})
    result = grade(mini, "double", crash, cat)
    checks = by_id(result)
    assert (result.status, result.score, result.max_score) == (CRASHED, 0.0, 3.0)
    assert (checks["test_values[cpu]"].max_score, checks["test_values[cuda]"].max_score) == (2.0, 0.0)
    assert checks["test_values[cuda]"].status == SKIPPED
    on_gpu = by_id(grade(mini, "double", crash, cat, cuda=True))
    assert (on_gpu["test_values[cpu]"].max_score, on_gpu["test_values[cuda]"].max_score) == (1.0, 1.0)
    missing = grade(mini, "double", None, cat, source=ExerciseSource("double", cells=()))
    assert (missing.status, missing.max_score) == (MISSING, 3.0)


def test_a_skipped_check_counts_in_neither_score_nor_max_score(mini):
    cat = catalog("test_square", "test_values", "test_gpu", cuda_only=("test_gpu",))
    out = outcome(cat, check("test_values", PASSED), check("test_gpu", SKIPPED, "needs a CUDA GPU"))
    result = grade(mini, "square", out, cat)
    gpu = by_id(result)["test_gpu"]
    assert (result.status, result.score, result.max_score) == (GRADED, 2.0, 2.0)
    assert (gpu.status, gpu.score, gpu.max_score, gpu.message) == (SKIPPED, 0.0, 0.0, "needs a CUDA GPU")


def test_a_check_the_run_never_reported_is_an_error_worth_its_points(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    out = outcome(cat, check("test_values", PASSED))
    tensor = by_id(grade(mini, "double", out, cat))["test_tensor"]
    assert (tensor.status, tensor.score, tensor.max_score) == (ERROR, 0.0, 1.0)
    assert tensor.message == "not run: the checks ended early"


def test_a_timeout_scores_zero_even_for_checks_that_passed_before_it(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    out = outcome(cat, check("test_values", PASSED), done=False, status=signal.SIGKILL, timed_out=True)
    result = grade(mini, "double", out, cat)
    checks = by_id(result)
    assert (result.status, result.score, result.max_score) == (TIMEOUT, 0.0, 3.0)
    assert result.error == ("the grader stopped this exercise because it was still running after 6 s "
                            "(the exercise's time limit)")
    assert checks["test_values"].status == ERROR and checks["test_values"].message.startswith("not run: the grader")
    assert checks["test_tensor"].max_score == 1.0


def test_a_check_that_failed_before_the_timeout_keeps_its_message(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    out = outcome(cat, check("test_values", FAILED, "double(3) is 5"), done=False, status=signal.SIGKILL,
                  timed_out=True)
    values = by_id(grade(mini, "double", out, cat))["test_values"]
    assert (values.status, values.message, values.max_score) == (FAILED, "double(3) is 5", 2.0)


def test_the_cpu_time_limit_is_a_timeout(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    out = outcome(cat, done=False, status=signal.SIGXCPU)  # a wait status: killed by SIGXCPU
    result = grade(mini, "double", out, cat)
    assert result.status == TIMEOUT and result.error.endswith("because it used up its CPU-time limit")


def test_a_child_killed_without_a_report_crashed(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    out = outcome(cat, check("test_values", PASSED), done=False, status=signal.SIGKILL)
    result = grade(mini, "double", out, cat)
    assert (result.status, result.score, result.max_score) == (CRASHED, 0.0, 3.0)
    assert "killed (SIGKILL), most likely for going over the memory limit" in result.error


def test_an_exit_before_the_checks_finished_crashed(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    out = outcome(cat, done=False, status=3 << 8)  # exit code 3
    result = grade(mini, "double", out, cat)
    assert result.status == CRASHED and "exit code 3" in result.error


def test_a_reported_crash_and_a_load_error(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    crashed = grade(mini, "double", outcome(cat, {"kind": "crash", "reason": "RecursionError in the plugin"}), cat)
    assert crashed.status == CRASHED and crashed.error.endswith("because RecursionError in the plugin")
    loaded = grade(mini, "double", outcome(cat, {"kind": "load_error", "message": "ZeroDivisionError at cell 2"}), cat)
    assert (loaded.status, loaded.error, loaded.score) == (ERROR, "ZeroDivisionError at cell 2", 0.0)


def test_tampering_scores_zero_and_names_what_was_replaced(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    out = outcome(cat, check("test_values", PASSED), check("test_tensor", PASSED),
                  {"kind": "tampering", "replaced": ["torch.allclose"], "called": ["sys.settrace", "gc.collect"],
                   "when": "during the check `test_values`"})
    result = grade(mini, "double", out, cat)
    assert (result.status, result.score, result.max_score) == (ERROR, 0.0, 3.0)
    assert result.error == ("tampering detected: `torch.allclose` was replaced and `sys.settrace`, `gc.collect` "
                            "were called during the check `test_values`; the exercise scores 0")


def test_forged_lines_outrank_every_other_verdict(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    fake = json.dumps({"token": "guessed", "kind": "check", "id": "test_values", "status": PASSED}).encode()
    out = outcome(cat, check("test_values", PASSED), check("test_tensor", PASSED), raw=(fake, b"not json"),
                  timed_out=True, status=signal.SIGKILL)
    result = grade(mini, "double", out, cat)
    assert (result.status, result.score) == (ERROR, 0.0)
    assert result.error.startswith("tampering detected: something other than the grader wrote to its result "
                                   "channel (2 lines without the run's secret token)")


def test_a_second_result_for_a_check_is_forged(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    out = outcome(cat, check("test_values", FAILED, "wrong"), check("test_values", PASSED), check("test_tensor", PASSED))
    result = grade(mini, "double", out, cat)
    assert result.status == ERROR and "a second result for `test_values`" in result.error


def test_a_missing_exercise_is_worth_its_points_and_skips_gpu_checks_without_a_gpu(mini):
    cat = catalog("test_square", "test_values", "test_gpu", cuda_only=("test_gpu",))
    result = grade(mini, "square", None, cat, source=ExerciseSource("square", cells=()))
    checks = by_id(result)
    assert (result.status, result.score, result.max_score) == (MISSING, 0.0, 2.0)
    assert result.error == "no cell marked `# exercise: square`"
    assert (checks["test_values"].status, checks["test_values"].message) == (FAILED, result.error)
    assert (checks["test_gpu"].status, checks["test_gpu"].max_score) == (SKIPPED, 0.0)
    with_gpu = grade(mini, "square", None, cat, source=ExerciseSource("square", cells=()), cuda=True)
    assert with_gpu.max_score == 3.0


def test_a_syntax_error_and_a_worker_error(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    bad = grade(mini, "double", None, cat, source=present("double", syntax_error="invalid syntax (cell 2, line 1)"))
    assert (bad.status, bad.error, bad.max_score) == (ERROR, "your code does not compile: invalid syntax (cell 2, line 1)", 3.0)
    assert by_id(bad)["test_values"].message == "not run: your code does not compile: invalid syntax (cell 2, line 1)"
    lost = grade(mini, "double", RunOutcome.worker_failed("the worker died"), cat)
    assert (lost.status, lost.error) == (CRASHED, "the grader stopped this exercise because the worker died")


def test_notes_from_the_source_and_the_run_once_each_and_dropped_output_is_noted(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    out = outcome(cat, check("test_values", PASSED), check("test_tensor", PASSED),
                  {"kind": "notes", "notes": ["a run note", "a cell note"]}, output="x" * 10, dropped=2048)
    result = grade(mini, "double", out, cat, source=present("double", notes=("a cell note",)))
    assert result.notes == ("a cell note", "a run note",
                            "your code printed too much: 2,048 bytes of output past the first 10 were dropped")


def test_a_name_defined_in_a_cell_grading_does_not_run_gets_its_cause(mini):
    cat = catalog("test_double", "test_values", "test_tensor")
    out = outcome(cat, check("test_values", ERROR, "NameError: name 'helper' is not defined"),
                  check("test_tensor", ERROR, "NameError: name 'display' is not defined"))
    source = present("double", elsewhere={"helper": ("cell 4", "that cell comes after this exercise")})
    checks = by_id(grade(mini, "double", out, cat, source=source))
    assert checks["test_values"].message == (
        "NameError: name 'helper' is not defined\n`helper` is defined in cell 4, but that cell comes after this "
        "exercise: move it into this exercise's cell, or into a function")
    assert checks["test_tensor"].message == "NameError: name 'display' is not defined"  # not an IPython-only name
