"""Judging tensors: `expect_*` compare what the student returned with what was expected, `describe` says what it is."""

from __future__ import annotations

import math

import torch

from .failures import fail

# Our own references, taken before any student code is loaded.
_isclose = torch.isclose
_abs = torch.abs
_is_tensor = torch.is_tensor
_argmax = torch.argmax
_isfinite = torch.isfinite
_logical_not = torch.logical_not
_count_nonzero = torch.count_nonzero
_zeros_like = torch.zeros_like
_torch_float64 = torch.float64
_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def describe(t) -> str:
    if not _is_tensor(t):
        return f"{type(t).__name__} {t!r}"[:120]
    return f"tensor of shape {shape_text(t)}, {str(t.dtype).replace('torch.', '')} on {t.device}"


def shape_text(t) -> str:
    """"(5,)", "(4, 7)": the shape as Python writes a tuple."""
    return "(" + ", ".join(str(s) for s in t.shape) + ("," if t.dim() == 1 else "") + ")"


def expect_tensor(value, what: str):
    if not _is_tensor(value):
        fail(f"{what} is not a tensor", expected="a torch.Tensor", found=describe(value))
    return value


def expect_plain_tensor(value, what: str):
    """A `torch.Tensor` subclass can answer `is_leaf` or `.grad` with anything: accept only real tensors."""
    expect_tensor(value, what)
    if type(value) not in _PLAIN_TENSOR_TYPES:
        fail(f"{what} is a {type(value).__name__}, a subclass of torch.Tensor",
             expected="a plain torch.Tensor", found=f"an instance of {type(value).__qualname__}",
             fix="return the tensor itself, not a subclass (no `.as_subclass(...)`, no custom Tensor classes)")
    return value


def expect_attributes(actual, expected, what: str, *, shape=True, dtype=True, device=True) -> None:
    expect_tensor(actual, what)
    if shape and tuple(actual.shape) != tuple(expected.shape):
        fail(f"{what} has the wrong shape", expected=describe(expected), found=describe(actual))
    if dtype and actual.dtype != expected.dtype:
        fail(f"{what} has the wrong dtype", expected=describe(expected), found=describe(actual))
    if device and actual.device != expected.device:
        fail(f"{what} is on the wrong device", expected=describe(expected), found=describe(actual))


def expect_close(actual, expected, what: str, *, rtol: float = 1.3e-6, atol: float = 1e-5,
                 fix: str | None = None, check_dtype: bool = True) -> None:
    """Like `torch.testing.assert_close`, with a bounded message: count and worst element."""
    expect_attributes(actual, expected, what, dtype=check_dtype)
    if actual.device.type == "meta":
        return
    a = actual.detach().to(_torch_float64)
    e = expected.detach().to(_torch_float64)
    close = _isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if bool(close.all()):
        return
    bad = _logical_not(close)
    n_bad, n = int(_count_nonzero(bad)), a.numel()
    diff = _abs(a - e)
    diff = torch.where(_isfinite(diff), diff, _zeros_like(diff) + math.inf)
    diff = torch.where(bad, diff, _zeros_like(diff))
    flat = int(_argmax(diff.reshape(-1))) if n else 0
    index = tuple(int(i) for i in _unravel(flat, tuple(a.shape)))
    where = f"index {index}" if a.dim() else "the value"
    fail(
        f"{what} is not close to the expected values",
        expected=f"{e.reshape(-1)[flat].item():.6g} at {where}",
        found=f"{a.reshape(-1)[flat].item():.6g} ({n_bad} of {n} elements differ; "
              f"greatest difference {diff.reshape(-1)[flat].item():.3g})",
        tolerance=f"rtol={rtol:g}, atol={atol:g}",
        fix=fix,
    )


def _unravel(flat: int, shape: tuple[int, ...]) -> list[int]:
    out = []
    for size in reversed(shape):
        out.append(flat % size if size else 0)
        flat //= size if size else 1
    return list(reversed(out))


def grad_fn_name(t) -> str:
    fn = getattr(t, "grad_fn", None)
    return type(fn).__name__ if fn is not None else "None"
