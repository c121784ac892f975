"""Stage 5, report: a SubmissionResult as the text a student reads at midnight."""

from __future__ import annotations

import textwrap

from .results import GRADED, PASSED, SKIPPED, SubmissionResult, check_function
from .safe_text import for_terminal

MARKS = {PASSED: "✓", SKIPPED: "-", "failed": "✗", "error": "✗"}


def _points(x: float) -> str:
    return f"{x:g}"


def render_text(result: SubmissionResult, color: bool = False) -> str:
    """Every text of the student's (file name, messages, notes, source lines) goes through
    `for_terminal`; only the colours added here reach the terminal as escape sequences."""
    safe = for_terminal

    def paint(text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if color else text

    green, red, dim, bold = "32", "31", "2", "1"
    lines = [
        paint(safe(result.submission), bold) + f"  ({result.assignment})",
        f"Score: {paint(_points(result.score) + ' / ' + _points(result.max_score), bold)}"
        f"   torch {result.torch_version}, devices {', '.join(result.devices)}, "
        f"{result.torch_threads} torch thread(s), {result.duration_s:.1f} s",
    ]
    for note in result.notes:
        lines.append(paint(f"note: {safe(note)}", dim))
    lines.append("")
    width = max((len(e.id) for e in result.exercises), default=10)
    for ex in result.exercises:
        full = ex.status == GRADED and not ex.failed_checks
        mark = paint("✓", green) if full else paint("✗", red)
        status = "" if ex.status == GRADED else f"  [{ex.status}]"
        lines.append(f"{mark} {safe(ex.id):<{width}}  {_points(ex.score):>4} / {_points(ex.max_score):<4}{status}")
        if ex.error:
            lines.extend(_indent(safe(ex.error), 4))
        for note in ex.notes:  # every wrapped line: a note's fix is at its end
            lines.extend(paint(line, dim) for line in _indent(f"note: {safe(note)}", 4))
        hints_shown = set()
        skipped: dict[str, int] = {}
        shared = _shared_failures(ex)
        for check in ex.checks:
            if check.status == PASSED:
                if check.message:  # a passed check's own account (issue 12: the measured speed-up)
                    lines.append(f"    {paint('✓', green)} {safe(check.id)}")
                    lines.extend(paint(line, dim) for line in _indent(safe(check.message), 8))
                continue
            if check.status == SKIPPED:
                skipped[safe(check.message)] = skipped.get(safe(check.message), 0) + 1
                continue
            if ex.status != GRADED and check.message.startswith("not run"):
                continue
            if check.id in shared:
                lines.extend(_shared_lines(shared[check.id], ex.error, paint("✗", red)))
                continue
            lines.append(f"    {paint('✗', red)} {safe(check.id)}  (0 / {_points(check.max_score)})")
            message, _, hint = safe(check.message).partition("\nHint: ")
            lines.extend(_indent(message, 8))
            if hint and hint not in hints_shown:
                hints_shown.add(hint)
                lines.extend(_indent("Hint: " + hint, 8))
        for reason, count in skipped.items():
            lines.append(paint(f"    - {count} check(s) skipped: {reason}", dim))
        not_run = [c for c in ex.checks if ex.status != GRADED and c.message.startswith("not run")]
        if not_run:
            lines.append(paint(f"    {len(not_run)} check(s) not run", dim))
    passed = sum(c.status == PASSED for e in result.exercises for c in e.checks)
    total = sum(c.status != SKIPPED for e in result.exercises for c in e.checks)
    lines += ["", f"{passed} of {total} checks passed."]
    return "\n".join(lines)


def _indent(text: str, n: int) -> list[str]:
    out = []
    for line in text.splitlines() or [""]:
        out.extend(textwrap.wrap(line, 110, initial_indent=" " * n, subsequent_indent=" " * (n + 2),
                                 drop_whitespace=False, replace_whitespace=False) or [" " * n])
    return out


def _shared_failures(ex) -> dict[str, list]:
    """Checks that failed with one and the same message (the stub's NotImplementedError, a missing cell):
    the first check's id -> every check of the group, the others' ids -> [] (issue 14: one explanation,
    then the list, so that a report stays about a screen per exercise)."""
    groups: dict[str, list] = {}
    for check in ex.checks:
        if check.status not in (PASSED, SKIPPED) and not (ex.status != GRADED and check.message.startswith("not run")):
            groups.setdefault(check.message.partition("\nHint: ")[0], []).append(check)
    return {c.id: (group if i == 0 else []) for group in groups.values() if len(group) > 1
            for i, c in enumerate(group)}


def _shared_lines(group: list, error: str | None, mark: str) -> list[str]:
    if not group:
        return []  # shown with the first check of its group
    points = sum(c.max_score for c in group)
    lines = [f"    {mark} {len(group)} checks  (0 / {_points(points)}), all for one reason:"]
    message = group[0].message.partition("\nHint: ")[0]
    if message != error:  # an exercise's error is shown above already
        lines.extend(_indent(for_terminal(message), 8))
    cases: dict[str, list[str]] = {}  # a parametrized check once, with its number of cases
    for c in group:
        cases.setdefault(check_function(c.id), []).append(c.id)
    names = [ids[0] if len(ids) == 1 else f"{base} ({len(ids)} cases)" for base, ids in cases.items()]
    lines.extend(_indent(for_terminal("Checks: " + ", ".join(names)), 8))
    return lines
