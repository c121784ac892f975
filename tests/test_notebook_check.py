"""`grader.check` in a real notebook: real ipykernel kernels driven by nbclient, grading by the real service.

One kernel is shared by most tests (its grading service starts once); the mini assignment is copied
with a 3 s time limit so that the hanging exercise costs little.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import MINI_RUBRICS, build_notebook

nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.manager import KernelManager  # noqa: E402

from grader import notebook as nbcheck  # noqa: E402
from grader.service import unsaved_exercises  # noqa: E402

DOUBLE_OK = "# exercise: double\ndef double(x):\n    return 2 * x"
DOUBLE_BUGGY = "# exercise: double\ndef double(x):\n    return x + x + 1"
DOUBLE_HANGS = "# exercise: double\ndef double(x):\n    while True:\n        pass"
SQUARE_OK = "# exercise: square\ndef square(x):\n    return x ** 2"
TIME_LIMIT_S = 3


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """The mini assignment with a short time limit (its rubrics folder)."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(MINI_RUBRICS.parent, root / "mini")
    yml = root / "mini" / "rubrics" / "mini.yml"
    yml.write_text(re.sub(r"timeout_s: \d+", f"timeout_s: {TIME_LIMIT_S}", yml.read_text()))
    return root / "mini" / "rubrics"


def start_kernel(cwd: Path, env: dict) -> KernelManager:
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(cwd), env={**os.environ, **env})
    return km


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, course):
    """A kernel started as jupyter_server starts one for `student.ipynb` (JPY_SESSION_NAME), for the course."""
    home = tmp_path_factory.mktemp("student")
    km = start_kernel(home, {"JPY_SESSION_NAME": str(home / "student.ipynb"), nbcheck.RUBRICS_ENV: str(course)})
    yield km, home / "student.ipynb"
    km.shutdown_kernel(now=True)


def run(km: KernelManager, cells: list[str], path: Path | None, saved: list[str] | None = None) -> nbformat.NotebookNode:
    """Save `saved` (default: `cells`) as the notebook at `path`, then execute `cells` in the kernel: as a
    student does, except that with `saved` the editor holds edits that were run but not saved."""
    if path is not None:
        nbformat.write(build_notebook(saved if saved is not None else cells), str(path))
    nb = build_notebook(cells)
    nbclient.NotebookClient(nb, km=km, timeout=120).execute()
    return nb


def answer_of(cell) -> tuple[str, str]:
    """The (HTML, plain text) the check cell shows."""
    data = next(o for o in cell.outputs if o.output_type == "execute_result")["data"]
    return data.get("text/html", ""), data["text/plain"]


def test_correct_exercise_scores_full_marks_and_names_the_saved_file(kernel):
    km, path = kernel
    nb = run(km, ["import grader", DOUBLE_OK, 'grader.check("double")'], path)
    html, text = answer_of(nb.cells[2])
    assert "Score: 3 / 3" in html and "Feedback: <code>double</code> &#8212; 3 / 3 points" in html
    assert "✓ double(3) == 6" in html
    saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    assert f"Graded {path}, saved {saved}" in text
    import hashlib

    assert f"(sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:12]})" in text
    assert "not in the saved file" not in text


def test_buggy_exercise_shows_expected_found_and_hint(kernel):
    km, path = kernel
    nb = run(km, ["import grader", DOUBLE_BUGGY, 'grader.check("double")'], path)
    html, text = answer_of(nb.cells[2])
    assert "Score: 0 / 3" in html
    assert re.search(r"double\(3\) is wrong.\s+Expected: 6\s+Found:\s+7", html)
    assert "Hint: Lecture: most operations work on tensors as on numbers." in html
    assert "✗ double" in text and "test_values  (0 / 2)" in text


def test_hanging_exercise_is_stopped_at_its_time_limit(kernel):
    km, path = kernel
    started = time.monotonic()
    nb = run(km, ["import grader", DOUBLE_HANGS, SQUARE_OK, 'grader.check_all()'], path)
    html, text = answer_of(nb.cells[3])
    assert f"it was still running after {TIME_LIMIT_S:g} s" in html
    assert "Score: 2 / 5" in html  # the hang costs `double` only
    assert "[timeout]" in text
    assert time.monotonic() - started < TIME_LIMIT_S + 30


def test_code_run_but_not_saved_is_reported(kernel):
    km, path = kernel
    nb = run(km, ["import grader", DOUBLE_OK, 'grader.check("double")'], path, saved=["import grader", DOUBLE_BUGGY, 'grader.check("double")'])
    html, text = answer_of(nb.cells[2])
    assert nbcheck.UNSAVED.format(id="double") in text
    assert "Score: 0 / 3" in html  # the saved (buggy) code is graded, and the answer says so
    assert "save with Ctrl+S, then check again" in html


def test_the_kernel_never_imports_torch_and_unknown_ids_get_one_line(kernel):
    km, path = kernel
    nb = run(km, ["import grader, sys", DOUBLE_OK, 'grader.check("dubble")', "'torch' in sys.modules"], path)
    html, text = answer_of(nb.cells[2])
    assert text.startswith("grader.check: no exercise 'dubble' in mini (did you mean 'double'?)")
    assert len(text.splitlines()) == 2 and "Traceback" not in text
    assert answer_of(nb.cells[3])[1] == "False"


def test_no_notebook_found_gives_the_fix(tmp_path, course):
    km = start_kernel(tmp_path, {nbcheck.RUBRICS_ENV: str(course), "JPY_SESSION_NAME": ""})
    try:
        nb = run(km, ["import grader", 'grader.check("double")',
                      f'grader.check("double", notebook={str(tmp_path / "mine.ipynb")!r})'], None)
    finally:
        km.shutdown_kernel(now=True)
    assert answer_of(nb.cells[1])[1] == (
        'grader.check: cannot tell which notebook this kernel belongs to; name the file: '
        'grader.check("double", notebook="my_notebook.ipynb")')
    assert answer_of(nb.cells[2])[1].startswith(f"grader.check: no notebook file {tmp_path / 'mine.ipynb'}")


def test_the_service_and_its_worker_end_with_the_kernel(tmp_path, course):
    path = tmp_path / "student.ipynb"
    km = start_kernel(tmp_path, {"JPY_SESSION_NAME": str(path), nbcheck.RUBRICS_ENV: str(course)})
    try:
        nb = run(km, ["import grader", DOUBLE_OK, 'grader.check("double")',
                      "from grader import notebook; notebook.service_pids()"], path)
        pids = eval(answer_of(nb.cells[3])[1])  # noqa: S307 - a list of ints printed by our own kernel
        assert len(pids) == 2 and all(_alive(p) for p in pids)  # the service and its worker
    finally:
        km.shutdown_kernel(now=True)  # SIGKILL: no atexit handler runs, only the parent-death signal helps
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


# -- the unsaved-edit rule, on its own ---------------------------------------------------------------


@pytest.mark.parametrize("ran, unsaved", [
    ([DOUBLE_OK], []),
    ([DOUBLE_BUGGY, DOUBLE_OK], []),  # run, edited, run again, saved: the older run is not "unsaved"
    ([DOUBLE_OK, DOUBLE_BUGGY], ["double"]),  # the kernel's latest run is not what was saved
    ([DOUBLE_OK + "\n\n   "], []),  # trailing blanks do not count
    (["x = 1", 'grader.check("double")'], []),
    ([SQUARE_OK], ["square"]),  # saved without any `square` cell
])
def test_unsaved_rule(ran, unsaved):
    saved = build_notebook(["import grader", DOUBLE_OK])
    assert unsaved_exercises(saved, ran, ["double", "square"]) == unsaved


def test_an_interrupted_check_leaves_the_service_usable(kernel):
    """Ctrl+C in the kernel during a check: the service is in its own session (the interrupt does not
    reach it), and the next check gets its own answer, not the interrupted one's."""
    km, path = kernel
    run(km, ["import grader", DOUBLE_OK, 'grader.check("double")'], path)  # the service is warm
    pids = run(km, ["from grader import notebook; notebook.service_pids()"], None).cells[0]
    run(km, ["import grader", DOUBLE_HANGS], path)
    kc = km.client()  # the check cell, run and interrupted as the notebook's ■ button does
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        request = kc.execute('grader.check("double")')
        time.sleep(1)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=30)
    finally:
        kc.stop_channels()
    assert reply["parent_header"]["msg_id"] == request and reply["content"]["ename"] == "KeyboardInterrupt"
    nb = run(km, ["import grader", DOUBLE_OK, 'grader.check("double")', "notebook.service_pids()"], path)
    assert "Score: 3 / 3" in answer_of(nb.cells[2])[0]
    assert answer_of(nb.cells[3])[1] == answer_of(pids)[1]  # the same, warm service
