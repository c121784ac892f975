"""A class folder as LMS downloads and students really make it: every notebook found is one
student in every output, exactly once; residue is ignored with a note; one student's oddity
costs at most their own feedback page."""

import base64
import csv
import html
import io
import json
import os
import shutil
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path

import nbformat
import pytest

from conftest import DOUBLE_OK, MINI_RUBRICS, SQUARE_OK, exercise_notebook

# A 1x1 red PNG, as JupyterLab stores a pasted picture.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc000"
    "00030101001888d1a00000000049454e44ae426082")).decode()


def pasted_image_notebook(path: Path, attach: bool = True) -> Path:
    """The markdown cell JupyterLab writes when a picture is pasted into it (or its attachment lost)."""
    exercise_notebook(path, {"double": DOUBLE_OK})
    nb = nbformat.read(str(path), as_version=4)
    cell = nbformat.v4.new_markdown_cell("My plot of the loss:\n\n![image.png](attachment:image.png)")
    if attach:
        cell["attachments"] = {"image.png": {"image/png": PNG}}
    nb.cells.insert(1, cell)
    nbformat.write(nb, str(path))
    return path


class _NoUtf8Flag(zipfile.ZipInfo):
    """zipfile itself would set the UTF-8 flag; macOS's Archive Utility and old tools do not."""

    __slots__ = ()

    def _encodeFilenameFlags(self):
        return self.filename.encode(), self.flag_bits


NAMES = ["Ole\x1b]52;c;QUFB\x07\u202e", "Müller Jörg", "Möller Jörg", "李 雷", "王 芳", "Anna", "anna", '=HYPERLINK("evil.example","y")', "+cmd",
         "-2+3", "@SUM(A1)", "ä" * 118]


def make_class(root: Path) -> tuple[Path, set[str]]:
    """The folder, and the student ids it must give (one per notebook found)."""
    subs = root / "subs"
    for name in NAMES:
        exercise_notebook(subs / f"{name}.ipynb", {"double": DOUBLE_OK})
    # The same name in macOS's decomposed form (as a zip made on a Mac may hold it): a second submission.
    exercise_notebook(subs / unicodedata.normalize("NFD", "Müller Jörg/hw.ipynb"), {"square": SQUARE_OK})
    pasted_image_notebook(subs / "Bea pasted.ipynb")
    pasted_image_notebook(subs / "Carl lost attachment.ipynb", attach=False)
    nbformat.write(nbformat.v4.new_notebook(), str(subs / "Finn no cells.ipynb"))
    odd = nbformat.read(str(exercise_notebook(subs / "Gil odd outputs.ipynb", {"double": DOUBLE_OK})), as_version=4)
    odd.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": {"model_name": "X"}}}}
    odd.cells[1].outputs = [nbformat.v4.new_output("display_data", data={
        "application/x-weird": "\x1b[2J\u202e" * 100000, "text/html": "<script>alert(1)</script>",
        "application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2}}),
        nbformat.v4.new_output("stream", text="\x1b]52;c;QUFB\x07")]
    nbformat.write(odd, str(subs / "Gil odd outputs.ipynb"))
    odd.cells[1].outputs = [nbformat.v4.new_output("stream", text="caf\udce9")]  # a Latin-1 byte in an output
    os.rename(exercise_notebook(subs / "x.ipynb", {"double": DOUBLE_OK}), os.fsencode(subs) + b"/Ines caf\xe9.ipynb")
    (subs / "Hal bad bytes.ipynb").write_text(nbformat.writes(odd), encoding="utf-8", errors="surrogateescape")
    exercise_notebook(subs / "Dora" / "homework.ipynb", {"double": DOUBLE_OK, "square": SQUARE_OK})
    shutil.copy(subs / "Dora" / "homework.ipynb", subs / "Dora" / "homework-checkpoint.ipynb")
    (subs / "Dora" / ".ipynb_checkpoints").mkdir()
    shutil.copy(subs / "Dora" / "homework.ipynb", subs / "Dora" / ".ipynb_checkpoints" / "homework-checkpoint.ipynb")
    # Download residue: none of it is a student.
    (subs / "__MACOSX").mkdir()
    (subs / "__MACOSX" / "._Anna.ipynb").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    shutil.copy(subs / "Anna.ipynb", subs / ".hidden.ipynb")
    shutil.copy(subs / "Anna.ipynb", subs / "Anna-checkpoint.ipynb")
    (subs / ".ipynb_checkpoints").mkdir()
    shutil.copy(subs / "Anna.ipynb", subs / ".ipynb_checkpoints" / "Anna-checkpoint.ipynb")
    (subs / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    # A zip of more submissions, as an LMS hands it out, with hostile member names.
    good = (subs / "Anna.ipynb").read_bytes()
    with zipfile.ZipFile(subs / "late.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("late/Zoë.ipynb", good)
        z.writestr("late/Emil/work.ipynb", good)
        z.writestr("late/" + "ü" * 140 + ".ipynb", good)  # 285 bytes: longer than any file name may be
        z.writestr("__MACOSX/late/._Zoë.ipynb", b"\x00\x05\x16\x07")
        z.writestr("late/../../escaped.ipynb", good)  # zip-slip
        z.writestr("/etc/absolute.ipynb", good)
        z.writestr("late/bomb.ipynb", b"{" + b" " * (60 << 20) + b"}")  # 60 MB of spaces, a few KB zipped
    # A student who uploaded a zip of their work (Moodle keeps one folder per student).
    (subs / "Kai").mkdir()
    with zipfile.ZipFile(subs / "Kai" / "abgabe.zip", "w") as z:
        z.writestr("abgabe/hw.ipynb", good)
        z.writestr("abgabe/.ipynb_checkpoints/hw-checkpoint.ipynb", good)
    # A zip written without the UTF-8 flag (cp437 in the header, UTF-8 bytes in the name: macOS, old tools).
    with zipfile.ZipFile(subs / "legacy.zip", "w") as z:
        z.writestr(_NoUtf8Flag("Ünal.ipynb"), good)
    ids = {unicodedata.normalize("NFC", n) for n in NAMES} | {
        "Müller Jörg (Müller Jörg.ipynb)", "Müller Jörg (Müller Jörg)", "Bea pasted", "Carl lost attachment", "Dora", "Finn no cells", "Gil odd outputs", "Hal bad bytes",
        "Ines caf\\xe9", "Kai",
        "Zoë", "Emil", "ü" * 140, "bomb", "Ünal"}
    ids.discard("Müller Jörg")
    return subs, ids


def grade(subs, out, *extra):
    # One worker: what these tests check (discovery, identities, outputs, resume) does not depend on parallel
    # grading, which test_batch and test_cleanup check with --jobs 2; a second worker costs ~2 CPU-s per
    # command (it imports torch): 148 -> 100 CPU-s for this file, test_lms and test_ta_downloads.
    return subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out),
                           "--rubrics", str(MINI_RUBRICS), "--jobs", "1", *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    subs, ids = make_class(root)
    r = grade(subs, root / "out")
    return subs, ids, root / "out", r


def test_every_notebook_found_is_one_student_in_every_output(graded):
    subs, ids, out, r = graded
    assert r.returncode == 0, r.stderr
    assert f"{len(ids)} submissions:" in r.stdout
    index = json.loads((out / "index.json").read_text())
    assert set(index) == ids
    for student, files in index.items():
        for kind in ("results", "feedback", "gradescope"):
            assert (out / files[kind]).is_file(), (student, kind)
            assert len(Path(files[kind]).parts[-1].encode()) <= 255
    for folder, pattern in (("results", "*.json"), ("feedback", "*.html"), ("gradescope", "*/results.json")):
        assert len(list((out / folder).glob(pattern))) == len(ids)
    rows = list(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))
    assert len(rows) == len(ids)
    # Derived file names differ even where a file system ignores case (Anna / anna) or the names
    # share no ASCII letter (李 雷 / 王 芳).
    stems = [Path(f["results"]).name.casefold() for f in index.values()]
    assert len(set(stems)) == len(stems)
    assert index["李 雷"]["submission"].endswith("李 雷.ipynb")


def test_a_name_given_twice_gives_two_students_and_a_note(graded):
    subs, ids, out, r = graded
    note = "2 submissions would both have the id 'Müller Jörg'"
    assert note in r.stderr and html.escape(note) in (out / "summary.html").read_text()


def test_formula_like_names_are_text_in_grades_csv(graded):
    subs, ids, out, r = graded
    for raw in ("\x1b", "\x07", "\u202e"):  # a name with escape sequences: not in the terminal, not in the CSV
        assert raw not in r.stdout + r.stderr and raw not in (out / "grades.csv").read_text()
    for row in csv.reader((out / "grades.csv").open(encoding="utf-8")):
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    table = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}
    assert "'=HYPERLINK(\"evil.example\",\"y\")" in table and table["'+cmd"]["double"] == "3"


def test_residue_is_ignored_with_a_note_for_the_ta(graded):
    subs, ids, out, r = graded
    summary = (out / "summary.html").read_text()
    for residue in ("__MACOSX", ".hidden.ipynb", "Anna-checkpoint.ipynb", ".DS_Store"):
        assert residue in r.stderr and residue in summary, residue
    index = json.loads((out / "index.json").read_text())
    assert index["Dora"]["submission"].endswith("Dora/homework.ipynb")  # its checkpoint copy is not a 2nd notebook
    assert json.loads((out / index["Dora"]["results"]).read_text())["score"] == 5


def test_a_zip_is_read_directly_and_safely(graded):
    subs, ids, out, r = graded
    index = json.loads((out / "index.json").read_text())
    assert index["Zoë"]["submission"] == str(subs / "late.zip" / "late" / "Zoë.ipynb")
    assert json.loads((out / index["Emil"]["results"]).read_text())["score"] == 3
    assert index["Kai"]["submission"] == str(subs / "Kai" / "abgabe.zip" / "abgabe" / "hw.ipynb")
    assert json.loads((out / index["Kai"]["results"]).read_text())["score"] == 3
    assert json.loads((out / index["Ünal"]["results"]).read_text())["score"] == 3
    assert "over 50 MB" in json.loads((out / index["bomb"]["results"]).read_text())["error"]
    for unsafe in ("../../escaped.ipynb", "/etc/absolute.ipynb"):
        assert unsafe in r.stderr  # named, not read
    assert not (subs.parent / "escaped.ipynb").exists() and not list(subs.rglob("escaped*"))


def test_a_pasted_image_costs_nothing_and_a_lost_one_shows_a_placeholder(graded):
    subs, ids, out, r = graded
    index = json.loads((out / "index.json").read_text())
    page = (out / index["Bea pasted"]["feedback"]).read_text()
    assert f"data:image/png;base64,{PNG}" in page
    lost = (out / index["Carl lost attachment"]["feedback"]).read_text()
    assert "image.png" in lost and "not in the notebook" in lost
    for student in ("Bea pasted", "Carl lost attachment"):
        assert json.loads((out / index[student]["results"]).read_text())["score"] == 3


def test_odd_notebooks_are_graded_and_get_a_page(graded):
    subs, ids, out, r = graded
    index = json.loads((out / "index.json").read_text())
    assert json.loads((out / index["Finn no cells"]["results"]).read_text())["score"] == 0
    assert json.loads((out / index["Gil odd outputs"]["results"]).read_text())["score"] == 3
    assert "<script>alert(1)" not in (out / index["Gil odd outputs"]["feedback"]).read_text()
    # Jupyter cannot open it either: unusable, with the reason, and only this student.
    assert "not UTF-8" in json.loads((out / index["Hal bad bytes"]["results"]).read_text())["error"]


def test_a_page_that_cannot_be_made_costs_only_that_page(tmp_path, mini_grader, mini_assignment):
    """The LMS sync replaced Hana's notebook with a broken file while the batch ran: her page cannot
    be rendered from it. She keeps her grade, the page says why, the summary lists her, the rest go on."""
    from grader.batch import Outputs, grade_batch, local_executor
    from grader.discover import scan

    subs = tmp_path / "subs"
    for name in ("Hana", "Ivo", "Jan"):
        exercise_notebook(subs / f"{name}.ipynb", {"double": DOUBLE_OK})
    grade = local_executor(mini_grader)

    def overwritten_mid_batch(entries):
        for entry, result, problem in grade(entries):
            if entry.student == "Hana":
                entry.path.write_text("{ not json")
            yield entry, result, problem

    outputs = Outputs(tmp_path / "out", mini_assignment)
    try:
        summary = grade_batch(scan(subs).entries, outputs, overwritten_mid_batch, stream=io.StringIO())
    finally:
        outputs.close()
    assert summary.graded == 3
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    hana = json.loads((tmp_path / "out" / index["Hana"]["results"]).read_text())
    assert hana["score"] == 3 and any("feedback page could not be made" in n for n in hana["notes"])
    assert "could not be made" in (tmp_path / "out" / index["Hana"]["feedback"]).read_text()
    assert "Feedback pages that could not be made" in (tmp_path / "out" / "summary.html").read_text()
    assert "<code>double</code>" in (tmp_path / "out" / index["Ivo"]["feedback"]).read_text()
    assert len(list(csv.DictReader((tmp_path / "out" / "grades.csv").open()))) == 3


def test_links_and_special_files_cannot_hang_or_loop_discovery(tmp_path):
    from grader.discover import scan

    subs = tmp_path / "subs"
    exercise_notebook(subs / "Lea" / "hw.ipynb", {"double": DOUBLE_OK})
    (subs / "Lea" / "loop").symlink_to(subs)  # would make the walk endless
    os.mkfifo(subs / "Mo.ipynb")  # reading it would block forever
    (subs / "Nia").mkdir()
    with zipfile.ZipFile(subs / "Nia" / "a.zip", "w") as z:
        z.writestr("x", "a file")
        z.writestr("x/hw.ipynb", "a folder of the same name")
    found = scan(subs)
    by_id = {e.student: e for e in found.entries}
    assert by_id["Lea"].path == subs / "Lea" / "hw.ipynb" and by_id["Lea"].problem is None
    assert by_id["Mo"].problem == f"{subs / 'Mo.ipynb'}: not a regular file"
    assert "no .ipynb notebook" in by_id["Nia"].problem
    assert any("'x/hw.ipynb' ignored: its name is taken" in n for n in found.notes)


def test_one_name_in_both_unicode_forms_is_two_students(tmp_path):
    from grader.discover import scan

    subs = tmp_path / "subs"
    exercise_notebook(subs / "Zoë.ipynb", {"double": DOUBLE_OK})
    exercise_notebook(subs / unicodedata.normalize("NFD", "Zoë.ipynb"), {"double": DOUBLE_OK})
    found = scan(subs)
    assert sorted(e.student for e in found.entries) == ["Zoë (Zoë.ipynb)", "Zoë (Zoë.ipynb) #2"]
    assert {e.display for e in found.entries} == {"Zoë"} and len({e.path for e in found.entries}) == 2
    assert "decomposed Unicode" in found.notes[-1]


def test_an_svg_attachment_is_not_inlined(tmp_path):
    """An SVG can carry script: a pasted SVG gets a placeholder, never a data URI."""
    from grader.export import FeedbackRenderer
    from grader.read import read_submission
    from grader.results import SubmissionResult

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_markdown_cell("![plot.svg](attachment:plot.svg)")
    svg = base64.b64encode(b"<svg onload='alert(1)'/>").decode()
    cell["attachments"] = {"plot.svg": {"image/svg+xml": svg}}
    nb.cells.append(cell)
    nbformat.write(nb, str(tmp_path / "s.ipynb"))
    result = SubmissionResult(str(tmp_path / "s.ipynb"), "0", "mini", "0", "2", ("cpu",), 0, 0, 0)
    page = FeedbackRenderer().render(read_submission(tmp_path / "s.ipynb").notebook, result)
    assert svg not in page and "picture plot.svg: not shown here" in page
