"""Rubric for `hvp`: the Hessian-vector product H(x) @ v by double backward, without forming the Hessian.

Lecture, "Second derivatives": "You cannot get Hessians, but you can get Hessian vector products":
`torch.autograd.grad(..., create_graph=True)` gives the gradient g as a function of x, and the
gradient of g . v is H v. Values are compared with `torch.autograd.functional.hessian(f, x) @ v` for
functions the student never saw (float64); "no full Hessian" is checked at the ATen-operator level:
no operator may produce n * n elements, and the work may not grow with n (a loop over the gradient's
entries is a Jacobian, n backward passes). torch.func's `jvp(grad(f), ...)` passes as well.
"""

import pytest
import torch

from grader.checks import OperatorLog, describe, expect_attributes, expect_close, expect_tensor, fail, need

NAME = "hvp"

# Our own references, taken before any student code is loaded (it may replace torch's functions).
_hessian = torch.autograd.functional.hessian
_grad = torch.autograd.grad
_isclose = torch.isclose
_randn = torch.randn
_equal = torch.equal
_is_tensor = torch.is_tensor
_float64, _float32 = torch.float64, torch.float32


def generator(seed):
    return torch.Generator().manual_seed(seed)


# Functions R^n -> R the student has not seen: no n x n intermediate of their own, so that one in the
# operator log is the Hessian's.
def wavy(x):
    return (x.sin() ** 2).sum() + torch.logsumexp(0.3 * x * x, 0)


def squashed(x):
    w = torch.linspace(-1.0, 2.0, x.shape[0], dtype=x.dtype, device=x.device)
    return (x.tanh() * w).sum() ** 2


def bump(x):
    return torch.exp(-0.5 * (x * x).sum()) * x.cos().sum()


FUNCTIONS = [pytest.param(wavy, 5, id="wavy-n5"), pytest.param(squashed, 9, id="squashed-n9"),
             pytest.param(bump, 4, id="bump-n4")]
FIX = ("g, = torch.autograd.grad(f(x), x, create_graph=True) keeps the gradient differentiable; then "
       "torch.autograd.grad(g @ v, x) is H v (lecture, \"Second derivatives\")")


def reference(f, x, v):
    return _hessian(f, x.detach()) @ v


def call(student, f, x, v):
    out = need(student, NAME)(f, x, v)
    expect_tensor(out, f"{NAME}(f, x, v)")
    return out


@pytest.mark.parametrize("f, n", FUNCTIONS)
def test_values(student, f, n):
    """hvp(f, x, v) equals H(x) @ v (float64, functions you have not seen)"""
    x = _randn(n, dtype=_float64, generator=generator(n))
    v = _randn(n, dtype=_float64, generator=generator(n + 1))
    where = f"{NAME}(f, x, v) for x, v of shape ({n},), float64"
    out = call(student, f, x, v)
    expected = reference(f, x, v)
    expect_attributes(out, expected, where)
    xg = x.detach().requires_grad_()
    (gradient,) = _grad(f(xg), xg)
    if not _equal(expected, gradient) and bool(_isclose(out.detach(), gradient, rtol=1e-7, atol=1e-10).all()):
        fail(f"{where} returns the gradient of f, not H(x) @ v", expected=f"H(x) @ v, e.g. {expected[0].item():.6g} at "
             f"index (0,)", found=f"{out[0].item():.6g}, the gradient's entry", fix=FIX)
    expect_close(out, expected, where, rtol=1e-7, atol=1e-10, fix=FIX)


def test_float32(student):
    """float32 in, float32 out (x's shape, dtype, device)"""
    x = _randn(6, dtype=_float32, generator=generator(6))
    v = _randn(6, dtype=_float32, generator=generator(7))
    where = f"{NAME}(f, x, v) for x, v of shape (6,), float32"
    out = call(student, wavy, x, v)
    expected = reference(wavy, x.to(_float64), v.to(_float64)).to(_float32)
    expect_close(out, expected, where, rtol=1e-4, atol=1e-5, fix="compute in x's dtype; do not convert x or the result")


def test_x_untouched(student):
    """x is left as it was: not changed, no requires_grad switched on, no .grad filled"""
    for requires_grad in (False, True):
        x = _randn(5, dtype=_float64, generator=generator(11)).requires_grad_(requires_grad)
        v = _randn(5, dtype=_float64, generator=generator(12))
        before, version = x.detach().clone(), x._version
        call(student, wavy, x, v)
        where = f"x of shape (5,), float64, requires_grad={requires_grad}"
        if x.requires_grad != requires_grad:
            fail(f"{NAME} switched on requires_grad of the caller's x", expected=f"requires_grad={requires_grad}",
                 found=f"requires_grad={x.requires_grad}", where=where,
                 fix="differentiate a copy that is yours: `x = x.detach().requires_grad_()` inside the function")
        if x.grad is not None:
            fail(f"{NAME} left a gradient in x.grad", expected="x.grad None (torch.autograd.grad returns gradients)",
                 found=f"x.grad is a {describe(x.grad)}", where=where,
                 fix="use torch.autograd.grad, not .backward(); lecture: \"Don't use backward with `create_graph`\"")
        if x._version != version or not _equal(x.detach(), before):
            fail(f"{NAME} changed x in place", expected="x as it was", found=f"version {version} -> {x._version}",
                 where=where, fix="compute H v out of place; never write into x")


def logged_run(student, n):
    x = _randn(n, dtype=_float64, generator=generator(20 + n))
    v = _randn(n, dtype=_float64, generator=generator(30 + n))
    hvp = need(student, NAME)
    log = OperatorLog()
    with log:
        hvp(wavy, x, v)
    return log


SMALL, LARGE = 8, 32


def test_no_full_hessian(student):
    """H v without the Hessian: no n x n tensor, and no work growing with n (no loop over the gradient)"""
    small, large = logged_run(student, SMALL), logged_run(student, LARGE)
    if large.largest >= LARGE * LARGE:
        fail(f"{NAME} builds the full Hessian", expected=f"tensors of at most about n = {LARGE} elements",
             found=f"an operator produced {large.largest} elements (n * n = {LARGE * LARGE})",
             where=f"{NAME}(f, x, v) for x of shape ({LARGE},)",
             fix="torch.autograd.functional.hessian, torch.func.hessian and a Jacobian of the gradient all form "
                 "H; " + FIX)
    if large.count > 1.5 * small.count + 10:
        fail(f"the work of {NAME} grows with the size of x", expected="the same operators for any n (two backward passes)",
             found=f"{small.count} operators for n = {SMALL}, {large.count} for n = {LARGE}",
             fix="a loop over the entries of the gradient computes the Hessian row by row (n backward passes); "
                 + FIX)


def probe(student):
    """What a mutant of the solution must reproduce to count as equivalent (`grader validate --mutants`)."""
    x = _randn(5, dtype=_float64, generator=generator(40))
    return [student.hvp(f, x, _randn(5, dtype=_float64, generator=generator(41))) for f in (wavy, squashed, bump)]
