"""Mini rubric: double(x)."""

import torch

from grader.checks import expect_close, fail, need


def test_values(student):
    """double(3) == 6"""
    got = need(student, "double")(3)
    if got != 6:
        fail("double(3) is wrong", expected=6, found=got)


def test_tensor(student):
    """double works on tensors"""
    x = torch.arange(4.0)
    expect_close(need(student, "double")(x), 2 * x, "double(x)")


def probe(student):
    """For mutation testing: what an equivalent mutant must compute."""
    return [student.double(3), student.double(torch.arange(4.0))]
