"""The feedback page: the student's own notebook, outputs removed, each exercise's feedback after its last
cell, rendered to HTML by nbconvert. Student text is escaped and never runs; pasted pictures are inlined
only as raster images.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from pathlib import Path

import nbformat

from .extract import exercise_id_of
from .feedback_markdown import feedback_markdown
from .results import SubmissionResult

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


def markdown_to_html(source: str) -> str:
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
                                     filters={"markdown2html": markdown_to_html}, **_base_templates())

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
    return "\n".join(f"<div class='torchgrade-exercise'>{markdown_to_html(feedback_markdown(ex))}</div>"
                     for ex in result.exercises)
