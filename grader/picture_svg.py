"""What every feedback picture's SVG is made of: escaped text, the opening with its title, a log-scaled axis
and its ticks, durations in words. grader.picture_graph and grader.picture_timing draw with these.

Every text a picture holds goes through `esc` here, after grader.picture_data restricted its characters:
the second, independent fence.
"""

from __future__ import annotations

import html
import math

_SANS = "font-family='-apple-system,Segoe UI,Helvetica,Arial,sans-serif'"


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def svg_start(width: float, height: float, title: str | None, pad: float) -> list[str]:
    """The opening of a picture: its size, a white ground and the (escaped) title."""
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
             f"viewBox='0 0 {width:.0f} {height:.0f}' role='img' {_SANS} font-size='11'>",
             "<rect width='100%' height='100%' fill='#ffffff'/>"]
    if title:
        parts.append(f"<text x='{pad}' y='{pad + 12}' font-size='12.5' font-weight='600' fill='#222'>"
                     f"{esc(title)}</text>")
    return parts


def decades(lo: float, hi: float) -> tuple[float, float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return (a, b) if b > a else (a, a + 1)


def axis(scale, lo, hi, y, left, right, fmt, ticks_only: bool = False) -> str:
    out = [] if ticks_only else [f"<line x1='{left}' x2='{right}' y1='{y}' y2='{y}' stroke='#999'/>"]
    for p in range(int(lo), int(hi) + 1):
        x = scale(10.0 ** p)
        out.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y - 3}' y2='{y + 3}' stroke='#999'/>"
                   f"<text x='{x:.1f}' y='{y + 14}' text-anchor='middle' font-size='9.5' fill='#666'>"
                   f"{esc(fmt(10.0 ** p))}</text>")
    return "".join(out)


def duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"
