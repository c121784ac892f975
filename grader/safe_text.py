"""Student-controlled text made safe to show: in a terminal (no escape sequences) and in a
spreadsheet (no formulas). One place, so every print site and every CSV writer agrees."""

from __future__ import annotations

import os
import re

# C0 controls but tab and newline, DEL, C1 controls (a lone 0x9b is CSI on some terminals), the
# bidirectional overrides and isolates (they reorder what the TA reads: "Trojan Source"), and the
# lone surrogates Python uses for undecodable bytes in file names.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_ONE_LINE = re.compile(_UNSAFE.pattern[:-1] + "\t\n]")

# OWASP "CSV Injection": a cell starting with one of these is a formula in Excel, LibreOffice, Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _visible(match: re.Match) -> str:
    c = match.group()
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 in a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: object, one_line: bool = False) -> str:
    """`text` with every control character shown as `\\x1b`, `\\u202e`, ...: a student's file name,
    exception message or source line cannot move the cursor, set the TA's clipboard (OSC 52),
    retitle the window or reorder the line. Newlines and tabs stay unless `one_line`."""
    return (_UNSAFE_ONE_LINE if one_line else _UNSAFE).sub(_visible, str(text))


def path_text(path: object) -> str:
    """A file name as valid text: bytes that are not UTF-8 (a Latin-1 name from an old zip or
    share) become `\\xNN`, so the name can be stored (SQLite, JSON, HTML) and read."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def csv_cell(value: object) -> object:
    """A value for a CSV cell a spreadsheet will open: numbers stay numbers; text that a spreadsheet
    would read as a formula gets a leading `'` (OWASP), which spreadsheets show as plain text.
    Control characters are shown as in a terminal: TAs `cat` CSV files too."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    text = "" if value is None else for_terminal(value)
    return "'" + text if text.startswith(FORMULA_START) else text
