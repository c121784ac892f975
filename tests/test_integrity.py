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
