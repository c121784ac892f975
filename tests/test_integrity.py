"""The integrity snapshot in-process: its fast "nothing moved" answer must never hide a replacement."""

import pytest
import torch

import grader.checks
from grader.integrity import Snapshot


@pytest.fixture
def snapshot():
    return Snapshot.take()


def test_nothing_replaced_means_nothing_reported(snapshot):
    assert snapshot.changed() == [] and snapshot.changed() == []


@pytest.mark.parametrize("name, replace, restore", [
    ("torch.allclose", lambda: setattr(torch, "allclose", lambda *a, **k: True),
     lambda real: setattr(torch, "allclose", real)),
    ("torch.Tensor.add", lambda: setattr(torch.Tensor, "add", lambda *a: 1),  # shadows TensorBase.add
     lambda real: delattr(torch.Tensor, "add")),
    ("grader.checks.fail", lambda: setattr(grader.checks.fail, "__code__", (lambda *a, **k: None).__code__),
     lambda real: setattr(grader.checks.fail, "__code__", real)),
])
def test_a_replacement_is_named_and_its_undoing_forgotten(snapshot, name, replace, restore):
    real = {"torch.allclose": torch.allclose, "torch.Tensor.add": None,
            "grader.checks.fail": grader.checks.fail.__code__}[name]
    replace()
    try:
        assert name in snapshot.changed()
    finally:
        restore(real)
    assert snapshot.changed() == []


def test_a_harmless_change_becomes_the_baseline_and_later_replacements_are_still_caught(snapshot, monkeypatch):
    # A new name in a watched class that hides nothing: the quick probe sees the class change,
    # the fingerprints find no replacement, and the probe takes the new state as its baseline.
    monkeypatch.setattr(torch.nn.Tanh, "_torchgrade_cache", 1, raising=False)
    assert snapshot.changed() == []
    assert snapshot._untouched()  # the quick answer is back, not the fingerprints on every check
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    assert snapshot.changed() == ["torch.allclose"]


# -- armed, as in a run: version tags and audit events vouch for most of the watched objects ------
# Arming adds an audit hook, which stays for the life of the process: each case runs in a fork.


def in_fork(body):
    """body() in a forked child; returns what it returned (repr), or raises with the child's error."""
    import os
    import traceback

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, ("ok " + repr(body())).encode())
        except BaseException:  # noqa: BLE001 - reported to the parent
            os.write(write, ("error " + traceback.format_exc()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        answer = f.read().decode()
    os.waitpid(pid, 0)
    status, _, text = answer.partition(" ")
    assert status == "ok", text
    return text


def closure_cell_of_a_watched_function():
    for f in vars(torch.nn.functional).values():
        if type(f) is type(lambda: None) and f.__closure__:
            return f"torch.nn.functional.{f.__name__}", f.__closure__[0]
    pytest.skip("no closure among torch.nn.functional's functions")


@pytest.mark.parametrize("name, replace", [
    ("torch.allclose", lambda: setattr(torch, "allclose", lambda *a, **k: True)),
    ("torch.allclose", lambda: vars(torch).__setitem__("allclose", lambda *a, **k: True)),
    ("torch.Tensor.add", lambda: setattr(torch.Tensor, "add", lambda *a: 1)),
    ("grader.checks.fail", lambda: setattr(grader.checks.fail, "__code__", (lambda *a, **k: None).__code__)),
    ("grader.checks.fail", lambda: setattr(grader.checks.fail, "__defaults__", (1,))),
    ("closure", lambda: setattr(closure_cell_of_a_watched_function()[1], "cell_contents", None)),
])
def test_an_armed_snapshot_names_every_replacement(name, replace):
    # Decided here, not in the fork: a skip raised there would read as the child's error.
    expected = closure_cell_of_a_watched_function()[0] if name == "closure" else name

    def body():
        snapshot = Snapshot.take()
        snapshot.arm()
        assert snapshot.changed() == []
        replace()
        return snapshot.changed()

    assert expected in in_fork(body)


def test_an_armed_snapshot_answers_quickly_and_still_sees_a_replacement_after_module_state_changed():
    def body():
        snapshot = Snapshot.take()
        snapshot.arm()
        assert snapshot._versions is not None, "this CPython should have dict version tags"
        torch.overrides._torchgrade_state = 1  # a module's own variable: the tag moves, nothing is replaced
        assert snapshot.changed() == []
        assert snapshot._versions == tuple(t.value for t in snapshot._tags)  # the new state is the baseline
        torch.overrides.has_torch_function = lambda *a: False
        return snapshot.changed()

    assert "torch.overrides.has_torch_function" in in_fork(body)
