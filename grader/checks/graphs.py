"""Pictures of a mistake, drawn from the student's own tensors (rendered by grader.pictures, outside the sandbox)."""

from __future__ import annotations

import functools
import re

import torch

from .failures import CheckFailure
from .tensors import shape_text

_is_tensor = torch.is_tensor  # our own reference, taken before any student code is loaded

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
    return f"{_str(t.dtype).replace('torch.', '')} {shape_text(t)} on {t.device}"


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
