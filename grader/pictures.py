"""Pictures in the feedback: plain data from a check (an autograd graph, a timing) checked and drawn as SVG.

A rubric attaches a picture to a failed check as plain data (`checks.fail(..., picture=...)`); it travels
over the result channel and is validated outside the sandbox (`clean`, grader.picture_data) before anything
draws it. What reaches a page is SVG written by the picture modules alone (grader.picture_svg, grader.picture_graph,
grader.picture_timing): every text escaped, its characters restricted, its length capped; nothing of the
student's is ever markup. No system binary (no graphviz): a small layered layout of our own.

This module puts a check's picture into a page (`picture_html`, `markdown_block`); every name the grader,
its tests and rubrics use is importable from here (`pictures.clean`, `pictures.MAX_TEXT`, ...).
"""

from __future__ import annotations

from .picture_data import (DROPPED, GRAPH, MAX_CAPTION, MAX_EDGES, MAX_NODES, MAX_PICTURE_BYTES,  # noqa: F401
                           MAX_RUN_PICTURE_BYTES, MAX_SAMPLES, MAX_TEXT, TIMING, PictureError, clean, encoded_size,
                           safe_text)
from .picture_graph import graph_panel, graph_svg
from .picture_svg import esc
from .picture_timing import timing_panel, timing_svg


def picture_html(picture: dict) -> str:
    """The HTML for one check's picture (already `clean`): one line, no blank line, so that it stays a
    single raw-HTML block where it is embedded in markdown."""
    if picture["kind"] == TIMING:
        panels = [(*timing_panel(picture), picture.get("caption", ""))]
    else:
        panels = [(*graph_panel(picture), picture.get("caption", ""))]
        if picture.get("expected"):
            panels.append((*graph_panel(picture["expected"]), picture["expected"].get("caption", "")))
    figures = "".join(
        f"<figure style='margin:0;width:{max(width, 300):.0f}px;max-width:100%;overflow-x:auto'>{svg}"
        + (f"<figcaption style='font-size:12px;line-height:1.35;color:#333;margin:2px 4px 0 12px'>{esc(cap)}</figcaption>"
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
