"""Timing verdicts (issue 12): the clock inside the sandbox, the workers' own environment, every timed
call verified, thresholds calibrated on the grading machine, the measurement in the feedback."""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

import pytest
import yaml

from conftest import MINI_RUBRICS, REPO, VARIANTS, exercise_notebook
from grader import Grader, load_assignment
from grader.pool import OWNED_PREFIXES, WorkerPool
from grader.timing import NOT_SEPARABLE, ThresholdPolicy, charged_cpu, cpu_sample

CLOCK_RUBRICS = Path(__file__).resolve().parent / "data" / "clock" / "rubrics"
SPIN = "def spin(n):\n    s = 0\n    for i in range(n):\n        s += i * i\n    return s"
SPEED = "test_faster_than_pdist[cpu]"


def variant(name: str) -> str:
    return (VARIANTS / "beat_pdist" / f"{name}.py").read_text()


def numbers(message: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", message))


def speed_check(result):
    return {c.id: c for c in result.exercise("beat_pdist").checks}[SPEED]


# -- 1. the clock ------------------------------------------------------------------------------


def test_the_clock_resolves_the_work_inside_a_sandboxed_run(tmp_path):
    """Under RLIMIT_CPU process_time steps by scheduler ticks (4 ms here); the speed check's clock
    still resolves well under 0.1 ms, so 1 ms calls measure as 1 ms, and their ratio as about 2."""
    nb = exercise_notebook(tmp_path / "spin.ipynb", {"spin": SPIN})
    with Grader(load_assignment(CLOCK_RUBRICS), jobs=1) as g:
        checks = {c.id: c for c in g.grade(nb).exercise("spin").checks}
    assert all(c.status == "passed" for c in checks.values()), checks
    limit = numbers(checks["test_cpu_limit_is_armed"].message)
    clock = numbers(checks["test_clock_resolves"].message)
    assert int(limit["rlimit_cpu"]) > 0
    resolution = float(clock["resolution_ms"])
    times = [float(t) for t in clock["student_ms"].split(",")]
    why = f"process_time stepped {limit['process_time_step_ms']} ms in the run; our clock {clock}"
    assert resolution < 0.1, why
    # A clock that snaps to 4 ms ticks gives two or three distinct values (0, 4, 8) for 1.1 ms calls; ours
    # gives nearly one per call (two may agree to 0.1 us by chance), and never 0.
    assert len(set(times)) > len(times) // 2 and min(times) > 0, why
    assert 1.5 < float(clock["speedup"]) < 2.7, why  # spin(2n) / spin(n), not 1x or 4x


def test_threads_a_call_starts_are_charged_to_it():
    """A submission gains nothing by moving its work to a thread: the other threads' CPU counts."""

    def burn(seconds):
        start = cpu_sample()[0]
        while cpu_sample()[0] - start < seconds:
            pass

    def in_a_thread():
        t = threading.Thread(target=burn, args=(0.03,))
        t.start()
        t.join()  # the thread has ended when the call returns: the process clock keeps its time

    start = cpu_sample()
    in_a_thread()
    end = cpu_sample()
    own = end[0] - start[0]
    charged = charged_cpu(start, end)
    assert charged > 0.025 and own < 0.2 * charged, (own, charged)  # the thread burnt 0.03 s by its own clock


def test_threshold_policy_from_the_yaml():
    assert ThresholdPolicy.from_config(1.15, "x").threshold(None) == 1.15
    policy = ThresholdPolicy.from_config({"least": 1.2, "share": 0.5, "separable": 1.3}, "x")
    assert policy.threshold(4.0) == 2.0 and policy.threshold(1.21) == 1.2
    assert policy.skip_reason({"speedup": 1.25}, "pdist", "cpu").startswith("this machine cannot tell")
    assert policy.skip_reason({"speedup": 2.0}, "pdist", "cpu") is None
    assert "could not be measured" in policy.skip_reason({"error": "boom"}, "pdist", "cpu")
    with pytest.raises(ValueError, match=r"x: unknown key 'shar'"):
        ThresholdPolicy.from_config({"shar": 0.5}, "x")
    with pytest.raises(ValueError, match=r"x.share: at most 1"):
        ThresholdPolicy.from_config({"share": 2}, "x")


# -- 2. the environment ------------------------------------------------------------------------


def owned_part(worker) -> dict[str, str]:
    """The allocator and thread variables a grading worker was started with."""
    worker.wait_ready()
    raw = Path(f"/proc/{worker.proc.pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    return {k: v for k, v in env.items() if k.startswith(OWNED_PREFIXES)}


def test_workers_own_their_environment_and_verdict(assignment, tmp_path, monkeypatch):
    """A Dask nanny's MALLOC_TRIM_THRESHOLD_=65536 (and a shell's thread and allocator settings) never
    reach a worker: its allocator and thread variables, and a correct near-threshold verdict, are the same."""
    nb = exercise_notebook(tmp_path / "cdist.ipynb", {"beat_pdist": variant("ok_cdist")})
    with WorkerPool(1, [str(MINI_RUBRICS / "test_double.py")]) as pool:
        pool.run({"collect_only": True, "timeout_s": 60})  # a worker starts with its first job
        quiet = owned_part(pool._workers[0])
    with Grader(assignment, jobs=1) as g:
        plain = speed_check(g.grade(nb, only="beat_pdist"))
    for name, value in {"MALLOC_TRIM_THRESHOLD_": "65536", "MALLOC_ARENA_MAX": "1", "OMP_NUM_THREADS": "4",
                        "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=65536", "KMP_AFFINITY": "compact"}.items():
        monkeypatch.setenv(name, value)
    with Grader(assignment, jobs=1) as g:
        g.catalog()
        assert owned_part(g.pool._workers[0]) == quiet
        nanny = speed_check(g.grade(nb, only="beat_pdist"))
    assert quiet == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "OPENBLAS_NUM_THREADS": "1"}
    assert (plain.status, nanny.status) == ("passed", "passed"), (plain.message, nanny.message)


def test_torch_threads_reports_what_the_run_used(mini_grader, tmp_path):
    nb = exercise_notebook(tmp_path / "threads.ipynb", {"double": "torch.set_num_threads(3)\ndef double(x):\n"
                                                                  "    return 2 * x"})
    assert mini_grader.grade(nb).torch_threads == 3
    nb = exercise_notebook(tmp_path / "plain.ipynb", {"double": "def double(x):\n    return 2 * x"})
    assert mini_grader.grade(nb).torch_threads == 1


def test_a_submission_that_raises_the_thread_count_is_timed_with_the_configured_one(grader, tmp_path):
    """Its own calls may use more threads (their CPU counts), but the reference never gets them,
    and the result reports the count the run was left with."""
    nb = exercise_notebook(tmp_path / "threads.ipynb",
                           {"beat_pdist": "torch.set_num_threads(2)\n" + variant("ok_full_matrix_minus_diag")})
    result = grader.grade(nb, only="beat_pdist")
    assert result.torch_threads == 2
    check = speed_check(result)
    assert check.status == "passed" and "on cpu, 1 torch thread," in check.message, check.message


# -- 3. every timed call is an answer ----------------------------------------------------------


def test_a_gradient_right_only_on_the_first_call_of_a_size_fails(grader, tmp_path):
    nb = exercise_notebook(tmp_path / "cheat.ipynb", {"beat_pdist": variant("grad_right_first_call_only")})
    checks = {c.id: c for c in grader.grade(nb, only="beat_pdist").exercise("beat_pdist").checks}
    assert {k for k, c in checks.items() if c.status not in ("passed", "skipped")} == {SPEED}
    assert "the gradient of lunif_fast(x) for a fresh x of shape (512, 500)" in checks[SPEED].message
    assert "every call's gradient is checked" in checks[SPEED].message


# -- 4./5. calibrated thresholds, and the measurement in the feedback -----------------------------


def test_a_pass_shows_ratio_threshold_reference_clock_and_device(assignment, tmp_path):
    nb = exercise_notebook(tmp_path / "triu.ipynb", {"beat_pdist": variant("ok_triu_mask")})
    with Grader(assignment, jobs=1) as one_worker:
        first, second = (speed_check(one_worker.grade(nb, only="beat_pdist")) for _ in range(2))
    assert first.status == "passed"
    for words in (r"lunif_fast: [\d.]+× the speed of the torch.pdist version", r"on cpu, 1 torch thread",
                  r"threshold [\d.]+× \(the larger of 1.2× and the reference solution's speed-up to the power 0.5; "
                  r"the reference solution reached [\d.]+× here\)", r"by CPU time of the calling thread",
                  r"resolving [\d.]+ µs"):
        assert re.search(words, first.message), (words, first.message)
    # Calibrated once per worker, not per student: a second grading judges against the same measurement.
    reached = re.compile(r"reached ([\d.]+)× here")
    assert reached.search(first.message).group(1) == reached.search(second.message).group(1)


def test_a_machine_that_cannot_tell_the_solution_from_pdist_skips_the_check(tmp_path):
    """Calibrated on a 'machine' where the reference solution must reach 100x: skipped, with the reason."""
    root = tmp_path / "course"
    shutil.copytree(REPO / "rubrics", root / "rubrics")
    shutil.copytree(REPO / "solutions", root / "solutions")
    config = root / "rubrics" / "pytorch_intro.yml"
    raw = yaml.safe_load(config.read_text())
    raw["exercises"] = {"beat_pdist": raw["exercises"]["beat_pdist"]}
    raw["exercises"]["beat_pdist"]["thresholds"]["cpu"]["separable"] = 100
    config.write_text(yaml.safe_dump(raw, allow_unicode=True))
    for other in (root / "rubrics").glob("test_*.py"):
        if other.name != "test_beat_pdist.py":
            other.unlink()
    nb = exercise_notebook(tmp_path / "pdist.ipynb", {"beat_pdist": variant("calls_torch_pdist")})
    with Grader(load_assignment(root / "rubrics"), jobs=1) as g:
        check = speed_check(g.grade(nb))
    assert check.status == "skipped" and check.max_score == 0
    assert check.message.startswith(NOT_SEPARABLE.split("{")[0]), check.message
    assert "at least 100× is needed" in check.message


def _grading_workers_environment() -> list[dict[str, str]]:
    """On a Dask worker: the allocator and thread variables of its Grader's grading workers."""
    from grader.dask_tasks import _graders

    return [owned_part(w) for held in _graders.values() for w in held.grader.pool._workers]


def test_dask_gives_the_local_verdict_on_a_near_threshold_solution(assignment, grader, tmp_path):
    """The Dask nanny sets MALLOC_TRIM_THRESHOLD_=65536 on its worker; the grading workers under it
    still have their own environment, and a correct near-threshold solution (cdist) passes there too."""
    pytest.importorskip("distributed")
    from grader.batch import discover
    from grader.distributed import dask_executor

    subs = tmp_path / "subs"
    exercise_notebook(subs / "cdist.ipynb", {"beat_pdist": variant("ok_cdist")})
    exercise_notebook(subs / "pdist.ipynb", {"beat_pdist": variant("calls_torch_pdist")})
    entries = [e for e in discover(subs) if e.problem is None]
    local = {e.student: speed_check(grader.grade(e.path)).status for e in entries}
    executor, closer = dask_executor(assignment, 1, None, ())
    try:
        via_dask = {entry.student: speed_check(result).status for entry, result, _ in executor(entries)}
        nanny_env = executor.client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        workers_env = executor.client.run(_grading_workers_environment)
    finally:
        closer()
    assert set(nanny_env.values()) == {"65536"}  # the nanny did set it on the Dask worker ...
    graders = [env for envs in workers_env.values() for env in envs]
    assert graders and all("MALLOC_TRIM_THRESHOLD_" not in env and env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
                           for env in graders)  # ... and no grading worker has it
    assert via_dask == local == {"cdist": "passed", "pdist": "failed"}


def test_a_failed_speed_check_carries_its_measurement_as_a_picture():
    """The picture of a timing verdict is drawn from the very pairs the verdict came from (issue 17)."""
    from grader import pictures
    from grader.checks import CheckFailure
    from grader.timing import CLOCK_CPU, SpeedResult, expect_speedup

    result = SpeedResult(speedup=0.99, threshold=1.6, device="cpu", threads=1, clock=CLOCK_CPU, pairs=3,
                         ratios=(0.98, 0.99, 1.0), student_s=0.021, reference_s=0.021,
                         student_times=(0.021, float("inf"), 0.022), reference_times=(0.0206, 0.021, 0.022),
                         reference_speedup=2.6, policy="calibrated")
    with pytest.raises(CheckFailure) as failure:
        expect_speedup(result, what="lunif_fast", reference_name="the torch.pdist version (the lecture's lunif)",
                       inputs="x of shape (512, 500)", fix="one matrix product")
    data = pictures.clean(failure.value.picture)
    assert data["student_s"] == [0.021, 0.022] and data["reference_s"] == [0.0206, 0.022]  # the unfinished pair left out
    assert data["ratio"] == 0.99 and data["threshold"] == 1.6 and data["reference_label"] == "torch.pdist version"
    svg = pictures.timing_svg(data)
    assert "needed ×1.6" in svg and "×0.99" in svg
