"""Rubric for `twice`, the hostile suite's second exercise: twice(x) returns 2 * x."""

import torch

from grader.checks import describe, expect_close, expect_tensor, need


def test_defined(student):
    """twice is defined"""
    need(student, "twice")


def test_values(student):
    """twice(x) is 2 * x, of the same shape and dtype"""
    x = torch.arange(4, dtype=torch.float64)
    out = expect_tensor(need(student, "twice")(x), f"twice({describe(x)})")
    expect_close(out, x * 2, "twice(x)")
