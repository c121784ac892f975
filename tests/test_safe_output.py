"""What a TA opens is safe: the terminal shows student text without its escape sequences, and
grades.csv holds no formula. Checked on real output, piped and on a pseudo-terminal."""

import csv
import io
import os
import pty
import re
import select
import subprocess
import sys

import nbformat
import pytest

from conftest import DOUBLE_OK, MINI_RUBRICS, SQUARE_OK, exercise_notebook, write_notebook
from grader.safe_text import csv_cell, for_terminal

OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # writes "echo pwned" to the TA's clipboard
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def test_for_terminal_shows_every_control_visibly():
    assert for_terminal(OSC52) == "\\x1b]52;c;ZWNobyBwd25lZA==\\x07"
    assert for_terminal("a\u202eb\x9b2J\x7f\x00") == "a\\u202eb\\x9b2J\\x7f\\x00"
    assert for_terminal("line1\n\tline2") == "line1\n\tline2"
    assert for_terminal("a\nb\rc", one_line=True) == "a\\x0ab\\x0dc"
    assert for_terminal(os.fsdecode(b"caf\xe9")) == "caf\\xe9"  # a Latin-1 file name on a UTF-8 system
    assert for_terminal("Müller 李雷 ✓") == "Müller 李雷 ✓"


def test_csv_cell_neutralises_formulas_and_keeps_numbers():
    for bad in ("=HYPERLINK(\"http://x\",\"y\")", "+cmd", "-2+3", "@SUM(A1)", "\tx"):
        assert csv_cell(bad) == "'" + bad
    assert csv_cell("\rx") == "\\x0dx"  # shown, so no longer a leading CR
    assert csv_cell("Müller") == "Müller" and csv_cell(-1.5) == "-1.5" and csv_cell(5.0) == "5"
    assert csv_cell("a\x1b]52;c;QUFB\x07") == "a\\x1b]52;c;QUFB\\x07"  # `cat grades.csv` is safe too


def check_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "grader", "check", *map(str, args), "--rubrics", str(MINI_RUBRICS)],
                          capture_output=True, text=True, timeout=300, **kw)


def hostile_notebook(path):
    """Escape sequences where a student controls text: an exception message, a syntax error's source
    line, an unknown marker id, a removed magic."""
    cells = ["import torch",
             f"# exercise: double\ndef double(x):\n    raise ValueError({OSC52!r} + 'msg\\u202eevil')",
             f"# exercise: square\ndef square(x):\n    return x ** 2 # \x1b[2J\x1b]0;title\x07\n    )",
             f"# exercise: nosuch\x1b[31m\nx = 1",
             f"# exercise: double\n%time x = 1 # \x1b]52;c;AAAA\x07\ndef double(x):\n    raise ValueError({OSC52!r})"]
    return write_notebook(path, cells)


def assert_no_raw_controls(text):
    for c in RAW:
        assert c not in text, (c, text)


def test_check_text_output_escapes_student_text_when_piped(tmp_path):
    nb = hostile_notebook(tmp_path / "evil.ipynb")
    r = check_cli(nb)
    assert r.returncode == 1, r.stderr
    assert_no_raw_controls(r.stdout + r.stderr)
    assert "\\x1b]52;c;" in r.stdout  # shown, visibly


def on_pty(*args) -> tuple[int, str]:
    """Run the grader with a pseudo-terminal as stdin, stdout and stderr (as a TA runs it)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "grader", *map(str, args), "--rubrics", str(MINI_RUBRICS)],
                            stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 300)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def assert_only_grader_colours(out):
    assert not re.findall(r"\x1b(?!\[[0-9;]*m)", out), out  # every ESC left is one of the grader's colours
    assert "\x07" not in out and "\u202e" not in out and "\x9b" not in out


def test_check_on_a_pseudo_terminal_escapes_student_text_and_keeps_grader_colours(tmp_path):
    nb = hostile_notebook(tmp_path / "evil\x1b]0;x\x07.ipynb")
    rc, out = on_pty("check", nb)
    assert rc == 1, out
    assert "\x1b[32m" in out or "\x1b[31m" in out  # the grader's own colours
    assert_only_grader_colours(out)
    assert "evil\\x1b]0;x\\x07.ipynb" in out


def test_grade_on_a_pseudo_terminal_shows_names_with_their_escapes_visible(tmp_path):
    subs = tmp_path / "subs"
    exercise_notebook(subs / "Ole\x1b]52;c;QUFB\x07\u202e.ipynb", {"double": DOUBLE_OK})
    exercise_notebook(subs / "Pia\x1b[2J" / "hw.ipynb", {"double": DOUBLE_OK})
    (subs / "Pia\x1b[2J" / "notes\x1b]0;t\x07.txt").write_text("x")
    (subs / "\x1b]0;t\x07.pdf").write_text("x")  # named in a note
    rc, out = on_pty("grade", subs, "--out", tmp_path / "out\x1b[5m")
    assert rc == 0, out
    assert_only_grader_colours(out)
    assert "2 submissions" in out and "\\x1b]0;t\\x07.pdf" in out and "out\\x1b[5m" in out


def test_unusable_file_name_is_escaped_in_exit_2_error_text_and_json(tmp_path):
    path = tmp_path / "=x\x1b]52;c;QUFB\x07.ipynb"
    path.write_bytes(b"{ not json")
    r = check_cli(path)
    assert r.returncode == 2
    assert_no_raw_controls(r.stderr) and "\\x1b]52" in r.stderr
    r = check_cli(path, "--format", "json")
    assert r.returncode == 2 and "\x1b" not in r.stdout  # json.dumps escapes it as \u001b
