"""What TAs really give `grader grade`: --out inside the class folder, a student gone since the last
run, downloads saved with an extra extension, a Canvas zip re-zipped or with a top folder. Every
student found is in every output once; nothing else is."""

import csv
import json
import sqlite3
import zipfile
from pathlib import Path

import nbformat

from conftest import DOUBLE_OK, exercise_notebook
from test_class_folder import grade
from test_lms import canvas_zip, moodle_folder, nb_bytes

from grader import lms
from grader.discover import scan


def index(out: Path) -> dict:
    return json.loads((out / "index.json").read_text(encoding="utf-8"))


def grades_students(out: Path) -> list[str]:
    return [r["student"] for r in csv.DictReader((out / "grades.csv").open(encoding="utf-8-sig"))]


def test_out_inside_the_class_folder_is_never_a_student(tmp_path):
    subs = tmp_path / "subs"
    for name in ("alice", "bob"):
        exercise_notebook(subs / f"{name}.ipynb", {"double": DOUBLE_OK})
    for run in (1, 2):
        r = grade(subs, subs / "results", "--force")
        assert r.returncode == 0, r.stderr
        assert "2 submissions: 2 graded" in r.stdout, (run, r.stdout)
        assert sorted(index(subs / "results")) == ["alice", "bob"]
        assert grades_students(subs / "results") == ["alice", "bob"]
    # An earlier run's output folder beside the notebooks (it holds a gradebook) is not a student either.
    (subs / "results").rename(subs / "old results")
    r = grade(subs, tmp_path / "out")
    assert r.returncode == 0 and "2 submissions: 2 graded" in r.stdout, r.stdout + r.stderr
    assert "old results" in r.stderr and "output folder" in r.stderr


def test_out_equal_to_the_class_folder_is_refused_before_anything_is_written(tmp_path):
    subs = tmp_path / "subs"
    exercise_notebook(subs / "alice.ipynb", {"double": DOUBLE_OK})
    r = grade(str(subs) + "/", subs)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "--out" in r.stderr and "the submissions folder" in r.stderr
    assert sorted(p.name for p in subs.iterdir()) == ["alice.ipynb"]


def test_an_lms_download_with_out_inside_it_stays_an_lms_download(tmp_path):
    subs = moodle_folder(tmp_path / "moodle")
    for run in (1, 2):
        r = grade(subs, subs / "graded")
        assert r.returncode == 0, r.stderr
        assert sorted(index(subs / "graded")) == ["201", "202", "203"], (run, r.stderr)


def test_a_student_gone_since_the_last_run_leaves_the_outputs_but_not_the_history(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    for name in ("alice", "bob"):
        exercise_notebook(subs / f"{name}.ipynb", {"double": DOUBLE_OK})
    assert grade(subs, out).returncode == 0
    (subs / "bob.ipynb").rename(subs / "bob_final.ipynb")  # a renamed file: a new id, the old one gone
    r = grade(subs, out)
    assert r.returncode == 0, r.stderr
    assert "2 submissions: 1 graded, 1 unchanged" in r.stdout
    assert sorted(index(out)) == ["alice", "bob_final"]
    assert grades_students(out) == ["alice", "bob_final"]
    assert [r["student"] for r in csv.DictReader((out / "final_grades.csv").open(encoding="utf-8-sig"))] == \
        ["alice", "bob_final"]
    summary = (out / "summary.html").read_text(encoding="utf-8")
    assert "2 submissions" in summary and "bob</" in summary and "not in this class folder" in summary
    with sqlite3.connect(out / "gradebook.sqlite") as db:  # the history keeps bob
        assert "bob" in {s for (s,) in db.execute("select student from grades")}


def test_a_notebook_saved_with_an_extra_extension_is_a_student_with_a_clear_problem(tmp_path):
    subs = tmp_path / "subs"
    exercise_notebook(subs / "alice.ipynb", {"double": DOUBLE_OK})
    exercise_notebook(subs / "bob.ipynb.txt", {"double": DOUBLE_OK})
    exercise_notebook(subs / "cem.ipynb.json", {"double": DOUBLE_OK})
    exercise_notebook(subs / "dana" / "hw.ipynb.txt", {"double": DOUBLE_OK})
    entries = {e.student: e for e in scan(subs).entries}
    assert sorted(entries) == ["alice", "bob", "cem", "dana"]
    assert entries["alice"].problem is None
    assert "bob.ipynb.txt" in entries["bob"].problem and "rename it to bob.ipynb" in entries["bob"].problem
    assert "hw.ipynb.txt" in entries["dana"].problem and "rename it to hw.ipynb" in entries["dana"].problem


def test_a_canvas_zip_with_a_top_folder_or_zipped_again_is_still_canvas(tmp_path):
    inner = canvas_zip(tmp_path / "submissions.zip")
    with zipfile.ZipFile(inner) as z:
        members = [(i, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(tmp_path / "top.zip", "w") as z:
        for info, data in members:
            info.filename = "submissions/" + info.filename if not info.filename.startswith("__MACOSX") else \
                info.filename
            z.writestr(info, data)
        z.writestr("__MACOSX/submissions/._x", b"\0")
    with zipfile.ZipFile(tmp_path / "again.zip", "w") as z:
        z.write(inner, "submissions.zip")
        z.writestr("__MACOSX/._submissions.zip", b"\0")
    for source in (tmp_path / "top.zip", tmp_path / "again.zip"):
        entries = {e.student: e for e in lms.discover(source, tmp_path / "staging" / source.stem)}
        assert sorted(entries) == ["101", "102", "anon_Xy9aB"], source
        assert entries["101"].identity.late is True
        assert entries["101"].identity.time_source == lms.TIME_ZIP  # the members' own times, not the outer zip's
        assert entries["101"].identity.submitted_at.isoformat() == "2026-12-02T01:30:00"


def test_a_canvas_name_with_a_newline_is_still_canvas():
    i = lms.parse_canvas("doejane_102_9002_my\nhomework.ipynb")
    assert (i.student, i.original_name) == ("102", "my\nhomework.ipynb")


def test_a_plain_zip_inside_a_zip_is_named_in_the_note(tmp_path):
    with zipfile.ZipFile(tmp_path / "class.zip", "w") as z:
        z.writestr("alice.ipynb", nb_bytes())
    with zipfile.ZipFile(tmp_path / "outer.zip", "w") as z:
        z.write(tmp_path / "class.zip", "class.zip")
        z.writestr("bob.ipynb", nbformat.writes(nbformat.v4.new_notebook()))
    found = scan(tmp_path / "outer.zip")
    assert [e.student for e in found.entries] == ["bob"]
    assert any("class.zip" in n and "zip inside a zip" in n for n in found.notes), found.notes


def test_a_canvas_download_unzipped_on_a_mac_or_zipped_without_the_utf8_flag_stays_canvas(tmp_path):
    import os
    import unicodedata

    from test_class_folder import _NoUtf8Flag

    with zipfile.ZipFile(canvas_zip(tmp_path / "submissions.zip")) as z:
        z.extractall(tmp_path / "mac")
        members = [(i, z.read(i)) for i in z.infolist()]
    for p in (tmp_path / "mac").iterdir():  # macOS's file systems hand names back decomposed (NFD)
        os.rename(p, p.with_name(unicodedata.normalize("NFD", p.name)))
    with zipfile.ZipFile(tmp_path / "noflag.zip", "w") as z:
        for info, data in members:
            plain = _NoUtf8Flag(info.filename, info.date_time)
            z.writestr(plain, data)
    for source in (tmp_path / "mac", tmp_path / "noflag.zip"):
        entries = {e.student: e for e in lms.discover(source, tmp_path / "staging" / source.name)}
        assert sorted(entries) == ["101", "102", "anon_Xy9aB"], source
        assert entries["101"].display == "müllerjürgen" and entries["101"].identity.late is True


def comparable_outputs(out: Path) -> dict:
    """What a TA reads: each student's status and score, and grades.csv's rows (durations left out)."""
    rows = {r["student"]: {k: v for k, v in r.items() if k != "submission"}
            for r in csv.DictReader((out / "grades.csv").open(encoding="utf-8-sig"))}
    return {"index": {s: (v["display"], v["status"]) for s, v in index(out).items()}, "grades": rows}


def test_dask_gives_the_same_outputs_as_local_for_hostile_names_zips_and_an_lms_download(tmp_path):
    import os

    subs = tmp_path / "subs"
    for name in ("new\nline", "{0}%s{}", "-- out", "ß ﬁ"):
        exercise_notebook(subs / f"{name}.ipynb", {"double": DOUBLE_OK})
    os.rename(exercise_notebook(subs / "x.ipynb", {"double": DOUBLE_OK}), os.fsencode(subs) + b"/caf\xe9.ipynb")
    (subs / "empty.ipynb").write_bytes(b"")
    exercise_notebook(subs / "saved.ipynb.txt", {"double": DOUBLE_OK})
    with zipfile.ZipFile(subs / "more.zip", "w") as z:
        z.writestr("zoë/hw.ipynb", nb_bytes())
    canvas = canvas_zip(tmp_path / "canvas.zip")
    for source, extra in ((subs, ()), (canvas, ("--canvas-assignment", "Intro"))):
        outs = {}
        for executor in ("local", "dask"):
            out = tmp_path / f"{source.stem}-{executor}"
            r = grade(source, out, "--executor", executor, *extra)
            assert r.returncode == 0, r.stdout + r.stderr
            outs[executor] = comparable_outputs(out)
        assert outs["dask"] == outs["local"]
    assert sorted(outs["local"]["index"]) == ["101", "102", "anon_Xy9aB"]


def damaged(path: Path, names: dict[str, bytes], encrypted: str, corrupt: str) -> Path:
    """A zip with one member marked encrypted (as a password-protected zip is) and one whose deflated
    data is damaged (an interrupted download)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in names.items():
            z.writestr(name, data)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        infos = {i.filename: i for i in z.infolist()}
    data[infos[encrypted].header_offset + 6] |= 1  # local header flag: encrypted
    central = data.find(b"PK\x01\x02")
    while central != -1:  # and the central directory's entry for it
        size = 46 + int.from_bytes(data[central + 28:central + 30], "little")
        if data[central + 46:central + size].decode() == encrypted:
            data[central + 8] |= 1
        central = data.find(b"PK\x01\x02", central + 4)
    info = infos[corrupt]
    start = info.header_offset + 30 + len(corrupt.encode())
    data[start + 5:start + 25] = bytes(b ^ 0xFF for b in data[start + 5:start + 25])
    path.write_bytes(bytes(data))
    return path


def test_an_encrypted_or_damaged_member_costs_only_its_student(tmp_path):
    good = nb_bytes()
    plain = damaged(tmp_path / "class.zip", {"alice.ipynb": good, "bob.ipynb": good, "cem.ipynb": good},
                    encrypted="bob.ipynb", corrupt="cem.ipynb")
    r = grade(plain, tmp_path / "out")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "3 submissions: 1 graded, 0 unchanged (not graded again), 2 unusable" in r.stdout
    problems = {s: json.loads((tmp_path / "out" / v["results"]).read_text()).get("error")
                for s, v in index(tmp_path / "out").items()}
    assert problems["alice"] is None and "encrypted" in problems["bob"] and "cem.ipynb" in problems["cem"]

    canvas = damaged(tmp_path / "canvas.zip", {"doejane_102_9002_intro.ipynb": good, "roebob_103_9003_intro.ipynb": good,
                                               "kahncem_104_9004_intro.ipynb": good},
                     encrypted="roebob_103_9003_intro.ipynb", corrupt="kahncem_104_9004_intro.ipynb")
    entries = {e.student: e for e in lms.discover(canvas, tmp_path / "staging")}
    assert sorted(entries) == ["102", "103", "104"]
    assert entries["102"].problem is None
    assert "roebob_103_9003_intro.ipynb" in entries["103"].problem and "encrypted" in entries["103"].problem
    assert "kahncem_104_9004_intro.ipynb" in entries["104"].problem and "cannot be read" in entries["104"].problem


def test_similarity_compares_the_class_of_the_last_run_not_every_student_ever_graded_in_out(tmp_path):
    import subprocess
    import sys

    from conftest import MINI_RUBRICS
    from test_similarity import ALICE_DOUBLE, ALICE_SQUARE, BOB_DOUBLE, BOB_SQUARE, CAROL_DOUBLE, CAROL_SQUARE

    out = tmp_path / "out"
    exercise_notebook(tmp_path / "week1" / "alice.ipynb", {"double": ALICE_DOUBLE, "square": ALICE_SQUARE})
    exercise_notebook(tmp_path / "week1" / "bob.ipynb", {"double": BOB_DOUBLE, "square": BOB_SQUARE})
    exercise_notebook(tmp_path / "week2" / "carol.ipynb", {"double": CAROL_DOUBLE, "square": CAROL_SQUARE})
    exercise_notebook(tmp_path / "week2" / "bob.ipynb", {"double": BOB_DOUBLE, "square": BOB_SQUARE})
    assert grade(tmp_path / "week1", out).returncode == 0
    assert grade(tmp_path / "week2", out).returncode == 0  # alice is gone; bob's file is week2's
    r = subprocess.run([sys.executable, "-m", "grader", "similarity", str(out), "--rubrics", str(MINI_RUBRICS)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 pairs compared over 2 students"), r.stdout
    assert "alice" not in (out / "similarity.html").read_text(encoding="utf-8")


def test_relative_paths_are_recorded_so_any_later_command_finds_the_notebooks(tmp_path):
    import subprocess
    import sys

    from conftest import MINI_RUBRICS
    from test_similarity import ALICE_DOUBLE, ALICE_SQUARE, BOB_DOUBLE, BOB_SQUARE

    (tmp_path / "elsewhere").mkdir()
    exercise_notebook(tmp_path / "subs" / "alice.ipynb", {"double": ALICE_DOUBLE, "square": ALICE_SQUARE})
    exercise_notebook(tmp_path / "subs" / "bob.ipynb", {"double": BOB_DOUBLE, "square": BOB_SQUARE})
    r = subprocess.run([sys.executable, "-m", "grader", "grade", "subs", "--out", "out", "--rubrics", str(MINI_RUBRICS)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert index(tmp_path / "out")["alice"]["submission"] == str(tmp_path / "subs" / "alice.ipynb")
    r = subprocess.run([sys.executable, "-m", "grader", "similarity", "../out", "--rubrics", str(MINI_RUBRICS)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path / "elsewhere")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 pairs compared over 2 students") and "alice  bob" in r.stdout, r.stdout


def test_outputs_are_files_a_ta_can_share_and_open_offline(tmp_path):
    """A TA publishes feedback pages from a web folder or shares OUT with the other TAs: the files follow the
    umask like every other file of theirs, not the private 0600 of a temporary file. A page loads no script
    it does not use (require.js is for outputs and widgets, which the page drops)."""
    import os
    import subprocess
    import sys

    from conftest import MINI_RUBRICS

    exercise_notebook(tmp_path / "subs" / "alice.ipynb", {"double": DOUBLE_OK})
    r = subprocess.run([sys.executable, "-m", "grader", "grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"),
                        "--rubrics", str(MINI_RUBRICS)], capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: os.umask(0o022))
    assert r.returncode == 0, r.stderr
    entry = index(tmp_path / "out")["alice"]
    for name in ("grades.csv", "summary.html", "index.json", entry["feedback"], entry["results"], entry["gradescope"]):
        assert (tmp_path / "out" / name).stat().st_mode & 0o777 == 0o644, name
    page = (tmp_path / "out" / entry["feedback"]).read_text(encoding="utf-8")
    assert "require.min.js" not in page and "Score: 3 / 5" in page


def test_every_student_of_an_lms_download_is_an_entry_even_with_only_a_checkpoint_or_nothing(tmp_path):
    """In an LMS download every file is what the student uploaded: a `-checkpoint.ipynb` is their submission
    when it is their only notebook (the saved one wins beside it), and an empty folder is a student too."""
    canvas = tmp_path / "canvas"
    canvas.mkdir()
    (canvas / "doejane_102_9002_hw-checkpoint.ipynb").write_bytes(nb_bytes())
    (canvas / "roebob_103_9003_hw.ipynb").write_bytes(nb_bytes())
    (canvas / "roebob_103_9004_hw-checkpoint.ipynb").write_bytes(nb_bytes())  # a later attachment id
    entries = {e.student: e for e in lms.discover(canvas, tmp_path / "staging")}
    assert sorted(entries) == ["102", "103"]
    assert entries["102"].path.name == "doejane_102_9002_hw-checkpoint.ipynb" and entries["102"].problem is None
    assert entries["103"].path.name == "roebob_103_9003_hw.ipynb"

    moodle = tmp_path / "moodle"
    (moodle / "Ana Ruiz_203_assignsubmission_file_").mkdir(parents=True)
    (moodle / "Ana Ruiz_203_assignsubmission_file_" / "hw-checkpoint.ipynb").write_bytes(nb_bytes())
    (moodle / "Bo Li_204_assignsubmission_file_").mkdir()
    (moodle / "Bo Li_204_assignsubmission_file_" / ".DS_Store").write_bytes(b"\0")
    entries = {e.student: e for e in lms.discover(moodle, tmp_path / "staging")}
    assert sorted(entries) == ["203", "204"]
    assert entries["203"].path.name == "hw-checkpoint.ipynb" and entries["203"].problem is None
    assert "no .ipynb notebook" in entries["204"].problem and entries["204"].display == "Bo Li"
    (moodle / "grades.xlsx").write_bytes(b"PK")  # the TA's own file beside the download
    notes = []
    assert sorted(e.student for e in lms.discover(moodle, tmp_path / "staging", notes=notes)) == ["203", "204"]
    assert any("grades.xlsx" in n and "not a Moodle" in n for n in notes)


def test_a_file_the_ta_put_into_a_canvas_download_does_not_turn_it_into_a_plain_folder(tmp_path):
    with zipfile.ZipFile(canvas_zip(tmp_path / "submissions.zip")) as z:
        z.extractall(tmp_path / "canvas")
    (tmp_path / "canvas" / "roster.csv").write_text("Student,ID\n")  # the TA's own files beside the download
    (tmp_path / "canvas" / "policy.yml").write_text("due: 2026-11-30T23:59:00+01:00\n")
    (tmp_path / "canvas" / "_555_9010_hw.ipynb").write_bytes(nb_bytes())  # a student whose name has no letters
    notes = []
    entries = {e.student: e for e in lms.discover(tmp_path / "canvas", tmp_path / "staging", notes=notes)}
    assert sorted(entries) == ["101", "102", "555", "anon_Xy9aB"]
    assert entries["555"].display == "555"
    assert any("roster.csv" in n and "not a Canvas" in n for n in notes) and any("policy.yml" in n for n in notes)
    # A notebook that is not a Canvas file may be a student: then the plain-folder rules read every file.
    (tmp_path / "canvas" / "solution.ipynb").write_bytes(nb_bytes())
    assert lms.discover(tmp_path / "canvas", tmp_path / "staging") is None


def test_a_tilde_the_shell_left_is_the_home_folder_and_paths_are_absolute(tmp_path, monkeypatch):
    from grader.cli import build_parser

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["grade", "subs/", "--out=~/results"])  # bash leaves `~` after `=`
    assert args.out == Path.home() / "results" and args.submissions == tmp_path / "subs"


def test_an_unusable_submission_counts_against_the_assignments_points_not_zero(tmp_path):
    """0 of 0 is no grade: a spreadsheet divides by max_total, the LMS worksheets show it."""
    subs = tmp_path / "subs"
    exercise_notebook(subs / "alice.ipynb", {"double": DOUBLE_OK})
    (subs / "bob.ipynb").write_bytes(b"")
    r = grade(subs, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    rows = {r["student"]: r for r in csv.DictReader((tmp_path / "out" / "grades.csv").open(encoding="utf-8-sig"))}
    assert rows["bob"]["status"] == "unusable" and rows["bob"]["total"] == "0"
    assert rows["bob"]["max_total"] == rows["alice"]["max_total"] == "5"
    finals = {r["student"]: r for r in csv.DictReader((tmp_path / "out" / "final_grades.csv").open(encoding="utf-8"))}
    assert finals["bob"]["max"] == "5" and finals["bob"]["final"] == "0"


def test_odd_notebook_files_get_a_plain_reason_or_are_read(tmp_path):
    from grader.errors import UnusableSubmission
    from grader.read import read_submission

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    bom = tmp_path / "notepad.ipynb"  # Windows Notepad saves UTF-8 with a byte-order mark
    bom.write_bytes(b"\xef\xbb\xbf" + nbformat.writes(nb).encode())
    assert read_submission(bom).notebook.cells[0].source == "x = 1"
    odd = tmp_path / "odd.ipynb"
    odd.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [nb.cells[0], 1]}))
    try:
        read_submission(odd)
    except UnusableSubmission as e:
        assert "odd.ipynb" in str(e) and "cell 2 is not a cell" in str(e), str(e)
    else:
        raise AssertionError("a notebook with a number for a cell was read")


def test_a_killed_canvas_batch_resumes_to_the_outputs_of_an_uninterrupted_one(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import MINI_RUBRICS

    canvas = canvas_zip(tmp_path / "submissions.zip")

    def command(out):
        return [sys.executable, "-m", "grader", "grade", str(canvas), "--out", str(out), "--rubrics", str(MINI_RUBRICS),
                "--jobs", "1", "--canvas-assignment", "Intro"]

    killed = subprocess.Popen(command(tmp_path / "out"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "out" / "results").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    resumed = subprocess.run(command(tmp_path / "out"), capture_output=True, text=True, timeout=300)
    fresh = subprocess.run(command(tmp_path / "fresh"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == fresh.returncode == 0, resumed.stderr + fresh.stderr
    assert "3 submissions:" in resumed.stdout and "unchanged" in resumed.stdout
    for name in ("canvas_gradebook.csv", "final_grades.csv"):
        assert (tmp_path / "out" / name).read_text() == (tmp_path / "fresh" / name).read_text(), name
    strip = lambda out: {s: {k: v for k, v in e.items() if k != "submission"} for s, e in index(out).items()}  # noqa: E731
    assert strip(tmp_path / "out") == strip(tmp_path / "fresh")


def test_names_that_differ_only_under_nfkc_are_two_students(tmp_path):
    """The id is the name as written (NFC only): `ﬁ` (a ligature) and `fi` are two students, each with files
    of their own, as two names in two scripts that look alike are."""
    from grader.discover import file_stem

    for name in ("Raﬁ", "Rafi", "Rafi\u0301"):
        exercise_notebook(tmp_path / f"{name}.ipynb", {"double": DOUBLE_OK})
    ids = sorted(e.student for e in scan(tmp_path).entries)
    assert ids == ["Rafi", "Rafí", "Raﬁ"]  # the combining accent is composed (NFC): one name in a Mac's form too
    assert len({file_stem(i) for i in ids}) == 3


def test_a_mistyped_folder_or_an_out_that_is_a_file_is_one_clear_error_and_writes_nothing(tmp_path):
    exercise_notebook(tmp_path / "subs" / "alice.ipynb", {"double": DOUBLE_OK})
    r = grade(tmp_path / "sbus", tmp_path / "out")
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    assert "sbus: no such folder or zip" in r.stderr and not (tmp_path / "out").exists()
    (tmp_path / "results.csv").write_text("x")
    r = grade(tmp_path / "subs", tmp_path / "results.csv")
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    assert "results.csv: --out must be a folder" in r.stderr and (tmp_path / "results.csv").read_text() == "x"


def test_a_zip_whose_member_names_clash_as_file_and_folder_is_still_read(tmp_path):
    with zipfile.ZipFile(tmp_path / "canvas.zip", "w") as z:
        z.writestr("doejane_102_9002_intro.ipynb", nb_bytes())
        z.writestr("doejane_102_9002_intro.ipynb/x", b"{}")  # `a` and `a/b`: only a hand-made zip holds both
        z.writestr("roebob_103_9003_intro.ipynb", nb_bytes())
    entries = {e.student: e for e in lms.discover(tmp_path / "canvas.zip", tmp_path / "staging")}
    assert sorted(entries) == ["102", "103"] and entries["103"].problem is None
