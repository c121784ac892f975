"""The feedback on one exercise as markdown: a verdict line per check, each distinct failure once in
full, the check's picture. The feedback page, `grader check` in a notebook and Gradescope all start here.
"""

from __future__ import annotations

import html

from . import pictures
from .results import PASSED, SKIPPED, check_function


def feedback_markdown(ex) -> str:
    """One entry per check, its parametrized cases together (a student reads "3 of 4 cases failed"
    and one explanation, not the same paragraph once per device and dtype)."""
    lines = [f"#### Feedback: `{ex.id}` — {ex.score:g} / {ex.max_score:g} points\n"]
    if ex.error:
        lines.append(f"*{ex.status}*: {_md_escape(ex.error)}\n")
    groups: dict[str, list] = {}
    for c in ex.checks:
        groups.setdefault(check_function(c.id), []).append(c)
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
