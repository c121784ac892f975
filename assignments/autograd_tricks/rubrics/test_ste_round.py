"""Rubric for `ste_round`: round in the forward pass, pass the gradient through unchanged in the backward.

Lecture, "A fun trick": `a.round()` has gradient 0 everywhere; `a + (a.round() - a).detach()` ("PyTorch's
version of cleverly add 0") has round's values and the identity's gradient. That straight-through
estimator is the gist of fake quantization ("quantization aware training"). The gradient is checked
with a non-uniform upstream gradient, so a backward that ignores it fails.
"""

import pytest
import torch

from grader.checks import DTYPES, describe, expect_attributes, expect_close, expect_tensor, fail, need

NAME = "ste_round"

# Our own references, taken before any student code is loaded (it may replace torch's functions).
_round = torch.round
_grad = torch.autograd.grad
_randn = torch.randn
_tensor = torch.tensor
_cat = torch.cat
_equal = torch.equal
_float64 = torch.float64
_ones_like = torch.ones_like
_empty = torch.empty

FIX = ("return `x + (x.round() - x).detach()` (lecture, \"A fun trick\"): the detached part carries round's values, "
       "the `x` outside carries the gradient 1; or write a torch.autograd.Function whose backward returns grad_output")


def inputs(dtype, seed=0):
    """Ties (round half to even, like torch.round), integers, negatives and random values."""
    ties = _tensor([0.5, 1.5, -2.5, 3.0, -0.49], dtype=dtype)
    return _cat([ties, 3 * _randn(11, dtype=dtype, generator=torch.Generator().manual_seed(seed))])


def call(student, x, where):
    out = need(student, NAME)(x)
    expect_tensor(out, where)
    return out


def student_gradient(student, x, upstream, where):
    """d(sum(upstream * ste_round(x)))/dx, or a failure that says why there is none."""
    out = call(student, x, where)
    if not out.requires_grad:
        fail(f"no gradient flows back from {where}", expected="a result with a grad_fn that reaches x",
             found=f"{describe(out)} with requires_grad=False", fix=FIX)
    expect_attributes(out, x, where)
    (g,) = _grad(out, x, grad_outputs=upstream, allow_unused=True)
    if g is None:
        fail(f"the result of {where} is not connected to x in autograd's graph",
             expected="a gradient for x", found=f"torch.autograd.grad gives None (your result's grad_fn is "
                                                 f"{type(out.grad_fn).__name__ if out.grad_fn else 'None: a new leaf'})",
             fix="`.requires_grad_()` on a rounded copy (or one made from `.data`/`.detach()`) starts a new graph "
                 "that x is not part of; " + FIX)
    return g


@pytest.mark.parametrize("dtype", DTYPES)
def test_values(student, dtype):
    """ste_round(x) has the values of torch.round(x) (ties to even), with x's shape and dtype"""
    x = inputs(dtype).requires_grad_()
    where = f"{NAME}(x) for x of shape (16,), {str(dtype).replace('torch.', '')}"
    expect_close(call(student, x, where), _round(x.detach()), where, rtol=0, atol=0,
                 fix="round in the forward pass with torch.round (x.round()); halves go to the even neighbour")


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient(student, dtype):
    """the gradient passes straight through: the upstream gradient, unchanged (not round's zeros)"""
    x = inputs(dtype, seed=1).requires_grad_()
    upstream = _randn(16, dtype=dtype, generator=torch.Generator().manual_seed(2))
    where = f"{NAME}(x) for x of shape (16,), {str(dtype).replace('torch.', '')}"
    g = student_gradient(student, x, upstream, where)
    what = f"the gradient of sum(u * {NAME}(x)) with respect to x, for an upstream gradient u"
    expect_attributes(g, x, what)
    if not bool(g.any()):
        fail(f"{what} is zero everywhere: that is round's own gradient", expected="u itself (the identity's gradient)",
             found="all zeros", fix="a plain `x.round()` has gradient 0, and so has `x + (x.round() - x)` without "
                                    "`.detach()` (it adds round's 0 and takes the identity's 1 away again: "
                                    "1 + (0 - 1) = 0); " + FIX)
    if _equal(g, _ones_like(g)):
        fail(f"{what} is all ones whatever the upstream gradient u is", expected="u itself", found="all ones",
             fix="the chain rule: backward receives dl/dy (grad_output) and must return dl/dx = grad_output * 1, "
                 "not ones")
    expect_close(g, upstream, what, rtol=0, atol=0, fix=FIX)


def test_meta(student):
    """works on the meta device: result and gradient of x's shape, dtype and device"""
    x = _empty(6, 4, device="meta").requires_grad_()
    where = f"{NAME}(x) for x of shape (6, 4), float32 on meta"
    g = student_gradient(student, x, _empty(6, 4, device="meta"), where)
    expect_attributes(g, x, f"the gradient of {where}")


def test_input_unchanged(student):
    """x is not changed in place (its values and its version counter)"""
    for requires_grad in (False, True):
        x = inputs(_float64, seed=3).requires_grad_(requires_grad)
        before, version = x.detach().clone(), x._version
        call(student, x, f"{NAME}(x)")
        if x._version != version or not _equal(x.detach(), before):
            fail(f"{NAME}(x) changed x in place", expected="x as it was (round a new tensor)",
                 found=f"x's version counter moved from {version} to {x._version}" if x._version != version
                       else "x's values changed (through `.data`)",
                 where=f"x of shape (16,), float64, requires_grad={requires_grad}",
                 fix="a `.detach()` or `.data` shares x's memory, so `round_()` on it rounds x itself; use the out of "
                     "place `x.round()` (lecture, \"Inplace Summary\": avoid inplace on the inputs of re-usable code)")


def probe(student):
    """What a mutant of the solution must reproduce to count as equivalent (`grader validate --mutants`)."""
    x = inputs(_float64, seed=4).requires_grad_()
    out = student.ste_round(x)
    return [out, _grad(out, x, grad_outputs=_randn(16, dtype=_float64, generator=torch.Generator().manual_seed(5)))[0]]
