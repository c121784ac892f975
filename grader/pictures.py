"""Pictures in the feedback: plain data from a check (an autograd graph, a timing) checked and drawn as SVG.

A rubric attaches a picture to a failed check as plain data (`checks.fail(..., picture=...)`); it travels
over the result channel and is validated here, outside the sandbox (`clean`), before anything draws it.
What reaches a page is SVG written by this module alone: every text escaped, its characters restricted,
its length capped; nothing of the student's is ever markup. No system binary (no graphviz): a small
layered layout of our own.
"""

from __future__ import annotations

import html
import json
import math
import re
import statistics

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


# -- drawing -----------------------------------------------------------------------------------

_FONT = "font-family='ui-monospace,SFMono-Regular,Menlo,Consolas,monospace'"
_SANS = "font-family='-apple-system,Segoe UI,Helvetica,Arial,sans-serif'"
_CHAR_W, _LABEL_SIZE, _DETAIL_SIZE = 6.7, 11, 10
_NODE_STYLE = {  # kind: (fill, stroke, dash, legend text)
    "leaf": ("#e3f0fc", "#3b78b8", "", "leaf (AccumulateGrad): .grad is filled here"),
    "op": ("#f3f3f3", "#8a8a8a", "", "operation (grad_fn)"),
    "function": ("#fff1d6", "#c98a14", "", "your autograd.Function"),
    "saved": ("#fffbea", "#b59a2c", "4 3", "tensor saved for backward"),
    "tensor": ("#ffffff", "#555555", "", "tensor"),
    "input": ("#ffffff", "#9a9a9a", "4 3", "input that is not a tensor"),
    "more": ("#ffffff", "#bbbbbb", "2 3", "more (not drawn)"),
}
_BAD_FILL, _BAD_STROKE = "#fde7e7", "#c62828"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def graph_svg(graph: dict) -> str:
    """One graph (already `clean`) as an SVG."""
    return _graph_svg(graph)[0]


def _graph_svg(graph: dict) -> tuple[str, float]:
    """One graph (already `clean`) as an SVG: inputs at the top, arrows in the direction data flows,
    as the lecture's `ptgraph` draws it; highlighted nodes in red."""
    nodes = {n["id"]: n for n in graph["nodes"]}
    order = [n["id"] for n in graph["nodes"]]
    edges = [e for e in graph["edges"] if e["from"] != e["to"]]
    layers = _layers(order, edges)
    rows = _order_rows(order, edges, layers)
    bad = set(graph.get("highlight", ()))
    size = {}
    for node_id, n in nodes.items():
        chars = max(len(n["label"]), len(n.get("detail", "")) * _DETAIL_SIZE / _LABEL_SIZE, 4)
        size[node_id] = (chars * _CHAR_W + 18, 36 if n.get("detail") else 24)
    gap_x, gap_y, pad = 16, (60 if any(e.get("label") for e in edges) else 40), 12
    title_h = 22 if graph.get("title") else 4
    row_w = [sum(size[i][0] for i in row) + gap_x * (len(row) - 1) for row in rows]
    width = max([*row_w, 220]) + 2 * pad
    pos, y = {}, pad + title_h
    for row, w in zip(rows, row_w):
        h = max(size[i][1] for i in row)
        x = (width - w) / 2
        for i in row:
            pos[i] = (x, y + (h - size[i][1]) / 2)
            x += size[i][0] + gap_x
        y += h + gap_y
    kinds = sorted({n["kind"] for n in nodes.values()}, key=NODE_KINDS.index)
    legend_rows = len(kinds) + (1 if bad else 0)
    height = y - gap_y + 14 + legend_rows * 15 + pad
    parts = _svg_start(width, height, graph.get("title"), pad)
    ports = _ports(edges, pos, size)
    for k, e in enumerate(edges):
        parts.append(_edge_svg(e, pos, size, ports[k]))
    for node_id, n in nodes.items():
        parts.append(_node_svg(n, pos[node_id], size[node_id], node_id in bad))
    ly = y - gap_y + 14
    for kind in kinds:
        fill, stroke, dash, text = _NODE_STYLE[kind]
        parts.append(_legend_item(pad, ly, fill, stroke, dash, text))
        ly += 15
    if bad:
        parts.append(_legend_item(pad, ly, _BAD_FILL, _BAD_STROKE, "", "where it goes wrong"))
    parts.append("</svg>")
    return "".join(parts), width


def _legend_item(x: float, y: float, fill: str, stroke: str, dash: str, text: str) -> str:
    dash_attr = f" stroke-dasharray='{dash}'" if dash else ""
    return (f"<rect x='{x}' y='{y - 9:.1f}' width='16' height='10' rx='3' fill='{fill}' stroke='{stroke}'{dash_attr}/>"
            f"<text x='{x + 22}' y='{y:.1f}' font-size='10' fill='#555'>{_esc(text)}</text>")


def _node_svg(n: dict, at: tuple[float, float], size: tuple[float, float], bad: bool) -> str:
    (x, y), (w, h) = at, size
    fill, stroke, dash, _ = _NODE_STYLE[n["kind"]]
    if bad:
        fill, stroke = _BAD_FILL, _BAD_STROKE
    dash_attr = f" stroke-dasharray='{dash}'" if dash else ""
    weight = 2 if bad else 1.2
    style = " font-style='italic' fill='#777'" if n["kind"] == "more" else " fill='#1d1d1d'"
    cx = x + w / 2
    out = [f"<g><title>{_esc(n['label'])}{(' — ' + _esc(n['detail'])) if n.get('detail') else ''}</title>",
           f"<rect x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' height='{h}' rx='7' fill='{fill}' stroke='{stroke}' "
           f"stroke-width='{weight}'{dash_attr}/>",
           f"<text x='{cx:.1f}' y='{y + 16:.1f}' text-anchor='middle' {_FONT} font-size='{_LABEL_SIZE}'"
           f"{style}>{_esc(n['label'])}</text>"]
    if n.get("detail"):
        out.append(f"<text x='{cx:.1f}' y='{y + 29:.1f}' text-anchor='middle' font-size='{_DETAIL_SIZE}' "
                   f"fill='{'#a11' if bad else '#555'}'>{_esc(n['detail'])}</text>")
    out.append("</g>")
    return "".join(out)


def _ports(edges: list[dict], pos, size) -> dict[int, tuple[float, float]]:
    """Where each edge leaves its source and enters its target: spread over the box's width, in the
    order of the other ends, so that arrows into one node (and their labels) do not pile up."""
    ends: dict[int, list[float]] = {}
    for side, other in (("from", "to"), ("to", "from")):
        groups: dict[str, list[int]] = {}
        for k, e in enumerate(edges):
            groups.setdefault(e[side], []).append(k)
        for node_id, ks in groups.items():
            ks.sort(key=lambda k: pos[edges[k][other]][0] + size[edges[k][other]][0] / 2)
            (x, _), (w, _) = pos[node_id], size[node_id]
            for j, k in enumerate(ks):
                ends.setdefault(k, []).append(x + w * (j + 1) / (len(ks) + 1))
    return {k: (v[0], v[1]) for k, v in ends.items()}


def _edge_svg(e: dict, pos, size, port: tuple[float, float]) -> str:
    (_, y1), (_, h1) = pos[e["from"]], size[e["from"]]
    (_, y2) = pos[e["to"]]
    (sx, tx), sy, ty = port, y1 + h1, y2 - 1
    if ty <= sy:  # against the layering (only data with a cycle has such an edge): from the box's middle
        sy = y1 + h1 / 2
    bend = max(18.0, abs(ty - sy) / 2)
    color = _BAD_STROKE if e.get("highlight") else "#666"
    dash = " stroke-dasharray='5 4'" if e.get("style") == "dashed" else ""
    path = f"M{sx:.1f},{sy:.1f} C{sx:.1f},{sy + bend:.1f} {tx:.1f},{ty - bend:.1f} {tx:.1f},{ty - 6:.1f}"
    out = [f"<path d='{path}' fill='none' stroke='{color}' stroke-width='{2 if e.get('highlight') else 1.3}'{dash}/>",
           f"<path d='M{tx - 4.5:.1f},{ty - 7:.1f} L{tx + 4.5:.1f},{ty - 7:.1f} L{tx:.1f},{ty:.1f} Z' fill='{color}'/>"]
    if e.get("label"):
        # Near the source, where the edges into one node are still apart.
        lx, ly = sx + (tx - sx) * 0.2, sy + 14
        out.append(f"<text x='{lx:.1f}' y='{ly:.1f}' text-anchor='middle' font-size='10' fill='{color}' "
                   f"stroke='#fff' stroke-width='3' paint-order='stroke'>{_esc(e['label'])}</text>")
    return "".join(out)


def _layers(order: list[str], edges: list[dict]) -> dict[str, int]:
    """Each node's row, counted from the bottom: the longest path down to an output, so that an input
    sits just above the operation that uses it (no edge runs past rows of boxes it need not cross).
    A cycle, which only bad data could hold, is broken by placing what is left at the top."""
    outgoing = {i: 0 for i in order}
    in_edges: dict[str, list[str]] = {i: [] for i in order}
    for e in edges:
        outgoing[e["from"]] += 1
        in_edges[e["to"]].append(e["from"])
    height = {i: 0 for i in order}
    ready = [i for i in order if outgoing[i] == 0]
    done = set()
    while ready:
        node = ready.pop(0)
        done.add(node)
        for prev in in_edges[node]:
            height[prev] = max(height[prev], height[node] + 1)
            outgoing[prev] -= 1
            if outgoing[prev] == 0:
                ready.append(prev)
    top = max(height.values(), default=0) + (1 if len(done) < len(order) else 0)
    return {i: top - height[i] if i in done else 0 for i in order}


def _order_rows(order: list[str], edges: list[dict], layers: dict[str, int]) -> list[list[str]]:
    """Rows top to bottom; within a row, nodes sorted by the mean position of their neighbours
    (a few barycentre sweeps), which keeps the crossings of a small graph few."""
    rows: list[list[str]] = [[] for _ in range(max(layers.values(), default=0) + 1)]
    for i in order:
        rows[layers[i]].append(i)
    rows = [r for r in rows if r]
    neighbours: dict[str, list[str]] = {i: [] for i in order}
    for e in edges:
        neighbours[e["from"]].append(e["to"])
        neighbours[e["to"]].append(e["from"])
    for sweep in range(4):
        index = {i: k / max(1, len(row) - 1) for row in rows for k, i in enumerate(row)}
        sequence = rows[1:] if sweep % 2 == 0 else rows[-2::-1]
        for row in sequence:
            def key(i, row=row):
                near = [index[n] for n in neighbours[i] if n in index and n not in row]
                return statistics.mean(near) if near else index[i]
            row.sort(key=key)
            index.update({i: k / max(1, len(row) - 1) for k, i in enumerate(row)})
    return rows


def _svg_start(width: float, height: float, title: str | None, pad: float) -> list[str]:
    """The opening of a picture: its size, a white ground and the (escaped) title."""
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
             f"viewBox='0 0 {width:.0f} {height:.0f}' role='img' {_SANS} font-size='11'>",
             "<rect width='100%' height='100%' fill='#ffffff'/>"]
    if title:
        parts.append(f"<text x='{pad}' y='{pad + 12}' font-size='12.5' font-weight='600' fill='#222'>"
                     f"{_esc(title)}</text>")
    return parts


def timing_svg(data: dict) -> str:
    """A timing picture (already `clean`) as an SVG."""
    return _timing_svg(data)[0]


def _timing_svg(data: dict) -> tuple[str, float]:
    """A timing picture (already `clean`): every timed call of the student's code and of the reference
    (and of pdist, when measured) on one log-scaled time axis, then the per-pair speed-ups with the
    threshold line: the measurement the verdict came from."""
    series = [(data.get("student_label", "your code"), data["student_s"], "#c62828"),
              (data.get("reference_label", "reference"), data["reference_s"], "#3b78b8")]
    if data.get("pdist_s"):
        series.append(("torch.pdist version", data["pdist_s"], "#777777"))
    # The speed-up of each interleaved pair: the baseline's time over the student's.
    baseline = data.get("pdist_s") or data["reference_s"]
    ratios = [b / s for b, s in zip(baseline, data["student_s"]) if s > 0 and b > 0]
    width, left, right, pad = 560, 150, 24, 12
    title_h = 22 if data.get("title") else 4
    row_h, top = 26, pad + title_h + 14
    axis_y = top + row_h * len(series) + 4
    ratio_top = axis_y + 44
    height = ratio_top + 66 + pad
    times = [t for _, ts, _ in series for t in ts if t > 0] or [1e-3]
    lo, hi = _decades(min(times), max(times))

    def tx(t: float) -> float:
        return left + (math.log10(max(t, 10 ** lo)) - lo) / (hi - lo) * (width - left - right)

    parts = _svg_start(width, height, data.get("title"), pad)
    parts.append(f"<text x='{pad}' y='{top - 4}' font-size='10' fill='#555'>time of one forward + backward "
                 f"(each dot one timed call; bar: median)</text>")
    for k, (label, ts, color) in enumerate(series):
        y = top + row_h * k + row_h / 2
        parts.append(f"<text x='{left - 10}' y='{y + 4:.1f}' text-anchor='end' fill='#222'>{_esc(label)}</text>")
        parts.append(f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eee'/>")
        for j, t in enumerate(ts):
            jitter = ((j * 7) % 9 - 4) * 1.3
            parts.append(f"<circle cx='{tx(t):.1f}' cy='{y + jitter:.1f}' r='2.6' fill='{color}' fill-opacity='0.55'/>")
        if ts:
            m = tx(statistics.median(ts))
            parts.append(f"<line x1='{m:.1f}' x2='{m:.1f}' y1='{y - 9:.1f}' y2='{y + 9:.1f}' stroke='{color}' "
                         f"stroke-width='2.5'/>")
            parts.append(f"<text x='{width - right}' y='{y - 6:.1f}' text-anchor='end' font-size='9.5' fill='{color}'>"
                         f"median {_esc(_duration(statistics.median(ts)))}</text>")
    parts.append(_axis(tx, lo, hi, axis_y, left, width - right, _duration))
    parts.append(_ratio_strip(ratios, data["ratio"], data["threshold"], ratio_top, left, width - right,
                              "pdist" if data.get("pdist_s") else "reference"))
    parts.append("</svg>")
    return "".join(parts), width


def _ratio_strip(ratios, ratio, threshold, top, left, right, baseline) -> str:
    values = [r for r in [*ratios, ratio, threshold] if r > 0] or [1.0]
    lo, hi = _decades(min(values) / 1.5, max(values) * 1.5)

    def rx(r: float) -> float:
        return left + (math.log10(max(r, 10 ** lo)) - lo) / (hi - lo) * (right - left)

    y = top + 16
    passed = ratio >= threshold
    color = "#2e7d32" if passed else "#c62828"
    out = [f"<text x='{left - 10}' y='{y + 4}' text-anchor='end' fill='#222'>speed-up per pair</text>",
           f"<text x='{left}' y='{top - 6}' font-size='10' fill='#555'>{_esc(baseline)} time / your time, "
           f"for each interleaved pair</text>",
           f"<line x1='{left}' x2='{right}' y1='{y}' y2='{y}' stroke='#eee'/>"]
    tx_ = rx(threshold)
    out.append(f"<rect x='{left}' y='{y - 12}' width='{max(0.0, tx_ - left):.1f}' height='24' fill='#c62828' "
               f"fill-opacity='0.06'/>")
    for j, r in enumerate(ratios):
        jitter = ((j * 7) % 9 - 4) * 1.3
        out.append(f"<circle cx='{rx(r):.1f}' cy='{y + jitter:.1f}' r='2.6' fill='#555' fill-opacity='0.5'/>")
    out.append(f"<line x1='{tx_:.1f}' x2='{tx_:.1f}' y1='{y - 15}' y2='{y + 15}' stroke='#222' stroke-width='1.5' "
               f"stroke-dasharray='4 3'/>")
    out.append(f"<text x='{tx_ + 4:.1f}' y='{y - 16}' font-size='10' fill='#222'>needed ×{threshold:.3g}</text>")
    m = rx(ratio)
    out.append(f"<path d='M{m - 5:.1f},{y + 20} L{m + 5:.1f},{y + 20} L{m:.1f},{y + 12} Z' fill='{color}'/>")
    out.append(f"<text x='{m:.1f}' y='{y + 32}' text-anchor='middle' font-size='10.5' font-weight='600' "
               f"fill='{color}'>yours ×{ratio:.3g} (median)</text>")
    out.append(_axis(rx, lo, hi, y + 38, left, right, lambda r: f"×{r:g}", ticks_only=True))
    return "".join(out)


def _decades(lo: float, hi: float) -> tuple[float, float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return (a, b) if b > a else (a, a + 1)


def _axis(scale, lo, hi, y, left, right, fmt, ticks_only: bool = False) -> str:
    out = [] if ticks_only else [f"<line x1='{left}' x2='{right}' y1='{y}' y2='{y}' stroke='#999'/>"]
    for p in range(int(lo), int(hi) + 1):
        x = scale(10.0 ** p)
        out.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y - 3}' y2='{y + 3}' stroke='#999'/>"
                   f"<text x='{x:.1f}' y='{y + 14}' text-anchor='middle' font-size='9.5' fill='#666'>"
                   f"{_esc(fmt(10.0 ** p))}</text>")
    return "".join(out)


def _duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def picture_html(picture: dict) -> str:
    """The HTML for one check's picture (already `clean`): one line, no blank line, so that it stays a
    single raw-HTML block where it is embedded in markdown."""
    if picture["kind"] == TIMING:
        panels = [(*_timing_svg(picture), picture.get("caption", ""))]
    else:
        panels = [(*_graph_svg(picture), picture.get("caption", ""))]
        if picture.get("expected"):
            panels.append((*_graph_svg(picture["expected"]), picture["expected"].get("caption", "")))
    figures = "".join(
        f"<figure style='margin:0;width:{max(width, 300):.0f}px;max-width:100%;overflow-x:auto'>{svg}"
        + (f"<figcaption style='font-size:12px;line-height:1.35;color:#333;margin:2px 4px 0 12px'>{_esc(cap)}</figcaption>"
           if cap else "") + "</figure>"
        for svg, width, cap in panels)
    return f"<div class='tg-picture' style='display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start;margin:8px 0 14px 0'>{figures}</div>"


def check_picture_html(data) -> str:
    """A check's picture as HTML, validated again here (results may come back from a JSON file); "" if none."""
    if data is None:
        return ""
    try:
        return picture_html(clean(data))
    except PictureError:
        return ""


def markdown_block(data) -> str:
    """The picture as a raw-HTML block for a markdown cell (blank lines around it, none inside); "" if none."""
    figure = check_picture_html(data)
    return f"\n{figure}\n" if figure else ""


__all__ = ["check_picture_html", "markdown_block", "encoded_size", "clean", "graph_svg", "timing_svg", "picture_html", "safe_text", "PictureError",
           "MAX_NODES", "MAX_TEXT", "MAX_PICTURE_BYTES", "MAX_RUN_PICTURE_BYTES"]
