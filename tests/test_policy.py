"""The late policy's arithmetic and its config errors, and manual adjustments' parsing (no grading here)."""

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import MINI_RUBRICS

from grader import load_assignment
from grader.adjust import load_adjustments
from grader.batch import rubric_fingerprint
from grader.errors import ConfigError
from grader.policy import NO_TIME_NOTE, find_policy, load_policy

UTC = timezone.utc


def policy(tmp_path: Path, text: str):
    path = tmp_path / "policy.yml"
    path.write_text(text)
    return load_policy(path)


def test_per_day_rate_cap_and_floor(tmp_path):
    p = policy(tmp_path, "due: 2026-11-30T12:00:00+00:00\nlate: {per: day, rate: 0.25, cap: 0.6, floor: 0.3}\n")
    due = datetime(2026, 11, 30, 12, tzinfo=UTC)
    on_time = p.lateness("s", due, "file mtime")
    assert on_time.credit == 1.0 and p.apply(8, 10, on_time) == 8
    one_minute = p.lateness("s", due + timedelta(minutes=1), "file mtime")
    assert one_minute.credit == 0.75 and p.apply(8, 10, one_minute) == 6  # a started day counts
    two_days = p.lateness("s", due + timedelta(hours=47), "file mtime")
    assert two_days.credit == 0.5 and p.apply(8, 10, two_days) == 4
    ten_days = p.lateness("s", due + timedelta(days=10), "file mtime")
    assert ten_days.credit == pytest.approx(0.4)  # the cap: at most 60 % deducted
    assert p.apply(10, 10, ten_days) == 4
    assert p.apply(6, 10, ten_days) == 3  # 6 x 0.4 = 2.4, but the floor keeps 3 of 10
    assert p.apply(2, 10, ten_days) == 2  # below the floor already: the penalty takes nothing


def test_per_hour_grace_and_zone(tmp_path):
    p = policy(tmp_path, "due: 2026-11-30 23:59\ntimezone: Europe/Berlin\n"
                         "late: {per: hour, rate: 0.01, grace_minutes: 10}\n")
    assert p.due == datetime(2026, 11, 30, 22, 59, tzinfo=UTC)
    assert p.lateness("s", datetime(2026, 11, 30, 23, 5, tzinfo=UTC), "file mtime").credit == 1.0  # in the grace
    late = p.lateness("s", datetime(2026, 12, 1, 1, 30, tzinfo=UTC), "file mtime")
    assert late.credit == pytest.approx(0.97) and late.hours_late == pytest.approx(2.35)
    # a zip entry's time has no zone: it is the LMS's local time, read in the course's zone
    naive = p.lateness("s", datetime(2026, 12, 1, 0, 30), "zip entry time")
    assert naive.hours_late == pytest.approx(0.35) and naive.time_source == "zip entry time, read as Europe/Berlin"


def test_extensions_new_date_or_hours(tmp_path):
    p = policy(tmp_path, 'due: 2026-11-30T12:00:00+00:00\nlate: {rate: 0.1}\n'
                         'extensions:\n  "7": 2026-12-03T12:00:00+00:00\n  "8": {hours: 24}\n')
    when = datetime(2026, 12, 1, 11, tzinfo=UTC)
    assert p.lateness("6", when, "t").credit == 0.9
    assert p.lateness("7", when, "t").credit == 1.0 and p.lateness("7", when, "t").extension.startswith("extension to")
    assert p.lateness("8", when, "t").credit == 1.0 and p.lateness("8", when, "t").extension == "extension of 24 h"
    assert p.lateness("8", when + timedelta(hours=2), "t").credit == 0.9


def test_no_time_known_means_no_penalty_and_says_so(tmp_path):
    p = policy(tmp_path, "due: 2026-11-30T12:00:00+00:00\nlate: {rate: 0.5}\n")
    la = p.lateness("s", None, "")
    assert la.credit == 1.0 and la.notes == (NO_TIME_NOTE,)


@pytest.mark.parametrize("text, message", [
    ("due: 2026-11-30 23:59\n", "due: '2026-11-30 23:59' has no time zone"),
    ("due: 2026-11-30T12:00:00+00:00\nlate: {rat: 0.1}\n", "late: unknown key 'rat' (did you mean 'rate'?)"),
    ("due: 2026-11-30T12:00:00+00:00\nlate: {rate: 10}\n", "late.rate: 10 is not a share between 0 and 1"),
    ("due: 2026-11-30T12:00:00+00:00\nlate: {per: week}\n", "late.per: 'week' is not one of hour, day"),
    ("timezone: Mars/Olympus\n", "timezone: unknown time zone 'Mars/Olympus'"),
    ("extensions: {'7': {hours: 3}}\n", "extensions: extensions need a `due` date"),
    ("due: tomorrow\ntimezone: UTC\n", "due: 'tomorrow' is not a date and time"),
])
def test_config_errors_name_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        policy(tmp_path, text)
    assert str(e.value).startswith(str(tmp_path / "policy.yml")) and message in str(e.value)


def test_policy_beside_rubrics_is_found_and_changes_no_fingerprint(tmp_path):
    rubrics = tmp_path / "rubrics"
    shutil.copytree(MINI_RUBRICS, rubrics)
    before = rubric_fingerprint(load_assignment(rubrics))
    (rubrics / "policy.yml").write_text("due: 2026-11-30T12:00:00+00:00\n")
    assignment = load_assignment(rubrics)  # still exactly one assignment YAML
    assert find_policy(rubrics, None) == rubrics / "policy.yml"
    assert rubric_fingerprint(assignment) == before  # moving a deadline regrades no one


def test_adjustments_parse_and_reject_with_file_and_line(tmp_path):
    path = tmp_path / "adjustments.csv"
    path.write_text("student,exercise,change,comment,who\n7,double,+1.5,ok,ta\n8,,=4,excused,prof\n9,square,-1,x,\n")
    adj = load_adjustments(path, {"7", "8", "9"}, {"double", "square"})
    assert [(a.student, a.is_override, a.value) for a in adj] == [("7", False, 1.5), ("8", True, 4.0), ("9", False, -1.0)]
    assert adj[0].applied_to(2.0, 3.0) == 3.0 and adj[2].applied_to(0.5, 2.0) == 0.0  # kept within 0..max
    path.write_text("student,exercise,change\n7,double,lots\n")
    with pytest.raises(ConfigError, match=r"adjustments.csv: line 2: change 'lots' is not \+N, -N or =N"):
        load_adjustments(path, {"7"}, {"double"})
    path.write_text("student,change\nbob,+1\n")
    with pytest.raises(ConfigError, match="line 2: no student 'bob' in this class"):
        load_adjustments(path, {"7"}, {"double"})


def test_zip_times_read_in_the_zone_the_policy_names(tmp_path):
    p = policy(tmp_path, "due: 2026-11-30 23:00\ntimezone: Europe/Berlin\nzip_timezone: UTC\nlate: {rate: 0.1}\n")
    la = p.lateness("s", datetime(2026, 11, 30, 22, 30), "zip entry time")  # 23:30 in Berlin
    assert la.hours_late == 0.5 and la.time_source == "zip entry time, read as UTC"


def test_a_class_zip_is_hidden_by_its_folder_unless_that_holds_the_grader(tmp_path, monkeypatch):
    import sys

    from grader.lms import folders_to_hide

    (tmp_path / "class.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    assert folders_to_hide(tmp_path / "class.zip") == ((tmp_path.resolve(),), None)
    assert folders_to_hide(tmp_path) == ((tmp_path.resolve(),), None)
    (tmp_path / "venv").mkdir()
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))  # the zip lies beside the grader's Python
    hidden, warning = folders_to_hide(tmp_path / "class.zip")
    assert hidden == () and warning.endswith("move the zip into a folder of its own")


def test_canvas_flag_and_time_disagreeing_is_said(tmp_path):
    from grader.policy import LATE_FLAG_NOTE

    p = policy(tmp_path, "due: 2026-11-30T12:00:00+00:00\nlate: {rate: 0.1}\n")
    flagged = p.lateness("s", datetime(2026, 11, 30, 11, tzinfo=UTC), "file mtime", late_flag=True)
    assert flagged.credit == 1.0 and flagged.notes[0].startswith(LATE_FLAG_NOTE.split("{")[0])
    unflagged = p.lateness("s", datetime(2026, 11, 30, 14, tzinfo=UTC), "file mtime", late_flag=False)
    assert unflagged.credit == 0.9 and "is 2 h after the due date; penalty applied" in unflagged.notes[0]
    assert p.lateness("s", datetime(2026, 11, 30, 14, tzinfo=UTC), "file mtime").notes == ()  # Moodle says nothing


def test_the_final_block_on_a_page_without_body_follows_its_charset(tmp_path):
    from grader.semester import _set_block

    page = tmp_path / "p.html"
    page.write_text("<!doctype html><meta charset='utf-8'><h1>Feedback</h1>")
    _set_block(page, "<!-- torchgrade:final -->X<!-- /torchgrade:final -->")
    _set_block(page, "<!-- torchgrade:final -->Y<!-- /torchgrade:final -->")  # replaced, not added
    assert page.read_text() == ("<!doctype html><meta charset='utf-8'><!-- torchgrade:final -->Y"
                                "<!-- /torchgrade:final --><h1>Feedback</h1>")
    _set_block(page, "")
    assert page.read_text() == "<!doctype html><meta charset='utf-8'><h1>Feedback</h1>"


def test_adjustments_order_and_an_unusable_submission(tmp_path):
    from grader.batch import Entry
    from grader.gradebook import Row
    from grader.lms import Identity
    from grader.semester import NOT_APPLIED, Semester

    (tmp_path / "policy.yml").write_text("due: 2026-11-30T12:00:00+00:00\nlate: {per: day, rate: 0.5}\n")
    (tmp_path / "adjustments.csv").write_text("student,exercise,change,comment,who\n"
                                              "7,double,+1,rubric too strict,ta\n7,,+0.5,good style,ta\n"
                                              "8,double,+1,x,ta\n8,,=2,excused,prof\n")
    semester = Semester(tmp_path, tmp_path)
    semester.adjustments = load_adjustments(tmp_path / "adjustments.csv")
    graded = Row("7", "7.ipynb", "f", 3.0, 5.0, "graded", {"exercises": [
        {"id": "double", "score": 1.0, "max_score": 3.0}, {"id": "square", "score": 2.0, "max_score": 2.0}]})
    late = datetime(2026, 12, 1, 10, tzinfo=UTC)  # within the first day: half the credit
    final = semester._final(graded, None)
    assert final.final == 4.5  # no time known: no penalty; double 1+1, square 2, total +0.5
    entry = Entry("7", tmp_path / "7.ipynb", identity=Identity("canvas", "7", "x", False, late, "zip entry time"))
    final = semester._final(graded, entry)
    assert final.final == 2.5  # (1 + 1 + 2) x 0.5, then + 0.5: exercise adjustments, penalty, total adjustments
    unusable = Row("8", "8.ipynb", "f", 0.0, 0.0, "unusable", {"error": "not json"})
    final = semester._final(unusable, None)
    assert final.final == 2 and NOT_APPLIED.format(change="+1", exercise="double") in final.notes
