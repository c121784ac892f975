"""No grader folder or process outlives a command, even when a worker or the grader itself is
killed with -9; one `grader grade` per --out at a time."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DOUBLE_OK, MINI_RUBRICS, SQUARE_OK, exercise_notebook

SLOW_OK = "import time\ntime.sleep(0.5)\n" + DOUBLE_OK


def ours(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("torchgrade-*"))


def cli(tmp: Path, *args, **kw):
    """The grader with its own temp directory, so that only its folders are counted."""
    return subprocess.Popen([sys.executable, "-m", "grader", *map(str, args), "--rubrics", str(MINI_RUBRICS)],
                            env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


@pytest.fixture
def tmp(tmp_path):
    d = tmp_path / "tmp"
    d.mkdir()
    return d


def graded_rows(out: Path) -> int:
    try:
        with sqlite3.connect(out / "gradebook.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM grades").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def wait_for(condition, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def workers_of(tmp: Path) -> list[int]:
    """Pids of grading workers started with this temp directory."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if b"grader.worker" in (proc / "cmdline").read_bytes() and \
                    f"TMPDIR={tmp}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


def test_check_and_grade_leave_no_folder_behind(tmp, tmp_path):
    nb = exercise_notebook(tmp_path / "subs" / "a.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK})
    exercise_notebook(tmp_path / "subs" / "b.ipynb", {"double": DOUBLE_OK})
    p = cli(tmp, "check", nb)
    p.communicate(timeout=300)
    assert p.returncode == 0 and ours(tmp) == []
    p = cli(tmp, "grade", tmp_path / "subs", "--out", tmp_path / "out", "--jobs", "2")
    p.communicate(timeout=300)
    assert p.returncode == 0 and ours(tmp) == []
    assert workers_of(tmp) == []


def test_a_worker_killed_mid_batch_leaves_no_folder(tmp, tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    for i in range(6):
        exercise_notebook(subs / f"s{i}.ipynb", {"double": SLOW_OK, "square": SQUARE_OK})
    p = cli(tmp, "grade", subs, "--out", out, "--jobs", "2")
    try:
        assert wait_for(lambda: graded_rows(out) >= 1 and len(workers_of(tmp)) == 2)
        os.kill(workers_of(tmp)[0], signal.SIGKILL)
        stdout, stderr = p.communicate(timeout=300)
    finally:
        p.kill()
    assert p.returncode == 0, stderr
    assert "6 submissions" in stdout
    assert ours(tmp) == [] and workers_of(tmp) == []


def test_a_killed_grader_s_folders_are_swept_by_the_next_run(tmp, tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    for i in range(6):
        exercise_notebook(subs / f"s{i}.ipynb", {"double": SLOW_OK})
    p = cli(tmp, "grade", subs, "--out", out, "--jobs", "2", start_new_session=True)
    assert wait_for(lambda: graded_rows(out) >= 1)
    os.killpg(p.pid, signal.SIGKILL)  # the grader and its workers
    p.communicate()
    assert wait_for(lambda: not workers_of(tmp), 30)
    assert any(n.startswith("torchgrade-worker-") for n in ours(tmp))  # what a killed grader leaves
    p = cli(tmp, "check", subs / "s0.ipynb")
    p.communicate(timeout=300)
    assert ours(tmp) == []


def test_a_second_grade_on_the_same_out_is_refused(tmp, tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    for i in range(4):
        exercise_notebook(subs / f"s{i}.ipynb", {"double": SLOW_OK})
    first = cli(tmp, "grade", subs, "--out", out, "--jobs", "1")
    try:
        assert wait_for(lambda: (out / "gradebook.sqlite").exists())
        second = cli(tmp, "grade", subs, "--out", out)
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 2
        assert f"another `grader grade` (pid {first.pid}) is writing this folder" in stderr
        first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0
    third = cli(tmp, "grade", subs, "--out", out)  # the lock went with the first
    stdout, _ = third.communicate(timeout=300)
    assert third.returncode == 0 and "4 unchanged" in stdout
