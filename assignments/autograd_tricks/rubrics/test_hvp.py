"""Rubric for `hvp`: Hessian-vector products by double backward (hvp).

Made by `grader new-exercise hvp`: one real check to start from. Each check is a test function;
its docstring is the line the student sees, its points and hint live in autograd_tricks.yml (points of a
parametrized check are split across its cases). A failed check calls `fail(...)` with what was
expected, what was found and the fix.
"""

import pytest
import torch

from grader.checks import DTYPES, expect_close, expect_tensor, fail, need

NAME = "hvp"  # what the student defines in the exercise's cell

# Our own references, taken before any student code is loaded (it may replace torch's functions).
_randn = torch.randn
_sin = torch.sin


def reference(x):
    """What the student's function must compute (the template's task: the sine of x)."""
    return _sin(x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_values(student, dtype):
    """hvp(x) returns the expected values, with x's shape and dtype"""
    func = need(student, NAME)
    x = _randn(7, dtype=dtype, generator=torch.Generator().manual_seed(0))
    out = func(x.clone())
    expect_tensor(out, f"{NAME}(x)")
    if out.dtype != dtype:
        fail(f"{NAME}(x) changes the dtype", expected=str(dtype), found=str(out.dtype),
             fix="compute with torch operations on x; do not convert it")
    expect_close(out, reference(x), f"{NAME}(x) for x of shape (7,), {str(dtype).replace('torch.', '')}")
