"""LMS downloads in, LMS gradebooks out, the late policy and manual adjustments, end to end with `grader grade`."""

import csv
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from grader.discover import file_stem

from conftest import DOUBLE_OK, MINI_RUBRICS, SQUARE_OK, build_notebook

from grader import lms
from grader.lms import CANVAS_COLUMNS, MOODLE_COLUMNS

BUGGY_DOUBLE = "def double(x):\n    return x"
# Zip times are the LMS's local time; the policy reads them in its own zone.
DUE = "2026-11-30T23:59:00+01:00"


def nb_bytes(double=DOUBLE_OK, square=SQUARE_OK) -> bytes:
    nb = build_notebook(["import torch", f"# exercise: double\n{double}", f"# exercise: square\n{square}"])
    return nbformat.writes(nb).encode()


def canvas_zip(path: Path) -> Path:
    """A Canvas "Download Submissions" zip: a late student with a non-ASCII name, a resubmission,
    an anonymous student, a PDF beside a notebook, and macOS litter."""
    files = [
        ("müllerjürgen_LATE_101_9001_intro.ipynb", nb_bytes(), (2026, 12, 2, 1, 30, 0)),  # 25.5 h late
        ("doejane_102_9002_intro.ipynb", nb_bytes(double=BUGGY_DOUBLE), (2026, 11, 29, 10, 0, 0)),
        ("doejane_102_9007_intro-1.ipynb", nb_bytes(), (2026, 11, 30, 9, 0, 0)),  # resubmission: the one graded
        ("doejane_102_9003_notes.pdf", b"%PDF-1.4", (2026, 11, 29, 10, 0, 0)),
        ("anon_Xy9aB_9004_intro.ipynb", nb_bytes(square="def square(x):\n    return x"), (2026, 11, 30, 12, 0, 0)),
        ("__MACOSX/._doejane_102_9002_intro.ipynb", b"\0\0", (2026, 11, 29, 10, 0, 0)),
    ]
    with zipfile.ZipFile(path, "w") as z:
        for name, data, when in files:
            z.writestr(zipfile.ZipInfo(name, when), data)
    return path


def moodle_folder(root: Path) -> Path:
    """Moodle's download: folders per participant (one nested), and the older flat form."""
    (root / "Jürgen Müller_201_assignsubmission_file_").mkdir(parents=True)
    (root / "Jürgen Müller_201_assignsubmission_file_" / "intro.ipynb").write_bytes(nb_bytes())
    (root / "Zoë O'Neil_202_assignsubmission_file_" / "work").mkdir(parents=True)
    (root / "Zoë O'Neil_202_assignsubmission_file_" / "work" / "intro.ipynb").write_bytes(
        nb_bytes(double=BUGGY_DOUBLE))
    (root / "=Ana Ruiz_203_assignsubmission_file_intro.ipynb").write_bytes(nb_bytes())
    return root


ROSTER = ("Student,ID,SIS User ID,SIS Login ID,Section,Intro (1234)\n"
          "    Points Possible,,,,,5\n"
          "\"Müller, Jürgen\",101,S-101,jmueller,Tuesday group,\n"
          "\"Doe, Jane\",102,S-102,jdoe,Tuesday group,\n")

POLICY = f"""
due: {DUE}
timezone: Europe/Berlin
late: {{per: day, rate: 0.1, cap: 0.5}}
canvas: {{assignment: Intro, assignment_id: 1234}}
"""


def grade(subs, out, *extra):
    # One worker: what these tests check (discovery, identities, outputs, resume) does not depend on parallel
    # grading, which test_batch and test_cleanup check with --jobs 2; a second worker costs ~2 CPU-s per
    # command (it imports torch): 148 -> 100 CPU-s for this file, test_lms and test_ta_downloads.
    return subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out),
                           "--rubrics", str(MINI_RUBRICS), "--jobs", "1", *extra],
                          capture_output=True, text=True, timeout=600)


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open(encoding="utf-8", newline="")))


def finals(out: Path) -> dict[str, dict]:
    return {r["student"]: r for r in csv.DictReader((out / "final_grades.csv").open(encoding="utf-8"))}


@pytest.fixture(scope="module")
def canvas_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("canvas")
    (root / "policy.yml").write_text(POLICY)
    (root / "roster.csv").write_text(ROSTER, encoding="utf-8")
    out = root / "out"
    r = grade(canvas_zip(root / "submissions.zip"), out, "--policy", str(root / "policy.yml"),
              "--roster", str(root / "roster.csv"))
    assert r.returncode == 0, r.stderr
    return root, out, r


def test_canvas_zip_every_student_graded_once_under_the_lms_id(canvas_class):
    root, out, r = canvas_class
    assert "3 submissions: 3 graded" in r.stdout
    assert sorted(p.stem for p in (out / "results").glob("*.json")) == sorted(file_stem(s) for s in ["101", "102", "anon_Xy9aB"])
    table = finals(out)
    assert table["101"]["name"] == "müllerjürgen" and table["101"]["lms"] == "canvas"
    # the resubmission (-1, a later attachment id) is graded, and the choice is said
    assert table["102"]["raw"] == "5", table["102"]
    assert "graded the latest (doejane_102_9007_intro-1.ipynb)" in table["102"]["notes"]
    assert "ignored doejane_102_9003_notes.pdf: not a notebook" in table["102"]["notes"]
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT student) FROM grades").fetchone() == (3, 3)


def test_canvas_late_flag_and_zip_time_give_the_penalty(canvas_class):
    root, out, _ = canvas_class
    late = finals(out)["101"]
    # due 23:59 Berlin on 30 Nov; stamped 01:30 on 2 Dec: 25.5 h late, 2 started days, 20 % off 5 points
    assert late["hours_late"] == "25.52" and late["late_credit"] == "0.8" and late["final"] == "4"
    assert late["time_source"] == "zip entry time, read as Europe/Berlin"
    assert finals(out)["102"]["final"] == "5" and finals(out)["102"]["late_credit"] == "1"
    page = (out / "feedback" / (file_stem('101') + ".html")).read_text(encoding="utf-8")
    assert "Final score: 4 / 5" in page and "25.52 h late: 20% deducted" in page


def test_canvas_gradebook_csv_reimports(canvas_class):
    root, out, _ = canvas_class
    rows = read_csv(out / "canvas_gradebook.csv")
    # exactly Canvas' export: its five id columns, the assignment as `Name (id)`, the Points Possible row
    assert rows[0] == [*CANVAS_COLUMNS, "Intro (1234)"]
    assert rows[0] == read_csv(root / "roster.csv")[0]
    assert rows[1] == ["    Points Possible", "", "", "", "", "5"]
    by_id = {r[1]: r for r in rows[2:]}
    assert by_id["101"] == ["Müller, Jürgen", "101", "S-101", "jmueller", "Tuesday group", "4"]
    assert by_id["102"] == ["Doe, Jane", "102", "S-102", "jdoe", "Tuesday group", "5"]
    # an anonymous submission has no Canvas user id to import under
    assert ["anon_Xy9aB", "", "", "", "", "3"] in rows
    # what we write is what we read as a roster again
    again = lms.load_roster(out / "canvas_gradebook.csv")
    assert again["101"].sis_user_id == "S-101" and again["101"].name == "Müller, Jürgen"


def test_moving_the_deadline_and_an_extension_recompute_without_regrading(canvas_class, tmp_path):
    root, out, _ = canvas_class
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    moved = POLICY.replace(DUE, "2026-12-01T23:59:00+01:00") + 'extensions:\n  "102": {hours: 0}\n'
    (tmp_path / "policy.yml").write_text(moved)
    r = grade(root / "submissions.zip", out2, "--policy", str(tmp_path / "policy.yml"),
              "--roster", str(root / "roster.csv"))
    assert r.returncode == 0, r.stderr
    assert "3 submissions: 0 graded, 3 unchanged" in r.stdout
    assert finals(out2)["101"]["final"] == "4.5" and finals(out2)["101"]["hours_late"] == "1.52"
    # an extension of 48 h for student 101 makes it on time
    (tmp_path / "policy.yml").write_text(POLICY + 'extensions:\n  "101": {hours: 48}\n  "1O2": {hours: 48}\n')
    r = grade(root / "submissions.zip", out2, "--policy", str(tmp_path / "policy.yml"))
    assert "0 graded, 3 unchanged" in r.stdout
    # a typo in an extension's id is said (the student it was meant for would keep a penalty)
    assert "extensions.1O2: no student '1O2' in this class (did you mean '102'?)" in r.stderr
    assert finals(out2)["101"]["final"] == "5" and "extension of 48 h" in \
        (out2 / "feedback" / (file_stem('101') + ".html")).read_text(encoding="utf-8")
    with sqlite3.connect(out2 / "gradebook.sqlite") as db:
        history = [row[0] for row in db.execute("SELECT final_score FROM finals WHERE student = '101' ORDER BY id")]
    assert history == [4.0, 4.5, 5.0]


def test_an_override_survives_a_forced_regrade(canvas_class, tmp_path):
    root, out, _ = canvas_class
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    (out2 / "adjustments.csv").write_text(
        "student,exercise,change,comment,who\n"
        "anon_Xy9aB,square,+2,\"square: x * x is fine, the rubric was wrong\",ta-anna\n"
        "102,,=3.5,<b>plagiarised</b> part b,prof\n", encoding="utf-8")
    r = grade(root / "submissions.zip", out2, "--policy", str(root / "policy.yml"), "--force")
    assert r.returncode == 0, r.stderr
    assert "3 graded" in r.stdout
    table = finals(out2)
    assert table["102"]["raw"] == "5" and table["102"]["final"] == "3.5"
    assert table["anon_Xy9aB"]["raw"] == "3" and table["anon_Xy9aB"]["final"] == "5"
    page = (out2 / "feedback" / (file_stem('102') + ".html")).read_text(encoding="utf-8")
    assert "Final score: 3.5 / 5" in page and "&lt;b&gt;plagiarised&lt;/b&gt;" in page and "<b>plagiarised" not in page
    summary = (out2 / "summary.html").read_text(encoding="utf-8")
    assert "Late penalties and adjustments" in summary and "total =3.5" in summary
    r = grade(root / "submissions.zip", out2, "--policy", str(root / "policy.yml"), "--force")
    assert finals(out2)["102"]["final"] == "3.5"
    with sqlite3.connect(out2 / "gradebook.sqlite") as db:
        rows = db.execute("SELECT student, change, who, applied_at, withdrawn_at FROM adjustments ORDER BY id").fetchall()
    assert [(s, c, w) for s, c, w, _, _ in rows] == [("102", "=3.5", "prof"), ("anon_Xy9aB", "+2", "ta-anna")]
    assert all(a and w is None for *_, a, w in rows)


def test_a_bad_adjustment_row_names_file_and_line_before_grading(canvas_class, tmp_path):
    root, out, _ = canvas_class
    bad = tmp_path / "adj.csv"
    bad.write_text("student,exercise,change,comment,who\n101,doubel,+1,typo,ta\n")
    r = grade(root / "submissions.zip", tmp_path / "out", "--policy", str(root / "policy.yml"), "--adjustments", str(bad))
    assert r.returncode == 3
    assert f"{bad}: line 2: no exercise 'doubel' (did you mean 'double'?)" in r.stderr
    assert not (tmp_path / "out" / "gradebook.sqlite").exists()


def test_moodle_folder_graded_under_participant_ids_with_worksheet(tmp_path):
    subs = moodle_folder(tmp_path / "moodle")
    roster = tmp_path / "participants.csv"
    roster.write_text("Identifier,Full name,Email address\nParticipant 201,Jürgen Müller,jm@uni.example\n",
                      encoding="utf-8")
    out = tmp_path / "out"
    r = grade(subs, out, "--roster", str(roster))
    assert r.returncode == 0, r.stderr
    assert "3 submissions: 3 graded" in r.stdout
    assert sorted(p.stem for p in (out / "results").glob("*.json")) == sorted(file_stem(s) for s in ["201", "202", "203"])
    rows = read_csv(out / "moodle_grading_worksheet.csv")
    assert rows[0] == list(MOODLE_COLUMNS)
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id["Participant 201"][1:3] == ["Jürgen Müller", "jm@uni.example"]
    assert by_id["Participant 201"][4:7] == ["5.00", "5.00", "Yes"]
    assert by_id["Participant 202"][1] == "Zoë O'Neil" and by_id["Participant 202"][4] == "2.00"
    assert by_id["Participant 203"][1] == "'=Ana Ruiz"  # a formula in a name is neutralised
    assert not (out / "canvas_gradebook.csv").exists()


def test_a_plain_folder_is_not_an_lms_download(tmp_path):
    (tmp_path / "alice.ipynb").write_bytes(nb_bytes())
    (tmp_path / "doejane_102_9002_intro.ipynb").write_bytes(nb_bytes())
    assert lms.discover(tmp_path, tmp_path / "staging") is None


@pytest.mark.parametrize("name, expected", [
    ("doejane_102_9002_intro.ipynb", ("102", "doejane", False, "intro.ipynb")),
    ("doejane_LATE_102_9002_my_file_1.ipynb", ("102", "doejane", True, "my_file_1.ipynb")),
    ("müllerjürgen_101_9001_intro-2.ipynb", ("101", "müllerjürgen", False, "intro-2.ipynb")),
    ("anon_Xy9aB_9004_intro.ipynb", ("anon_Xy9aB", "anon_Xy9aB", False, "intro.ipynb")),
    ("anon_Xy9aB_LATE_9004_intro.ipynb", ("anon_Xy9aB", "anon_Xy9aB", True, "intro.ipynb")),
])
def test_canvas_names(name, expected):
    i = lms.parse_canvas(name)
    assert (i.student, i.name, i.late, i.original_name) == expected


def test_moodle_names():
    i = lms.parse_moodle("Zoë O'Neil_202_assignsubmission_file_")
    assert (i.student, i.name, i.original_name) == ("202", "Zoë O'Neil", "")
    i = lms.parse_moodle("Ana Ruiz_203_assignsubmission_file_intro.ipynb")
    assert (i.student, i.name, i.original_name) == ("203", "Ana Ruiz", "intro.ipynb")
    assert lms.parse_moodle("alice.ipynb") is None and lms.parse_canvas("alice.ipynb") is None


def test_an_unzipped_canvas_folder_reads_like_the_zip(tmp_path):
    with zipfile.ZipFile(canvas_zip(tmp_path / "submissions.zip")) as z:
        z.extractall(tmp_path / "unzipped")
    (tmp_path / "unzipped" / "roezoë_103_9010_answers.pdf").write_bytes(b"%PDF-1.4")  # no notebook at all
    entries = {e.student: e for e in lms.discover(tmp_path / "unzipped", tmp_path / "staging")}
    assert sorted(entries) == ["101", "102", "103", "anon_Xy9aB"]
    assert entries["102"].path.name == "doejane_102_9007_intro-1.ipynb" and entries["102"].problem is None
    assert entries["101"].identity.late is True and entries["101"].identity.time_source == lms.TIME_MTIME
    assert entries["103"].problem == ("no .ipynb notebook among this student's files (roezoë_103_9010_answers.pdf); "
                                      "submit the notebook itself")
    zipped = {e.student: e for e in lms.discover(tmp_path / "submissions.zip", tmp_path / "staging")}
    assert zipped["101"].identity.time_source == lms.TIME_ZIP
    assert zipped["101"].identity.submitted_at.isoformat() == "2026-12-02T01:30:00"


def test_moodle_folders_with_or_without_the_trailing_underscore(tmp_path):
    (tmp_path / "Ana Ruiz_203_assignsubmission_file").mkdir()
    (tmp_path / "Ana Ruiz_203_assignsubmission_file" / "intro.ipynb").write_bytes(nb_bytes())
    (tmp_path / "Bo Li_204_assignsubmission_file_").mkdir()
    (tmp_path / "Bo Li_204_assignsubmission_file_" / "intro.ipynb").write_bytes(nb_bytes())
    (tmp_path / "Bo Li_204_assignsubmission_file_" / "intro-2.ipynb").write_bytes(nb_bytes())
    (tmp_path / "Bo Li_204_assignsubmission_onlinetext_").mkdir()
    (tmp_path / "Bo Li_204_assignsubmission_onlinetext_" / "onlinetext.html").write_text("<p>hi</p>")
    entries = {e.student: e for e in lms.discover(tmp_path, tmp_path / "staging")}
    assert sorted(entries) == ["203", "204"] and entries["203"].identity.name == "Ana Ruiz"
    assert entries["204"].path.name == "intro-2.ipynb"
    assert any("onlinetext.html: not a notebook" in n for n in entries["204"].identity.notes)


def test_a_plain_zip_falls_back_to_the_plain_folder_rules(tmp_path):
    from grader.batch import discover

    with zipfile.ZipFile(tmp_path / "class.zip", "w") as z:
        z.writestr("alice.ipynb", nb_bytes())
        z.writestr("bob/work.ipynb", nb_bytes())
        z.writestr("__MACOSX/._alice.ipynb", b"\0")
    entries = lms.discover(tmp_path / "class.zip", tmp_path / "staging", fallback=discover)
    assert [(e.student, e.path.name, e.identity) for e in entries] == [("alice", "alice.ipynb", None),
                                                                       ("bob", "work.ipynb", None)]


def test_a_canvas_download_without_the_assignments_name_stops_before_grading(tmp_path):
    r = grade(canvas_zip(tmp_path / "submissions.zip"), tmp_path / "out")
    assert r.returncode == 3 and "a Canvas download needs the assignment's name" in r.stderr
    assert "--canvas-assignment NAME" in r.stderr and not (tmp_path / "out" / "gradebook.sqlite").exists()
