"""Unit layer for grader/export.py: Gradescope JSON, grades.csv, the class summary and the feedback
markdown, from constructed results and gradebook rows (no workers, no nbconvert)."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from results_factory import check, exercise, submission, timing_picture

from grader.export import feedback_markdown, gradescope_json, gradescope_unusable, grades_csv, summary_html
from grader.gradebook import Row
from grader.results import CRASHED, ERROR, FAILED, MISSING, PASSED, SKIPPED, TIMEOUT


def row(student: str, result, status: str = "graded") -> Row:
    """A gradebook row as `Gradebook.latest` returns it (the result as its JSON dict)."""
    if status != "graded":
        return Row(student, f"{student}.ipynb", "f" * 24, 0.0, 0.0, status, result)
    return Row(student, result.submission, "f" * 24, result.score, result.max_score, status, result.to_dict())


# -- Gradescope --------------------------------------------------------------------------------------


def test_gradescope_one_test_per_check_skipped_left_out_an_ungraded_exercise_as_one():
    result = submission(
        exercise("views", check("test_a", PASSED, 2, name="a view"), check("test_b", FAILED, 1, "b is wrong"),
                 check("test_gpu", SKIPPED, 1, "needs a CUDA GPU")),
        exercise("lost_leaf", check("test_leaf", ERROR, 3, "not run: stopped"), status=TIMEOUT,
                 error="the grader stopped this exercise because it was still running after 6 s"))
    data = json.loads(gradescope_json(result))
    assert data["score"] == 2.0 and data["execution_time"] == 12.34
    assert data["output"] == "torchgrade 1.2.3, torch 2.13.0, devices cpu, meta"
    tests = {t["name"]: t for t in data["tests"]}
    assert list(tests) == ["views: a view [test_a]", "views: b [test_b]", "lost_leaf: timeout"]
    assert (tests["views: a view [test_a]"]["score"], tests["views: a view [test_a]"]["status"]) == (2.0, "passed")
    assert tests["views: b [test_b]"] == {"name": "views: b [test_b]", "score": 0.0, "max_score": 1.0,
                                         "output": "b is wrong", "visibility": "visible", "status": "failed"}
    timeout = tests["lost_leaf: timeout"]
    assert (timeout["score"], timeout["max_score"], timeout["status"]) == (0.0, 3.0, "failed")
    assert timeout["output"].endswith("still running after 6 s")


def test_gradescope_shows_a_picture_as_html_with_the_message_escaped():
    result = submission(exercise("beat_pdist", check("test_fast", FAILED, 2, "slow <b>x</b>", picture=timing_picture())))
    test = json.loads(gradescope_json(result))["tests"][0]
    assert test["output_format"] == "html"
    assert test["output"].startswith("<pre>slow &lt;b&gt;x&lt;/b&gt;</pre><div class='tg-picture'")
    assert "<svg" in test["output"]
    broken = submission(exercise("beat_pdist", check("test_fast", FAILED, 2, "slow", picture={"kind": "nonsense"})))
    assert json.loads(gradescope_json(broken))["tests"][0]["output"] == "slow"  # an invalid picture is left out


def test_gradescope_for_an_unusable_notebook():
    data = json.loads(gradescope_unusable("not a notebook: line 1"))
    assert data == {"score": 0.0, "output": "Your notebook could not be graded: not a notebook: line 1", "tests": []}


# -- grades.csv --------------------------------------------------------------------------------------


def test_grades_csv_one_row_per_student_blank_for_an_exercise_not_graded_and_formulas_kept_text():
    alice = submission(exercise("views", check("test_a", PASSED, 2)), exercise("lost_leaf", check("t", FAILED, 3)))
    bob = submission(exercise("views", check("test_a", PASSED, 1.5)), name="=HYPERLINK(\"http://x\").ipynb")
    rows = [row("alice", alice), row("=HYPERLINK(\"http://x\")", bob),
            row("carol", {"schema": 1, "submission": "carol.ipynb", "error": "not JSON"}, "unusable")]
    table = list(csv.reader(io.StringIO(grades_csv(rows, ["views", "lost_leaf"]))))
    assert table[0] == ["student", "views", "lost_leaf", "total", "max_total", "status", "submission"]
    assert table[1] == ["alice", "2", "0", "2", "5", "graded", "alice.ipynb"]
    assert table[2] == ["'=HYPERLINK(\"http://x\")", "1.5", "", "1.5", "1.5", "graded", "'=HYPERLINK(\"http://x\").ipynb"]
    assert table[3] == ["carol", "", "", "0", "0", "unusable", "carol.ipynb"]


# -- summary.html ------------------------------------------------------------------------------------


def cells(html: str, heading: str) -> list[list[str]]:
    """The data rows of the table after `<h2>heading</h2>`."""
    table = html.split(f"<h2>{heading}</h2>", 1)[1].split("</table>", 1)[0]
    return [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table) if "<td>" in r]


def test_summary_counts_statuses_and_most_common_failures_by_check_not_by_case():
    def student(views_status, *views_checks, error=None):
        return submission(exercise("views", *views_checks, status=views_status, error=error),
                          exercise("lost_leaf", check("test_leaf", PASSED, 3)))

    rows = [
        row("ann", student("graded", check("test_a[cpu]", FAILED, 1), check("test_a[meta]", PASSED, 1))),
        row("ben", student("graded", check("test_a[cpu]", FAILED, 1), check("test_a[meta]", PASSED, 1))),
        row("cat", student("graded", check("test_a[cpu]", PASSED, 1), check("test_a[meta]", PASSED, 1))),
        row("<script>dan</script>", student(TIMEOUT, check("test_a[cpu]", ERROR, 1), check("test_a[meta]", ERROR, 1),
                                            error="still running after 6 s")),
        row("eve", {"schema": 1, "submission": "eve.ipynb", "error": "not a notebook"}, "unusable"),
    ]
    html = summary_html(rows, "pytorch_intro", ["views", "lost_leaf", "absent"])
    assert "<p>5 submissions, 4 graded, 1 unusable.</p>" in html
    assert "<p>mean 4.00, median 4, max 5</p>" in html  # totals 4, 4, 5, 3
    per_exercise = {r[0]: r[1:7] for r in cells(html, "Per exercise")}
    assert per_exercise["views"] == ["1.00 / 2", "1", "1", "0", "0", "0"]  # mean, full, timeout, crash, error, missing
    assert per_exercise["lost_leaf"] == ["3.00 / 3", "4", "0", "0", "0", "0"]
    assert "absent" not in per_exercise
    # two submissions failed a case of test_a; dan's timeout is not a failed check
    assert cells(html, "Most common failed checks") == [["views", "test_a", "2"]]
    assert cells(html, "Timeouts and crashes") == [["&lt;script&gt;dan&lt;/script&gt;", "views", "timeout",
                                                    "still running after 6 s"]]
    assert cells(html, "Unusable submissions") == [["eve", "not a notebook"]]
    assert "<script>" not in html


def test_summary_counts_a_submission_once_in_most_common_failed_checks():
    ex = exercise("views", check("test_a[cpu]", FAILED, 1), check("test_a[meta]", FAILED, 1))
    html = summary_html([row("ann", submission(ex))], "pytorch_intro", ["views"])
    assert cells(html, "Most common failed checks") == [["views", "test_a", "1"]]  # the column is "submissions"


def test_summary_of_a_class_with_nothing_graded_and_the_files_left_out():
    rows = [row("eve", {"schema": 1, "submission": "eve.ipynb", "error": "empty <file>"}, "unusable")]
    html = summary_html(rows, "a&b", ["views"], notes=["notes.txt: not a notebook"])
    assert "<title>a&amp;b: class summary</title>" in html and "<h2>Total</h2>" not in html
    assert cells(html, "Unusable submissions") == [["eve", "empty &lt;file&gt;"]]
    assert "<li>notes.txt: not a notebook</li>" in html


# -- feedback markdown -------------------------------------------------------------------------------


def test_feedback_groups_parametrized_cases_each_distinct_failure_once():
    dtype = "dtype is wrong.\nExpected: float32\nFound:    float64"
    ex = exercise(
        "views",
        check("test_view[cpu-a]", FAILED, 1, dtype, name="keeps the dtype"),
        check("test_view[cpu-b]", FAILED, 1, dtype, name="keeps the dtype"),
        check("test_view[meta-a]", FAILED, 1, "shape is wrong.", name="keeps the dtype"),
        check("test_view[meta-b]", PASSED, 1, name="keeps the dtype"),
        check("test_view[cuda]", SKIPPED, 1, "needs a CUDA GPU", name="keeps the dtype"),
    )
    text = feedback_markdown(ex)
    assert text.startswith("#### Feedback: `views` — 1 / 4 points\n")
    assert "- ✗ **keeps the dtype** (3 of 5 cases failed, 0 / 3)" in text
    assert text.count("Expected: float32") == 1  # the shared failure in full once ...
    assert "\n  `test_view[cpu-a]`:\n" in text and "Failed the same way: `test_view[cpu-b]`" in text  # ... then named
    assert "\n  `test_view[meta-a]`:\n\n      shape is wrong." in text
    assert "Passed: `test_view[meta-b]`, 1 skipped: needs a CUDA GPU" in text


def test_feedback_a_check_that_passed_in_every_case_is_one_line_with_its_account():
    ex = exercise("beat_pdist",
                  check("test_fast[cpu]", PASSED, 1, "2.1× the speed of pdist", name="fast"),
                  check("test_fast[cuda]", SKIPPED, 1, "needs a CUDA GPU", name="fast"),
                  check("test_values", PASSED, 1, name="values"))
    lines = feedback_markdown(ex).split("\n")
    assert "- ✓ fast (1 skipped: needs a CUDA GPU)" in lines and "      2.1× the speed of pdist" in lines
    assert "- ✓ values" in lines


def test_feedback_one_picture_per_check_and_student_text_escaped():
    ex = exercise("beat_pdist",
                  check("test_fast[a]", FAILED, 1, "slow", name="fast_*pdist*", picture=timing_picture()),
                  check("test_fast[b]", FAILED, 1, "slow", name="fast_*pdist*", picture=timing_picture()),
                  status=MISSING, error="no cell <b>marked</b> `# exercise: beat_pdist`", notes=("a_note",))
    text = feedback_markdown(ex)
    assert text.count("<div class='tg-picture'") == 1
    assert "*missing*: no cell &lt;b&gt;marked&lt;/b&gt; \\`# exercise: beat\\_pdist\\`" in text
    assert "**fast\\_\\*pdist\\***" in text and "- note: a\\_note" in text


def test_feedback_for_a_crashed_single_check():
    ex = exercise("views", check("test_a", ERROR, 2, "not run: it crashed"), status=CRASHED, error="it crashed")
    text = feedback_markdown(ex)
    assert "- ✗ **a** (`test_a`, 0 / 2)" in text and "*crashed*: it crashed" in text
