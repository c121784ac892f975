"""What rubrics call to judge student code, and the shape of every failure message.

A failed check reads like `torch.testing`: the verdict, expected vs found (attributes
before values), where, the tolerance; the lecture's advice is added from the YAML hint.
Every torch function used here is bound at import, before student code exists, so a
submission that replaces `torch.allclose` cannot make a check pass (it is also detected).
"""

from __future__ import annotations

import functools
import math
import re

import pytest
import torch

# Our own references, taken before any student code is loaded.
_isclose = torch.isclose
_abs = torch.abs
_is_tensor = torch.is_tensor
_equal = torch.equal
_argmax = torch.argmax
_isfinite = torch.isfinite
_logical_not = torch.logical_not
_count_nonzero = torch.count_nonzero
_zeros_like = torch.zeros_like
_torch_float64 = torch.float64
_cuda_available = torch.cuda.is_available
_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


# The `record_property` name under which a passed check leaves its feedback (the measured speed-up).
FEEDBACK = "feedback"


class CheckFailure(AssertionError):
    """A check failed; the message is written for the student, and shown as is."""

    picture: dict | None = None  # plain data for `grader.pictures`, attached by `with_picture`


def fail(verdict: str, *, expected=None, found=None, where=None, tolerance=None, fix=None, picture=None):
    """Fail the check; `picture`: plain data for `grader.pictures` (e.g. a timing measured for the verdict)."""
    lines = [verdict.rstrip(".") + "."]
    if expected is not None:
        lines.append(f"Expected: {expected}")
    if found is not None:
        lines.append(f"Found:    {found}")
    if where is not None:
        lines.append(f"Where:    {where}")
    if tolerance is not None:
        lines.append(f"Tolerance: {tolerance}")
    if fix:
        lines.append(f"Fix: {fix}")
    failure = CheckFailure("\n".join(lines))
    failure.picture = picture
    raise failure


def need(student, name: str, what: str = "function"):
    """The student's `name`, or a failure that names it (never `'NoneType' is not callable`)."""
    obj = getattr(student, name, None)
    if obj is None:
        fail(
            f"`{name}` is not defined",
            expected=f"a {what} named `{name}` in the exercise's cell",
            found="no such name after running your cell",
            fix=f"define `{name}` in the cell marked for this exercise (check the spelling)",
        )
    return obj


def describe(t) -> str:
    if not _is_tensor(t):
        return f"{type(t).__name__} {t!r}"[:120]
    return f"tensor of shape {_shape(t)}, {str(t.dtype).replace('torch.', '')} on {t.device}"


def _shape(t) -> str:
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


def cuda_available() -> bool:
    return _cuda_available()


# Decided in the run's own process (the plugin skips it there), never in the warm worker:
# a fork server must not touch CUDA.
NEEDS_CUDA = pytest.mark.needs_cuda
NO_CUDA_REASON = "needs a CUDA GPU, and none is present here"

# The devices a device-generic check runs on: `meta` finds device bugs without a GPU.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("meta", id="meta"),
    pytest.param("cuda", id="cuda", marks=NEEDS_CUDA),
]
DTYPES = [pytest.param(torch.float32, id="float32"), pytest.param(torch.float64, id="float64")]


# -- pictures of a mistake (drawn by grader.pictures, outside the sandbox) ---------------------

_type, _str, _len, _dir = type, str, len, dir
_VERSION_MOVED = re.compile(r"is at version (\d+); expected version (\d+)")
GRAPH_NODES = 36  # of the 40 a picture may hold: room for the extra nodes a rubric adds
GRAPH_DEPTH = 10


def with_picture(build):
    """Decorate a check: when it fails, `build(*the check's arguments)` draws the mistake from the
    student's own tensors, as plain data (a dict for `grader.pictures`). Drawing is an aid: if it
    raises, the verdict stands without a picture."""
    def decorate(check):
        @functools.wraps(check)
        def run(*args, **kwargs):
            try:
                return check(*args, **kwargs)
            except CheckFailure as failure:
                if failure.picture is None:
                    try:
                        failure.picture = build(*args, **kwargs)
                    except Exception:  # noqa: BLE001 - student tensors may break anything; the text stays
                        pass
                raise
        return run
    return decorate


def tensor_summary(t) -> str:
    """"float64 (5,) on meta": a short description for a picture."""
    return f"{_str(t.dtype).replace('torch.', '')} {_shape(t)} on {t.device}"


def autograd_graph(roots, *, names=(), saved: str = "modified", title: str = "", caption: str = "",
                   max_nodes: int = GRAPH_NODES, max_depth: int = GRAPH_DEPTH) -> dict:
    """The autograd graph behind `roots` as plain picture data, drawn as the lecture's `ptgraph` does.

    `roots` and `names` are (name, tensor) pairs: roots are walked back through
    `grad_fn.next_functions`; a named tensor's node carries its name (a leaf is found through its
    AccumulateGrad's `variable`). Saved tensors (`grad_fn._saved_*`) are drawn as nodes of their own:
    `saved="modified"` only those changed in place since they were saved (reading one then raises, and
    the error names both versions: that is the information), `"all"` every one, `"none"` none.
    Bounded: at most `max_nodes` nodes, `max_depth` steps back; what is left is one "more" node.
    Node labels are `type(fn).__name__`, so the grader treats them as student-controlled text.
    """
    named = {id(t): n for n, t in [*roots, *names] if _is_tensor(t)}
    fn_names = {id(t.grad_fn): n for n, t in [*roots, *names] if _is_tensor(t) and t.grad_fn is not None}
    nodes, edges, highlight, seen, writers = [], [], [], {}, []

    def add(label, kind, detail=""):
        node = {"id": f"n{_len(nodes)}", "label": label[:60], "kind": kind}
        if detail:
            node["detail"] = detail[:60]
        nodes.append(node)
        return node["id"]

    def node_of(fn):
        """The id of `fn`'s node (made on the first visit; its inputs are walked by the caller)."""
        if id(fn) in seen:
            return seen[id(fn)]
        kind_name = _type(fn).__name__
        variable = getattr(fn, "variable", None) if kind_name == "AccumulateGrad" else None
        if variable is not None:
            name = named.get(id(variable))
            node_id = add(f"{name} (AccumulateGrad)" if name else "AccumulateGrad", "leaf", tensor_summary(variable))
            seen[id(variable)] = node_id
        else:
            name = fn_names.get(id(fn))
            kind = "function" if isinstance(getattr(_type(fn), "_forward_cls", None), _type) else "op"
            node_id = add(f"{name} ({kind_name})" if name else kind_name, kind)
            if saved != "none" and kind == "op":  # a custom Function keeps its own in `saved_tensors`
                _saved_tensors(fn, node_id)
        seen[id(fn)] = node_id
        return node_id

    def walk(root):
        """Breadth first from `root`, so that what is cut off by the bounds is the far end of the graph."""
        if id(root) in seen:
            return  # walked already, as part of an earlier root's graph
        queue, more = [(root, 0)], None
        node_of(root)
        while queue:
            fn, depth = queue.pop(0)
            for child in [c for c, _ in getattr(fn, "next_functions", ()) if c is not None]:
                if id(child) not in seen and (depth >= max_depth or _len(nodes) >= max_nodes):
                    if more is None:
                        more = add("… more not drawn", "more", f"bounded at {max_nodes} nodes")
                    edge = {"from": more, "to": seen[id(fn)]}
                    if edge not in edges:
                        edges.append(edge)
                    continue
                fresh = id(child) not in seen
                edges.append({"from": node_of(child), "to": seen[id(fn)]})
                if fresh:
                    queue.append((child, depth + 1))

    def _saved_tensors(fn, node_id):
        for attr in _dir(fn):
            if not attr.startswith("_raw_saved_") or _len(nodes) >= max_nodes:
                continue
            what = attr[_len("_raw_saved_"):]
            try:
                getattr(fn, "_saved_" + what)
                moved = None
            except AttributeError:
                continue
            except RuntimeError as e:
                moved = _VERSION_MOVED.search(_str(e))
                if moved is None:
                    continue  # freed after backward, or not a tensor: nothing to show
            if moved is None and saved != "all":
                continue
            try:
                now = getattr(fn, attr).data
                summary = tensor_summary(now)
            except Exception:  # noqa: BLE001
                now, summary = None, ""
            name = named.get(id(now)) if now is not None else None
            label = f"{what} saved" + (f" (it is {name})" if name else "")
            if moved:
                detail = f"saved at version {moved.group(2)}, now {moved.group(1)}"
            else:
                detail = f"version {now._version}, unchanged" if now is not None else summary
            saved_id = add(label, "saved", detail)
            edges.append({"from": saved_id, "to": node_id, "style": "dashed",
                          **({"highlight": True, "label": "changed in place"} if moved else {})})
            if moved:
                highlight.append(saved_id)
                if now is not None and now.grad_fn is not None:
                    writers.append(now.grad_fn)  # the in-place operation is the tensor's grad_fn now

    for name, t in roots:
        if not _is_tensor(t):
            continue
        if id(t) in seen:
            continue  # a leaf already drawn as another root's input
        if t.grad_fn is not None:
            walk(t.grad_fn)
        elif t.requires_grad:
            seen[id(t)] = add(f"{name} (leaf)", "leaf", tensor_summary(t))
        else:
            seen[id(t)] = add(f"{name} (no grad_fn)", "tensor", tensor_summary(t) + ", requires_grad=False")
    highlight += [seen[id(fn)] for fn in writers if id(fn) in seen and seen[id(fn)] not in highlight]
    picture = {"kind": "graph", "nodes": nodes, "edges": edges, "highlight": highlight}
    if title:
        picture["title"] = title
    if caption:
        picture["caption"] = caption
    return picture
