"""The class summary a TA opens first (summary.html): totals and their histogram, per exercise the
mean, full marks and failures, the most common failed checks, timeouts, crashes, slow and unusable
submissions, and the feedback pages that could not be made.
"""

from __future__ import annotations

import html
import statistics
from collections import Counter

from .results import GRADED, check_function

FEEDBACK_FAILED = "the feedback page could not be made"


def _histogram_svg(values: list[float], maximum: float, bins: int = 10) -> str:
    maximum = maximum or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(v / maximum * bins))] += 1
    top = max(counts) or 1
    w, h = 24, 80
    bars = "".join(
        f"<rect x='{i * w + 2}' y='{h - c / top * h:.1f}' width='{w - 4}' height='{c / top * h:.1f}' fill='#4a7ebb'>"
        f"<title>{i * maximum / bins:g}–{(i + 1) * maximum / bins:g}: {c}</title></rect>"
        for i, c in enumerate(counts)
    )
    return (f"<svg width='{bins * w}' height='{h + 14}' role='img'>{bars}"
            f"<text x='0' y='{h + 12}' font-size='10'>0</text>"
            f"<text x='{bins * w - 20}' y='{h + 12}' font-size='10'>{maximum:g}</text></svg>")


def summary_html(rows, assignment_name: str, exercise_ids: list[str], notes: list[str] = ()) -> str:
    e = html.escape
    graded = [r for r in rows if r.status == "graded"]
    parts = [f"<!doctype html><meta charset='utf-8'><title>{e(assignment_name)}: class summary</title>",
             "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:left;overflow-wrap:anywhere}"
             "table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}</style>",
             f"<h1>{e(assignment_name)}: class summary</h1>",
             f"<p>{len(rows)} submissions, {len(graded)} graded, {len(rows) - len(graded)} unusable.</p>"]
    totals = [r.score for r in graded]
    if totals:
        parts.append(f"<h2>Total</h2><p>mean {statistics.mean(totals):.2f}, median {statistics.median(totals):g}, "
                     f"max {max(r.max_score for r in graded):g}</p>"
                     + _histogram_svg(totals, max(r.max_score for r in graded)))
    parts.append("<h2>Per exercise</h2><table><tr><th>exercise</th><th>mean</th><th>full marks</th>"
                 "<th>timeouts</th><th>crashes</th><th>errors</th><th>missing</th><th>distribution</th></tr>")
    failed = Counter()
    for ex_id in exercise_ids:
        exs = [x for r in graded for x in r.result["exercises"] if x["id"] == ex_id]
        if not exs:
            continue
        status = Counter(x["status"] for x in exs)
        scores = [x["score"] for x in exs]
        full = sum(x["score"] == x["max_score"] and x["status"] == GRADED for x in exs)
        parts.append(
            f"<tr><td>{e(ex_id)}</td><td>{statistics.mean(scores):.2f} / {max(x['max_score'] for x in exs):g}</td>"
            f"<td>{full}</td><td>{status['timeout']}</td><td>{status['crashed']}</td><td>{status['error']}</td>"
            f"<td>{status['missing']}</td><td>{_histogram_svg(scores, max(x['max_score'] for x in exs))}</td></tr>")
        for x in exs:  # a check counts once per submission, however many of its cases failed
            if x["status"] == GRADED:
                failed.update({(ex_id, check_function(c["id"])) for c in x["checks"] if c["status"] in ("failed", "error")})
    parts.append("</table><h2>Most common failed checks</h2><table><tr><th>exercise</th><th>check</th><th>submissions</th></tr>")
    for (ex_id, check), n in failed.most_common(15):
        parts.append(f"<tr><td>{e(ex_id)}</td><td>{e(check)}</td><td>{n}</td></tr>")
    parts.append("</table><h2>Timeouts and crashes</h2><table><tr><th>student</th><th>exercise</th><th>status</th><th>reason</th></tr>")
    for r in graded:
        for x in r.result["exercises"]:
            if x["status"] in ("timeout", "crashed"):
                parts.append(f"<tr><td>{e(r.student)}</td><td>{e(x['id'])}</td><td>{x['status']}</td>"
                             f"<td>{e((x.get('error') or '')[:200])}</td></tr>")
    parts.append("</table><h2>Slowest submissions</h2><table><tr><th>student</th><th>seconds</th></tr>")
    for r in sorted(graded, key=lambda r: -r.result.get("duration_s", 0))[:10]:
        parts.append(f"<tr><td>{e(r.student)}</td><td>{r.result.get('duration_s', 0):.1f}</td></tr>")
    unusable = [r for r in rows if r.status != "graded"]
    if unusable:
        parts.append("</table><h2>Unusable submissions</h2><table><tr><th>student</th><th>problem</th></tr>")
        for r in unusable:
            parts.append(f"<tr><td>{e(r.student)}</td><td>{e(r.result.get('error', ''))}</td></tr>")
    failed_pages = [(r.student, n) for r in rows for n in r.result.get("notes", []) if n.startswith(FEEDBACK_FAILED)]
    if failed_pages:
        parts.append("</table><h2>Feedback pages that could not be made</h2><table><tr><th>student</th><th>why</th></tr>")
        parts += [f"<tr><td>{e(s)}</td><td>{e(n)}</td></tr>" for s, n in failed_pages]
    if notes:
        parts.append("</table><h2>Left out of the class folder</h2><ul>")
        parts += [f"<li>{e(n)}</li>" for n in notes]
        parts.append("</ul><table>")
    parts.append("</table>")
    return "\n".join(parts)
