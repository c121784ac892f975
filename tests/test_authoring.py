"""`grader new-exercise`: the five places of an exercise from templates, consistent at once; refusals write nothing."""

import re
import shutil
import subprocess
import sys

import nbformat
import pytest
import yaml

from conftest import REPO
from grader import load_assignment
from grader.assign import BEGIN, END
from grader.authoring import BAD_ID, EXISTS, NO_CONFIG, NO_COURSE, NOT_YAML, TAKEN_NAME, add_entry, new_exercise
from grader.cli import EXIT_UNUSABLE, main
from grader.errors import ConfigError
from grader.extract import exercise_id_of


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def tree(root):
    """Every file under `root` with its bytes: what a refusal must leave as it was."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def bundled_copy(tmp_path):
    """The bundled assignment's rubrics and solution notebook, where new exercises may be added."""
    for folder in ("rubrics", "solutions"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path / "rubrics"


def test_a_new_course_validates_and_lists_at_once(tmp_path, capsys):
    """The path of a TA: a course from nothing, two exercises, then `grader list` and (a real `grader` process)
    `grader validate`."""
    rubrics = tmp_path / "course" / "rubrics"
    assert main(["new-exercise", "first_one", "--rubrics", str(rubrics), "--assignment", "demo",
                 "--title", "The first"]) == 0
    assert main(["new-exercise", "second_one", "--rubrics", str(rubrics)]) == 0
    assert (rubrics / "demo.yml").is_file() and (tmp_path / "course" / "solutions" / "demo.ipynb").is_file()
    capsys.readouterr()
    assert main(["list", "--rubrics", str(rubrics)]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"^first_one: The first$", listed, re.M) and re.search(r"^second_one: ", listed, re.M)
    validated = cli("validate", "--rubrics", rubrics, "--jobs", "2")
    # Everything holds except the template's placeholder hints, which must not reach students.
    assert validated.returncode == 1, validated.stdout + validated.stderr
    for ex in ("first_one", "second_one"):
        assert re.search(rf"FAIL\s+hint\s+{ex}\s+test_values\s.*the template's placeholder", validated.stdout)
    for ex in ("first_one", "second_one"):  # the template solution earns its check; stub and variant lose it
        assert re.search(rf"ok\s+solution\s+{ex}\s.*found ([\d.]+)/\1$", validated.stdout, re.M)
        assert re.search(rf"ok\s+stub\s+{ex}\s.*found 0/[1-9]", validated.stdout)
        assert re.search(rf"ok\s+variant\s+{ex}\s+returns_input\s.*found lost {{test_values}}", validated.stdout)
    assert "2 surprise(s)" in validated.stdout


def test_adding_to_the_bundled_assignment_keeps_everything_else(bundled_copy):
    yml = bundled_copy / "pytorch_intro.yml"
    before_text = yml.read_text()
    before_nb = nbformat.read(str(bundled_copy.parent / "solutions" / "pytorch_intro.ipynb"), as_version=4)
    made = new_exercise("ste_round", bundled_copy, lecture="A fun trick")
    after_text = yml.read_text()
    assert after_text.startswith(before_text.rstrip("\n"))  # added as text: every comment of the file stays
    assert "# Calibrated where the grading happens" in after_text
    assignment = load_assignment(bundled_copy)
    assert list(assignment.exercises)[-1] == "ste_round" and len(assignment.exercises) == 7
    assert assignment.exercises["ste_round"].lecture == "A fun trick"
    nb = nbformat.read(str(made.written[2]), as_version=4)
    assert nb.cells[: len(before_nb.cells)] == before_nb.cells
    task, code = nb.cells[len(before_nb.cells):]
    assert task.cell_type == "markdown" and "`ste_round`" in task.source
    assert exercise_id_of(code) == "ste_round" and BEGIN in code.source and END in code.source
    rubric = (bundled_copy / "test_ste_round.py").read_text()
    assert "need(student, NAME)" in rubric and "expect_close(" in rubric and '"""ste_round(x) returns' in rubric
    variant = bundled_copy.parent / "tests" / "variants" / "ste_round"
    assert yaml.safe_load((variant / "returns_input.yml").read_text())["fails"] == ["test_values"]
    nbformat.validate(nb)


@pytest.mark.parametrize("args, message", [
    (["sequential_model"], EXISTS.format(where="{rubrics}/pytorch_intro.yml", id="sequential_model")),
    (["Ste-Round"], BAD_ID.format(id="Ste-Round")),
    (["2nd"], BAD_ID.format(id="2nd")),
    (["lambda"], TAKEN_NAME.format(id="lambda")),
    (["ste_round", "--assignment", "other"], "holds the assignment 'pytorch_intro', not 'other'"),
], ids=["existing", "not-lower-case", "digit-first", "keyword", "other-assignment"])
def test_refusals_write_nothing(bundled_copy, capsys, args, message):
    before = tree(bundled_copy.parent)
    assert main(["new-exercise", *args, "--rubrics", str(bundled_copy)]) == EXIT_UNUSABLE
    assert message.format(rubrics=bundled_copy) in capsys.readouterr().err
    assert tree(bundled_copy.parent) == before


def test_a_leftover_rubric_or_solution_cell_is_an_existing_exercise(bundled_copy):
    (bundled_copy / "test_ste_round.py").write_text("")
    with pytest.raises(ConfigError, match=re.escape("test_ste_round.py: exercise 'ste_round' exists already")):
        new_exercise("ste_round", bundled_copy)
    (bundled_copy / "test_ste_round.py").unlink()
    path = bundled_copy.parent / "solutions" / "pytorch_intro.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("# exercise: ste_round\npass"))
    nbformat.write(nb, str(path))
    with pytest.raises(ConfigError, match="a cell marked `# exercise: ste_round`"):
        new_exercise("ste_round", bundled_copy)


def test_unparsable_yaml_and_missing_folder_are_refused(tmp_path, capsys):
    rubrics = tmp_path / "rubrics"
    rubrics.mkdir()
    (rubrics / "broken.yml").write_text("exercises:\n  a: [unclosed\n")
    before = tree(tmp_path)
    assert main(["new-exercise", "ste_round", "--rubrics", str(rubrics)]) == EXIT_UNUSABLE
    assert NOT_YAML.format(path=rubrics / "broken.yml", problem="")[:-1] in capsys.readouterr().err
    assert tree(tmp_path) == before
    assert main(["new-exercise", "ste_round", "--rubrics", str(tmp_path / "nowhere")]) == EXIT_UNUSABLE
    assert NO_COURSE.format(rubrics=tmp_path / "nowhere") in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists() and tree(tmp_path) == before
    (tmp_path / "empty").mkdir()
    assert main(["new-exercise", "ste_round", "--rubrics", str(tmp_path / "empty")]) == EXIT_UNUSABLE
    assert NO_CONFIG.format(rubrics=tmp_path / "empty") in capsys.readouterr().err
    assert not any((tmp_path / "empty").iterdir())


ENTRY = "\n  new:\n    title: New\n    checks:\n      test_values: {points: 1}\n"


@pytest.mark.parametrize("text", [
    "# head\nassignment: a\nexercises:\n  old:   # keep me\n    checks: {test_x: 1}\n\n",
    "assignment: a\nexercises:\n    old:\n        checks: {test_x: 1}\n# about defaults\ndefaults:\n  timeout_s: 5\n",
    "assignment: a\nexercises: {}  # none yet {}\n",
    "assignment: a\n",
    "exercises:\n  old:\n    checks: {test_x: 1}",
], ids=["comments", "not-last-and-deeper-indent", "empty-flow", "no-exercises-key", "no-final-newline"])
def test_entry_is_added_as_text_where_yaml_reads_it(tmp_path, text):
    new = add_entry(text, ENTRY, "new", tmp_path / "a.yml")
    raw = yaml.safe_load(new)
    assert list(raw["exercises"])[-1] == "new" and raw["exercises"]["new"]["checks"] == {"test_values": {"points": 1}}
    assert {k: v for k, v in raw.items() if k != "exercises"} == {
        k: v for k, v in (yaml.safe_load(text) or {}).items() if k != "exercises"}
    comments = lambda t: [line.split("#", 1)[1] for line in t.splitlines() if "#" in line]  # noqa: E731
    assert comments(new) == comments(text)


def test_an_entry_yaml_would_misread_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="could not add the entry of 'new' as text"):
        add_entry("exercises: {old: {checks: {test_x: 1}}}\n", ENTRY, "new", tmp_path / "a.yml")


def test_the_template_hint_is_the_placeholder_validate_refuses(tmp_path):
    """The sentence `grader validate` looks for is the one the template writes (they cannot drift apart)."""
    from grader.authoring import PLACEHOLDER_HINT
    from grader.validate import placeholder_hints

    rubrics = tmp_path / "course" / "rubrics"
    assert main(["new-exercise", "first_one", "--rubrics", str(rubrics), "--assignment", "demo"]) == 0
    course = load_assignment(rubrics)
    assert PLACEHOLDER_HINT in course.exercises["first_one"].checks["test_values"].hint
    assert [(v.kind, v.exercise, v.name, v.ok) for v in placeholder_hints(course)] == [
        ("hint", "first_one", "test_values", False)]
    assert placeholder_hints(load_assignment()) == []  # the bundled course has its advice
