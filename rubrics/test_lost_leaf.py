"""Rubric for `lost_leaf`: make_leaves(device, dtype) must return true leaves on any device."""

import pytest
import torch

from grader.checks import DEVICES, DTYPES, describe, expect_close, expect_plain_tensor, fail, grad_fn_name, need
from grader.checks import autograd_graph, tensor_summary, with_picture

def make(student, device, dtype):
    make_leaves = need(student, "make_leaves")
    out = make_leaves(device, dtype=dtype)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail("make_leaves must return two tensors (a, b)", expected="a tuple (a, b)", found=describe(out))
    for name, t in zip("ab", out):
        expect_plain_tensor(t, f"`{name}`")
    return out


# -- the picture on the feedback page: the student's graph beside one with real leaves (lecture cells 57, 59)


def _product_graph(a, b, title: str, caption: str) -> dict:
    """The graph of the lecture's `(a + 1) * b` (of a and b alone where they cannot be multiplied)."""
    try:
        roots = [("c", (a + 1) * b), ("a", a), ("b", b)]
    except RuntimeError:
        roots = [("a", a), ("b", b)]
    return autograd_graph(roots, title=title, caption=caption)


def _hidden_leaf(t):
    """The leaf a non-leaf tensor was made from, following its first inputs back."""
    fn = t.grad_fn
    for _ in range(20):
        if fn is None or type(fn).__name__ == "AccumulateGrad":
            break
        fn = next((child for child, _ in fn.next_functions if child is not None), None)
    return getattr(fn, "variable", None)


def leaf_picture(student, device, dtype):
    a, b = make(student, device, dtype)
    lost = [(name, t) for name, t in (("a", a), ("b", b)) if not (t.is_leaf and t.requires_grad)]
    if not lost:
        return None
    name, t = lost[0]
    leaf = _hidden_leaf(t)
    if not t.requires_grad:
        caption = (f"Your {name} does not require grad, so it is not in the graph at all: "
                   f"backward() has no .grad to fill for it.")
    elif leaf is not None:
        caption = (f"Your {name} was made by {grad_fn_name(t)} from a leaf ({tensor_summary(leaf)}): "
                   f"backward() fills .grad of that hidden leaf, never {name}.grad.")
    else:
        caption = f"Your {name} was made by {grad_fn_name(t)}: it is not a leaf, so backward() leaves {name}.grad None."
    found = _product_graph(a, b, "found: the graph of your (a + 1) * b", caption)
    names = {n for n, _ in lost}
    found["highlight"] = [n["id"] for n in found["nodes"]
                          if n["label"].split(" (", 1)[0] in names and n["kind"] != "leaf"]
    real_a = torch.randn(5, device=device, dtype=dtype, requires_grad=True)
    real_b = torch.randn(5, device=device, dtype=dtype, requires_grad=True)
    found["expected"] = _product_graph(
        real_a, real_b, "expected: a and b are leaves",
        f"Made with requires_grad=True where they live ({tensor_summary(real_a)}): a and b are the leaves "
        "(AccumulateGrad), so backward() fills a.grad and b.grad.")
    return found


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
@with_picture(leaf_picture)
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
                 fix=f"it was moved or converted ({grad_fn_name(t)}) after `requires_grad=True`: call "
                     "`.requires_grad_()` after that step, or create it there")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
@with_picture(leaf_picture)
def test_gradients(student, device, dtype):
    """((a + 1) * b).sum().backward() fills a.grad = b and b.grad = a + 1"""
    a, b = make(student, device, dtype)
    for name, t in (("a", a), ("b", b)):
        if not t.is_leaf or not t.requires_grad:
            fail(f"backward() cannot fill `{name}.grad`: `{name}` is not a leaf that requires grad",
                 expected="is_leaf=True, requires_grad=True",
                 found=f"is_leaf={t.is_leaf}, requires_grad={t.requires_grad} (grad_fn {grad_fn_name(t)})")
    ((a + 1) * b).sum().backward()
    for name, t, expected in (("a", a, b), ("b", b, a + 1)):
        if t.grad is None:
            fail(f"`{name}.grad` is None after backward()",
                 expected=f"{name}.grad with the gradient ({describe(expected)})", found="None")
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
