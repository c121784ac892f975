"""Rubric for `views`: last_columns(t, k), diagonal(t), every_other_column(t) return views of `t`, never copies.

Lecture cells 21-29, "Tensors - a scenic view of memory blobs": "Indexing and Slicing (and taking
Diagonals, too) do *not* copy, but create views"; a view shares the storage of `t` and differs only
in shape, stride and storage_offset.
What is asked: for a 2-D `t` of shape (m, n), `last_columns(t, k)` is the last k columns, 1 <= k <= n
(k = 0 is not asked: `t[:, -0:]` would be all columns); `diagonal(t)` the main diagonal, of length
min(m, n); `every_other_column(t)` the columns 0, 2, 4, ...
"""

import pytest
import torch

from grader.checks import CopyRecorder, describe, fail, need, storage_of

# Our own references, bound before the student's code is loaded.
_arange, _float32 = torch.arange, torch.float32
_diagonal, _equal, _is_tensor = torch.diagonal, torch.equal, torch.is_tensor
_sort = torch.sort

FUNCTIONS = ["last_columns", "diagonal", "every_other_column"]
SENTINEL = -1.0  # the inputs hold 1, 2, 3, ...: a written -1 is unmistakable

# What the student is told for the call that copied the data: keyed by the function's name.
COPY_ADVICE = {
    "diag": "`torch.diag(t)` makes a new tensor; `t.diagonal()` / `torch.diagonal(t)` returns a view",
    "diagonal_copy": "`torch.diagonal_copy` copies by name; `t.diagonal()` / `torch.diagonal(t)` returns a view",
    "clone": "`.clone()` copies the data; return the slice (or `t.diagonal()`) itself",
    "contiguous": "`.contiguous()` copies whenever its input is not contiguous (a transpose, a strided slice); "
                  "slicing and `diagonal` work on any strides, so leave it out",
    "__getitem__": "indexing with a list or a tensor of indices (advanced indexing) copies; a basic slice "
                   "`t[:, start:stop:step]` makes a view",
    "index_select": "`index_select` gathers into a new tensor; a slice `t[:, start:stop:step]` makes a view",
    "gather": "`gather` builds a new tensor; use a slice or `t.diagonal()`",
    "take": "`take` builds a new tensor; use a slice or `t.diagonal()`",
    "take_along_dim": "`take_along_dim` builds a new tensor; use a slice or `t.diagonal()`",
    "masked_select": "`masked_select` builds a new tensor; use a slice or `t.diagonal()`",
    "stack": "`torch.stack` builds a new tensor from the pieces; one slice of `t` (or `t.diagonal()`) "
             "is already the answer",
    "cat": "`torch.cat` builds a new tensor from the pieces; one slice of `t` is already the answer",
    "hstack": "`torch.hstack` builds a new tensor; one slice of `t` is already the answer",
    "vstack": "`torch.vstack` builds a new tensor; one slice of `t` is already the answer",
    "reshape": "`.reshape` copies when the strides do not allow a view (`.view` would raise instead); "
               "slicing needs no reshape",
    "flatten": "`.flatten` copies when the strides do not allow a view; slicing needs no reshape",
    "to": "converting (`.to`, `.float()`, `.double()`) copies; keep `t`'s dtype and device",
    "float": "`.float()` copies unless the tensor already is float32; no conversion is needed",
    "double": "`.double()` copies; keep `t`'s dtype",
    "tensor": "`torch.tensor(...)` always copies; return a view of `t`",
    "copy_": "copying into a new tensor makes a copy; return the view itself",
}
GENERIC_ADVICE = ("return `t` sliced (`t[:, a:b]`, `t[:, ::2]`, `t.narrow`) or `t.diagonal()`: "
                  "these only change shape, stride and storage_offset")


def reference(name, t, k=None):
    m, n = t.shape
    if name == "last_columns":
        return t[:, n - k:]
    if name == "diagonal":
        return _diagonal(t)
    return t[:, ::2]


def contiguous_input(m, n):
    return (_arange(m * n, dtype=_float32) + 1).reshape(m, n)


def transposed_input(m, n):
    return (_arange(m * n, dtype=_float32) + 1).reshape(n, m).t()


def offset_input(m, n):
    """A window of a larger tensor: storage_offset > 0 and row stride n + 2."""
    return (_arange((m + 1) * (n + 2), dtype=_float32) + 1).reshape(m + 1, n + 2)[1:, 2:]


CONTIGUOUS = [((4, 6), "contiguous", contiguous_input), ((5, 3), "contiguous", contiguous_input),
              ((4, 4), "contiguous", contiguous_input), ((1, 5), "contiguous", contiguous_input)]
NONCONTIGUOUS = [((4, 6), "a transpose (non-contiguous)", transposed_input),
                 ((5, 3), "a transpose (non-contiguous)", transposed_input),
                 ((4, 5), "a window t = big[1:, 2:] (non-contiguous, storage_offset > 0)", offset_input)]


def calls(name, shape):
    """(args text, k) for each call of the function on an input of `shape`: k = 1, 2, full width."""
    if name != "last_columns":
        return [(None, f"{name}(t)")]
    n = shape[1]
    return [(k, f"last_columns(t, {k})") for k in sorted({1, min(2, n), n})]


def run(student, name, t, k):
    fn = need(student, name)
    return fn(t) if k is None else fn(t, k)


def check_values(student, name, cases):
    for shape, kind, make in cases:
        for k, call in calls(name, shape):
            t = make(*shape)
            expected = reference(name, t, k)
            out = run(student, name, t, k)
            where = f"{call} for t of shape {shape}, {kind}"
            if not _is_tensor(out):
                fail(f"`{name}` did not return a tensor", expected=describe(expected), found=describe(out), where=where)
            if tuple(out.shape) != tuple(expected.shape) or out.dtype != expected.dtype:
                fail(f"`{name}` returned a tensor of the wrong shape or dtype",
                     expected=describe(expected), found=describe(out), where=where)
            if not _equal(out, expected):
                fail(f"`{name}` returned the wrong values",
                     expected=_preview(expected), found=_preview(out), where=where)


def _preview(x) -> str:
    flat = x.detach().reshape(-1).tolist()
    text = ", ".join(f"{v:g}" for v in flat[:8]) + (", ..." if len(flat) > 8 else "")
    return f"{describe(x)}: [{text}]" if x.dim() == 1 else f"{describe(x)}, rows first: [{text}]"


def check_view(student, name, cases):
    for shape, kind, make in cases:
        for k, call in calls(name, shape):
            t = make(*shape)
            where = f"{call} for t of shape {shape}, {kind}"
            storage = storage_of(t)
            with CopyRecorder(t) as copies:
                out = run(student, name, t, k)
            if not _is_tensor(out):
                fail(f"`{name}` did not return a tensor", expected="a view of `t`", found=describe(out), where=where)
            if storage_of(out) != storage:
                verdict, found, fix = explain_copy(name, copies)
                fail(verdict, expected="a view: result.untyped_storage().data_ptr() == t.untyped_storage().data_ptr()",
                     found=found, where=where, fix=fix)
            check_write_through(name, t, out, where)


def explain_copy(name, copies):
    if copies.copies:
        pretty, base, index, aten = copies.copies[0]
        shown = index or pretty
        aten_text = ", ".join(dict.fromkeys(aten)) or "no ATen operator recorded"
        return (f"your `{name}` copied the data ({aten_text}): {shown} made a new tensor",
                f"a tensor with its own storage, made by {shown} ({aten_text})",
                COPY_ADVICE.get(base, f"{shown} returns a new tensor, not a view; " + GENERIC_ADVICE))
    copying = list(dict.fromkeys(copies.all_ops))
    if copying:
        return (f"your `{name}` returned a copy, not a view ({', '.join(copying[:4])})",
                f"a tensor with its own storage; ATen operators run: {', '.join(copying[:6])}", GENERIC_ADVICE)
    return (f"your `{name}` returned a new tensor, not a view of `t`",
            "a tensor with its own storage (built from Python numbers, e.g. `torch.tensor(t.tolist())`?)",
            GENERIC_ADVICE)


def check_write_through(name, t, out, where):
    """Writing through the result must change exactly the elements of `t` that it shows."""
    before, shown = t.clone(), out.detach().clone().reshape(-1)
    try:
        out.detach().fill_(SENTINEL)
    except RuntimeError as e:
        fail(f"cannot write through the result of `{name}`", found=" ".join(str(e).split())[:200], where=where,
             fix="return a plain view (a slice, `narrow`, `diagonal`), not an expanded or overlapping one")
    changed = t != before
    n_changed = int(changed.sum())
    if n_changed == 0 and out.numel():
        fail(f"writing into the result of `{name}` did not change `t`: it is not a view",
             expected=f"{out.numel()} elements of t set to {SENTINEL:g}", found="t unchanged", where=where)
    old = before[changed]
    if n_changed != out.numel() or not _equal(_sort(old).values, _sort(shown).values):
        fail(f"writing into the result of `{name}` changed other elements of `t` than the result shows",
             expected=f"the {out.numel()} elements shown by the result set to {SENTINEL:g}",
             found=f"{n_changed} elements of t changed (values before: {_short(old)}; "
                   f"the result showed {_short(shown)})",
             where=where,
             fix="with `as_strided`, take the strides and the storage_offset from `t` (`t.stride()`, "
                 "`t.storage_offset()`); slicing and `diagonal` get them right by themselves")


def _short(x) -> str:
    flat = x.reshape(-1).tolist()
    return "[" + ", ".join(f"{v:g}" for v in flat[:6]) + (", ...]" if len(flat) > 6 else "]")


def test_runs(student):
    """last_columns, diagonal and every_other_column are defined and return tensors"""
    for name in FUNCTIONS:
        fn = need(student, name)
        if not callable(fn):
            fail(f"`{name}` is not a function", found=describe(fn))
    t = contiguous_input(4, 6)
    for name, k in (("last_columns", 2), ("diagonal", None), ("every_other_column", None)):
        out = run(student, name, t, k)
        if not _is_tensor(out):
            fail(f"`{name}` did not return a tensor", expected=describe(reference(name, t, k)), found=describe(out),
                 where=f"{name}(t{'' if k is None else f', {k}'}) for t of shape (4, 6)")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_values(student, name):
    """returns the right elements (several shapes, contiguous or not)"""
    check_values(student, name, CONTIGUOUS + NONCONTIGUOUS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_view(student, name):
    """returns a view: shares t's storage, writes go through to t"""
    check_view(student, name, CONTIGUOUS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_noncontiguous(student, name):
    """returns a view also for a non-contiguous t (a transpose, a window)"""
    check_view(student, name, NONCONTIGUOUS)


def probe(student):
    """What a mutant of the solution must reproduce to count as equivalent (`grader validate --mutants`)."""
    t = torch.arange(24.0).reshape(4, 6)
    out = []
    for source in (t, t.T):
        for k in (1, 2):
            v = student.last_columns(source, k)
            out.append((v, list(v.stride()), v.storage_offset()))
        for v in (student.diagonal(source), student.every_other_column(source)):
            out.append((v, list(v.stride()), v.storage_offset()))
    return out
