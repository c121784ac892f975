"""Unit layer for grader/report.py: the text a student reads, from constructed results (no workers)."""

from __future__ import annotations

from results_factory import check, exercise, submission

from grader.report import render_text
from grader.results import ERROR, FAILED, PASSED, SKIPPED, TIMEOUT

STUB = "NotImplementedError: replace `raise NotImplementedError` with your code"


def lines_of(text: str) -> list[str]:
    return text.split("\n")


def test_header_scores_and_the_count_of_checks_passed_leave_skipped_checks_out():
    result = submission(
        exercise("views", check("test_a", PASSED, 2), check("test_b", FAILED, 1, "b is wrong"),
                 check("test_gpu", SKIPPED, 1, "needs a CUDA GPU, and none is present here")),
        exercise("lost_leaf", check("test_leaf", PASSED, 3)))
    text = render_text(result)
    lines = lines_of(text)
    assert lines[0] == "alice.ipynb  (pytorch_intro)"
    assert lines[1] == "Score: 5 / 6   torch 2.13.0, devices cpu, meta, 1 torch thread(s), 12.3 s"
    assert "✗ views         2 / 3   " in lines and "✓ lost_leaf     3 / 3   " in lines
    assert "    ✗ test_b  (0 / 1)" in lines and "        b is wrong" in lines
    assert "    - 1 check(s) skipped: needs a CUDA GPU, and none is present here" in lines
    assert lines[-1] == "2 of 3 checks passed."  # the skipped check is in neither count


def test_identical_failures_are_explained_once_with_their_checks_listed():
    result = submission(exercise(
        "views",
        check("test_shape[cpu]", ERROR, 1, f"{STUB}\nHint: read the lecture on views"),
        check("test_shape[meta]", ERROR, 1, f"{STUB}\nHint: read the lecture on views"),
        check("test_storage", ERROR, 2, STUB),
        check("test_other", FAILED, 1, "a different reason"),
    ))
    text = render_text(result)
    assert text.count(STUB) == 1
    assert "    ✗ 3 checks  (0 / 4), all for one reason:" in lines_of(text)
    assert "        Checks: test_shape (2 cases), test_storage" in lines_of(text)
    assert "    ✗ test_other  (0 / 1)" in lines_of(text)  # a check that failed its own way stays on its own
    assert "test_shape[cpu]" not in text


def test_a_hint_shared_by_several_checks_is_shown_once():
    hint = "Hint: a view shares its storage"
    result = submission(exercise("views", check("test_a", FAILED, 1, f"a is wrong\n{hint}"),
                                 check("test_b", FAILED, 1, f"b is wrong\n{hint}")))
    text = render_text(result)
    assert text.count(hint) == 1 and "a is wrong" in text and "b is wrong" in text


def test_an_exercise_that_timed_out_shows_its_error_once_and_counts_the_checks_not_run():
    error = "the grader stopped this exercise because it was still running after 6 s"
    result = submission(exercise("views", check("test_a", ERROR, 1, f"not run: {error}"),
                                 check("test_b", ERROR, 1, f"not run: {error}"),
                                 check("test_c", FAILED, 1, "c failed before the time ran out"),
                                 status=TIMEOUT, error=error))
    lines = lines_of(render_text(result))
    assert "✗ views     0 / 3     [timeout]" in lines
    assert lines.count(f"    {error}") == 1 and not any("not run:" in line for line in lines)
    assert "    2 check(s) not run" in lines and "        c failed before the time ran out" in lines


def test_a_passed_check_with_an_account_shows_it():
    result = submission(exercise("beat_pdist", check("test_fast[cpu]", PASSED, 2, "2.1× the speed of pdist")))
    lines = lines_of(render_text(result))
    assert "    ✓ test_fast[cpu]" in lines and "        2.1× the speed of pdist" in lines


def test_student_text_cannot_reach_the_terminal_as_control_sequences():
    nasty = "bad\x1b]52;c;cm0gLXJmIH4=\x07 \u202eevil"
    result = submission(exercise("views", check("test_a", FAILED, 1, nasty), notes=(f"note {nasty}",)),
                        name="\x1b[2Jalice.ipynb", notes=("\x9bcleared",))
    for color in (False, True):
        text = render_text(result, color=color)
        leftover = text
        for code in ("\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[0m"):
            leftover = leftover.replace(code, "")
        assert not any(c in leftover for c in "\x1b\x07\x9b\u202e")
        assert "\\x1b[2Jalice.ipynb" in text and "bad\\x1b]52;c;cm0gLXJmIH4=\\x07 \\u202eevil" in text
        assert "\\x9bcleared" in text
    assert "\033[" not in render_text(result, color=False)
    assert "\033[31m✗\033[0m" in render_text(result, color=True)
