"""`grader validate`: prove the rubrics right before they grade anyone.

The solution must earn full marks, the generated stub nothing, every known-bad variant must
lose exactly the checks it declares, and every alternative correct solution full marks.
"""

from __future__ import annotations

import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

from .assign import make_student_notebook
from .assignment import Assignment
from .errors import ConfigError, did_you_mean
from .results import GRADED, PASSED, SKIPPED, SubmissionResult, check_function

VARIANT_KEYS = {"description", "fails", "status", "unjudged"}
NUMBER = re.compile(r"\d+(\.\d+)?(e[-+]?\d+)?")  # measured numbers (timings, ratios) may differ
# ... and so may the account of a measurement in parentheses ("median of 12 pairs, re-measured because ...").
MEASUREMENT = re.compile(r"\([^()]*#[^()]*\)")


@dataclass(frozen=True)
class Variant:
    exercise: str
    name: str
    code: Path
    description: str
    fails: frozenset[str] | None  # None: every check
    status: str = GRADED
    unjudged: frozenset[str] = frozenset()  # checks whose outcome this variant does not pin (say why in its yml)

    @property
    def correct(self) -> bool:
        return self.fails == frozenset() and self.status == GRADED


@dataclass(frozen=True)
class Verdict:
    kind: str  # solution, stub, variant, alternative, determinism
    exercise: str
    name: str
    expected: str
    found: str
    ok: bool


def load_variants(folder: Path, assignment: Assignment) -> list[Variant]:
    """`folder/<exercise>/<name>.py` (the exercise cell's code) or `<name>.ipynb` (a whole notebook, as a
    student's editor saved it: Colab, VS Code, CRLF files ...), with `<name>.yml` beside it."""
    variants = []
    if not folder.is_dir():
        return variants
    for code in sorted([*folder.glob("*/*.py"), *folder.glob("*/*.ipynb")]):
        exercise = code.parent.name
        spec_path = code.with_suffix(".yml")
        if exercise not in assignment.exercises:
            raise ConfigError(f"{code}: no exercise '{exercise}' in {assignment.name}"
                              f"{did_you_mean(exercise, assignment.exercises)}")
        if not spec_path.is_file():
            raise ConfigError(f"{code}: no {spec_path.name} beside it saying which checks it must fail",
                              "write `fails: [test_x, ...]` (or `fails: []` for a correct alternative)")
        spec = yaml.safe_load(spec_path.read_text(encoding="utf-8")) or {}
        unknown = set(spec) - VARIANT_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(f"{spec_path}: unknown key '{key}'{did_you_mean(key, VARIANT_KEYS)}")
        fails = spec.get("fails", [])
        unjudged = spec.get("unjudged", [])
        checks = assignment.exercises[exercise].checks
        if fails != "all":
            for name in [*fails, *unjudged]:
                if name not in checks:
                    raise ConfigError(f"{spec_path}: fails: '{name}' is not a check of {exercise}"
                                      f"{did_you_mean(name, checks)}")
        variants.append(Variant(exercise, code.stem, code, str(spec.get("description", "")),
                                None if fails == "all" else frozenset(fails), str(spec.get("status", GRADED)),
                                frozenset(unjudged)))
    return variants


def variant_notebook(variant: Variant, folder: Path) -> Path:
    if variant.code.suffix == ".ipynb":
        return variant.code  # graded as the file it is, byte for byte
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch"),
                nbformat.v4.new_code_cell(f"# exercise: {variant.exercise}\n" + variant.code.read_text(encoding="utf-8"))]
    path = folder / f"{variant.exercise}__{variant.name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def lost_checks(result: SubmissionResult, exercise: str) -> set[str]:
    ex = result.exercise(exercise)
    return {check_function(c.id) for c in ex.checks if c.status not in (PASSED, SKIPPED)}


def _fmt(names) -> str:
    return "{" + ", ".join(sorted(names)) + "}" if names else "nothing"


def comparable(result: SubmissionResult, unjudged: frozenset[str] = frozenset()) -> list:
    """What must not change between two gradings of one notebook: measured numbers aside, and the
    checks a variant leaves unjudged (a speed that sits on the threshold may land either side)."""
    out = []
    for e in result.exercises:
        kept = [c for c in e.checks if check_function(c.id) not in unjudged]
        score = e.score if len(kept) == len(e.checks) else None
        out.append((e.id, e.status, score, [(c.id, c.status, c.score, _masked(c.message)) for c in kept]))
    return out


def _masked(message: str) -> str:
    return MEASUREMENT.sub("(#)", NUMBER.sub("#", message))


def _difference(a: list, b: list) -> str | None:
    """The first thing that differs between two `comparable` gradings, in words."""
    for (ex, status, score, checks), (_, status_b, score_b, checks_b) in zip(a, b):
        if (status, score) != (status_b, score_b):
            return f"{ex}: {status} {score} vs {status_b} {score_b}"
        for check, other in zip(checks, checks_b):
            if check != other:
                return f"{check[0]}: {check[1]} `{check[3][:160]}` vs {other[1]} `{other[3][:160]}`"
        if len(checks) != len(checks_b):
            return f"{ex}: {len(checks)} vs {len(checks_b)} checks"
    return None if a == b else "the exercises differ"


def validate(assignment: Assignment, grader, variants_dir: Path, repeat: int = 1) -> list[Verdict]:
    verdicts = placeholder_hints(assignment)
    variants = load_variants(variants_dir, assignment)
    with tempfile.TemporaryDirectory(prefix="torchgrade-validate-") as tmp:
        tmp = Path(tmp)
        solution = assignment.solution_notebook
        stub = tmp / "stub.ipynb"
        nbformat.write(make_student_notebook(nbformat.read(str(solution), as_version=4), solution), str(stub))
        jobs = [("solution", None, solution), ("stub", None, stub)]
        jobs += [("alternative" if v.correct else "variant", v, variant_notebook(v, tmp)) for v in variants]

        def grade(job):
            kind, variant, path = job
            only = variant.exercise if variant else None
            results = [grader.grade(path, only=only) for _ in range(repeat)]
            return job, results

        # As many gradings at once as there are workers: most grade one exercise, and a whole notebook's
        # exercises queue for the same workers (jobs // 2 left one of two workers idle: 148 s -> 86 s).
        with ThreadPoolExecutor(max_workers=grader.jobs) as pool:
            graded = list(pool.map(grade, jobs))
    for (kind, variant, path), results in graded:
        result = results[0]
        if kind == "solution":
            for ex in result.exercises:
                lost = lost_checks(result, ex.id)
                ok = ex.status == GRADED and not lost
                verdicts.append(Verdict(kind, ex.id, solution.name, "full marks",
                                        f"{ex.score:g}/{ex.max_score:g}" + (f", lost {_fmt(lost)}" if lost else "")
                                        + ("" if ex.status == GRADED else f" [{ex.status}]"), ok))
        elif kind == "stub":
            for ex in result.exercises:
                verdicts.append(Verdict(kind, ex.id, "grader assign", "0 points", f"{ex.score:g}/{ex.max_score:g}",
                                        ex.score == 0))
        else:
            ex = result.exercise(variant.exercise)
            lost = lost_checks(result, variant.exercise) - variant.unjudged
            every = {check_function(c.id) for c in ex.checks if c.status != SKIPPED}
            expected = (every if variant.fails is None else set(variant.fails)) - variant.unjudged
            ok = lost == expected and ex.status == variant.status
            found = f"lost {_fmt(lost)}" + ("" if ex.status == GRADED else f" [{ex.status}]")
            if not ok and lost != expected:
                extra, missed = lost - expected, expected - lost
                found += (f"; also lost {_fmt(extra)}" if extra else "") + (f"; kept {_fmt(missed)}" if missed else "")
            want = ("full marks" if variant.correct else f"lose {_fmt(expected)}") + (
                "" if variant.status == GRADED else f" [{variant.status}]") + (
                f" ({_fmt(variant.unjudged)} not judged)" if variant.unjudged else "")
            verdicts.append(Verdict(kind, variant.exercise, variant.name, want, found, ok))
        if repeat > 1:
            unjudged = variant.unjudged if variant else frozenset()
            first = comparable(result, unjudged)
            differences = [d for r in results[1:] if (d := _difference(first, comparable(r, unjudged)))]
            name = variant.name if variant else path.name
            verdicts.append(Verdict("determinism", variant.exercise if variant else "*", name,
                                    f"identical over {repeat} gradings",
                                    f"DIFFERENT: {differences[0]}" if differences else "identical", not differences))
    return verdicts


def placeholder_hints(assignment: Assignment) -> list[Verdict]:
    """A hint still as `grader new-exercise` wrote it would reach students: it fails validation."""
    from .authoring import PLACEHOLDER_HINT

    return [Verdict("hint", ex.id, name, "the lecture's advice", "the template's placeholder", False)
            for ex in assignment.exercises.values() for name, spec in ex.checks.items()
            if PLACEHOLDER_HINT in spec.hint]


def render_table(verdicts: list[Verdict]) -> str:
    widths = [max(len(getattr(v, f)) for v in verdicts) if verdicts else 0 for f in ("kind", "exercise", "name")]
    lines = []
    for v in verdicts:
        mark = "ok  " if v.ok else "FAIL"
        lines.append(f"{mark} {v.kind:<{widths[0]}}  {v.exercise:<{widths[1]}}  {v.name:<{widths[2]}}  "
                     f"expected {v.expected}; found {v.found}")
    bad = sum(not v.ok for v in verdicts)
    lines.append(f"\n{len(verdicts) - bad} as expected, {bad} surprise(s).")
    return "\n".join(lines)


__all__ = ["validate", "load_variants", "render_table", "Verdict", "Variant"]


# -- mutation testing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MutationReport:
    exercise: str
    total: int
    equivalent: int
    killed: int
    survivors: tuple  # of grader.mutate.Mutant
    probed: bool

    @property
    def score(self) -> float:
        judged = self.total - self.equivalent
        return self.killed / judged if judged else 1.0


def mutation_test(assignment: Assignment, grader, limit: int | None = None, seed: int = 0,
                  exercises=None) -> list[MutationReport]:
    from .extract import exercise_id_of
    from .mutate import equivalent_to_solution, make_mutants

    solution = nbformat.read(str(assignment.solution_notebook), as_version=4)
    cells = {exercise_id_of(c): i for i, c in enumerate(solution.cells) if exercise_id_of(c)}
    reports = []
    with tempfile.TemporaryDirectory(prefix="torchgrade-mutants-") as tmp:
        for ex_id, exercise in assignment.exercises.items():
            if exercises and ex_id not in exercises or ex_id not in cells:
                continue
            source = solution.cells[cells[ex_id]].source
            mutants = make_mutants(source, ex_id, limit=limit, seed=seed)
            probed = "def probe(" in exercise.rubric.read_text(encoding="utf-8")
            equivalent = (equivalent_to_solution(exercise.rubric, source, mutants) if probed and mutants
                          else [False] * len(mutants))

            def grade(item):
                i, mutant = item
                nb = nbformat.from_dict(copy_nb(solution))
                nb.cells[cells[ex_id]].source = mutant.source
                path = Path(tmp) / f"{ex_id}_{i}.ipynb"
                nbformat.write(nb, str(path))
                r = grader.grade(path, only=ex_id).exercise(ex_id)
                return r.status != GRADED or r.score < r.max_score

            todo = [(i, m) for i, m in enumerate(mutants) if not equivalent[i]]
            with ThreadPoolExecutor(max_workers=grader.jobs) as pool:
                killed = list(pool.map(grade, todo))
            survivors = tuple(m for (i, m), k in zip(todo, killed) if not k)
            reports.append(MutationReport(ex_id, len(mutants), sum(equivalent), sum(killed), survivors, probed))
    return reports


def copy_nb(nb) -> dict:
    import copy

    return copy.deepcopy(dict(nb))


def render_mutations(reports: list[MutationReport]) -> str:
    lines = ["", "Mutation testing of the rubrics (mutants of the reference solution that must lose points):"]
    for r in reports:
        lines.append(f"  {r.exercise:<18} score {r.score:6.1%}  ({r.killed} killed of {r.total - r.equivalent}; "
                     f"{r.equivalent} equivalent{'' if r.probed else ', no probe in the rubric'})")
        for m in r.survivors:
            lines.append(f"    survivor: {m.operator} at line {m.line}")
            lines.extend("      " + d for d in m.diff.splitlines())
    return "\n".join(lines)
