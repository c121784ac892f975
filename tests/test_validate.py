"""`grader validate`: passes on the real assignment, and fails when a rubric or a solution is broken."""

import re
import shutil
import subprocess
import sys

import pytest

from conftest import MINI_RUBRICS, VARIANTS
from grader.mutate import make_mutants
from grader.validate import load_variants, render_table, validate

MINI = MINI_RUBRICS.parent


def validate_cli(*args, timeout=1200):
    return subprocess.run([sys.executable, "-m", "grader", "validate", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def mini_copy(tmp_path):
    dst = tmp_path / "mini"
    shutil.copytree(MINI, dst)
    return dst


def test_bundled_assignment_validates(assignment, grader):
    """The project's own gate: solutions full, stub zero, every variant under tests/variants as declared,
    each graded twice alike. `grader validate --repeat 2` does exactly this (cmd_validate); here it uses
    the session's warm workers (the command line's own exit codes are tested on the mini assignment)."""
    verdicts = validate(assignment, grader, VARIANTS, repeat=2)
    surprises = [v for v in verdicts if not v.ok]
    assert not surprises, render_table(surprises)
    assert {v.kind for v in verdicts} == {"solution", "stub", "variant", "alternative", "determinism"}
    assert sum(v.kind in ("variant", "alternative") for v in verdicts) == len(load_variants(VARIANTS, assignment))


def test_mini_validates_with_variants_and_mutants(mini_copy):
    r = validate_cli("--rubrics", mini_copy / "rubrics", "--variants", mini_copy / "variants",
                     "--min-mutation-score", "1.0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"ok\s+variant\s+double\s+hangs", r.stdout) and "score 100.0%" in r.stdout


def test_weakened_rubric_is_caught(mini_copy):
    rubric = mini_copy / "rubrics" / "test_double.py"
    # Delete the tensor check (and its points): the variant that declares it now keeps it.
    text = rubric.read_text()
    rubric.write_text(text[: text.index("def test_tensor")] + text[text.index("def probe"):])
    yml = mini_copy / "rubrics" / "mini.yml"
    yml.write_text(yml.read_text().replace(
        '      test_tensor: {points: 1, hint: "Lecture: most operations work on tensors as on numbers."}\n', ""))
    (mini_copy / "variants" / "double" / "only_ints.yml").write_text("fails: [test_values]\n")
    r = validate_cli("--rubrics", mini_copy / "rubrics", "--variants", mini_copy / "variants")
    assert r.returncode == 1
    assert re.search(r"FAIL variant\s+double\s+only_ints", r.stdout) and "kept {test_values}" in r.stdout


def test_broken_solution_is_caught(mini_copy):
    import nbformat

    path = mini_copy / "solutions" / "mini.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("x ** 2", "x * 2")
    nbformat.write(nb, str(path))
    r = validate_cli("--rubrics", mini_copy / "rubrics", "--variants", mini_copy / "variants")
    assert r.returncode == 1 and re.search(r"FAIL solution\s+square", r.stdout)


def test_weak_rubric_lowers_the_mutation_score_and_lists_survivors(mini_copy):
    rubric = mini_copy / "rubrics" / "test_square.py"
    # A check that only looks at the type lets `x ** 2 -> x ** 3` survive.
    rubric.write_text(rubric.read_text().replace("if got != 9:", "if not isinstance(got, int):"))
    r = validate_cli("--rubrics", mini_copy / "rubrics", "--variants", mini_copy / "variants",
                     "--min-mutation-score", "0.9")
    assert r.returncode == 1 and "square: mutation score" in r.stderr and "below --min-mutation-score 90.0%" in r.stderr
    # The survivors the command lists under `square` (mutation_test's report, as render_mutations prints it).
    square = r.stdout[r.stdout.index("Mutation testing"):].split("\n  square", 1)[1].split("\n  double", 1)[0]
    assert re.match(r"\s+score\s+\d+\.\d%", square) and "survivor:" in square
    assert "x ** 3" in square


def test_mutants_cover_the_operators():
    src = ("# exercise: e\ndef f(a, b):\n    ### BEGIN SOLUTION\n    c = a.detach() + 1\n    c += b\n"
           "    d = torch.zeros(3, dtype=a.dtype, requires_grad=True)\n    return torch.mul(c, d)[::2] < 2\n"
           "    ### END SOLUTION\n")
    ops = {m.operator for m in make_mutants(src, "e")}
    for op in ("binop Add->Sub", "drop .detach()", "inplace->out-of-place", "drop dtype=", "constant True->False",
               "swap arguments", "drop slice step", "compare Lt->LtE", "remove statement", "constant 1->2"):
        assert op in ops, op
    # Nothing outside the solution region is mutated.
    assert all(m.line >= 4 for m in make_mutants(src, "e"))


def test_determinism_ignores_what_a_variant_leaves_unjudged_and_measured_numbers():
    from grader.results import CheckResult, ExerciseResult, SubmissionResult
    from grader.validate import comparable

    def result(speed_status: str, ratio: str) -> SubmissionResult:
        checks = (CheckResult("test_no_pdist", "no pdist", "passed", 3.0, 3.0),
                  CheckResult("test_faster_than_pdist", "faster", speed_status, 5.0 if speed_status == "passed" else 0.0,
                              5.0, f"measured {ratio}x"))
        ex = ExerciseResult("beat_pdist", sum(c.score for c in checks), 8.0, "graded", checks=checks)
        return SubmissionResult("s.ipynb", "0", "a", "v", "t", ("cpu",), ex.score, 8.0, 1.0, exercises=(ex,))

    near_threshold = frozenset({"test_faster_than_pdist"})
    assert comparable(result("passed", "1.30")) == comparable(result("passed", "1.41"))  # numbers masked
    # ... and so is how the measurement went, in parentheses
    assert comparable(result("failed", "1.0 (median of 9 pairs)")) == comparable(
        result("failed", "0.999 (median of 45 pairs, re-measured because the first median was near the threshold)"))
    assert comparable(result("passed", "1.30")) != comparable(result("failed", "1.10"))
    assert comparable(result("passed", "1.30"), near_threshold) == comparable(result("failed", "1.10"), near_threshold)
    from grader.validate import _difference

    why = _difference(comparable(result("passed", "1.30")), comparable(result("failed", "1.10")))
    assert why == "beat_pdist: graded 8.0 vs graded 3.0"


def test_determinism_masks_which_clock_judged_a_measurement():
    """On a loaded machine one grading may judge a speed by CPU time and the next by the wall clock:
    the same code, the same verdict, so the two messages must compare equal once masked."""
    from grader.timing import CLOCK_CPU, CLOCK_WALL, CLOCK_WALL_IDLE
    from grader.validate import _masked

    account = "2.3× the speed of pdist (median of 5 interleaved pairs, pair ratios 2.1–2.4; one call 20 ms, by {})"
    assert len({_masked(account.format(clock)) for clock in (CLOCK_CPU, CLOCK_WALL, CLOCK_WALL_IDLE)}) == 1
    assert _masked("0.9× the speed") != _masked("0.9× the speed; tampering")  # masking keeps the words
