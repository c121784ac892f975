"""A broken rubric is the course's fault, not the student's: the grader names it and stops cleanly."""

import shutil

import pytest

from conftest import MINI_RUBRICS
from grader import Grader, load_assignment
from grader.errors import ConfigError, GraderCrash


@pytest.fixture
def rubrics(tmp_path):
    folder = tmp_path / "rubrics"
    shutil.copytree(MINI_RUBRICS, folder)
    return folder


def test_a_rubric_that_fails_to_import_is_named_with_pytests_error(rubrics):
    (rubrics / "test_square.py").write_text("import torch\nfrom grader.checks import no_such_helper\n")
    with Grader(load_assignment(rubrics), jobs=1) as grader, pytest.raises(ConfigError) as caught:
        grader.catalog()
    text = str(caught.value) + str(caught.value.tip)
    assert "test_square.py" in text and "no checks could be collected" in text
    assert "no_such_helper" in text  # pytest's own report of the import error


def test_a_rubric_that_initialises_cuda_at_import_is_refused(rubrics):
    # No GPU here, so the rubric fakes what torch would report after touching CUDA at module level.
    with open(rubrics / "test_square.py", "a") as f:
        f.write("\ntorch.cuda.is_initialized = lambda: True\n")
    with Grader(load_assignment(rubrics), jobs=1) as grader, pytest.raises(GraderCrash) as caught:
        grader.catalog()
    assert "CUDA was initialised while the rubrics were imported" in str(caught.value)
    assert "into the checks" in str(caught.value.tip)
