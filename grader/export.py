"""What a batch leaves for TAs and students: Gradescope JSON, feedback pages, grades.csv, a class summary.

Every file is written atomically (a temporary file, then rename): a killed grader leaves
either the old file or the new one, never half of one.
"""

from __future__ import annotations

import base64
import binascii
import csv
import html
import io
import json
import os
import re
import statistics
import tempfile
from collections import Counter
from pathlib import Path

import nbformat

from . import pictures
from .extract import exercise_id_of
from .results import GRADED, PASSED, SKIPPED, SubmissionResult
from .safe_text import csv_cell


# The process's umask, read once while importing (setting it is the only way to read it, and not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would keep feedback pages from a web folder or other TAs
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- Gradescope ---------------------------------------------------------------------------------


def gradescope_json(result: SubmissionResult) -> str:
    """Gradescope's autograder results schema: a score and one entry per check."""
    tests = []
    for ex in result.exercises:
        if ex.status != GRADED:
            tests.append({"name": f"{ex.id}: {ex.status}", "score": 0.0, "max_score": ex.max_score,
                          "output": ex.error or "", "visibility": "visible", "status": "failed"})
            continue
        for c in ex.checks:
            if c.status == SKIPPED:
                continue
            tests.append({"name": f"{ex.id}: {c.name} [{c.id}]", "score": c.score, "max_score": c.max_score,
                          "output": c.message, "visibility": "visible",
                          "status": "passed" if c.status == PASSED else "failed", **_gradescope_picture(c)})
    return json.dumps({
        "score": result.score,
        "execution_time": result.duration_s,
        "output": f"torchgrade {result.grader_version}, torch {result.torch_version}, devices {', '.join(result.devices)}",
        "stdout_visibility": "hidden",
        "tests": tests,
    }, indent=1)


def _gradescope_picture(check) -> dict:
    """Where a check has a picture: its output as HTML (Gradescope's `output_format`), the message kept as text."""
    figure = pictures.check_picture_html(check.picture)
    if not figure:
        return {}
    return {"output": f"<pre>{html.escape(check.message)}</pre>{figure}", "output_format": "html"}


def gradescope_unusable(error: str) -> str:
    return json.dumps({"score": 0.0, "output": f"Your notebook could not be graded: {error}", "tests": []}, indent=1)


# -- feedback page ------------------------------------------------------------------------------


def feedback_markdown(ex) -> str:
    """One entry per check, its parametrized cases together (a student reads "3 of 4 cases failed"
    and one explanation, not the same paragraph once per device and dtype)."""
    lines = [f"#### Feedback: `{ex.id}` — {ex.score:g} / {ex.max_score:g} points\n"]
    if ex.error:
        lines.append(f"*{ex.status}*: {_md_escape(ex.error)}\n")
    groups: dict[str, list] = {}
    for c in ex.checks:
        groups.setdefault(c.id.split("[", 1)[0], []).append(c)
    for cases in groups.values():
        lines.append(_check_markdown(cases))
    for note in ex.notes:
        lines.append(f"- note: {_md_escape(note)}")
    return "\n".join(lines)


def _check_markdown(cases: list) -> str:
    """The cases of one check function: a verdict line, each distinct failure once in full (the
    first case that failed that way), the other cases named, one picture."""
    name = _md_escape(cases[0].name)
    failed = [c for c in cases if c.status not in (PASSED, SKIPPED)]
    passed = [c for c in cases if c.status == PASSED]
    skipped: dict[str, int] = {}
    for c in cases:
        if c.status == SKIPPED:
            skipped[c.message] = skipped.get(c.message, 0) + 1
    skip_text = "; ".join(f"{n} skipped: {_md_escape(reason)}" if len(cases) > 1 else f"skipped: {_md_escape(reason)}"
                          for reason, n in skipped.items())
    if not failed:
        count = f"{len(passed)} cases" if len(passed) > 1 else ""
        extra = ", ".join(x for x in (count, skip_text) if x)
        mark = "✓" if passed else "–"
        out = f"- {mark} {name}" + (f" ({extra})" if extra else "")
        messages = dict.fromkeys(c.message for c in passed if c.message)  # a pass's own account (timing)
        return out + "".join(f"\n\n      {line}" for m in messages for line in m.splitlines())
    points = sum(c.max_score for c in failed)
    what = f"`{failed[0].id}`" if len(cases) == 1 else f"{len(failed)} of {len(cases)} cases failed"
    out = [f"- ✗ **{name}** ({what}, 0 / {points:g})"]
    by_reason: dict[str, list] = {}
    for c in failed:
        by_reason.setdefault(c.message.partition("\n")[0], []).append(c)
    for same in by_reason.values():
        if len(cases) > 1:
            out.append(f"\n  `{same[0].id}`:")
        out.append("\n" + "\n".join(f"      {line}" for line in same[0].message.splitlines()))
        if len(same) > 1:
            out.append("\n  Failed the same way: " + ", ".join(f"`{c.id}`" for c in same[1:]))
    rest = ", ".join(x for x in (f"passed: {', '.join(f'`{c.id}`' for c in passed)}" if passed else "", skip_text) if x)
    if rest:
        out.append(f"\n  {rest[0].upper()}{rest[1:]}")
    picture = next((c.picture for c in failed if c.picture), None)  # one picture per check, not per case
    if picture:
        out.append(pictures.markdown_block(picture))
    return "\n".join(out)


def _md_escape(text: str) -> str:
    return html.escape(text).replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")


# JupyterLab's page, except that highlighted code is not run through the HTML sanitizer a second
# time: Pygments has escaped every character of it, and sanitizing it took 40% of a page's time.
_FEEDBACK_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{#- No require.js from a CDN: it serves outputs and widgets, which the page drops. -#}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block input %}
<div class="jp-CodeMirrorEditor jp-Editor jp-InputArea-editor" data-type="inline">
     <div class="cm-editor cm-s-jupyter">
{{ cell.source | highlight_code(metadata=cell.metadata) }}
     </div>
</div>
{%- endblock input %}
"""


def _markdown_to_html(source: str) -> str:
    """nbconvert's own markdown, with `javascript:` and other harmful link targets disabled: a
    student's text, or an exception message of theirs that reaches the feedback, could hold
    `[link](javascript:...)`. (HTML in it is escaped before it gets here.)"""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    return MarkdownWithMath(renderer=IPythonRenderer(escape=False, allow_harmful_protocols=False)).render(source)


# A picture pasted into a markdown cell is stored in the cell (`attachments`) and referenced as
# `![image.png](attachment:image.png)`. Raster images only: an SVG could carry script.
_ATTACHMENT_REF = re.compile(r"!\[([^\]]*)\]\(\s*attachment:([^)\s]+)\s*\)")
_PICTURE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
MAX_PICTURE_BYTES = 5 * 1024 * 1024
MISSING_PICTURE = "*[picture {name}: not in the notebook, so it cannot be shown here]*"
UNSHOWN_PICTURE = "*[picture {name}: not shown here (only PNG, JPEG, GIF or WebP pictures under 5 MB are)]*"


def _with_attachments(source: str, attachments) -> str:
    """`source` with each `attachment:` picture inlined as a data URI, or a placeholder where the
    attachment is absent, not a picture, or not valid base64 (nbconvert would raise for the whole page)."""
    attachments = attachments if isinstance(attachments, dict) else {}

    def inline(match: re.Match) -> str:
        alt, name = match.group(1), match.group(2)
        bundle = attachments.get(html.unescape(name))
        for mime in _PICTURE_TYPES:
            data = bundle.get(mime) if isinstance(bundle, dict) else None
            if isinstance(data, list):  # nbformat allows multi-line strings
                data = "".join(x for x in data if isinstance(x, str))
            if isinstance(data, str) and len(data) <= MAX_PICTURE_BYTES * 4 // 3 + 4:
                data = "".join(data.split())
                try:
                    base64.b64decode(data, validate=True)
                except (binascii.Error, ValueError):
                    continue
                return f"![{alt}](data:{mime};base64,{data})"
        return (MISSING_PICTURE if bundle is None else UNSHOWN_PICTURE).format(name=name)

    return _ATTACHMENT_REF.sub(inline, source)


def _base_templates() -> dict:
    """nbconvert's templates where Jupyter does not look for them: nbconvert installed in the base
    Python of a virtual environment made with --system-site-packages (without this every page fails)."""
    import sys

    root = Path(sys.base_prefix) / "share" / "jupyter" / "nbconvert" / "templates"
    if sys.base_prefix == sys.prefix or not root.is_dir():
        return {}
    return {"extra_template_basedirs": [str(root)], "extra_template_paths": [str(root)]}


class FeedbackRenderer:
    """The student's own notebook, outputs removed, feedback after each exercise's last cell."""

    def __init__(self):
        from jinja2 import DictLoader
        from nbconvert import HTMLExporter

        self.exporter = HTMLExporter(template_name="lab", template_file="torchgrade-feedback.html.j2",
                                     extra_loaders=[DictLoader({"torchgrade-feedback.html.j2": _FEEDBACK_TEMPLATE})],
                                     filters={"markdown2html": _markdown_to_html}, **_base_templates())

    def render(self, notebook: nbformat.NotebookNode, result: SubmissionResult) -> str:
        nb = nbformat.v4.new_notebook(metadata={"language_info": {"name": "python"}})
        last_cell_of: dict[str, int] = {}
        cells = []
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell = nbformat.v4.new_code_cell(cell.source)
                ex_id = exercise_id_of(cell)
                if ex_id:
                    last_cell_of[ex_id] = len(cells)
            else:
                # Student text may carry HTML or script: escaped, so it shows as text and never runs.
                # Code is safe (highlighted and escaped by nbconvert); outputs are dropped.
                cell = nbformat.v4.new_markdown_cell(_with_attachments(html.escape(cell.source),
                                                                       cell.get("attachments")))
            cells.append(cell)
        after: dict[int, list[str]] = {}
        missing = []
        for ex in result.exercises:
            if ex.id in last_cell_of:
                after.setdefault(last_cell_of[ex.id], []).append(feedback_markdown(ex))
            else:
                missing.append(feedback_markdown(ex))
        header = (f"# Feedback: {html.escape(Path(result.submission).name)}\n\n"
                  f"**Score: {result.score:g} / {result.max_score:g}** — graded by torchgrade {result.grader_version} "
                  f"(torch {result.torch_version}, devices {', '.join(result.devices)}).")
        nb.cells.append(nbformat.v4.new_markdown_cell(header))
        for i, cell in enumerate(cells):
            nb.cells.append(cell)
            for text in after.get(i, []):
                nb.cells.append(nbformat.v4.new_markdown_cell(text))
        for text in missing:
            nb.cells.append(nbformat.v4.new_markdown_cell(text))
        body, _ = self.exporter.from_notebook_node(nb)
        return body


def feedback_html(result: SubmissionResult) -> str:
    """The feedback page's per-exercise blocks as one HTML fragment (`grader.check` shows it in a notebook)."""
    return "\n".join(f"<div class='torchgrade-exercise'>{_markdown_to_html(feedback_markdown(ex))}</div>"
                     for ex in result.exercises)


# -- class-level files --------------------------------------------------------------------------


def grades_csv(rows, exercise_ids: list[str]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([csv_cell(x) for x in ["student", *exercise_ids, "total", "max_total", "status", "submission"]])
    for row in rows:
        by_id = {e["id"]: e for e in row.result.get("exercises", [])}
        # Names come from student file names: `=HYPERLINK(...).ipynb` must stay text (csv_cell).
        w.writerow([csv_cell(x) for x in [row.student, *(by_id[x]["score"] if x in by_id else "" for x in exercise_ids),
                                          row.score, row.max_score, row.status, row.submission]])
    return out.getvalue()


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
                failed.update({(ex_id, c["id"].split("[", 1)[0]) for c in x["checks"] if c["status"] in ("failed", "error")})
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
