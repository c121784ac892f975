"""The command line in a subprocess, as users run it: output, exit codes, unusable files."""

import json
import subprocess
import sys

import pytest

from conftest import DOUBLE_OK, MINI_RUBRICS, SQUARE_OK, exercise_notebook


def grader_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_check_text_and_exit_codes(tmp_path):
    good = exercise_notebook(tmp_path / "good.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK})
    bad = exercise_notebook(tmp_path / "bad.ipynb", {"double": "def double(x):\n    return x"})
    r = grader_cli("check", good, "--rubrics", MINI_RUBRICS, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Score: 5 / 5" in r.stdout and "skipped: needs a CUDA GPU" in r.stdout
    r = grader_cli("check", bad, "--rubrics", MINI_RUBRICS, cwd="/")
    assert r.returncode == 1
    assert "double(3) is wrong" in r.stdout and "[missing]" in r.stdout and "Traceback" not in r.stdout + r.stderr


def test_check_json(tmp_path):
    nb = exercise_notebook(tmp_path / "s.ipynb", {"double": DOUBLE_OK})
    r = grader_cli("check", nb, "--rubrics", MINI_RUBRICS, "--format", "json", "--exercise", "double")
    d = json.loads(r.stdout)
    assert r.returncode == 0 and d["schema"] == 1 and [e["id"] for e in d["exercises"]] == ["double"]


def test_check_starts_no_more_workers_than_exercises_to_run(tmp_path, mini_assignment):
    # A student checking the one exercise they have written waits for one worker, not two.
    from grader.cli import _runs_needed
    from grader.read import read_submission

    one = read_submission(exercise_notebook(tmp_path / "one.ipynb", {"double": DOUBLE_OK}))
    both = read_submission(exercise_notebook(tmp_path / "both.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK}))
    broken = read_submission(exercise_notebook(tmp_path / "broken.ipynb", {"double": DOUBLE_OK, "square": "def sq(x)\n"}))
    assert _runs_needed(one, mini_assignment, None) == 1
    assert _runs_needed(both, mini_assignment, None) == 2 and _runs_needed(both, mini_assignment, "square") == 1
    assert _runs_needed(broken, mini_assignment, None) == 1  # a syntax error is scored without a run


UNUSABLE = {
    "empty.ipynb": (b"", "the file is empty"),
    "invalid.ipynb": (b'{"cells": [', "not valid JSON"),
    "list.ipynb": (b"[1, 2]", "not a Jupyter notebook"),
    "latin1.ipynb": ('{"cells": [], "x": "caf\u00e9"}'.encode("latin-1"), "not UTF-8"),
    "cells_not_list.ipynb": (b'{"cells": 3, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', "notebook"),
}


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_unusable_files_exit_2_with_one_line(tmp_path, name):
    data, words = UNUSABLE[name]
    path = tmp_path / name
    path.write_bytes(data)
    r = grader_cli("check", path, "--rubrics", MINI_RUBRICS)
    assert r.returncode == 2 and r.stdout == ""
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"ERROR {path}: ") and words in first, r.stderr
    assert "Traceback" not in r.stderr
    r = grader_cli("check", path, "--rubrics", MINI_RUBRICS, "--format", "json")
    data = json.loads(r.stdout)
    assert r.returncode == 2 and set(data) == {"schema", "submission", "error"}
    assert data["schema"] == 1 and data["submission"] == str(path) and words in data["error"], data


def test_missing_file_and_folder(tmp_path):
    r = grader_cli("check", tmp_path / "nope.ipynb", "--rubrics", MINI_RUBRICS)
    assert r.returncode == 2 and "no such file" in r.stderr
    r = grader_cli("check", tmp_path, "--rubrics", MINI_RUBRICS)
    assert r.returncode == 2 and "is a folder" in r.stderr


def test_bad_rubrics_config_names_file_and_key(tmp_path):
    rubrics = tmp_path / "rubrics"
    rubrics.mkdir()
    (rubrics / "test_double.py").write_text((MINI_RUBRICS / "test_double.py").read_text())
    (rubrics / "a.yml").write_text("exercises:\n  double:\n    timeout: 3\n    checks: {test_values: 1}\n")
    r = grader_cli("check", tmp_path / "x.ipynb", "--rubrics", rubrics)
    assert r.returncode == 3 and "a.yml: exercises.double: unknown key 'timeout' (did you mean 'timeout_s'?)" in r.stderr


def test_list_shows_points_and_gpu_needs():
    r = grader_cli("list", "--rubrics", MINI_RUBRICS)
    assert r.returncode == 0, r.stderr
    assert "double: double(x) returns 2 * x" in r.stdout
    assert "3 points without a GPU; 2 checks" in r.stdout
    assert "2 points without a GPU (3 with a GPU)" in r.stdout and "of test_gpu (skipped without one)" in r.stdout
