"""The spine end to end on real notebooks and real worker processes: statuses, isolation, scores."""

import json
import time

import pytest

from conftest import DOUBLE_OK, SQUARE_OK, exercise_notebook, write_notebook
from grader.extract import MISSING_MESSAGE


def grade(mini_grader, tmp_path, double: str | None = DOUBLE_OK, square: str | None = SQUARE_OK, preamble="import torch"):
    exercises = {k: v for k, v in (("double", double), ("square", square)) if v is not None}
    return mini_grader.grade(exercise_notebook(tmp_path / "sub.ipynb", exercises, preamble))


def test_correct_submission_gets_full_marks_and_gpu_check_is_skipped(mini_grader, tmp_path):
    r = grade(mini_grader, tmp_path)
    assert (r.score, r.max_score) == (5.0, 5.0) and r.full_marks
    gpu = r.exercise("square").checks[-1]
    assert gpu.id == "test_gpu" and gpu.status == "skipped" and gpu.max_score == 0 and "CUDA" in gpu.message
    assert r.devices == ("cpu", "meta") and r.torch_threads == 1


def test_wrong_answer_fails_with_expected_found_and_hint(mini_grader, tmp_path):
    r = grade(mini_grader, tmp_path, double="def double(x):\n    return 6 if isinstance(x, int) else x")
    ex = r.exercise("double")
    assert (ex.status, ex.score) == ("graded", 2.0)
    tensor = next(c for c in ex.checks if c.id == "test_tensor")
    assert tensor.status == "failed" and "Expected:" in tensor.message and "Hint: Lecture" in tensor.message
    assert r.exercise("square").score == 2.0


def test_missing_exercise(mini_grader, tmp_path):
    r = grade(mini_grader, tmp_path, square=None)
    ex = r.exercise("square")
    assert ex.status == "missing" and ex.score == 0 and ex.max_score == 2
    assert ex.error == MISSING_MESSAGE.format(id="square") == "no cell marked `# exercise: square`"
    assert r.exercise("double").score == 3


def test_undefined_name_is_named(mini_grader, tmp_path):
    r = grade(mini_grader, tmp_path, double="def dbl(x):\n    return 2 * x")
    msg = r.exercise("double").checks[0].message
    assert "`double` is not defined" in msg and "NoneType" not in msg


def test_infinite_loop_times_out_within_the_limit_others_graded(mini_grader, mini_assignment, tmp_path):
    limit = mini_assignment.exercises["double"].timeout_s
    start = time.monotonic()
    r = grade(mini_grader, tmp_path, double="while True:\n    pass")
    elapsed = time.monotonic() - start
    ex = r.exercise("double")
    assert ex.status == "timeout" and ex.score == 0 and f"after {limit:g} s" in ex.error
    assert r.exercise("square").score == 2
    assert elapsed < limit + 5


@pytest.mark.parametrize("code, status, words", [
    ("import os\nos._exit(0)", "crashed", "exited"),
    ("import sys\nsys.exit(1)", "crashed", "SystemExit"),
    ("raise KeyboardInterrupt", "crashed", "KeyboardInterrupt"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", "crashed", "segmentation fault"),
    ("def double(x):\n    return 2 * x\nraise ValueError('boom')", "error", "ValueError: boom"),
    ("def double(x:\n    return 2", "error", "cell 2, line 2"),
])
def test_each_failure_costs_only_its_exercise(mini_grader, tmp_path, code, status, words):
    r = grade(mini_grader, tmp_path, double=code)
    ex = r.exercise("double")
    assert (ex.status, ex.score, ex.max_score) == (status, 0, 3)
    assert words in ex.error
    assert r.exercise("square").score == 2 and r.exercise("square").status == "graded"


def test_error_message_points_at_the_students_line(mini_grader, tmp_path):
    r = grade(mini_grader, tmp_path, double="def double(x):\n    y = x\n    return y.nope")
    msg = r.exercise("double").checks[0].message
    assert msg.startswith("AttributeError") or "your code raised AttributeError" in msg
    assert "cell 2, line 4" in msg and "return y.nope" in msg  # line 1 is the marker


def test_forged_results_on_stdout_or_in_files_change_nothing(mini_grader, tmp_path):
    fake = json.dumps({"token": "x", "kind": "check", "id": "test_values", "status": "passed", "message": "", "duration_s": 0})
    code = (f"print({fake!r})\nprint('{{\"score\": 100, \"max_score\": 100}}')\n"
            "open('results.json', 'w').write('{\"score\": 100}')\n"
            "def double(x):\n    return x")
    r = grade(mini_grader, tmp_path, double=code)
    ex = r.exercise("double")
    assert ex.status == "graded" and ex.score == 0


def test_other_cells_statements_are_not_run(mini_grader, tmp_path):
    preamble = "import torch\nassert torch.cuda.is_available()\nraise RuntimeError('on purpose')\ndef helper():\n    return 2"
    r = grade(mini_grader, tmp_path, double="def double(x):\n    return helper() * x", preamble=preamble)
    assert r.exercise("double").score == 3


def test_failed_import_in_another_cell_is_a_note(mini_grader, tmp_path):
    r = grade(mini_grader, tmp_path, preamble="import torch\nimport graphviz_not_installed_here")
    assert r.full_marks
    assert any("import graphviz_not_installed_here" in n and "skipped" in n for n in r.exercise("double").notes)


def test_magics_are_noted_not_errors(mini_grader, tmp_path):
    r = grade(mini_grader, tmp_path, double="%timeit 1\n!echo hi\n" + DOUBLE_OK)
    ex = r.exercise("double")
    assert ex.score == 3 and sum("IPython command" in n for n in ex.notes) == 2


def test_nbformat3_is_upgraded_and_graded(mini_grader, tmp_path):
    path = write_notebook(tmp_path / "v3.ipynb", ["import torch", "# exercise: double\n" + DOUBLE_OK], version=3)
    r = mini_grader.grade(path)
    assert r.exercise("double").score == 3 and any("format 3 upgraded" in n for n in r.notes)


def test_json_result_has_the_spec_shape(mini_grader, tmp_path):
    d = json.loads(grade(mini_grader, tmp_path).to_json())
    assert list(d)[:4] == ["schema", "submission", "sha256", "assignment"]
    assert {"grader_version", "torch_version", "devices", "score", "max_score", "duration_s", "notes", "exercises"} <= set(d)
    ex = d["exercises"][0]
    assert set(ex) == {"id", "score", "max_score", "status", "error", "checks", "notes"}
    assert set(ex["checks"][0]) == {"id", "name", "status", "score", "max_score", "message", "duration_s"}
    assert ex["checks"][0]["name"] == "double(3) == 6"


def test_grading_twice_gives_identical_results(mini_grader, tmp_path):
    a = grade(mini_grader, tmp_path, double="def double(x):\n    return x + 2").to_dict()
    b = grade(mini_grader, tmp_path, double="def double(x):\n    return x + 2").to_dict()
    strip = lambda d: [(e["id"], e["score"], [(c["id"], c["status"], c["message"]) for c in e["checks"]]) for e in d["exercises"]]
    assert strip(a) == strip(b)


def test_lecture_notebook_implicit_exercise_is_graded_and_the_rest_not_run(grader, tmp_path):
    """The lecture's own notebook: magics, `assert torch.cuda.is_available()`, cells that raise on purpose."""
    import nbformat

    from test_extract import LECTURE

    lecture = nbformat.read(str(LECTURE), as_version=4)
    marked = 0
    for cell in lecture.cells:
        if cell.cell_type == "code" and cell.source.startswith("class Implicit("):
            cell.source = "# exercise: implicit_function\n" + cell.source
            marked += 1
    assert marked == 1
    path = tmp_path / "lecture.ipynb"
    nbformat.write(lecture, str(path))
    r = grader.grade(path, only="implicit_function")
    ex = r.exercise("implicit_function")
    assert (ex.status, ex.score, ex.max_score) == ("graded", 10.0, 10.0), [c.message for c in ex.failed_checks]
    assert any("import graphviz" in n for n in ex.notes)  # skipped, with a note, not an error


def test_the_courses_own_pytest_configuration_does_not_reach_the_grading_run(tmp_path):
    """Rubrics kept in a repository whose pytest config names options of plugins the grading run does not
    load (this project's own `-n 2` of pytest-xdist, a course's `--cov`) are graded as usual."""
    import shutil

    from conftest import MINI_RUBRICS
    from grader import Grader, load_assignment

    course = tmp_path / "course"
    shutil.copytree(MINI_RUBRICS, course / "rubrics")
    (course / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "-n 2 --cov=course"\n')
    with Grader(load_assignment(course / "rubrics"), jobs=1) as g:
        r = g.grade(exercise_notebook(tmp_path / "sub.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK}))
    assert r.score == r.max_score == 5, [(e.id, e.status, e.error) for e in r.exercises]


def test_a_second_worker_starts_only_when_a_second_job_waits(mini_assignment, tmp_path):
    """A worker start costs seconds of CPU (import torch): a grader with nothing to grade starts none, one
    exercise graded on a pool of two starts one worker; a notebook whose two exercises run at once starts the second, and both give the same result."""
    from grader import Grader

    one = exercise_notebook(tmp_path / "one.ipynb", {"double": DOUBLE_OK})
    slow = "import time\ntime.sleep(1)  # each run holds its worker a second: the two runs overlap\n"
    both = exercise_notebook(tmp_path / "both.ipynb", {"double": slow + DOUBLE_OK, "square": slow + SQUARE_OK})
    with Grader(mini_assignment, jobs=2) as g:
        assert g.pool._workers == []  # nothing to grade yet: nothing started (an unchanged class stays so)
        assert g.grade(one, only="double").exercise("double").score > 0
        assert len(g.pool._workers) == 1
        result = g.grade(both)
        assert result.full_marks
        assert len(g.pool._workers) == 2
        assert len({w.proc.pid for w in g.pool._workers}) == 2
    with Grader(mini_assignment, jobs=2) as g:  # a notebook with two runs: both workers start at once,
        catalog, workers_at_catalog = g.catalog, []  # warming side by side, before the first job
        g.catalog = lambda: (workers_at_catalog.append(len(g.pool._workers)), catalog())[1]
        assert g.grade(exercise_notebook(tmp_path / "two.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK})).full_marks
        assert workers_at_catalog == [2]
