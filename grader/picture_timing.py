"""A speed check's measurement drawn as SVG: every timed call of the student's code and of the reference
on one log-scaled time axis, then the per-pair speed-ups against the threshold line (grader.timing's data).
"""

from __future__ import annotations

import math
import statistics

from .picture_svg import axis, decades, duration, esc, svg_start


def timing_svg(data: dict) -> str:
    """A timing picture (already `clean`) as an SVG."""
    return timing_panel(data)[0]


def timing_panel(data: dict) -> tuple[str, float]:
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
    lo, hi = decades(min(times), max(times))

    def tx(t: float) -> float:
        return left + (math.log10(max(t, 10 ** lo)) - lo) / (hi - lo) * (width - left - right)

    parts = svg_start(width, height, data.get("title"), pad)
    parts.append(f"<text x='{pad}' y='{top - 4}' font-size='10' fill='#555'>time of one forward + backward "
                 f"(each dot one timed call; bar: median)</text>")
    for k, (label, ts, color) in enumerate(series):
        y = top + row_h * k + row_h / 2
        parts.append(f"<text x='{left - 10}' y='{y + 4:.1f}' text-anchor='end' fill='#222'>{esc(label)}</text>")
        parts.append(f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eee'/>")
        for j, t in enumerate(ts):
            jitter = ((j * 7) % 9 - 4) * 1.3
            parts.append(f"<circle cx='{tx(t):.1f}' cy='{y + jitter:.1f}' r='2.6' fill='{color}' fill-opacity='0.55'/>")
        if ts:
            m = tx(statistics.median(ts))
            parts.append(f"<line x1='{m:.1f}' x2='{m:.1f}' y1='{y - 9:.1f}' y2='{y + 9:.1f}' stroke='{color}' "
                         f"stroke-width='2.5'/>")
            parts.append(f"<text x='{width - right}' y='{y - 6:.1f}' text-anchor='end' font-size='9.5' fill='{color}'>"
                         f"median {esc(duration(statistics.median(ts)))}</text>")
    parts.append(axis(tx, lo, hi, axis_y, left, width - right, duration))
    parts.append(_ratio_strip(ratios, data["ratio"], data["threshold"], ratio_top, left, width - right,
                              "pdist" if data.get("pdist_s") else "reference"))
    parts.append("</svg>")
    return "".join(parts), width


def _ratio_strip(ratios, ratio, threshold, top, left, right, baseline) -> str:
    values = [r for r in [*ratios, ratio, threshold] if r > 0] or [1.0]
    lo, hi = decades(min(values) / 1.5, max(values) * 1.5)

    def rx(r: float) -> float:
        return left + (math.log10(max(r, 10 ** lo)) - lo) / (hi - lo) * (right - left)

    y = top + 16
    passed = ratio >= threshold
    color = "#2e7d32" if passed else "#c62828"
    out = [f"<text x='{left - 10}' y='{y + 4}' text-anchor='end' fill='#222'>speed-up per pair</text>",
           f"<text x='{left}' y='{top - 6}' font-size='10' fill='#555'>{esc(baseline)} time / your time, "
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
    out.append(axis(rx, lo, hi, y + 38, left, right, lambda r: f"×{r:g}", ticks_only=True))
    return "".join(out)
