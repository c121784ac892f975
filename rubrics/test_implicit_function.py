"""Rubric for `implicit_function`: an autograd.Function that solves F(x, y) = 0 and differentiates it implicitly.

The student writes `class Implicit(torch.autograd.Function)`; `Implicit.apply(x, y0, F, max_iter=100)` returns
y with F(x, y) ≈ 0 found numerically from y0, and backward uses the implicit function theorem,
dy/dx = -(dF/dy)^-1 dF/dx (lecture, "Own Autograd functions", cell 88). The lecture's LBFGS version is
correct and passes every check. Student solvers may be slow or never stop: each call into them runs under a
time limit of its own, so one endless solve costs one check, not the whole exercise.
"""

import contextlib
import inspect
import math
import re

import pytest
import torch
from torch.autograd.gradcheck import GradcheckError

from grader.checks import describe, expect_close, fail, need
from grader.checks import time_limit as call_limit
from grader.checks import autograd_graph, tensor_summary, with_picture

# Our own references, taken before any student code is loaded.
_Function = torch.autograd.Function
_grad = torch.autograd.grad
_gradcheck = torch.autograd.gradcheck
_GradcheckError = GradcheckError
_saved_tensors_hooks = torch.autograd.graph.saved_tensors_hooks
_tensor = torch.tensor
_equal = torch.equal
_is_tensor = torch.is_tensor
_ones_like = torch.ones_like
_tanh = torch.tanh
_sin = torch.sin
_float64 = torch.float64
_getattr_static = inspect.getattr_static

# One solve and backward of the lecture's LBFGS version takes 13-19 ms here, the first of a process
# included (the worker's warm-up imports torch._dynamo, which the first optimizer step needed): this
# limit, over 150 times that, is for solvers that never stop. Once one call ran out of time, the later
# ones get a tenth of it (still 15 times a solve), so an endless solver costs about 6 s, not 25 as before.
CALL_LIMIT_S = 3.0
AFTER_RAN_OUT = 10  # the divisor of the later calls' limit
_ran_out = []  # the calls that ran out of time in this run (one run grades one submission)
# The lecture's solver finds y to about 1e-5 (LBFGS on F**2 with its default tolerances).
VALUE_TOL = 1e-4
GRAD_RTOL, GRAD_ATOL = 1e-3, 1e-4
# gradcheck differentiates the whole forward, solver error included: an error of 1e-5 in y becomes
# 1e-5 / eps in the numerical derivative. With eps = 1e-2 the lecture's version stays below 2e-3
# (measured on a grid of x for every function below); a sign error or a wrong formula is off by O(1).
GRADCHECK = dict(eps=1e-2, atol=1e-2, rtol=1e-2)

BACKWARD_FIX = (
    "backward receives output_grad = dl/dy and returns one value per input of forward: "
    "`-dF_dx / dF_dy * output_grad` for x, then None for y0, F and max_iter"
)
# What torch.func says when a saved-tensor hook is active around its transforms (torch 2.1-2.13).
HOOKS_REFUSED = "support saved tensor hooks"


@contextlib.contextmanager
def time_limit(doing: str, factor: float = 1.0):
    """Stop student code that runs longer than its limit and fail only this check."""
    seconds = factor * CALL_LIMIT_S / (AFTER_RAN_OUT if _ran_out else 1)
    with call_limit(seconds) as limit:
        yield
    if limit.ran_out:
        _ran_out.append(doing)
        fail(f"{doing} did not finish within {seconds:g} s",
             expected="a call that returns: the lecture's version solves and differentiates in milliseconds",
             found=f"still running after {seconds:g} s",
             fix="bound every loop: the solver's by `max_iter` (stop early once |F(x, y)| is tiny), never "
                 "`while` until an exact zero; backward needs no loop at all")


# -- the functions F(x, y) the checks solve ----------------------------------------------------
# The circle is the lecture's; the other two the student never saw, so a hard-coded formula fails.
# Each has dF/dy != 0 near the root and a single root reachable from y0.


def circle(x, y):
    return x ** 2 + y ** 2 - 1


def cubic(x, y):
    return y ** 3 + y - x  # strictly increasing in y: one real root


def tanh_sin(x, y):
    return y - 0.5 * _tanh(x) - 0.1 * _sin(y)  # dF/dy = 1 - 0.1 cos(y) > 0


CASES = {  # name: (F, x, y0, formula shown to the student)
    "circle": (circle, 0.5, 0.5, "x**2 + y**2 - 1"),
    "cubic": (cubic, 1.3, 0.5, "y**3 + y - x"),
    "tanh_sin": (tanh_sin, 0.8, 0.2, "y - 0.5 * tanh(x) - 0.1 * sin(y)"),
}


def f64(value: float, requires_grad: bool = False):
    return _tensor([value], dtype=_float64, requires_grad=requires_grad)


def apply(student, x, y0, F, *extra, doing=None):
    """`Implicit.apply(x, y0, F, *extra)` under a time limit, its result checked to be a tensor like y0."""
    implicit = need(student, "Implicit", "class")
    apply_ = getattr(implicit, "apply", None)
    if not callable(apply_):
        fail("`Implicit` has no `apply`", expected="a subclass of torch.autograd.Function (it provides `apply`)",
             found=describe(implicit), fix="write `class Implicit(torch.autograd.Function):` with static "
             "`forward(ctx, x, y0, F, max_iter=100)` and `backward(ctx, output_grad)`")
    doing = doing or f"Implicit.apply(x, y0, {F.__name__})"
    with time_limit(doing):
        y = apply_(x, y0, F, *extra)
    if not _is_tensor(y):
        fail(f"{doing} did not return a tensor", expected=f"y, {describe(y0)}", found=describe(y))
    if tuple(y.shape) != tuple(y0.shape) or y.dtype != y0.dtype:
        fail(f"{doing} returned a tensor unlike y0", expected=describe(y0), found=describe(y),
             fix="return y with the shape and dtype of y0")
    return y


def _jacobians(message: str) -> tuple[str, str]:
    """The numerical and analytical values from gradcheck's 'Jacobian mismatch' message, if it is one."""
    found = {}
    for kind in ("numerical", "analytical"):
        match = re.search(kind + r":\s*tensor\(\[\[([^\]]*)\]\]", message)
        if match:
            try:
                found[kind] = f"{float(match.group(1)):.4g}"
            except ValueError:  # several elements: show them as gradcheck does
                found[kind] = match.group(1).strip()
    return found.get("numerical", ""), found.get("analytical", "")


def explain_backward_error(exc: BaseException, doing: str) -> None:
    """PyTorch's errors for the usual backward mistakes, said with their fix; anything else is re-raised."""
    message = str(exc)
    first = message.strip().splitlines()[0][:240] if message.strip() else type(exc).__name__
    if "incorrect number of gradients" in message or "gradient different than None" in message:
        fail(f"{doing} failed: backward does not return one gradient per input of forward",
             expected="the gradient for x, then None for each other input of forward", found=first,
             fix=BACKWARD_FIX)
    if "does not require grad" in message:
        fail(f"{doing} failed: autograd recorded nothing to differentiate",
             expected="dF/dx and dF/dy computed by autograd inside backward", found=first,
             fix="backward (and forward) run with gradient recording switched off; compute F on "
                 "`x.detach().requires_grad_()` and `y.detach().requires_grad_()` inside `with torch.enable_grad():` "
                 "as the lecture does")
    raise exc


def gradient(y, x, doing, grad_output=None):
    if not y.requires_grad:
        fail("y does not require grad, so no gradient can reach x",
             expected="y made by Implicit.apply from an x that requires grad (grad_fn ImplicitBackward)",
             found=f"requires_grad=False ({describe(y)})",
             fix="return y from `forward` of a torch.autograd.Function subclass and call it through `Implicit.apply`")
    try:
        with time_limit(doing):
            (g,) = _grad(y, x, grad_outputs=grad_output, retain_graph=True)
    except RuntimeError as e:
        explain_backward_error(e, doing)
    return g


# -- the picture on the feedback page: the student's Function as one node, and what its backward
# returns for each input of forward, beside the expected node (lecture cell 88)

_INPUTS = ("x", "y0", "F", "max_iter")
_DYDX = -0.5 / math.sqrt(0.75)  # the circle at x = 0.5


def _function_node_picture(title, caption, node_label, node_detail, returned, x, y0, bad_node=False):
    """x, y0 (leaves), F and max_iter (not tensors) into one Function node; each edge labelled with
    what backward returns for that input; `returned` holds (text, wrong) per input."""
    nodes = [{"id": "x", "label": "x (AccumulateGrad)", "kind": "leaf", "detail": tensor_summary(x)},
             {"id": "y0", "label": "y0 (AccumulateGrad)", "kind": "leaf", "detail": tensor_summary(y0)},
             {"id": "F", "label": "F = circle", "kind": "input", "detail": "a Python function"},
             {"id": "max_iter", "label": "max_iter = 100", "kind": "input", "detail": "an int"},
             {"id": "fn", "label": node_label, "kind": "function", "detail": node_detail}]
    edges, highlight = [], ["fn"] if bad_node else []
    for name, (text, wrong) in zip(_INPUTS, returned):
        edges.append({"from": name, "to": "fn", "label": text, "style": "solid" if name in ("x", "y0") else "dashed",
                      **({"highlight": True} if wrong else {})})
        if wrong:
            highlight.append(name)
    return {"kind": "graph", "title": title, "caption": caption, "nodes": nodes, "edges": edges,
            "highlight": highlight}


def _returned(value, expected):
    """(text for the edge, is it wrong) for one value returned by backward; expected None or a number."""
    if value is None:
        return "returns None", expected is not None
    if not _is_tensor(value):
        return f"returns a {type(value).__name__}", True
    if value.numel() != 1:
        return f"returns {tensor_summary(value)}", True
    number = float(value.detach().reshape(-1)[0])
    wrong = (number != 0) if expected is None else abs(number - expected) > GRAD_ATOL + GRAD_RTOL * abs(expected)
    return f"returns {number:.4g}", wrong


def implicit_picture(student):
    if _ran_out:  # a solver or backward that never stops: nothing more of it is run
        return None
    x, y0 = f64(0.5, requires_grad=True), f64(0.5, requires_grad=True)
    expected = _function_node_picture(
        "expected: one node, Implicit.apply", "backward returns dy/dx * output_grad for x "
        f"(-x / sqrt(1 - x**2) = {_DYDX:.4g} here) and None for y0, F and max_iter: y does not depend on where "
        "the solver started.", "y (ImplicitBackward)", "your backward runs here",
        [(f"returns {_DYDX:.4g}", False), ("returns None", False), ("returns None", False), ("returns None", False)],
        x, y0)
    y = apply(student, x, y0, circle, 100, doing="Implicit.apply(x, y0, circle, 100)")
    node = y.grad_fn
    if node is None or not isinstance(getattr(type(node), "_forward_cls", None), type):
        found = autograd_graph([("y", y)], names=[("x", x), ("y0", y0)], title="found: the graph of your y",
                               max_nodes=14, max_depth=6)
        found["highlight"] = [n["id"] for n in found["nodes"] if n["label"].startswith(("y (", "y0 ("))]
        steps = sum(n["kind"] == "op" for n in found["nodes"])
        found["caption"] = (
            "Your y has no grad_fn: autograd recorded nothing, so no gradient can reach x." if node is None else
            f"Your y is built from {steps}{'+' if any(n['kind'] == 'more' for n in found['nodes']) else ''} "
            "autograd operations, the solver's own steps: autograd differentiates through every iteration, "
            "and y0 gets a gradient. Expected: one node whose backward you write.")
        found["expected"] = expected
        return found
    try:
        with time_limit("backward, called to draw the picture"):
            returned = node.apply(_ones_like(y))
        problem = None
    except Exception as e:  # noqa: BLE001 - what backward raises is what the picture shows
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        returned, problem = (), f"{type(e).__name__}: {first}"
    returned = returned if isinstance(returned, tuple) else (returned,)
    shown = [(_returned(returned[k], _DYDX if k == 0 else None) if k < len(returned) else ("nothing returned", True))
             for k in range(len(_INPUTS))]
    if problem:
        shown = [("backward raised", True)] + [("", False)] * (len(_INPUTS) - 1)
    detail = (f"backward raised {problem.split(':', 1)[0]}" if problem else
              f"backward returned {len(returned)} value{'s' if len(returned) != 1 else ''} for 4 inputs")
    wrong = [name for name, (_, bad) in zip(_INPUTS, shown) if bad]
    caption = (f"Your backward raised {problem}" if problem else
               "Each arrow shows what your backward returns for that input of forward (output_grad = 1)"
               + (f"; wrong for {', '.join(wrong)}." if wrong else "."))
    found = _function_node_picture("found: your Function, called as in the check", caption,
                                   f"y ({type(node).__name__})", detail, shown, x, y0,
                                   bad_node=bool(problem) or len(returned) != len(_INPUTS))
    found["expected"] = expected
    return found


# -- the checks -------------------------------------------------------------------------------


@with_picture(implicit_picture)
def test_function_subclass(student):
    """Implicit subclasses torch.autograd.Function and Implicit.apply(x, y0, F) returns a tensor"""
    implicit = need(student, "Implicit", "class")
    if not (isinstance(implicit, type) and issubclass(implicit, _Function)):
        fail("`Implicit` is not a subclass of torch.autograd.Function",
             expected="class Implicit(torch.autograd.Function)", found=describe(implicit)
             if not isinstance(implicit, type) else f"class Implicit with bases {implicit.__bases__}")
    for name in ("forward", "backward"):
        if _getattr_static(implicit, name, None) is _getattr_static(_Function, name, None):
            fail(f"`Implicit` does not define `{name}`", expected=f"a @staticmethod {name}(ctx, ...)",
                 found=f"torch.autograd.Function's own {name}", fix=f"define `{name}` in the class")
    apply(student, f64(0.5, requires_grad=True), f64(0.5), circle)


def test_circle_value(student):
    """the unit circle at x = 0.5 gives y = 0.8660… (sqrt(0.75))"""
    y = apply(student, f64(0.5, requires_grad=True), f64(0.5), circle)
    expect_close(y, f64(math.sqrt(0.75)), "y = Implicit.apply(x, y0, circle) for x = 0.5, y0 = 0.5",
                 rtol=0, atol=VALUE_TOL)


@with_picture(implicit_picture)
def test_circle_gradient(student):
    """the gradient on the unit circle is -x / sqrt(1 - x**2), and backward uses output_grad"""
    x = f64(0.5, requires_grad=True)
    y = apply(student, x, f64(0.5), circle)
    expected = f64(-0.5 / math.sqrt(0.75))
    g = gradient(y, x, "torch.autograd.grad(y, x) on the circle")
    if _is_tensor(g) and g.shape == expected.shape and bool(((g + expected).abs() < GRAD_ATOL).all()):
        fail("the gradient has the wrong sign", expected=f"{expected.item():.6g}", found=f"{g.item():.6g}",
             where="x = 0.5 on the unit circle",
             fix="the implicit function theorem has a minus: dy/dx = -(dF/dy)^-1 dF/dx")
    expect_close(g, expected, "dy/dx on the unit circle at x = 0.5", rtol=GRAD_RTOL, atol=GRAD_ATOL)
    g3 = gradient(y, x, "torch.autograd.grad(y, x, grad_outputs=3) on the circle", grad_output=3 * _ones_like(y))
    expect_close(g3, 3 * expected, "the gradient of 3 * y with respect to x (grad_outputs=3)",
                 rtol=GRAD_RTOL, atol=3 * GRAD_ATOL,
                 fix="backward gets output_grad = dl/dy; return dl/dx = dy/dx * output_grad (the chain rule)")


@pytest.mark.parametrize("case", list(CASES))
def test_gradcheck(student, case):
    """torch.autograd.gradcheck passes in float64"""
    F, x0, y0_value, formula = CASES[case]
    need(student, "Implicit", "class")
    x = f64(x0, requires_grad=True)
    apply(student, x.detach().clone().requires_grad_(), f64(y0_value), F)  # a clear message if apply itself fails

    def fn(x):
        return apply(student, x, f64(y0_value), F)  # a fresh y0 for every solve

    doing = f"torch.autograd.gradcheck on F(x, y) = {formula} at x = {x0}, y0 = {y0_value}"
    try:
        with time_limit(doing, factor=2):
            _gradcheck(fn, (x,), **GRADCHECK)
    except _GradcheckError as e:
        numerical, analytical = _jacobians(str(e))
        if "not multiplied by grad_output" in str(e):
            fix = "backward gets output_grad = dl/dy; return dl/dx = dy/dx * output_grad (the chain rule)"
        elif numerical in ("0", "-0"):
            fix = "your forward's result does not move when x moves: return the solution y, not the start value y0"
        else:
            fix = ("backward must work for any F, not only the lecture's circle: compute dF/dx and dF/dy of the F "
                   "given to forward with autograd at (x, y), and return -dF_dx / dF_dy * output_grad")
        fail("torch.autograd.gradcheck finds that backward does not give the derivative of forward",
             expected=f"dy/dx from your backward equal to the finite differences of your forward"
                      + (f" ({numerical})" if numerical else ""),
             found=(f"{analytical} from your backward" if analytical else
                    str(e).strip().splitlines()[0][:240]),
             where=f"F(x, y) = {formula}, x = {x0}, y0 = {y0_value}",
             tolerance=", ".join(f"{k}={v:g}" for k, v in GRADCHECK.items()),
             fix=fix)
    except RuntimeError as e:
        explain_backward_error(e, doing)


@with_picture(implicit_picture)
def test_no_gradient_for_other_inputs(student):
    """backward returns None for y0, F and max_iter"""
    x, y0 = f64(0.5, requires_grad=True), f64(0.5, requires_grad=True)
    doing = "Implicit.apply(x, y0, circle, 100) with x and y0 requiring grad"
    y = apply(student, x, y0, circle, 100, doing=doing)
    if not y.requires_grad:
        fail("y does not require grad", expected="y with grad_fn ImplicitBackward", found=describe(y),
             where=doing, fix="return y from `forward` of a torch.autograd.Function subclass")
    try:
        with time_limit("torch.autograd.grad(y, [x, y0])"):
            _, gy0 = _grad(y.sum(), [x, y0], allow_unused=True)
    except RuntimeError as e:
        explain_backward_error(e, "torch.autograd.grad(y, [x, y0]) after " + doing)
    if gy0 is not None and bool((gy0 != 0).any()):
        fail("y0 gets a gradient, but the solution does not depend on the start value",
             expected="None for y0: backward returns None for it, and the solver's steps are not part of y's graph",
             found=f"{describe(gy0)} with value {gy0.detach().reshape(-1)[0].item():.6g}",
             where=doing)


def test_save_for_backward(student):
    """x and y are kept with ctx.save_for_backward"""
    packed, unpacked = [], []

    def pack(t):
        packed.append(t)
        return len(packed) - 1

    def unpack(i):
        unpacked.append(packed[i])
        return packed[i]

    x = f64(0.6, requires_grad=True)  # y = 0.8: x, y and y0 all differ
    try:
        with _saved_tensors_hooks(pack, unpack):
            y = apply(student, x, f64(0.5), circle)
        hooked = True
    except RuntimeError as e:
        if HOOKS_REFUSED not in str(e):
            raise
        # torch.func inside forward refuses our hooks: legal code, and the node's saved tensors tell the same.
        y, hooked = apply(student, x, f64(0.5), circle), False
    unpacked.clear()  # forget what the solver's own backward() calls inside forward unpacked
    node = y.grad_fn
    if node is None or not isinstance(getattr(type(node), "_forward_cls", None), type):
        fail("y was not made by the backward node of a torch.autograd.Function",
             expected="y.grad_fn an ImplicitBackward node", found=f"grad_fn {type(node).__name__}",
             fix="return y from `forward` of a torch.autograd.Function subclass and call it through `Implicit.apply`")
    try:
        kept = node.saved_tensors  # with our hooks, reading them runs our unpack hook for each saved tensor
    except RuntimeError as e:
        fail("the tensors saved for backward cannot be read back", found=str(e).splitlines()[0][:240])
    saved = [t.detach() for t in (unpacked if hooked else kept) if _is_tensor(t) and tuple(t.shape) == (1,)]
    solution = f64(0.8)  # what forward returns (if it solves) or should return (if not: other checks say so)
    has_x = any(_equal(t, x.detach()) for t in saved)
    has_y = any(_equal(t, y.detach()) or bool(((t - solution).abs() <= VALUE_TOL).all()) for t in saved)
    missing = [name for name, present in (("x", has_x), ("y", has_y)) if not present]
    if missing:
        fail(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not kept with ctx.save_for_backward",
             expected="ctx.save_for_backward(x, y) in forward: autograd then checks that they are not modified "
                      "in place before backward, and frees them with the graph",
             found=f"{len(saved)} tensor(s) of shape (1,) saved with save_for_backward"
                   + (", with values " + ", ".join(f"{t.item():.6g}" for t in saved[:4]) if saved else
                      " (tensors kept as attributes of ctx are not)"),
             where="x = 0.6, y0 = 0.5 on the unit circle, so y = 0.8")


def test_y0_unchanged(student):
    """y0 is not modified (values and y0._version)"""
    y0 = f64(0.5)
    version = y0._version
    apply(student, f64(0.5, requires_grad=True), y0, circle)
    if y0._version != version or y0.item() != 0.5:
        fail("Implicit.apply changes the start value y0 in place",
             expected=f"y0 still 0.5 and y0._version still {version}",
             found=f"y0 = {y0.reshape(-1)[0].item():.6g}, y0._version = {y0._version}")


def probe(student):
    """What a mutant of the solution must reproduce to count as equivalent (`grader validate --mutants`)."""
    out = []
    for F, x0, y0_value, _ in CASES.values():
        x, y0 = f64(x0, requires_grad=True), f64(y0_value)
        y = student.Implicit.apply(x, y0, F)
        # A non-unit output_grad: a backward that divides by it, or ignores it, differs.
        grad = torch.autograd.grad(y, x, grad_outputs=torch.full_like(y, 3.0))
        out.append([y, grad, y0, y0._version, issubclass(student.Implicit, _Function)])
    return out
