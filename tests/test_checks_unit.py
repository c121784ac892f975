"""Unit layer for grader.checks: the probes a rubric reuses, in-process, on real torch calls."""

from __future__ import annotations

import signal
import time

import pytest
import torch
import torch.nn.functional as F

import grader.checks
from grader.checks import CheckFailure, CopyRecorder, OperatorLog, TooSlow, need, not_defined, time_limit
from grader.integrity import Snapshot

# What rubrics, the plugin and the tests imported from the single module grader/checks.py.
OLD_NAMES = ["FEEDBACK", "CheckFailure", "fail", "need", "describe", "expect_tensor", "expect_plain_tensor",
             "expect_attributes", "expect_close", "grad_fn_name", "cuda_available", "NEEDS_CUDA", "NO_CUDA_REASON",
             "DEVICES", "DTYPES", "GRAPH_NODES", "GRAPH_DEPTH", "with_picture", "tensor_summary", "autograd_graph"]


def test_every_name_of_the_old_module_and_the_timing_probe_are_importable_from_grader_checks():
    missing = [n for n in OLD_NAMES + ["expect_speedup", "measure_speedup"] if not hasattr(grader.checks, n)]
    assert missing == []
    from grader.timing import expect_speedup

    assert grader.checks.expect_speedup is expect_speedup
    with pytest.raises(AttributeError, match="no_such_probe"):
        grader.checks.no_such_probe  # noqa: B018


# -- OperatorLog ------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", [
    pytest.param(lambda x: torch.pdist(x), id="torch.pdist"),
    pytest.param(lambda x: F.pdist(x), id="F.pdist"),
    pytest.param(lambda x: torch.ops.aten._pdist_forward(x, 2.0), id="aten._pdist_forward"),
])
def test_the_operator_log_sees_pdist_by_every_route_forward_and_backward(route):
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    with OperatorLog() as log:
        torch.autograd.grad(route(x).sum(), x)
    assert log.ran("pdist") == ["aten._pdist_backward", "aten._pdist_forward"]


def test_the_operator_log_sees_no_pdist_in_a_matrix_product():
    x = torch.randn(6, 3, requires_grad=True)
    with OperatorLog() as log:
        sq = (x * x).sum(1)
        torch.autograd.grad((sq[:, None] + sq[None, :] - 2 * x @ x.T).sum(), x)
    assert log.ran("pdist") == [] and "aten.mm" in log.ran("mm")


# -- CopyRecorder -------------------------------------------------------------------------------------


def test_the_operator_log_sees_a_full_hessian_by_its_size_and_a_loop_by_its_count():
    """What the hvp rubric asks of it: a double backward makes nothing of n * n elements and the same
    number of operators for any n; the full Hessian shows as an n * n output."""
    def f(x):
        return (x.sin() ** 2).sum()

    def double_backward(x, v):
        x = x.detach().requires_grad_()
        g, = torch.autograd.grad(f(x), x, create_graph=True)
        return torch.autograd.grad(g @ v, x)[0]

    logs = {}
    for n in (8, 32):
        x, v = torch.randn(n, dtype=torch.float64), torch.randn(n, dtype=torch.float64)
        with OperatorLog() as logs[n]:
            double_backward(x, v)
    assert logs[8].largest < 8 * 8 and logs[32].largest < 32 * 32
    assert logs[8].count == logs[32].count > 0
    with OperatorLog() as full:
        torch.autograd.functional.hessian(f, torch.randn(8, dtype=torch.float64))
    assert full.largest >= 8 * 8


def test_the_copy_recorder_names_clone_as_the_call_that_copied():
    t = torch.arange(12.0).reshape(3, 4)
    with CopyRecorder(t) as copies:
        view = t[:, 1:]
        copy = view.clone()
    assert copy.untyped_storage().data_ptr() != t.untyped_storage().data_ptr()
    shown, name, index, aten = copies.copies[0]
    assert (shown, name, index) == ("Tensor.clone", "clone", "") and "aten.clone" in aten
    assert len(copies.copies) == 1  # the slice before it made a view, not a copy


def test_the_copy_recorder_names_advanced_indexing_and_records_nothing_for_views():
    t = torch.arange(12.0).reshape(3, 4)
    with CopyRecorder(t) as copies:
        t[:, [0, 2]]
    assert copies.copies[0][:3] == ("indexing", "__getitem__", "t[:, [0, 2]]")
    with CopyRecorder(t) as views:
        t[:, ::2], t.diagonal(), t.narrow(1, 1, 2)
    assert views.copies == [] and views.all_ops == []


# -- time_limit ----------------------------------------------------------------------------------------


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_the_time_limit_interrupts_a_loop_and_restores_the_previous_handler():
    def previous(signum, frame):
        raise AssertionError("the limit's own alarm reached the previous handler")

    old = signal.signal(signal.SIGALRM, previous)
    timer = signal.setitimer(signal.ITIMER_REAL, 0)[0]  # pytest-timeout's, if it runs one
    try:
        started = time.monotonic()
        with time_limit(0.2) as limit:
            spin(30)
        assert limit.ran_out and limit.active and time.monotonic() - started < 5
        assert signal.getsignal(signal.SIGALRM) is previous
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        with time_limit(5) as quick:
            spin(0.01)
        assert not quick.ran_out and signal.getsignal(signal.SIGALRM) is previous
    finally:
        signal.signal(signal.SIGALRM, old)
        signal.setitimer(signal.ITIMER_REAL, timer)


def test_code_that_catches_the_interruption_still_ran_out():
    def stubborn():
        try:
            spin(30)
        except BaseException:  # noqa: BLE001 - what a hostile submission does
            return "I finished"

    with time_limit(0.2) as limit:
        answer = stubborn()
    assert answer == "I finished" and limit.ran_out


def test_a_limit_inside_another_runs_under_the_outer_one_and_an_outer_timer_goes_on():
    with time_limit(0.3) as outer:
        with pytest.raises(TooSlow):
            with time_limit(60) as inner:
                spin(30)
    assert outer.ran_out and not inner.active and not inner.ran_out

    old = signal.signal(signal.SIGALRM, lambda *a: None)
    timer = signal.setitimer(signal.ITIMER_REAL, 50)[0]  # someone else's timer, running before the limit
    try:
        with time_limit(5):
            spin(0.01)
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
        assert 40 < remaining <= 50
    finally:
        signal.setitimer(signal.ITIMER_REAL, timer)
        signal.signal(signal.SIGALRM, old)


def test_other_exceptions_pass_through_the_limit():
    handler = signal.getsignal(signal.SIGALRM)
    with pytest.raises(ZeroDivisionError):
        with time_limit(5) as limit:
            1 / 0
    assert not limit.ran_out and signal.getsignal(signal.SIGALRM) is handler


# -- failures and integrity --------------------------------------------------------------------------


def test_need_and_not_defined_fail_by_name():
    class Student:
        double = staticmethod(lambda x: 2 * x)

    assert need(Student, "double")(2) == 4
    with pytest.raises(CheckFailure, match=r"^`make_leaves` is not defined\.\nExpected: a class named `make_leaves`"):
        not_defined("make_leaves", "class")
    with pytest.raises(CheckFailure, match=r"^`triple` is not defined\."):
        need(Student, "triple")


@pytest.mark.parametrize("module", ["failures", "tensors", "graphs", "probes"])
def test_replacing_fail_inside_any_module_of_grader_checks_is_tampering(module):
    """`expect_close` looks `fail` up in grader.checks.tensors, not in grader.checks: every module is watched."""
    namespace = vars(getattr(grader.checks, module))
    name, real = next((k, v) for k, v in namespace.items() if callable(v) and not k.startswith("__"))
    snapshot = Snapshot.take()
    namespace[name] = lambda *a, **k: None
    try:
        assert f"grader.checks.{module}.{name}" in snapshot.changed()
    finally:
        namespace[name] = real
