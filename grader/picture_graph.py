"""An autograd graph drawn as SVG, as the lecture's `ptgraph` draws it: inputs at the top, arrows in the
direction data flows, the nodes where it goes wrong in red, a legend of the kinds shown.

No system binary (no graphviz): a small layered layout of our own (`_layers`, `_order_rows`, `_ports`).
"""

from __future__ import annotations

import statistics

from .picture_data import NODE_KINDS
from .picture_svg import esc, svg_start

_FONT = "font-family='ui-monospace,SFMono-Regular,Menlo,Consolas,monospace'"
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


def graph_svg(graph: dict) -> str:
    """One graph (already `clean`) as an SVG."""
    return graph_panel(graph)[0]


def graph_panel(graph: dict) -> tuple[str, float]:
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
    parts = svg_start(width, height, graph.get("title"), pad)
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
            f"<text x='{x + 22}' y='{y:.1f}' font-size='10' fill='#555'>{esc(text)}</text>")


def _node_svg(n: dict, at: tuple[float, float], size: tuple[float, float], bad: bool) -> str:
    (x, y), (w, h) = at, size
    fill, stroke, dash, _ = _NODE_STYLE[n["kind"]]
    if bad:
        fill, stroke = _BAD_FILL, _BAD_STROKE
    dash_attr = f" stroke-dasharray='{dash}'" if dash else ""
    weight = 2 if bad else 1.2
    style = " font-style='italic' fill='#777'" if n["kind"] == "more" else " fill='#1d1d1d'"
    cx = x + w / 2
    out = [f"<g><title>{esc(n['label'])}{(' — ' + esc(n['detail'])) if n.get('detail') else ''}</title>",
           f"<rect x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' height='{h}' rx='7' fill='{fill}' stroke='{stroke}' "
           f"stroke-width='{weight}'{dash_attr}/>",
           f"<text x='{cx:.1f}' y='{y + 16:.1f}' text-anchor='middle' {_FONT} font-size='{_LABEL_SIZE}'"
           f"{style}>{esc(n['label'])}</text>"]
    if n.get("detail"):
        out.append(f"<text x='{cx:.1f}' y='{y + 29:.1f}' text-anchor='middle' font-size='{_DETAIL_SIZE}' "
                   f"fill='{'#a11' if bad else '#555'}'>{esc(n['detail'])}</text>")
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
                   f"stroke='#fff' stroke-width='3' paint-order='stroke'>{esc(e['label'])}</text>")
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
