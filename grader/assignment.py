"""The assignment a rubrics folder describes: exercises, checks, points, limits, thresholds."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError, did_you_mean
from .results import check_function  # noqa: F401 - used here and importable from here

# The repository that ships the bundled assignment (SPEC "Command line": found from the
# installed package, whatever the working directory).
REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_RUBRICS = REPO_ROOT / "rubrics"
PRIVATE_SUBFOLDERS = ("rubrics", "solutions", "tests/variants")  # of a course's root

EXERCISE_KEYS = {"title", "lecture", "timeout_s", "memory_mb", "checks", "thresholds", "needs_gpu"}
CHECK_KEYS = {"points", "hint", "needs_gpu"}
DEFAULT_KEYS = {"timeout_s", "memory_mb", "cpu_threads"}


@dataclass(frozen=True)
class CheckSpec:
    points: float
    hint: str = ""
    needs_gpu: bool = False


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    rubric: Path
    timeout_s: float
    memory_mb: int
    checks: dict[str, CheckSpec]
    lecture: str = ""
    thresholds: dict = field(default_factory=dict)
    needs_gpu: bool = False

    def check_spec(self, check_id: str) -> CheckSpec | None:
        """The YAML entry of `test_x` serves every case of it (`test_x[cpu-float32]`, ...)."""
        return self.checks.get(check_function(check_id))

    def case_points(self, counted: list[str]) -> dict[str, float]:
        """Each case's share of its check function's points, among the cases that count here.

        `counted` are the case ids that are scored on this run (not skipped, e.g. for want of a GPU):
        a check function's YAML points are split evenly across its counted cases, so the function is
        worth the same on a CPU and a GPU machine, and a new dtype in a shared parameter list does not
        re-weight the exercise. A function none of whose cases count is worth nothing here.
        """
        cases = Counter(check_function(c) for c in counted)
        return {c: self.check_spec(c).points / cases[check_function(c)] for c in counted}


@dataclass(frozen=True)
class Assignment:
    name: str
    title: str
    root: Path
    exercises: dict[str, Exercise]
    cpu_threads: int = 1

    @property
    def rubrics_dir(self) -> Path:
        return self.root / "rubrics"

    @property
    def solution_notebook(self) -> Path:
        return self.root / "solutions" / f"{self.name}.ipynb"

    @property
    def exercise_notebook(self) -> Path:
        return self.root / "exercises" / f"{self.name}.ipynb"

    @property
    def config_path(self) -> Path:
        return self.rubrics_dir / f"{self.name}.yml"

    @property
    def private_dirs(self) -> tuple[Path, ...]:
        """Folders student code must never read (SPEC "Isolation and safety"): this course's rubrics, solutions
        and variants (correct alternatives among them), and those of every course shipped in this repository,
        so that week 1's code cannot read week 3's answers."""
        roots = [self.root, REPO_ROOT, *sorted((REPO_ROOT / "assignments").glob("*/"))]
        folders = [root / sub for root in roots for sub in PRIVATE_SUBFOLDERS]
        return tuple(dict.fromkeys(p for p in folders if p.is_dir()))


def load_assignment(rubrics_dir: Path | str | None = None) -> Assignment:
    rubrics_dir = Path(rubrics_dir or BUNDLED_RUBRICS).resolve()
    configs = [p for p in sorted(rubrics_dir.glob("*.yml")) + sorted(rubrics_dir.glob("*.yaml"))
               if p.name not in ("policy.yml", "policy.yaml")]  # the course's late policy (grader/policy.py)
    if not rubrics_dir.is_dir():
        raise ConfigError(f"{rubrics_dir}: no such rubrics folder")
    if len(configs) != 1:
        raise ConfigError(
            f"{rubrics_dir}: expected exactly one assignment YAML, found {len(configs)}",
            tip="a rubrics folder holds <assignment>.yml and one test_<id>.py per exercise",
        )
    path = configs[0]
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return _parse(raw, path, rubrics_dir)


def _parse(raw: dict, path: Path, rubrics_dir: Path) -> Assignment:
    def bad(where: str, problem: str, tip: str = "") -> ConfigError:
        return ConfigError(f"{path}: {where}: {problem}", tip)

    _only(raw, {"assignment", "title", "defaults", "exercises"}, "top level", bad)
    name = raw.get("assignment") or path.stem
    defaults = raw.get("defaults") or {}
    _only(defaults, DEFAULT_KEYS, "defaults", bad)
    exercises: dict[str, Exercise] = {}
    for ex_id, ex in (raw.get("exercises") or {}).items():
        where = f"exercises.{ex_id}"
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(ex_id)):
            raise bad(where, "exercise ids are lower-case identifiers")
        ex = ex or {}
        _only(ex, EXERCISE_KEYS, where, bad)
        rubric = rubrics_dir / f"test_{ex_id}.py"
        if not rubric.is_file():
            raise bad(where, f"its rubric {rubric.name} is missing from {rubrics_dir}")
        checks = {}
        for check_id, spec in (ex.get("checks") or {}).items():
            cwhere = f"{where}.checks.{check_id}"
            if isinstance(spec, (int, float)):
                spec = {"points": spec}
            _only(spec, CHECK_KEYS, cwhere, bad)
            if not isinstance(spec.get("points"), (int, float)) or spec["points"] < 0:
                raise bad(cwhere, "needs `points`, a number >= 0")
            checks[check_id] = CheckSpec(
                float(spec["points"]), str(spec.get("hint", "")).strip(), bool(spec.get("needs_gpu"))
            )
        if not checks:
            raise bad(where, "lists no checks")
        exercises[ex_id] = Exercise(
            id=ex_id,
            title=str(ex.get("title", ex_id)),
            rubric=rubric,
            timeout_s=float(ex.get("timeout_s", defaults.get("timeout_s", 60))),
            memory_mb=int(ex.get("memory_mb", defaults.get("memory_mb", 4096))),
            checks=checks,
            lecture=str(ex.get("lecture", "")),
            thresholds=dict(ex.get("thresholds") or {}),
            needs_gpu=bool(ex.get("needs_gpu")),
        )
    if not exercises:
        raise bad("exercises", "none defined")
    return Assignment(
        name=name,
        title=str(raw.get("title", name)),
        root=rubrics_dir.parent,
        exercises=exercises,
        cpu_threads=int(defaults.get("cpu_threads", 1)),
    )


def _only(d, allowed: set, where: str, bad) -> None:
    if not isinstance(d, dict):
        raise bad(where, f"expected a mapping, found {type(d).__name__}")
    for key in d:
        if key not in allowed:
            raise bad(where, f"unknown key '{key}'{did_you_mean(str(key), allowed)}")
