"""Rubric for `lost_leaf`: make_leaves(device, dtype) must return true leaves on any device."""

import pytest
import torch

from grader.checks import DEVICES, DTYPES, describe, expect_close, expect_plain_tensor, fail, grad_fn_name, need

LEAF_FIX = (
    "create the tensor where it should live, `torch.randn(5, device=device, dtype=dtype, requires_grad=True)`, "
    "or call `.requires_grad_()` after moving it"
)


def make(student, device, dtype):
    make_leaves = need(student, "make_leaves")
    out = make_leaves(device, dtype=dtype)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail("make_leaves must return two tensors (a, b)", expected="a tuple (a, b)", found=describe(out))
    for name, t in zip("ab", out):
        expect_plain_tensor(t, f"`{name}`")
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_shape_device_dtype(student, device, dtype):
    """a and b have shape (5,) and the device and dtype asked for"""
    for name, t in zip("ab", make(student, device, dtype)):
        expected = f"tensor of shape (5,), {str(dtype).replace('torch.', '')} on {device}"
        if tuple(t.shape) != (5,) or t.dtype != dtype or t.device.type != torch.device(device).type:
            fail(f"`{name}` is not what make_leaves({device!r}, dtype={dtype}) should return",
                 expected=expected, found=describe(t))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_leaves(student, device, dtype):
    """a and b are leaves that require grad"""
    for name, t in zip("ab", make(student, device, dtype)):
        if not t.requires_grad:
            fail(f"`{name}` does not require grad", expected="requires_grad=True", found="requires_grad=False",
                 fix="pass requires_grad=True to the factory function, or call `.requires_grad_()`")
        if not t.is_leaf:
            fail(f"`{name}` is not a leaf: it was made by {grad_fn_name(t)}, so backward() will not fill `{name}.grad`",
                 expected="is_leaf=True (grad_fn None)", found=f"is_leaf=False (grad_fn {grad_fn_name(t)})",
                 where=f"make_leaves({device!r}, dtype={dtype})",
                 fix=f"you moved or converted it after `requires_grad=True`; {LEAF_FIX}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_gradients(student, device, dtype):
    """((a + 1) * b).sum().backward() fills a.grad = b and b.grad = a + 1"""
    a, b = make(student, device, dtype)
    for name, t in (("a", a), ("b", b)):
        if not t.is_leaf or not t.requires_grad:
            fail(f"backward() cannot fill `{name}.grad`: `{name}` is not a leaf that requires grad",
                 expected="is_leaf=True, requires_grad=True",
                 found=f"is_leaf={t.is_leaf}, requires_grad={t.requires_grad} (grad_fn {grad_fn_name(t)})",
                 fix=LEAF_FIX)
    ((a + 1) * b).sum().backward()
    for name, t, expected in (("a", a, b), ("b", b, a + 1)):
        if t.grad is None:
            fail(f"`{name}.grad` is None after backward()",
                 expected=f"{name}.grad with the gradient ({describe(expected)})", found="None",
                 fix=f"`{name}` must be a leaf that requires grad; {LEAF_FIX}")
        expect_close(t.grad, expected.detach(), f"`{name}.grad`")


def test_random(student):
    """a and b are random, fresh on every call"""
    a1, b1 = make(student, "cpu", torch.float32)
    a2, _ = make(student, "cpu", torch.float32)
    if torch.equal(a1, b1) or torch.equal(a1, a2) or a1.detach().std() == 0:
        fail("make_leaves does not return random tensors",
             expected="different random values for a and b, and on each call (torch.randn)",
             found=f"a={a1.detach().tolist()}, b={b1.detach().tolist()}")


def probe(student):
    """What a mutant of the solution must reproduce to count as equivalent (`grader validate --mutants`)."""
    return [student.make_leaves(device, dtype=dtype)
            for device in ("cpu", "meta") for dtype in (torch.float32, torch.float64)]
