"""Rubric for `beat_pdist`: lunif_fast(x, t=2), the uniformity loss without pdist, and faster than it.

Lecture cells 114-120: `lunif` uses `torch.pdist`; `lunif2` uses |x|^2 + |y|^2 - 2<x, y> and
a matrix product, but overwrites `t` with `t=2`. Values and gradients are compared with the
pdist version in float64; "no pdist" is checked at the ATen-operator level (every route,
`torch.pdist`, `F.pdist`, `torch._C._VariableFunctions.pdist`, `torch.ops.aten._pdist_forward`,
ends in `aten::_pdist_forward` / `aten::_pdist_backward`); the speed is measured by
`grader.timing` on fresh inputs for every call.
"""

import math

import pytest
import torch

from grader.checks import FEEDBACK, NEEDS_CUDA, OperatorLog, cuda_available, describe, expect_close, expect_speedup
from grader.checks import fail, measure_speedup, need
from grader.timing import ThresholdPolicy, calibration_record

# Our own references, taken before any student code is loaded.
_pdist = torch.pdist
_grad = torch.autograd.grad
_randn = torch.randn
_is_tensor = torch.is_tensor
_float64 = torch.float64
_float32 = torch.float32
_isclose = torch.isclose
_abs = torch.abs
_exp = torch.exp
_log = math.log
_mm = torch.mm

NAME = "lunif_fast"
# (N, D) of the timed inputs. CPU: the reference takes about 20 ms per forward+backward with one
# thread on the grading machine (2-core AMD EPYC); on a GPU the lecture's own size.
TIMING_SIZE = {"cpu": (512, 500), "cuda": (1024, 128)}
REFERENCE_NAME = "the torch.pdist version (the lecture's lunif)"
CALIBRATION_PAIRS = 21  # timed pairs of the reference solution against pdist, once per worker and refresh

VALUE_RTOL, VALUE_ATOL = 1e-7, 1e-10
GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-9

# (N, D, t passed or None for the default, points on the unit sphere as in the lecture)
CASES = [
    pytest.param(2, 3, None, False, id="N2-D3"),          # a single pair
    pytest.param(17, 5, 2, False, id="N17-D5-t2"),
    pytest.param(64, 33, None, True, id="N64-D33-sphere"),
    pytest.param(100, 1, None, False, id="N100-D1"),
]
T_CASES = [
    pytest.param(20, 4, 0.5, "positional", id="t0.5"),
    pytest.param(33, 6, 3.5, "keyword", id="t3.5"),
]

FIX_FORMULA = (
    "compute all squared distances at once as |x_i|^2 + |x_j|^2 - 2 <x_i, x_j> (one `x @ x.T`), "
    "then average exp(-t * d) over the pairs i < j only (upper triangle, e.g. `torch.triu_indices`, "
    "or the full sum minus the diagonal divided by N(N-1)), and take the log"
)


def reference_loss(x, t=2):
    """The lecture's lunif: log(mean over pairs i < j of exp(-t |x_i - x_j|^2))."""
    return _pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


def make_x(n, d, seed, sphere=False, dtype=_float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = _randn(n, d, generator=g, dtype=dtype).to(device)
    x = x / x.norm(dim=1, keepdim=True) if sphere else 0.5 * x
    return x.requires_grad_()


def call(student, x, t=None, how="keyword"):
    lunif_fast = need(student, NAME)
    if t is None:
        return lunif_fast(x)
    return lunif_fast(x, t) if how == "positional" else lunif_fast(x, t=t)


def signature(n, d, t, how="keyword") -> str:
    t_text = "" if t is None else (f", {t:g}" if how == "positional" else f", t={t:g}")
    return f"{NAME}(x{t_text}) for x of shape ({n}, {d}), float64"


def expect_scalar(loss, what: str):
    if not _is_tensor(loss):
        fail(f"{what} did not return a tensor", expected="a 0-dim tensor (the loss)", found=describe(loss),
             fix="return the torch result itself, not `.item()` or a Python number")
    if loss.dim() != 0:
        fail(f"{what} did not return a single number", expected="a tensor of shape (), like torch.pdist(x).mean()",
             found=describe(loss), fix="reduce with `.mean()` over the pairs, then `.log()`")


def diagnose_value(found: float, x, t) -> str | None:
    """Name the mistake when the student's value matches a known wrong formula."""
    n = x.shape[0]
    with torch.no_grad():
        s = _pdist(x.detach(), p=2).pow(2).mul(-t).exp().sum().item()  # sum over pairs i < j
    pairs = n * (n - 1) / 2
    known = [
        (s / pairs, None),
        (s / n ** 2, "you divide the sum over the pairs by N*N; the mean is over the N(N-1)/2 pairs i < j"),
        ((2 * s + n) / n ** 2, "you average over the whole N x N matrix, diagonal (distance 0, exp = 1) included; "
                               "leave out the diagonal and count each pair once"),
        (2 * s / n ** 2, "you divide by N*N; without the diagonal there are N(N-1) ordered pairs"),
        (2 * s / pairs, "you sum both triangles (each pair twice) but divide by the number of pairs"),
        ((s + n) / (pairs + n), "you include the diagonal (distance 0): use the pairs i < j only"),
    ]
    if t != 2:
        s2 = _pdist(x.detach(), p=2).pow(2).mul(-2).exp().sum().item()
        known.append((s2 / pairs, f"your value is the loss for t=2, not for t={t:g}: you ignore or overwrite `t` "
                                  "(the lecture's lunif2 starts with `t=2`, which throws the argument away)"))
    for value, why in known[1:]:
        if value > 0 and math.isclose(found, _log(value), rel_tol=1e-6, abs_tol=1e-9):
            return why
    if math.isclose(found, s / pairs, rel_tol=1e-6):
        return "you return the mean without the final `.log()`"
    return None


# -- values and gradients in float64 ------------------------------------------------------------


@pytest.mark.parametrize("n, d, t, sphere", CASES)
def test_value(student, n, d, t, sphere):
    """lunif_fast(x) equals the pdist uniformity loss (float64)"""
    x = make_x(n, d, seed=n * 100 + d, sphere=sphere)
    loss = call(student, x, t)
    what = signature(n, d, t)
    expect_scalar(loss, what)
    expected = reference_loss(x, 2 if t is None else t).detach()
    found = loss.detach()
    if found.dtype == expected.dtype and not bool(_isclose(found, expected, rtol=VALUE_RTOL, atol=VALUE_ATOL)):
        why = diagnose_value(float(found), x, 2 if t is None else t)
        if why:
            fail(f"{what} is not the uniformity loss: {why}", expected=f"{expected.item():.10g}",
                 found=f"{found.item():.10g}", tolerance=f"rtol={VALUE_RTOL:g}, atol={VALUE_ATOL:g}")
    expect_close(found, expected, what, rtol=VALUE_RTOL, atol=VALUE_ATOL)


def student_gradient(student, x, t=None, how="keyword"):
    what = signature(*x.shape, t, how)
    loss = call(student, x, t, how)
    expect_scalar(loss, what)
    if not loss.requires_grad:
        fail(f"no gradient flows from {what} back to x",
             expected="a loss with a grad_fn (requires_grad=True), so that backward() reaches x",
             found=f"{describe(loss)} with requires_grad=False",
             fix="do not `.detach()`, use `.data`, `.item()`, `torch.no_grad()` or NumPy inside the function: "
                 "every step must be a torch operation on x")
    (g,) = _grad(loss, x, allow_unused=True)
    if g is None:
        fail(f"the result of {what} does not depend on x", expected="a gradient for x",
             found="torch.autograd.grad(loss, x) gives None (x is not in the loss's graph)",
             fix="compute the loss from the x you were given (not from a copy made without autograd)")
    return loss, g


@pytest.mark.parametrize("n, d, t, sphere", CASES)
def test_gradient(student, n, d, t, sphere):
    """its gradient equals the gradient of the pdist version (float64)"""
    x = make_x(n, d, seed=n * 100 + d + 1, sphere=sphere)
    _, g = student_gradient(student, x, t)
    (expected,) = _grad(reference_loss(x, 2 if t is None else t), x)
    expect_close(g, expected, f"the gradient of {signature(n, d, t)} with respect to x",
                 rtol=GRAD_RTOL, atol=GRAD_ATOL, fix=FIX_FORMULA)


@pytest.mark.parametrize("n, d, t, how", T_CASES)
def test_honours_t(student, n, d, t, how):
    """the temperature t is honoured (t != 2): value and gradient"""
    x = make_x(n, d, seed=n * 100 + d + 2)
    loss, g = student_gradient(student, x, t, how)
    what = signature(n, d, t, how)
    expected = reference_loss(x, t)
    (expected_g,) = _grad(expected, x)
    found = loss.detach()
    if found.dtype == _float64 and not bool(_isclose(found, expected.detach(), rtol=VALUE_RTOL, atol=VALUE_ATOL)):
        why = diagnose_value(float(found), x, t)
        if why:
            fail(f"{what} is not the uniformity loss for t={t:g}: {why}", expected=f"{expected.item():.10g}",
                 found=f"{found.item():.10g}", tolerance=f"rtol={VALUE_RTOL:g}, atol={VALUE_ATOL:g}")
    expect_close(found, expected.detach(), what, rtol=VALUE_RTOL, atol=VALUE_ATOL)
    expect_close(g, expected_g, f"the gradient of {what}", rtol=GRAD_RTOL, atol=GRAD_ATOL)


# -- no pdist, by any route -------------------------------------------------------------------


NO_PDIST_INPUTS = [(2, 3, None, _float64), (17, 5, 0.5, _float64), (64, 33, None, _float64), (40, 8, None, _float32)]


def test_no_pdist(student):
    """no pdist by any route (checked at the ATen-operator level)"""
    lunif_fast = need(student, NAME)
    for n, d, t, dtype in NO_PDIST_INPUTS:
        x = make_x(n, d, seed=7 * n + d, sphere=True, dtype=dtype)
        log = OperatorLog()
        with log:
            loss = lunif_fast(x) if t is None else lunif_fast(x, t=t)
            if _is_tensor(loss) and loss.requires_grad:
                _grad(loss, x, allow_unused=True)
        used = log.ran("pdist")
        if used:
            fail("your function uses pdist, which this exercise asks you to beat without it",
                 expected="no pdist operator in the forward or backward pass (torch.cdist, torch.mm, ... are fine)",
                 found=f"the operator{'s' if len(used) > 1 else ''} {', '.join(used)} ran",
                 where=f"{NAME}(x{'' if t is None else f', t={t:g}'}) for x of shape ({n}, {d}), "
                       f"{str(dtype).replace('torch.', '')}, forward and backward")


# -- speed --------------------------------------------------------------------------------------


def timing_inputs(device):
    n, d = TIMING_SIZE[device]

    def make_inputs():
        # Fresh random points on the sphere for every call (the lecture's x): nothing to cache.
        x = _randn(n, d, device=device)
        x = x / x.norm(dim=1, keepdim=True)
        return (x.requires_grad_(),)

    return make_inputs


def closed_form(x, t=2):
    """The loss and its gradient without autograd, from one matrix product (float32 products, float64
    sums): L = log(S / P) with S = sum over i < j of w_ij = exp(-t |x_i - x_j|^2) and P the number of
    pairs, dL/dx_i = -2t / S * sum over j of w_ij (x_i - x_j). A few ms, where pdist's backward takes tens."""
    n = x.shape[0]
    sq = (x * x).sum(1)
    w = _exp(-t * (sq[:, None] + sq[None, :] - 2 * _mm(x, x.t())))
    w.fill_diagonal_(0)
    s = w.to(_float64).sum() / 2
    value = (s / (n * (n - 1) / 2)).log()
    grad = (-2 * t / s).to(x.dtype) * (w.sum(1)[:, None] * x - _mm(w, x))
    return value, grad


def timing_verifier(n, d, device):
    """Outside the timed region: every timed result, its value and its gradient, must be right for its
    own fresh input, on every call (so an answer right only on a first call, or a cached one, fails)."""

    def verify(args, out):
        (x,) = args
        loss, g = out
        where = f"{NAME}(x) for a fresh x of shape ({n}, {d}), float32 on {device}, in the speed check"
        expect_scalar(loss, where)
        if g is None:
            fail("in the speed check no gradient flows from your loss back to x, so forward+backward cannot be timed",
                 expected="a loss with a grad_fn that reaches x", found=f"{describe(loss)}, requires_grad={loss.requires_grad}",
                 where=where, fix="do not detach or leave autograd inside the function")
        with torch.no_grad():
            expected, expected_g = closed_form(x.detach())
        if loss.dtype != x.dtype or not bool(_isclose(loss.detach().to(_float64), expected, rtol=1e-4, atol=1e-5)):
            fail("the speed is judged only for correct results, and this one is wrong",
                 expected=f"{expected.item():.7g} (the uniformity loss, float32)",
                 found=f"{loss.detach().item():.7g} ({describe(loss)})", where=where,
                 tolerance="rtol=1e-4, atol=1e-5",
                 fix="make the value checks pass first; a result cached from another input is also wrong here")
        scale = float(_abs(expected_g).max())
        expect_close(g, expected_g, f"the gradient of {where}", rtol=1e-3, atol=1e-3 * scale,
                     fix="make the gradient checks pass first: every call's gradient is checked, not only the first")

    return verify


def run_student(lunif_fast):
    def forward_backward(x):
        loss = lunif_fast(x)
        if not (_is_tensor(loss) and loss.requires_grad):
            return loss, None
        (g,) = _grad(loss, x, allow_unused=True)
        return loss, g

    return forward_backward


def run_reference(x):
    loss = reference_loss(x)
    (g,) = _grad(loss, x)
    return loss, g


def timing_policy(thresholds, device) -> ThresholdPolicy:
    if device not in thresholds:
        raise RuntimeError(f"the assignment YAML has no exercises.beat_pdist.thresholds.{device}")
    return ThresholdPolicy.from_config(thresholds[device], f"exercises.beat_pdist.thresholds.{device}")


def measure(lunif_fast, device, threshold, **kw):
    n, d = TIMING_SIZE[device]
    return measure_speedup(run_student(lunif_fast), run_reference, timing_inputs(device), threshold=threshold,
                           device=device, verify=timing_verifier(n, d, device), **kw)


@pytest.mark.parametrize("device", [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=NEEDS_CUDA)])
def test_faster_than_pdist(student, thresholds, calibration, record_property, device):
    """forward+backward beats the pdist version by the device's threshold"""
    lunif_fast = need(student, NAME)
    policy = timing_policy(thresholds, device)
    measured = calibration.get(device)
    skip = policy.skip_reason(measured or {"error": calibration.get("error")}, REFERENCE_NAME, device)
    if skip:
        pytest.skip(skip)
    reference_speedup = measured["speedup"] if policy.calibrated else None
    n, d = TIMING_SIZE[device]
    result = measure(lunif_fast, device, policy.threshold(reference_speedup), threads=calibration.get("threads"),
                     reference_speedup=reference_speedup, policy=policy.describe())
    record_property(FEEDBACK, expect_speedup(
        result, what=f"{NAME}", reference_name=REFERENCE_NAME,
        inputs=f"x of shape ({n}, {d}), float32, on the unit sphere",
    ))


def calibrate(solution, threads: int) -> dict:
    """The reference solution's speed-up over pdist here, per device, by the speed check's own
    measurement (`grader.calibration` runs this in a run of its own, never beside student code)."""
    lunif_fast = need(solution, NAME)
    devices = ["cpu", "cuda"] if cuda_available() else ["cpu"]
    return {device: calibration_record(measure(lunif_fast, device, 0.0, threads=threads, repeats=CALIBRATION_PAIRS))
            for device in devices}


def probe(student):
    """What a mutant of the solution must reproduce to count as equivalent (`grader validate --mutants`)."""
    torch.manual_seed(0)
    out = []
    for n, t in ((6, 2), (5, 0.5), (2, 3.0)):
        x = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
        value = student.lunif_fast(x, t)
        out += [value, torch.autograd.grad(value, x)[0]]
    return out
