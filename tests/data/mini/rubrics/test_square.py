"""Mini rubric: square(x)."""

import torch

from grader.checks import NEEDS_CUDA, fail, need


def test_values(student):
    """square(3) == 9"""
    got = need(student, "square")(3)
    if got != 9:
        fail("square(3) is wrong", expected=9, found=got)


@NEEDS_CUDA
def test_gpu(student):
    """square works on a CUDA tensor"""
    x = torch.arange(3.0, device="cuda")
    assert torch.equal(need(student, "square")(x).cpu(), x.cpu() ** 2)
