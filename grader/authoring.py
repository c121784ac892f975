"""`grader new-exercise ID`: one command writes the five places an exercise lives in, from templates.

The rubric `test_ID.py`, its entry in the assignment YAML (added as text, so the file's comments
survive), a task and solution cell in `solutions/<name>.ipynb`, and `tests/variants/ID/` with one
known-bad variant. The result is consistent at once: `grader list` shows it and `grader validate`
passes (the template solution earns its one check, the stub and the variant lose it). Every refusal
happens before the first file is written.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

import nbformat
import yaml

from .assign import BEGIN, END
from .assignment import BUNDLED_RUBRICS, load_assignment
from .errors import ConfigError
from .extract import exercise_id_of

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The hint the template writes (templates/entry.yml.tmpl): `grader validate` fails while one is left.
PLACEHOLDER_HINT = "Write the lecture's advice on this check's pitfall here"
EXERCISE_ID = re.compile(r"[a-z][a-z0-9_]*")
TOP_KEY = re.compile(r"^[^\s#][^:]*:")

BAD_ID = "'{id}' is not an exercise id: ids are lower-case identifiers (a letter, then letters, digits, _)"
TAKEN_NAME = "'{id}' cannot be an exercise id: the template names the student's function after it, and '{id}' is taken"
BAD_ID_TIP = "e.g. `grader new-exercise ste_round`; the id is also the name of the rubric test_<id>.py"
EXISTS = "{where}: exercise '{id}' exists already"
EXISTS_TIP = "pick another id, or edit the existing exercise's files"
NO_COURSE = "{rubrics}: no such rubrics folder"
NO_CONFIG = "{rubrics}: no assignment YAML in this rubrics folder"
NO_COURSE_TIP = "to start a new course there, add --assignment NAME (it writes NAME.yml there and solutions/NAME.ipynb)"
NOT_YAML = "{path}: not valid YAML, so the exercise cannot be added to it: {problem}"
NO_EXERCISES_KEY = "{path}: `exercises` is {found}, not a mapping of exercise ids"
OTHER_NAME = "{rubrics} holds the assignment '{found}', not '{asked}'"
NOT_BY_TEXT = "{path}: could not add the entry of '{id}' as text (the YAML's layout is unusual)"
NOT_BY_TEXT_TIP = "add it under `exercises:` by hand:\n{entry}"
SOLUTION_NOT_READABLE = "{path}: the solution notebook cannot be read: {problem}"


@dataclass(frozen=True)
class NewExercise:
    """What `new_exercise` wrote (each path exists afterwards)."""

    id: str
    rubrics_dir: Path
    written: tuple[Path, ...]
    next_steps: tuple[str, ...]


def new_exercise(exercise_id: str, rubrics_dir: Path | str | None = None, assignment: str | None = None,
                 title: str | None = None, lecture: str = "") -> NewExercise:
    """Add exercise `exercise_id` to the course whose rubrics are in `rubrics_dir` (default: the bundled
    one); with `assignment` and a folder that does not exist yet, start that course."""
    if not EXERCISE_ID.fullmatch(exercise_id or ""):
        raise ConfigError(BAD_ID.format(id=exercise_id), BAD_ID_TIP)
    if keyword.iskeyword(exercise_id) or exercise_id == "torch":
        raise ConfigError(TAKEN_NAME.format(id=exercise_id), BAD_ID_TIP)
    if assignment is not None and not EXERCISE_ID.fullmatch(assignment):
        raise ConfigError(BAD_ID.format(id=assignment).replace("an exercise id", "an assignment name"),
                          "e.g. --assignment autograd_tricks: it names rubrics/<name>.yml and solutions/<name>.ipynb")
    rubrics = Path(rubrics_dir or BUNDLED_RUBRICS).absolute()
    title = " ".join((title or exercise_id.replace("_", " ").capitalize()).split())  # one line
    fields = {"id": exercise_id, "title": title, "title_yaml": json.dumps(title),
              "lecture_yaml": json.dumps(lecture or "the lecture's section this exercise practises")}

    # -- read and refuse: nothing is written before all of this has passed ------------------------
    new_course = not _configs(rubrics)
    if new_course:
        if assignment is None:
            raise ConfigError((NO_CONFIG if rubrics.is_dir() else NO_COURSE).format(rubrics=rubrics), NO_COURSE_TIP)
        name = assignment
        config = rubrics / f"{name}.yml"
        config_text = _render("assignment.yml.tmpl", name=name)
        raw = _parse(config_text, config)
    else:
        config = _config_path(rubrics)
        config_text = config.read_text(encoding="utf-8")
        raw = _parse(config_text, config)
        name = load_assignment(rubrics).name  # a course the grader cannot read gets no new exercise either
        if assignment is not None and assignment != name:
            raise ConfigError(OTHER_NAME.format(rubrics=rubrics, found=name, asked=assignment),
                              "leave out --assignment to add the exercise to it, or give another --rubrics folder")
    root = rubrics.parent
    rubric = rubrics / f"test_{exercise_id}.py"
    solution = root / "solutions" / f"{name}.ipynb"
    variants = root / "tests" / "variants" / exercise_id
    if exercise_id in (raw.get("exercises") or {}):
        raise ConfigError(EXISTS.format(where=config, id=exercise_id), EXISTS_TIP)
    for path in (rubric, variants):
        if path.exists():
            raise ConfigError(EXISTS.format(where=path, id=exercise_id), EXISTS_TIP)
    notebook = _read_solution(solution, name)
    if any(exercise_id_of(cell) == exercise_id for cell in notebook.cells):
        raise ConfigError(EXISTS.format(where=solution, id=exercise_id) + " (a cell marked `# exercise: "
                          f"{exercise_id}`)", EXISTS_TIP)
    entry = _render("entry.yml.tmpl", **fields)
    new_config_text = add_entry(config_text, entry, exercise_id, config)

    # -- write ------------------------------------------------------------------------------------
    rubrics.mkdir(parents=True, exist_ok=True)
    config.write_text(new_config_text, encoding="utf-8")
    rubric.write_text(_render("rubric.py.tmpl", config=config.name, **fields), encoding="utf-8")
    taken = {cell.get("id") for cell in notebook.cells}
    notebook.cells += [_cell("markdown", _render("task.md.tmpl", **fields), _fresh(f"{exercise_id}-task", taken)),
                       _cell("code", _render("solution.py.tmpl", **fields).rstrip("\n"),
                             _fresh(f"{exercise_id}-solution", taken))]
    solution.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(solution))
    variants.mkdir(parents=True)
    variant = variants / "returns_input.py"
    variant.write_text(_render("variant.py.tmpl", **fields), encoding="utf-8")
    variant.with_suffix(".yml").write_text(_render("variant.yml.tmpl", **fields), encoding="utf-8")
    opt = "" if rubrics.resolve() == BUNDLED_RUBRICS else f" --rubrics {rubrics}"
    steps = (f"write the task and the solution in {solution} (the cell marked `# exercise: {exercise_id}`, "
             f"between `{BEGIN}` and `{END}`)",
             f"write the checks in {rubric}, their points and hints in {config}",
             f"one known-bad variant per pitfall in {variants}/ (<name>.py + <name>.yml: `fails: [...]`)",
             f"grader assign{opt}   # writes the student notebook exercises/{name}.ipynb",
             f"grader validate{opt}   # solution full marks, stub zero, every variant as declared")
    return NewExercise(exercise_id, rubrics, (config, rubric, solution, variant, variant.with_suffix(".yml")), steps)


def add_entry(text: str, entry: str, exercise_id: str, path: Path) -> str:
    """`text` with `entry` (an indented `id:` block) at the end of the top-level `exercises:` block, as
    text, so the file's comments and layout stay; checked by parsing the result."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if re.match(r"exercises\s*:", line)), None)
    if start is None:
        lines += ["\nexercises:\n"]
        start = len(lines) - 1
    else:
        key, value = lines[start].split(":", 1)
        if value.split("#", 1)[0].strip() not in ("", "{}"):  # a flow mapping: no block to add to
            raise ConfigError(NOT_BY_TEXT.format(path=path, id=exercise_id), NOT_BY_TEXT_TIP.format(entry=entry))
        lines[start] = key + ":" + value.replace("{}", "", 1)  # `exercises: {}` of an empty course: a block
    end = next((i for i in range(start + 1, len(lines)) if TOP_KEY.match(lines[i])), len(lines))
    first = next((line for line in lines[start + 1:end] if line.strip() and not line.lstrip().startswith("#")), None)
    indent = len(first) - len(first.lstrip(" ")) if first else 2
    if indent > 2:  # the template is indented by 2: as deep as the exercises already there
        entry = "".join(" " * (indent - 2) + line if line.strip() else line for line in entry.splitlines(True))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # the entry goes after the last exercise, before the blank lines that end the block
    new = "".join(lines[:end]) + entry.lstrip("\n" if end == start + 1 else "") + "".join(lines[end:])
    before, after = _parse(text, path), _parse(new, path)
    expected = {**(before.get("exercises") or {}), exercise_id: yaml.safe_load(entry)[exercise_id]}
    if after.get("exercises") != expected or {k: v for k, v in after.items() if k != "exercises"} != {
            k: v for k, v in before.items() if k != "exercises"}:
        raise ConfigError(NOT_BY_TEXT.format(path=path, id=exercise_id), NOT_BY_TEXT_TIP.format(entry=entry))
    return new


def _configs(rubrics: Path) -> list[Path]:
    """The assignment YAMLs of a rubrics folder (as `load_assignment` reads them: the late policy aside)."""
    return sorted(p for p in [*rubrics.glob("*.yml"), *rubrics.glob("*.yaml")]
                  if p.name not in ("policy.yml", "policy.yaml")) if rubrics.is_dir() else []


def _config_path(rubrics: Path) -> Path:
    configs = _configs(rubrics)
    if len(configs) != 1:
        raise ConfigError(f"{rubrics}: expected exactly one assignment YAML, found {len(configs)}",
                          "a rubrics folder holds <assignment>.yml and one test_<id>.py per exercise")
    return configs[0]


def _parse(text: str, path: Path) -> dict:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(NOT_YAML.format(path=path, problem=e)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(raw).__name__}")
    exercises = raw.get("exercises")
    if exercises is not None and not isinstance(exercises, dict):
        raise ConfigError(NO_EXERCISES_KEY.format(path=path, found=type(exercises).__name__))
    return raw


def _read_solution(path: Path, name: str) -> nbformat.NotebookNode:
    """The course's solution notebook, or a new one with a title and `import torch`."""
    if not path.exists():
        nb = nbformat.v4.new_notebook()
        nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                       "language_info": {"name": "python"}}
        nb.cells = [_cell("markdown", f"# {name}: exercises\n\nEach exercise has a code cell whose first line is "
                                      "`# exercise: <id>`. Keep that line and write your code in that cell.", "intro"),
                    _cell("code", "import torch", "imports")]
        return nb
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as e:  # noqa: BLE001 - nbformat raises many kinds; the message names the file
        raise ConfigError(SOLUTION_NOT_READABLE.format(path=path, problem=e)) from None


def _cell(kind: str, source: str, cell_id: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
    cell.id = cell_id[:64]
    return cell


def _fresh(cell_id: str, taken: set) -> str:
    """A cell id the notebook does not use yet (nbformat requires them unique)."""
    base, n = cell_id[:56], 1
    while cell_id in taken:
        n += 1
        cell_id = f"{base}-{n}"
    return cell_id


def _render(template: str, **fields) -> str:
    return Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(**fields)
