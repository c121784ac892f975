"""Rubric for `inplace`: repair the lecture's inplace bug, and fill a preallocated tensor without losing autograd.

The student writes `increment_and_square(a) -> (b1, b2)` (b1 == a + 2, b2 == (a + 1) ** 2, and
`torch.autograd.grad(b2.sum(), a)` must work) and `padded_stack(a, b)` (lecture cell 70: a (4, n + 2)
zero tensor with `a` in row 1 and `b` in row 2, columns 1..n).
"""

import pytest
import torch
from torch.autograd.gradcheck import GradcheckError

from grader.checks import DEVICES, DTYPES, describe, expect_close, expect_tensor, fail, need
from grader.checks import autograd_graph, with_picture

# Our own references, taken before any student code is loaded.
_grad = torch.autograd.grad
_gradcheck = torch.autograd.gradcheck
_GradcheckError = GradcheckError
_randn = torch.randn
_zeros = torch.zeros
_ones_like = torch.ones_like
_equal = torch.equal
_float64 = torch.float64

# Fragments of PyTorch's own error messages that have a known cause in this exercise.
INPLACE_ERROR = "modified by an inplace operation"
LEAF_ERROR = "leaf Variable that requires grad is being used in an in-place operation"
NO_GRAD_ERRORS = ("does not require grad", "appears to not have been used in the graph")
META_ERROR = "meta tensor"

INPLACE_FIX = (
    "`b2 = b1 ** 2` keeps `b1` for its backward (d b2 / d b1 = 2 * b1), and a later `b1 += 1` changes that "
    "kept tensor in place. Make the second increment out of place (`b1 = b1 + 1`), or clone first "
    "(`b1 = b1.clone().add_(1)`), or compute b1 = a + 2 and b2 = (a + 1) ** 2 directly"
)
INPUT_FIX = (
    "do not change the caller's tensor: compute new tensors (`a + 1`, not `a += 1` or `a.add_(1)`), "
    "and never write through `.data`; inplace on the inputs of a re-usable function is what the lecture warns against"
)
NEW_ZEROS_FIX = (
    "create the result like its inputs: `torch.zeros(4, n + 2, dtype=a.dtype, device=a.device)` "
    "or `a.new_zeros(4, n + 2)`"
)
DETACH_FIX = (
    "copy the tensors themselves into the preallocated result (`c[1, 1:-1] = a`): a copy through "
    "`.data`, `.detach()`, `.item()`/`.tolist()` or under `torch.no_grad()` cuts them from autograd"
)
FUNCTIONS = ("increment_and_square", "padded_stack")


def _first_line(exc: BaseException, limit: int = 220) -> str:
    text = str(exc).strip().splitlines()
    head = text[0].split(" Hint: ", 1)[0] if text else ""  # PyTorch's own hint (anomaly mode) is not ours
    return f"{type(exc).__name__}: {head[:limit]}{'…' if len(head) > limit else ''}"


def explain_autograd_error(exc: BaseException, doing: str, function: str) -> None:
    """Turn PyTorch's error for a known pitfall into a check failure; re-raise anything else."""
    message = str(exc)
    if INPLACE_ERROR in message:
        fail(f"{doing} raised 'one of the variables needed for gradient computation has been modified by an "
             f"inplace operation'", expected="the gradient, computed without an error",
             found=_first_line(exc), where=function, fix=INPLACE_FIX)
    if LEAF_ERROR in message:
        fail(f"{function} changes its input in place: on a leaf that requires grad PyTorch refuses that",
             expected="the input left as it was", found=_first_line(exc), where=doing, fix=INPUT_FIX)
    if any(fragment in message for fragment in NO_GRAD_ERRORS):
        fail(f"no gradient reaches the inputs of {function}: {doing} raised an error",
             expected="an output computed from the inputs by autograd-tracked operations",
             found=_first_line(exc), fix=DETACH_FIX if function == "padded_stack" else
             "compute b1 and b2 from `a` with tensor operations, outside `torch.no_grad()` and without `.detach()`")
    raise exc


def call_increment(student, a, doing="increment_and_square(a)"):
    increment_and_square = need(student, "increment_and_square")
    try:
        out = increment_and_square(a)
    except RuntimeError as e:
        explain_autograd_error(e, doing, "increment_and_square")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail("increment_and_square must return two tensors (b1, b2)", expected="a tuple (b1, b2)",
             found=describe(out))
    for name, t in zip(("b1", "b2"), out):
        expect_tensor(t, f"`{name}`")
    return tuple(out)


def call_padded(student, a, b, doing="padded_stack(a, b)"):
    padded_stack = need(student, "padded_stack")
    try:
        c = padded_stack(a, b)
    except (RuntimeError, NotImplementedError) as e:
        if META_ERROR in str(e) and a.device.type == "meta":
            fail("padded_stack builds its result on another device than its inputs",
                 expected=f"a result on {a.device}, like the inputs", found=_first_line(exc=e),
                 where=doing, fix=NEW_ZEROS_FIX)
        explain_autograd_error(e, doing, "padded_stack")
    return expect_tensor(c, "the result of padded_stack")


def expected_padded(a, b):
    n = a.shape[0]
    c = _zeros(4, n + 2, dtype=a.dtype, device=a.device)
    c[1, 1:-1] = a.detach()
    c[2, 1:-1] = b.detach()
    return c


def expect_like_inputs(c, a, n, doing):
    """Shape (4, n + 2), and the dtype and device of the inputs."""
    want = f"tensor of shape (4, {n + 2}), {str(a.dtype).replace('torch.', '')} on {a.device}"
    if tuple(c.shape) != (4, n + 2):
        fail("the result of padded_stack has the wrong shape", expected=want, found=describe(c), where=doing,
             fix="for inputs of length n the result is (4, n + 2); take n from `a.shape[0]`, do not hard-code 7")
    if c.dtype != a.dtype or c.device != a.device:
        fail("the result of padded_stack does not have the dtype and device of its inputs",
             expected=want, found=describe(c), where=doing, fix=NEW_ZEROS_FIX)


# -- the picture on the feedback page: the graph with the saved tensor that changed, beside the repaired one


def inplace_picture(student, device, dtype):
    a = _randn(5, dtype=dtype, device=device, requires_grad=True)
    b1, b2 = call_increment(student, a)
    found = autograd_graph([("b2", b2), ("b1", b1)], names=[("a", a)], saved="all",
                           title="found: the graph of your b1, b2")
    changed = [n for n in found["nodes"] if n["id"] in found["highlight"] and n["kind"] == "saved"]
    if changed:
        user = next(n["label"] for e in found["edges"] if e["from"] == changed[0]["id"]
                    for n in found["nodes"] if n["id"] == e["to"])
        writer = [n["label"] for n in found["nodes"] if n["id"] in found["highlight"] and n["kind"] != "saved"]
        found["caption"] = (f"{user} keeps a tensor for its backward ({changed[0]['detail']}): an in-place "
                            f"operation{' (' + writer[0] + ')' if writer else ''} changed it after it was saved, "
                            "so autograd refuses to compute the gradient from changed values.")
    else:
        found["highlight"] = [n["id"] for n in found["nodes"] if n["label"].endswith("(no grad_fn)")]
        found["caption"] = ("Your b1 and b2 as autograd recorded them"
                            + (": red ones are not connected to a at all." if found["highlight"] else "."))
    x = a.detach().clone().requires_grad_()
    e1 = x + 1
    e2 = e1 ** 2
    e1 = e1 + 1
    found["expected"] = autograd_graph(
        [("b2", e2), ("b1", e1)], names=[("a", x)], saved="all", title="expected: the second increment out of place",
        caption="b1 = b1 + 1 makes a new tensor: the one PowBackward0 saved keeps its version, and the gradient "
                "of b2 is 2 * (a + 1).")
    return found


# -- increment_and_square ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_increment_values(student, device, dtype):
    """increment_and_square(a) returns b1 == a + 2 and b2 == (a + 1) ** 2"""
    a = _randn(5, dtype=dtype, device=device)
    original = a.clone()
    b1, b2 = call_increment(student, a)
    expect_close(b1, original + 2, "`b1`")
    expect_close(b2, (original + 1) ** 2, "`b2`")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
@with_picture(inplace_picture)
def test_increment_gradients(student, device, dtype):
    """torch.autograd.grad(b2.sum(), a) works and gives 2 * (a + 1); b1's gradient is 1"""
    a = _randn(5, dtype=dtype, device=device, requires_grad=True)
    original = a.detach().clone()
    b1, b2 = call_increment(student, a)
    for name, t in (("b1", b1), ("b2", b2)):
        if not t.requires_grad:
            fail(f"`{name}` does not require grad, so no gradient can reach `a`",
                 expected=f"`{name}` computed from `a` by autograd (requires_grad=True)",
                 found=f"requires_grad=False ({describe(t)})",
                 fix="compute b1 and b2 from `a` with tensor operations, outside `torch.no_grad()` and without "
                     "`.detach()` or `.data`")
    try:
        (g2,) = _grad(b2.sum(), a, retain_graph=True)
    except RuntimeError as e:
        explain_autograd_error(e, "torch.autograd.grad(b2.sum(), a)", "increment_and_square")
    expect_close(g2, 2 * (original + 1), "the gradient of b2.sum() with respect to a")
    try:
        (g1,) = _grad(b1.sum(), a)
    except RuntimeError as e:
        explain_autograd_error(e, "torch.autograd.grad(b1.sum(), a)", "increment_and_square")
    expect_close(g1, _ones_like(original), "the gradient of b1.sum() with respect to a")


# -- both functions ---------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_gradcheck(student, function):
    """torch.autograd.gradcheck passes in float64"""
    need(student, function)
    if function == "increment_and_square":
        inputs = (_randn(5, dtype=_float64, requires_grad=True),)

        def fn(a):
            return call_increment(student, a, doing="increment_and_square(a) inside gradcheck")
    else:
        inputs = (_randn(5, dtype=_float64, requires_grad=True), _randn(5, dtype=_float64, requires_grad=True))

        def fn(a, b):
            return call_padded(student, a, b, doing="padded_stack(a, b) inside gradcheck")
    trial = fn(*(t.detach().clone().requires_grad_() for t in inputs))
    for out in trial if isinstance(trial, tuple) else (trial,):
        if out.dtype != _float64:
            fail(f"{function} turns float64 inputs into a {str(out.dtype).replace('torch.', '')} result, "
                 "so its gradients cannot be checked in float64",
                 expected="a float64 result for float64 inputs", found=describe(out),
                 fix=NEW_ZEROS_FIX if function == "padded_stack" else "compute with the dtype of `a`")
    try:
        _gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)
    except _GradcheckError as e:
        fail(f"torch.autograd.gradcheck finds that the gradients of {function} are not its derivatives",
             expected="the analytical gradient (from autograd) equal to the numerical one (finite differences)",
             found=_first_line(e),
             where=f"{function} on float64 inputs of shape (5,)",
             tolerance="eps=1e-6, atol=1e-5, rtol=1e-3")
    except RuntimeError as e:
        explain_autograd_error(e, f"torch.autograd.gradcheck({function}, ...)", function)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_input_unchanged(student, function):
    """the inputs are not modified (values and a._version)"""
    need(student, function)
    call = ((lambda t: call_increment(student, t[0])) if function == "increment_and_square"
            else (lambda t: call_padded(student, t[0], t[1])))
    names = ("a",) if function == "increment_and_square" else ("a", "b")
    kinds = (
        ("a plain tensor", lambda: _randn(5)),
        ("a non-leaf tensor that requires grad (x * 1)", lambda: _randn(5, requires_grad=True) * 1),
        ("a leaf that requires grad", lambda: _randn(5, requires_grad=True)),
    )
    for kind, make in kinds:
        inputs = tuple(make() for _ in names)
        before = [(t.detach().clone(), t._version) for t in inputs]
        call(inputs)
        for name, t, (values, version) in zip(names, inputs, before):
            if t._version != version:
                fail(f"{function} modifies its input `{name}` in place",
                     expected=f"`{name}._version` still {version} after the call",
                     found=f"`{name}._version` is {t._version}: an inplace operation wrote into it",
                     where=f"{function} called with {kind}")
            if tuple(t.shape) != tuple(values.shape) or not _equal(t.detach(), values):
                fail(f"{function} changes the values of its input `{name}`",
                     expected=f"`{name}` as it was before the call ({describe(values)})",
                     found=f"changed values ({describe(t)}); `_version` did not move, so the write went through "
                           "`.data` or a resize",
                     where=f"{function} called with {kind}")


# -- padded_stack -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_padded_values(student, device, dtype):
    """padded_stack(a, b) is zeros with a in row 1 and b in row 2, of the inputs' dtype and device"""
    a = _randn(5, dtype=dtype, device=device)
    b = _randn(5, dtype=dtype, device=device)
    doing = f"padded_stack(a, b) with a, b of shape (5,), {str(dtype).replace('torch.', '')} on {device}"
    expected = expected_padded(a, b)
    c = call_padded(student, a, b, doing=doing)
    expect_like_inputs(c, a, 5, doing)
    expect_close(c, expected, "the result of padded_stack")


def test_padded_lengths(student):
    """padded_stack works for lengths other than 5"""
    for n in (1, 3, 8):
        a, b = _randn(n), _randn(n)
        doing = f"padded_stack(a, b) with a, b of shape ({n},)"
        expected = expected_padded(a, b)
        try:
            c = call_padded(student, a, b, doing=doing)
        except RuntimeError as e:
            fail(f"{doing} raised an error", expected=f"a tensor of shape (4, {n + 2})", found=_first_line(e))
        expect_like_inputs(c, a, n, doing)
        expect_close(c, expected, f"the result of {doing}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_padded_gradients(student, device, dtype):
    """the gradient of padded_stack(a, b).sum() is all ones for a and for b"""
    a = _randn(5, dtype=dtype, device=device, requires_grad=True)
    b = _randn(5, dtype=dtype, device=device, requires_grad=True)
    doing = f"padded_stack(a, b) with leaves a, b that require grad, {str(dtype).replace('torch.', '')} on {device}"
    c = call_padded(student, a, b, doing=doing)
    if not c.requires_grad:
        fail("the result of padded_stack does not require grad, so no gradient reaches a and b",
             expected="requires_grad=True (grad_fn CopySlices)", found=f"requires_grad=False ({describe(c)})",
             where=doing)
    try:
        grads = _grad(c.sum(), [a, b])
    except RuntimeError as e:
        explain_autograd_error(e, "torch.autograd.grad(padded_stack(a, b).sum(), [a, b])", "padded_stack")
    for name, t, g in (("a", a, grads[0]), ("b", b, grads[1])):
        expect_close(g, _ones_like(t.detach()), f"the gradient of padded_stack(a, b).sum() with respect to `{name}`")


def probe(student):
    """What a mutant of the solution must reproduce to count as equivalent (`grader validate --mutants`)."""
    out = []
    for device in ("cpu", "meta"):
        for dtype in (torch.float32, torch.float64):
            a = torch.randn(5, dtype=dtype, device=device, requires_grad=True)
            b = torch.randn(5, dtype=dtype, device=device, requires_grad=True)
            b1, b2 = student.increment_and_square(a)
            c = student.padded_stack(a, b)
            out.append([b1, b2, torch.autograd.grad(b2.sum(), a, retain_graph=True), torch.autograd.grad(b1.sum(), a),
                        c, torch.autograd.grad(c.sum(), [a, b]), a._version, b._version])
    plain = torch.randn(3)
    out.append([student.increment_and_square(plain), student.padded_stack(plain, plain), plain._version, plain])
    return out
