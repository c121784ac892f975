"""`grader grade --executor dask` on real Dask clusters: same results as local, GPU resources only
where workers declare them, a SIGKILLed worker costs nothing, hostile code leaves workers alive."""

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DOUBLE_OK, MINI_RUBRICS, SQUARE_OK, exercise_notebook
from grader import SubmissionResult, load_assignment
from grader.batch import Entry, Outputs, discover, file_stem, grade_batch, local_executor

distributed = pytest.importorskip("distributed")
from grader.dask_tasks import NOT_SHARED, grade_task  # noqa: E402
from grader.distributed import ALLOWED_FAILURES, GPU, LOST, DaskExecutor, Part, dask_executor  # noqa: E402

SLOW_OK = "import time\ntime.sleep(0.4)\n" + DOUBLE_OK
HANG = "while True:\n    pass"
MEMORY_BOMB = "x = bytearray(10**11)\n" + DOUBLE_OK
# Grows by 50 MB a second: stays inside the 1 GB memory limit until the time limit (mini.yml) stops it.
SLOW_GROWTH = "import time\nx = []\nwhile True:\n    x.append(bytearray(10**6))\n    time.sleep(0.02)"


@pytest.fixture(scope="module")
def mini():
    return load_assignment(MINI_RUBRICS)


def comparable(result: SubmissionResult) -> dict:
    """A result without its timings."""
    return {
        "submission": result.submission, "sha256": result.sha256, "score": result.score,
        "max_score": result.max_score, "devices": result.devices, "notes": result.notes,
        "exercises": [(e.id, e.score, e.max_score, e.status, e.error, e.notes,
                       [(c.id, c.name, c.status, c.score, c.max_score, c.message) for c in e.checks])
                      for e in result.exercises],
    }


def run(executor, entries) -> dict:
    """student -> comparable result, or the problem of an unusable file; each student once."""
    got = {}
    for entry, result, problem in executor(entries):
        assert entry.student not in got, f"{entry.student} yielded twice"
        got[entry.student] = problem if result is None else comparable(result)
    assert sorted(got) == sorted(e.student for e in entries)
    return got


def entries_of(folder: Path) -> list[Entry]:
    return [e for e in discover(folder) if e.problem is None]


@pytest.fixture(scope="module")
def dask_local(mini):
    """`dask_executor` with no scheduler: its own LocalCluster of 2 one-thread worker processes,
    shared by this module's tests (graders warm once per worker); the closer shuts it down."""
    executor, closer = dask_executor(mini, 2, None, ())
    yield executor
    closer()
    assert executor.client.status == "closed"


@pytest.fixture
def client(dask_local):
    client = dask_local.client
    client.wait_for_workers(2, timeout=120)
    return client


def worker_pids(client) -> dict[str, int]:
    return client.run(os.getpid)


def test_dask_gives_the_local_executors_results(tmp_path, dask_local, mini_grader):
    subs = tmp_path / "subs"
    exercise_notebook(subs / "good.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK})
    exercise_notebook(subs / "buggy.ipynb", {"double": "def double(x):\n    return x", "square": SQUARE_OK})
    exercise_notebook(subs / "hangs.ipynb", {"double": HANG, "square": SQUARE_OK})
    exercise_notebook(subs / "missing.ipynb", {"square": "def square(x):\n    return x * 3"})
    exercise_notebook(subs / "syntax.ipynb", {"double": "def double(x) return 2 * x", "square": SQUARE_OK})
    (subs / "broken.ipynb").write_text("{ not json")
    entries = entries_of(subs)
    assert len(entries) == 6
    workers = dask_local.client.scheduler_info()["workers"]
    assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers.values())
    allowed = dask_local.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
    assert allowed == ALLOWED_FAILURES

    via_dask = run(dask_local, entries)
    via_local = run(local_executor(mini_grader), entries)

    assert via_dask == via_local
    assert dask_local.requests and all(part == Part(None, None) for _, part in dask_local.requests)
    assert via_dask["good"]["score"] == 5 and via_dask["buggy"]["score"] == 2
    assert [e[3] for e in via_dask["hangs"]["exercises"]] == ["timeout", "graded"]
    assert via_dask["syntax"]["exercises"][0][3] == "error"
    assert via_dask["broken"].startswith(str(subs / "broken.ipynb")) and "not valid JSON" in via_dask["broken"]
    # No worker declares a GPU: nothing asks for one, and the GPU check is skipped, not waited for.
    assert dask_local.gpu_workers() == [] and dask_local.plan() == [Part(None, None)]
    assert ("test_gpu", "skipped") in [(c[0], c[2]) for c in via_dask["good"]["exercises"][1][6]]


async def _declare(gpus, dask_worker=None):
    await dask_worker.set_resources(GPU=gpus)  # what `dask worker --resources GPU=1` declares at start


def test_gpu_exercises_ask_for_a_gpu_worker_where_one_is_declared(tmp_path, client, mini):
    """One worker declares a GPU, as on a GPU node: `square` (a check marked needs_cuda) goes there
    only; `double` runs anywhere. No CUDA here, so the GPU check is still `skipped`."""
    for name in ("a", "b"):
        exercise_notebook(tmp_path / "subs" / f"{name}.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK})
    gpu_addr = sorted(worker_pids(client))[0]
    client.run(_declare, 1, workers=[gpu_addr])
    try:
        executor = DaskExecutor(client, mini)
        assert executor.gpu_workers() == [gpu_addr]
        with distributed.get_task_stream(client) as stream:
            got = run(executor, entries_of(tmp_path / "subs"))
    finally:
        client.run(_declare, 0, workers=[gpu_addr])
    assert executor.plan() == [Part(("double",), None), Part(("square",), {GPU: 1})]
    assert sorted((s, p.exercises, p.resources) for s, p in executor.requests) == [
        (s, ex, res) for s in "ab" for ex, res in ((("double",), None), (("square",), {GPU: 1}))]
    ran_on = {t["key"]: t["worker"] for t in stream.data if str(t["key"]).startswith("grade-")}
    square_tasks = [k for k in ran_on if k.split("-")[2] == "1"]  # grade-STUDENT-PART-BATCH
    assert len(square_tasks) == 2 and {ran_on[k] for k in square_tasks} == {gpu_addr}
    for name in "ab":
        assert got[name]["score"] == 5 and [e[3] for e in got[name]["exercises"]] == ["graded", "graded"]
        assert ("test_gpu", "skipped") in [(c[0], c[2]) for c in got[name]["exercises"][1][6]]
    assert DaskExecutor(client, mini).gpu_workers() == []


def test_gpu_tasks_do_not_wait_for_ever_once_the_gpu_workers_are_gone(tmp_path, client, mini):
    exercise_notebook(tmp_path / "subs" / "a.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK})
    gpu_addr = sorted(worker_pids(client))[0]
    client.run(_declare, 1, workers=[gpu_addr])
    try:
        executor = DaskExecutor(client, mini)
        executor.gpu_watch_s = 0.5
        assert executor.plan()[1] == Part(("square",), {GPU: 1})
    finally:
        client.run(_declare, 0, workers=[gpu_addr])  # the GPU node's job ended before the batch ran
    got = run(executor, entries_of(tmp_path / "subs"))
    assert got["a"]["score"] == 5
    assert executor.requests[-1] == ("a", Part(("square",), None))  # rerouted to any worker


def test_a_worker_killed_mid_batch_costs_nothing(tmp_path, client, mini):
    n = 5
    for i in range(n):  # one exercise each (the other is missing: nothing to run), so a job per notebook
        exercise_notebook(tmp_path / "subs" / f"s{i}.ipynb", {"double": SLOW_OK})
    executor = DaskExecutor(client, mini)
    pids = worker_pids(client)
    killed = {}

    def killing(entries):
        for i, item in enumerate(executor(entries)):
            if i == 0:  # one result in, the rest pending: kill a worker that is grading something
                busy = {addr: keys for addr, keys in client.processing().items() if keys}
                killed["addr"], killed["tasks"] = next(iter(busy.items()))
                os.kill(pids[killed["addr"]], signal.SIGKILL)
            yield item

    outputs = Outputs(tmp_path / "out", mini)
    try:
        summary = grade_batch(discover(tmp_path / "subs"), outputs, killing, stream=io.StringIO())
    finally:
        outputs.close()
    assert killed["tasks"] and summary.graded == n  # it died while grading
    with sqlite3.connect(tmp_path / "out" / "gradebook.sqlite") as db:
        students = sorted(s for (s,) in db.execute("SELECT student FROM grades"))
    assert students == [f"s{i}" for i in range(n)]  # exactly once each
    results = sorted((tmp_path / "out" / "results").glob("*.json"))
    assert [p.stem for p in results] == sorted(file_stem(s) for s in students)
    assert all(json.loads(p.read_text())["score"] == 3 for p in results)
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it
    assert pids[killed["addr"]] not in worker_pids(client).values()
    assert len(worker_pids(client)) == 2


def test_a_zip_of_submissions_is_graded_on_the_cluster(tmp_path, client, mini):
    import zipfile

    good = exercise_notebook(tmp_path / "good.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK}).read_bytes()
    with zipfile.ZipFile(tmp_path / "class.zip", "w") as z:
        z.writestr("Zoë.ipynb", good)
        z.writestr("Émile/work.ipynb", good)
    got = run(DaskExecutor(client, mini), entries_of(tmp_path / "class.zip"))
    assert got["Zoë"]["score"] == 5 and got["Émile"]["score"] == 5


def test_hostile_code_does_not_take_a_worker_down(tmp_path, client, mini):
    subs = tmp_path / "subs"
    exercise_notebook(subs / "hangs.ipynb", {"double": HANG})
    exercise_notebook(subs / "bomb.ipynb", {"double": MEMORY_BOMB})
    exercise_notebook(subs / "grows.ipynb", {"double": SLOW_GROWTH})
    exercise_notebook(subs / "good.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK})
    before = worker_pids(client)
    got = run(DaskExecutor(client, mini), entries_of(subs))
    assert worker_pids(client) == before  # the same worker processes graded all of it
    assert got["good"]["score"] == 5
    status = {name: got[name]["exercises"][0][3] for name in ("hangs", "bomb", "grows")}
    assert all(got[name]["score"] == 0 for name in status)
    assert status["hangs"] == "timeout" and status["grows"] in ("timeout", "crashed"), status
    bomb = got["bomb"]["exercises"][0]
    assert status["bomb"] in ("error", "crashed") and "MemoryError" in (bomb[4] or ""), bomb


def test_cli_grades_on_a_running_scheduler_and_resumes(tmp_path, client):
    subs, out = tmp_path / "subs", tmp_path / "out"
    exercise_notebook(subs / "good.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK})
    exercise_notebook(subs / "buggy.ipynb", {"double": "def double(x):\n    return x"})
    (subs / "broken.ipynb").write_text("{ not json")
    cmd = [sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out), "--rubrics", str(MINI_RUBRICS),
           "--executor", "dask", "--scheduler", client.scheduler.address]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "3 submissions: 2 graded, 0 unchanged" in r.stdout and "1 unusable" in r.stdout
    rows = (out / "grades.csv").read_text().splitlines()
    assert any(row.startswith("good,3,2,5,5,graded") for row in rows)
    assert any(row.startswith("buggy,0,0,0,5,graded") for row in rows)
    assert "not valid JSON" in json.loads((out / "results" / f"{file_stem('broken')}.json").read_text())["error"]
    assert len(client.scheduler_info()["workers"]) == 2  # the CLI only disconnected

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "0 graded, 3 unchanged" in r.stdout, r.stdout + r.stderr


def test_a_submission_whose_workers_keep_dying_is_recorded_as_crashed(tmp_path, client, mini):
    """What the executor yields for a KilledWorker (the scheduler gave up after ALLOWED_FAILURES
    deaths): a result, every exercise `crashed` with the reason, never a missing row."""
    path = exercise_notebook(tmp_path / "x.ipynb", {"double": DOUBLE_OK})
    executor = DaskExecutor(client, mini)
    reason = LOST.format(n=ALLOWED_FAILURES + 1, worker="tcp://10.0.0.9:4000")
    entry, result, problem = executor._combine(Entry("x", path), [{"lost": reason}], [Part(None, None)])
    assert problem is None and result.score == 0 and result.submission == str(path)
    double, square = result.exercises
    assert double.status == "crashed" and reason in double.error and double.max_score == 3
    assert square.status == "missing"


def test_a_worker_that_cannot_see_the_submission_stops_the_batch_rather_than_blame_the_student(tmp_path):
    answer = grade_task({"rubrics": str(MINI_RUBRICS), "fingerprint": "x", "hidden": []},
                        str(tmp_path / "elsewhere.ipynb"), None)
    assert answer["error"] == "GraderCrash" and "cannot see" in answer["message"]
    assert NOT_SHARED.split("{")[0] in answer["message"]
