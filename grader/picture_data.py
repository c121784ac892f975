"""A feedback picture's data, checked where it enters the grader: what a check may send (`clean`), capped
in size, every text restricted to harmless characters (`safe_text`).

A rubric attaches a picture to a failed check as plain data (`checks.fail(..., picture=...)`); it travels
over the result channel and is validated here, outside the sandbox, before anything draws it
(grader.pictures). Nothing here draws: the trust boundary reads on its own.
"""

from __future__ import annotations

import json
import math
import re

# Bounds on what a check may send (the grader drops a picture past them, with a note).
MAX_NODES = 40
MAX_EDGES = 80
MAX_TEXT = 60  # a label, a detail, an edge label, a title
MAX_CAPTION = 300
MAX_SAMPLES = 200  # timings per series
MAX_PICTURE_BYTES = 8 * 1024  # one check's picture, as compact JSON
MAX_RUN_PICTURE_BYTES = 64 * 1024  # all pictures of one run (one exercise)

GRAPH, TIMING = "graph", "timing"
NODE_KINDS = ("op", "leaf", "function", "saved", "tensor", "input", "more")
EDGE_STYLES = ("solid", "dashed")
_ID = re.compile(r"[A-Za-z0-9_]{1,16}\Z")
# Characters a picture's text may hold; anything else (markup, double quotes, backticks, controls, `$` that markdown
# would read as math) becomes "?". Escaping at drawing time is the second, independent fence.
_ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:;()[]{}+-*/=#%!?@|~^'"
               "×≥≤→←↑↓✗✓…√−·–—²")

DROPPED = "the picture for `{check}` was left out: {why}"


class PictureError(ValueError):
    """A picture's data is not one this module draws; the message says what is wrong."""


def safe_text(value, limit: int = MAX_TEXT) -> str:
    """Any value as short text of allowed characters only (capped before it is scanned)."""
    text = value if isinstance(value, str) else str(value)
    text = text[: limit + 1]
    text = "".join(c if c in _ALLOWED else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean(data) -> dict:
    """The picture as the grader keeps it: validated, every string restricted and capped, bounded in size.

    Raises PictureError for anything that is not a picture this module draws.
    """
    if not isinstance(data, dict):
        raise PictureError("not an object")
    kind = data.get("kind")
    if kind == GRAPH:
        out = {"kind": GRAPH, **_clean_graph(data)}
        if data.get("expected") is not None:
            out["expected"] = _clean_graph(_expect_dict(data["expected"], "expected"))
    elif kind == TIMING:
        out = _clean_timing(data)
    else:
        raise PictureError(f"unknown kind {safe_text(kind, 20)!r}")
    size = encoded_size(out)
    if size > MAX_PICTURE_BYTES:
        raise PictureError(f"{size:,} bytes of picture data, more than {MAX_PICTURE_BYTES:,}")
    return out


def encoded_size(picture: dict) -> int:
    """Bytes of the picture as compact JSON: what the caps count."""
    return len(json.dumps(picture, separators=(",", ":"), ensure_ascii=False).encode())


def _expect_dict(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise PictureError(f"`{what}` is not an object")
    return value


def _expect_list(value, what: str, limit: int) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PictureError(f"`{what}` is not a list")
    if len(value) > limit:
        raise PictureError(f"{len(value)} {what}, more than {limit}")
    return value


def _text_fields(src: dict, out: dict, fields) -> None:
    for name, limit in fields:
        if src.get(name) not in (None, ""):
            out[name] = safe_text(src[name], limit)


def _clean_graph(data: dict) -> dict:
    out: dict = {}
    _text_fields(data, out, (("title", MAX_TEXT), ("caption", MAX_CAPTION)))
    nodes, ids = [], set()
    for node in _expect_list(data.get("nodes"), "nodes", MAX_NODES):
        node = _expect_dict(node, "node")
        node_id = node.get("id")
        if not isinstance(node_id, str) or not _ID.match(node_id) or node_id in ids:
            raise PictureError(f"a node id {safe_text(node_id, 20)!r} that is not a short unique name")
        kind = node.get("kind", "op")
        if kind not in NODE_KINDS:
            raise PictureError(f"a node of unknown kind {safe_text(kind, 20)!r}")
        ids.add(node_id)
        clean_node = {"id": node_id, "label": safe_text(node.get("label", ""))}
        _text_fields(node, clean_node, (("detail", MAX_TEXT),))
        clean_node["kind"] = kind
        nodes.append(clean_node)
    edges = []
    for edge in _expect_list(data.get("edges"), "edges", MAX_EDGES):
        edge = _expect_dict(edge, "edge")
        if edge.get("from") not in ids or edge.get("to") not in ids:
            raise PictureError("an edge between nodes that are not in the picture")
        style = edge.get("style", "solid")
        if style not in EDGE_STYLES:
            raise PictureError(f"an edge of unknown style {safe_text(style, 20)!r}")
        clean_edge = {"from": edge["from"], "to": edge["to"]}
        _text_fields(edge, clean_edge, (("label", MAX_TEXT),))
        if style != "solid":
            clean_edge["style"] = style
        if edge.get("highlight"):
            clean_edge["highlight"] = True
        edges.append(clean_edge)
    highlight = [h for h in _expect_list(data.get("highlight"), "highlight", MAX_NODES) if h in ids]
    out.update(nodes=nodes, edges=edges, highlight=list(dict.fromkeys(highlight)))
    return out


def _numbers(value, what: str, limit: int = MAX_SAMPLES) -> list[float]:
    out = []
    for x in _expect_list(value, what, limit):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
            raise PictureError(f"`{what}` holds something other than non-negative numbers")
        out.append(float(x))
    return out


def _number(value, what: str) -> float:
    return _numbers([value], what)[0]


def _clean_timing(data: dict) -> dict:
    out: dict = {"kind": TIMING}
    _text_fields(data, out, (("title", MAX_TEXT), ("caption", MAX_CAPTION), ("student_label", MAX_TEXT),
                             ("reference_label", MAX_TEXT)))
    out["student_s"] = _numbers(data.get("student_s"), "student_s")
    out["reference_s"] = _numbers(data.get("reference_s"), "reference_s")
    if not out["student_s"] or not out["reference_s"]:
        raise PictureError("a timing picture without student and reference timings")
    if data.get("pdist_s") is not None:
        out["pdist_s"] = _numbers(data["pdist_s"], "pdist_s")
    out["ratio"] = _number(data.get("ratio"), "ratio")
    out["threshold"] = _number(data.get("threshold"), "threshold")
    return out
