"""`grader similarity`: copied notebooks top the report, the stub's own code is not counted, nothing is scored."""

import subprocess
import sys

import pytest

from conftest import MINI_RUBRICS, exercise_notebook

from grader.read import read_submission
from grader.similarity import _own_code, compare

ALICE_DOUBLE = '''\
def double(x):
    # </pre><script>alert("alice")</script>
    result = x
    for step in range(1):
        result = result + x * (step + 1)
    if hasattr(result, "clone"):
        result = result.clone()
    return result
'''
# Alice's code with every name changed and other comments: still a copy.
BOB_DOUBLE = '''\
def double(value):
    # my own work!
    acc = value
    for k in range(1):
        acc = acc + value * (k + 1)
    if hasattr(acc, "clone"):
        acc = acc.clone()
    return acc
'''
CAROL_DOUBLE = '''\
def double(x):
    return 2 * x
'''
ALICE_SQUARE = '''\
def square(x):
    squared = x * x
    assert squared is not None, "square needs a value"
    return squared
'''
BOB_SQUARE = ALICE_SQUARE.replace("squared", "sq")
CAROL_SQUARE = '''\
def square(x):
    return x ** 2
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    subs = root / "subs"
    exercise_notebook(subs / "alice.ipynb", {"double": ALICE_DOUBLE, "square": ALICE_SQUARE})
    exercise_notebook(subs / "bob.ipynb", {"double": BOB_DOUBLE, "square": BOB_SQUARE})
    exercise_notebook(subs / "carol.ipynb", {"double": CAROL_DOUBLE, "square": CAROL_SQUARE})
    out = root / "out"
    r = subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out),
                        "--rubrics", str(MINI_RUBRICS), "--jobs", "2"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out


def test_copied_notebooks_top_the_report(graded):
    grades = (graded / "grades.csv").read_bytes()
    r = subprocess.run([sys.executable, "-m", "grader", "similarity", str(graded), "--rubrics", str(MINI_RUBRICS)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.splitlines()[1:]]
    assert lines[0][1:] == ["alice", "bob"] and float(lines[0][0].rstrip("%")) >= 80
    assert len(lines) == 1  # carol shares nothing with either beyond the noise threshold
    page = (graded / "similarity.html").read_text(encoding="utf-8")
    assert "<mark>" in page and "alice" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page  # student text is escaped
    assert "href='similarity.html'" in (graded / "summary.html").read_text(encoding="utf-8")
    assert (graded / "grades.csv").read_bytes() == grades  # a report, never a score


def test_the_stubs_own_code_is_not_counted():
    stub = {"double": ALICE_DOUBLE.replace("return result", "raise NotImplementedError")}
    # Both students only filled in the stub's last line, differently.
    codes = {"dan": {"double": stub["double"].replace("raise NotImplementedError", "return result")},
             "eve": {"double": stub["double"].replace("raise NotImplementedError", "return 2 * x")}}
    assert compare(codes, {})[0].score > 0.8  # without the stub the starter code looks copied
    assert compare(codes, stub)[0].score == 0.0


def test_similarity_without_a_graded_class_says_what_to_do(tmp_path):
    r = subprocess.run([sys.executable, "-m", "grader", "similarity", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 3 and "no gradebook.sqlite here; run `grader grade" in r.stderr


def test_the_bundled_stub_gives_starter_code_for_every_exercise(assignment):
    stub = _own_code(read_submission(assignment.exercise_notebook).notebook, list(assignment.exercises))
    assert set(stub) == set(assignment.exercises) and all(code.strip() for code in stub.values())
