"""`grader grade` on real class folders: layouts, every output, resume, kill -9, --jobs invariance."""

import csv
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DOUBLE_OK, MINI_RUBRICS, SQUARE_OK, exercise_notebook
from grader.discover import file_stem

SLOW_OK = "import time\ntime.sleep(0.4)\n" + DOUBLE_OK


def make_class(root: Path, n_good: int = 3) -> Path:
    subs = root / "subs"
    for i in range(n_good):
        exercise_notebook(subs / f"good{i}.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK})
    exercise_notebook(subs / "buggy.ipynb", {"double": "def double(x):\n    return x", "square": SQUARE_OK})
    exercise_notebook(subs / "hangs" / "work.ipynb", {"double": "while True: pass", "square": SQUARE_OK})
    exercise_notebook(subs / "two" / "a.ipynb", {"double": DOUBLE_OK})
    exercise_notebook(subs / "two" / "b.ipynb", {"double": DOUBLE_OK})
    (subs / "empty").mkdir()
    (subs / "broken.ipynb").write_text("{ not json")
    return subs


def grade_cli(subs, out, *extra, rubrics=MINI_RUBRICS, **kw):
    return subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out),
                           "--rubrics", str(rubrics), *extra], capture_output=True, text=True, timeout=600, **kw)


def latest(out):
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        return dict(db.execute("SELECT student, score FROM grades WHERE id IN (SELECT MAX(id) FROM grades GROUP BY student)"))


def rows(out):
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        try:
            return db.execute("SELECT student FROM grades ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # the grader has created the file but not yet its table
            return []


@pytest.fixture(scope="module")
def rubrics(tmp_path_factory):
    """A private copy: the resume fingerprint covers the rubric folder."""
    dst = tmp_path_factory.mktemp("rubrics") / "rubrics"
    shutil.copytree(MINI_RUBRICS, dst)
    return dst


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, rubrics):
    root = tmp_path_factory.mktemp("class")
    subs = make_class(root)
    r = grade_cli(subs, root / "out", "--jobs", "2", rubrics=rubrics)
    assert r.returncode == 0, r.stderr
    return subs, root / "out", r


def test_every_output_is_written(graded_class):
    subs, out, r = graded_class
    students = ["broken", "buggy", "empty", "good0", "good1", "good2", "hangs", "two"]
    stems = sorted(file_stem(s) for s in students)  # readable, and distinct where names are not (test_class_folder)
    assert stems[0].startswith("broken-") and json.loads((out / "index.json").read_text())["broken"]["results"] == \
        f"results/{file_stem('broken')}.json"
    assert sorted(p.stem for p in (out / "results").glob("*.json")) == stems
    assert sorted(p.name for p in (out / "gradescope").iterdir()) == stems
    assert sorted(p.stem for p in (out / "feedback").glob("*.html")) == stems
    assert "9 graded" not in r.stdout and "8 submissions: 5 graded, 0 unchanged" in r.stdout and "3 unusable" in r.stdout

    table = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open())}
    assert table["good0"]["total"] == "5" and table["good0"]["double"] == "3"
    assert table["buggy"]["double"] == "0" and table["buggy"]["square"] == "2"
    assert table["hangs"]["total"] == "2" and table["two"]["status"] == "unusable"

    hangs = json.loads((out / "results" / f"{file_stem('hangs')}.json").read_text())
    assert hangs["schema"] == 1 and hangs["exercises"][0]["status"] == "timeout"
    two = json.loads((out / "results" / f"{file_stem('two')}.json").read_text())
    assert "2 notebooks (a.ipynb, b.ipynb)" in two["error"]
    assert "no .ipynb notebook" in json.loads((out / "results" / f"{file_stem('empty')}.json").read_text())["error"]
    assert "not valid JSON" in json.loads((out / "results" / f"{file_stem('broken')}.json").read_text())["error"]

    gs = json.loads((out / "gradescope" / file_stem("buggy") / "results.json").read_text())
    assert gs["score"] == 2 and {"name", "score", "max_score", "output", "visibility"} <= set(gs["tests"][0])
    failed = [t for t in gs["tests"] if t["score"] < t["max_score"]]
    assert failed and "double(3) is wrong" in failed[0]["output"]

    page = (out / "feedback" / f"{file_stem('buggy')}.html").read_text()
    assert "Feedback: <code>double</code> — 0 / 3 points" in page and "&lt;p&gt;" not in page
    assert "double(3) is wrong" in page and '<span class="nf">double</span>' in page  # the student's code

    summary = (out / "summary.html").read_text()
    assert "<svg" in summary and "Most common failed checks" in summary and "hangs" in summary


def test_feedback_page_sanitises_student_html(tmp_path, rubrics):
    subs = tmp_path / "subs"
    # Their exception's message reaches the feedback text too.
    raising = "def double(x):\n    raise ValueError('see [the docs](javascript:alert(2))')\n"
    nb = exercise_notebook(subs / "x.ipynb", {"double": raising})
    import nbformat

    n = nbformat.read(str(nb), as_version=4)
    n.cells.append(nbformat.v4.new_markdown_cell("<script>alert('pwned')</script><img src=x onerror=alert(1)>"))
    n.cells.append(nbformat.v4.new_markdown_cell("[click](javascript:alert(1)) ![i](JavaScript:alert(3)) [ok](https://pytorch.org)"))
    nbformat.write(n, str(nb))
    assert grade_cli(subs, tmp_path / "out", rubrics=rubrics).returncode == 0
    page = (tmp_path / "out" / "feedback" / f"{file_stem('x')}.html").read_text()
    assert "<script>alert('pwned')" not in page and "<img src=x onerror" not in page
    assert "&lt;script&gt;alert('pwned')" in page  # shown as text
    assert not re.search(r"(?i)(href|src)\s*=\s*[\"']?\s*javascript:", page)  # no live script link
    assert '<a href="#harmful-link">click</a>' in page and '<a href="https://pytorch.org">ok</a>' in page
    assert "the docs" in page


def test_unchanged_submissions_are_not_graded_again_and_regrade_keeps_history(graded_class, rubrics):
    subs, out, _ = graded_class
    before = len(rows(out))
    r = grade_cli(subs, out, rubrics=rubrics)
    assert "0 graded, 8 unchanged" in r.stdout and len(rows(out)) == before
    exercise_notebook(subs / "buggy.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK})  # resubmitted, fixed
    r = grade_cli(subs, out, rubrics=rubrics)
    assert "1 graded, 7 unchanged" in r.stdout
    assert latest(out)["buggy"] == 5 and [s for (s,) in rows(out)].count("buggy") == 2
    r = grade_cli(subs, out, "--force", rubrics=rubrics)
    assert "5 graded, 0 unchanged" in r.stdout


def test_kill_9_mid_batch_then_resume_grades_each_exactly_once(tmp_path, rubrics):
    subs = tmp_path / "subs"
    n = 10
    for i in range(n):
        exercise_notebook(subs / f"s{i:02d}.ipynb", {"double": SLOW_OK, "square": SQUARE_OK})
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out), "--rubrics", str(rubrics), "--jobs", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (out / "gradebook.sqlite").exists() and 2 <= len(rows(out)) < n:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(rows(out))
    assert 2 <= done_before < n, "the batch should have been killed midway"
    # A kill inside write_atomic leaves its temporary file; plant one, in case this kill missed every write.
    (out / "results" / ".s09.json.k1ll3d_x.tmp").write_text('{"half": ')
    r = grade_cli(subs, out, rubrics=rubrics)
    assert r.returncode == 0
    assert f"{n - done_before} graded, {done_before} unchanged" in r.stdout
    students = [s for (s,) in rows(out)]
    assert sorted(students) == [f"s{i:02d}" for i in range(n)]  # exactly once each in the gradebook
    assert len(list((out / "results").glob("*.json"))) == n
    assert len(list(csv.DictReader((out / "grades.csv").open()))) == n
    assert not list(out.rglob("*.tmp"))  # the resumed run, holding --out, removed what the killed one left


def test_holding_out_removes_only_the_temporary_files_a_killed_run_left(tmp_path):
    from grader.batch import lock_out

    out = tmp_path / "out"
    stale = [out / "results" / ".alice.json.abc_1234.tmp", out / "gradescope" / "alice" / ".results.json.zz9_aa00.tmp",
             out / ".grades.csv.q2w3e4r5.tmp"]
    kept = [out / "results" / "alice.json", out / "notes.tmp", out / "results" / ".alice.json.tmp",
            out / "feedback" / ".alice.html.TOOLONG99.tmp"]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    lock = lock_out(out)
    try:
        assert [p for p in stale if p.exists()] == []
        assert [p for p in kept if not p.exists()] == []
    finally:
        lock.close()


def test_jobs_1_and_2_give_identical_scores(tmp_path, rubrics):
    subs = tmp_path / "subs"
    exercise_notebook(subs / "a.ipynb", {"double": DOUBLE_OK, "square": "def square(x):\n    return x * 3"})
    exercise_notebook(subs / "b.ipynb", {"double": "def double(x):\n    return x + x", "square": SQUARE_OK})
    exercise_notebook(subs / "c.ipynb", {"square": SQUARE_OK})
    results = []
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        assert grade_cli(subs, out, "--jobs", jobs, rubrics=rubrics).returncode == 0
        results.append({p.stem: [(e["id"], e["score"], [(c["id"], c["status"], c["message"]) for c in e["checks"]])
                                 for e in json.loads(p.read_text())["exercises"]]
                        for p in (out / "results").glob("*.json")})
    assert results[0] == results[1]


def _huge_page_collapse_available() -> bool:
    try:
        enabled = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False
    release = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
    return "[never]" not in enabled and release >= (6, 1)  # MADV_COLLAPSE


def test_a_worker_serving_a_batch_moves_its_memory_to_huge_pages(mini_assignment):
    # What makes each run's fork cheap: the C heap from the start, the rest after a few runs.
    from grader.pool import Worker
    from grader.hugepages import COLLAPSE_AFTER_RUNS

    if not _huge_page_collapse_available():
        pytest.skip("this kernel cannot collapse memory into transparent huge pages")
    worker = Worker([str(e.rubric) for e in mini_assignment.exercises.values()])
    try:
        worker.wait_ready()
        assert "glibc.malloc.hugetlb=1" in Path(f"/proc/{worker.proc.pid}/environ").read_bytes().decode()

        def huge_mb() -> int:
            smaps = Path(f"/proc/{worker.proc.pid}/smaps_rollup").read_text()
            return int(re.search(r"AnonHugePages:\s+(\d+)", smaps).group(1)) // 1024

        before = huge_mb()
        for _ in range(COLLAPSE_AFTER_RUNS + 1):  # the worker collapses after answering run 8, before run 9
            assert worker.run({"collect_only": True, "timeout_s": 60}).collected
        assert huge_mb() > before + 20  # Python's object arenas joined the heap (tens of MB)
    finally:
        worker.kill()
