"""Unit layer for grader/calibration.py: the YAML's threshold policies, and when a worker measures again."""

from __future__ import annotations

import pytest

from grader.calibration import CALIBRATION_FAILED, Calibrations, ThresholdPolicy
from grader.channel import TIMED_OUT, RunOutcome


@pytest.mark.parametrize("value, problem", [
    (True, "expected a number (a fixed threshold) or a mapping"),       # a bool is not a threshold
    (0, "expected a number (a fixed threshold) or a mapping"),
    (-1.5, "expected a number (a fixed threshold) or a mapping"),
    ("1.3", "expected a number (a fixed threshold) or a mapping"),
    ({"least": "1.2"}, "t.least: expected a number > 0, found '1.2'"),
    ({"least": 0}, "t.least: expected a number > 0, found 0"),
    ({"separable": False}, "t.separable: expected a number > 0, found False"),
    ({"share": 1.5}, "t.share: at most 1 (the reference solution's whole gain), found 1.5"),
    ({"least": 1.2, "sepparable": 1.3}, "t: unknown key 'sepparable' (known: least, separable, share)"),
])
def test_a_bad_policy_names_where_and_what(value, problem):
    with pytest.raises(ValueError) as error:
        ThresholdPolicy.from_config(value, "t")
    assert problem in str(error.value) and str(error.value).startswith("t")


def test_a_fixed_threshold_ignores_the_calibration():
    policy = ThresholdPolicy.from_config(2, "t")
    assert not policy.calibrated and policy.fixed == 2.0
    assert policy.threshold(9.0) == 2.0 and policy.threshold(None) == 2.0
    assert policy.skip_reason(None, "pdist", "cpu") is None
    assert policy.describe() == "a fixed threshold of 2×"


def test_a_calibrated_threshold_is_the_larger_of_least_and_a_share_of_the_solutions_gain():
    policy = ThresholdPolicy.from_config({"least": 1.1, "share": 0.5}, "t")
    assert policy.calibrated and policy.separable == 1.0
    assert policy.threshold(4.0) == pytest.approx(2.0)       # sqrt(4) beats 1.1
    assert policy.threshold(1.1025) == pytest.approx(1.1)    # sqrt(1.1025) = 1.05 < least
    assert ThresholdPolicy.from_config({"share": 1}, "t").threshold(3.0) == 3.0
    assert policy.describe() == "the larger of 1.1× and the reference solution's speed-up to the power 0.5"


def test_no_verdict_where_the_machine_cannot_separate_or_measure():
    policy = ThresholdPolicy.from_config({"separable": 1.3}, "t")
    assert policy.skip_reason({"speedup": 1.3}, "pdist", "cpu") is None  # exactly separable: judged
    assert policy.skip_reason({"speedup": 1.29}, "pdist", "cpu, 1 torch thread") == (
        "this machine cannot tell the reference solution from pdist: the reference solution reached only 1.29× "
        "its speed here (at least 1.3× is needed to judge yours), so no speed verdict is given on cpu, 1 torch thread")
    assert policy.skip_reason(None, "pdist", "cpu") == (
        "the reference solution's speed could not be measured here (no calibration was run), so no speed verdict "
        "is given")
    assert "(boom)" in policy.skip_reason({"error": "boom"}, "pdist", "cpu")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def job(**kw):
    return {"rubric": "test_beat_pdist.py", "threads": 1,
            "calibrate": {"notebook": "solutions/pytorch_intro.ipynb", "exercise": "beat_pdist"}, **kw}


def test_a_worker_measures_once_then_again_when_the_calibration_is_old_or_used_up():
    clock, runs = FakeClock(), []

    def run(calibration_job):
        runs.append(calibration_job)
        return RunOutcome(calibration={"cpu": {"speedup": 2.0 + len(runs)}})

    held = Calibrations(max_age_s=100.0, max_runs=3, clock=clock)
    first = held.prepare(job(), run)
    assert len(runs) == 1 and runs[0]["chunks"] == [] and runs[0]["calibration_run"] is True
    assert first["calibration"] == {"cpu": {"speedup": 3.0}, "threads": 1}
    held.prepare(job(), run)
    held.prepare(job(), run)
    assert len(runs) == 1  # three runs served by one measurement
    assert held.prepare(job(), run)["calibration"]["cpu"]["speedup"] == 4.0 and len(runs) == 2  # used up
    clock.now = 101.0
    assert held.prepare(job(), run)["calibration"]["cpu"]["speedup"] == 5.0 and len(runs) == 3  # too old
    held.prepare(job(threads=2), run)
    assert len(runs) == 4  # another thread count is another measurement


def test_a_job_without_calibrate_and_the_calibration_run_itself_pass_through():
    def run(_):
        raise AssertionError("nothing to measure")

    held = Calibrations()
    assert held.prepare({"rubric": "r"}, run) == {"rubric": "r"}
    assert held.prepare(job(calibration_run=True), run) == job(calibration_run=True)


@pytest.mark.parametrize("outcome, why", [
    (RunOutcome(calibration={"error": "the rubric defines no `calibrate(solution, threads)`"}),
     "the rubric defines no `calibrate(solution, threads)`"),
    (RunOutcome(load_error="SyntaxError in the solution\nline 2"), "SyntaxError in the solution"),
    (RunOutcome(ended=TIMED_OUT, reason="it was still running after 60 s"), "it was still running after 60 s"),
    (RunOutcome.worker_failed("the worker died"), "the worker died"),
    (RunOutcome(), "no result was reported"),
])
def test_a_failed_calibration_says_why_in_one_line(outcome, why):
    assert Calibrations.measure(job(), lambda _: outcome) == {"error": CALIBRATION_FAILED.format(why=why)}
