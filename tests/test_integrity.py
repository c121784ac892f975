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


def armed_changes(replace, before=lambda: None) -> list:
    """What an armed snapshot names after `replace()`; `before()` (torch's own patching) must name nothing."""
    snapshot = Snapshot.take()
    snapshot.arm()
    before()
    assert snapshot.changed() == []
    replace()
    return snapshot.changed()


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

    assert expected in in_fork(lambda: armed_changes(replace))


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


# -- torch's own lazy patching (issue 14): tolerated exactly, never a hole -------------------------
# The first torch.compile runs dynamo's TorchPatcher.patch (every optimizer's `_init_group`, LBFGS's and
# SparseAdam's `step`, the fused optimizer functions, torch.jit.trace ... wrapped by `torch._dynamo.disable`)
# and mutation_guard.install_generation_tagging_init (nn.Module.__init__ and __setstate__ wrapped to tag
# new modules). Both wrap the original: the run computes what it computed before.


def _square_dist(x):
    s = x.pow(2).sum(1)
    return s[:, None] + s[None, :] - 2 * x @ x.T


def _compile_eagerly():
    x = torch.randn(5, 3, requires_grad=True)
    torch.compile(_square_dist, backend="eager")(x).sum().backward()


def test_torch_compile_is_not_tampering():
    def body():
        snapshot = Snapshot.take()
        snapshot.arm()
        _compile_eagerly()
        first = snapshot.changed()
        model = torch.nn.Sequential(torch.nn.Linear(1, 2), torch.nn.Tanh())  # through the patched __init__
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        model(torch.randn(3, 1)).sum().backward()
        opt.step()  # through the wrapped _init_group
        return first, snapshot.changed()

    assert in_fork(body) == "([], [])"


def _fake_wrapper_with_torch_markers():
    real = torch.optim.SGD.step

    def step(self, closure=None):
        return None

    step.__wrapped__ = real
    step._torchdynamo_orig_callable = real
    step.__module__ = "torch._dynamo.eval_frame"
    torch.optim.SGD.step = step


def _torch_wrapper_code_with_student_globals():
    import types

    from torch._dynamo.eval_frame import DisableContext

    code = next(c for c in DisableContext.__call__.__code__.co_consts if getattr(c, "co_name", "") == "_fn")
    fake_globals = {"set_eval_frame": lambda *a: None, "_maybe_set_eval_frame": lambda *a: None,
                    "_callback_from_stance": lambda *a: None, "torch": torch, "getattr": getattr, "type": type}
    cells = {"fn": lambda *a, **k: None, "self": DisableContext()}
    closure = tuple(types.CellType(cells[name]) for name in code.co_freevars)
    torch.optim.SGD._init_group = types.FunctionType(code, fake_globals, "_init_group", None, closure)


@pytest.mark.parametrize("name, replace", [
    ("torch.optim.SGD.step", lambda: setattr(torch.optim.SGD, "step", lambda self, closure=None: None)),
    ("torch.optim.SGD._init_group", lambda: setattr(torch.optim.SGD, "_init_group", lambda *a: 0)),
    ("torch.optim.SGD.step", _fake_wrapper_with_torch_markers),
    ("torch.optim.SGD._init_group", _torch_wrapper_code_with_student_globals),
    ("torch.allclose", lambda: setattr(torch, "allclose", lambda *a, **k: True)),
])
def test_after_torch_compile_a_replacement_is_still_caught(name, replace):
    assert name in in_fork(lambda: armed_changes(replace, before=_compile_eagerly))


def test_torch_wrapper_around_a_student_function_is_caught():
    # torch's own disable wrapper, but around the student's function instead of torch's original.
    def body():
        snapshot = Snapshot.take()
        snapshot.arm()
        _compile_eagerly()
        torch.optim.SGD._init_group = torch._dynamo.disable(lambda *a: 0)
        return snapshot.changed()

    assert "torch.optim.SGD._init_group" in in_fork(body)


def test_original_changed_under_torch_wrapper_is_caught():
    # compile wraps `_init_group`; the original underneath then gets another body: still tampering.
    def body():
        snapshot = Snapshot.take()
        original = torch.optim.SGD._init_group
        snapshot.arm()
        _compile_eagerly()
        original.__code__ = (lambda self, group, *a: 0).__code__
        return snapshot.changed()

    assert "torch.optim.SGD._init_group" in in_fork(body)


def test_original_changed_after_torch_wrapped_it_is_caught():
    # Accepted once as torch's wrapper, the original it keeps is watched as before.
    def body():
        snapshot = Snapshot.take()
        original = torch.optim.SGD._init_group
        snapshot.arm()
        _compile_eagerly()
        assert snapshot.changed() == []
        original.__code__ = (lambda self, group, *a: 0).__code__
        return snapshot.changed()

    assert "torch.optim.SGD._init_group" in in_fork(body)
