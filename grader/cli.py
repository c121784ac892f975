"""The command line: the only place that prints, colours and picks exit codes.

One module because every command's parsing, printing and exit code belong together here, and only here: the
library raises typed errors and never prints, so each `cmd_*` is a thin adapter (the work is in its module).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .assignment import load_assignment
from .errors import ConfigError, GraderCrash, GraderError, OutputBusy, UnusableSubmission
from .read import read_submission
from .results import check_function, unusable_input
from .safe_text import for_terminal

EXIT_FULL, EXIT_NOT_FULL, EXIT_UNUSABLE, EXIT_GRADER = 0, 1, 2, 3


def _error(message: str, tip: str = "") -> None:
    # Messages name files and quote student text: shown with their control characters made visible.
    print(f"ERROR {for_terminal(message)}", file=sys.stderr)
    if tip:
        print(f"TIP   {for_terminal(tip)}", file=sys.stderr)


def cmd_check(args) -> int:
    from .pipeline import Grader
    from .report import render_text

    from .courses import rubrics_for_notebook

    # Without --rubrics: the bundled assignment the notebook's exercises belong to.
    assignment = load_assignment(args.rubrics or rubrics_for_notebook(args.notebook))
    if args.exercise and args.exercise not in assignment.exercises:
        from .errors import did_you_mean

        raise ConfigError(f"no exercise '{args.exercise}' in {assignment.name}"
                          f"{did_you_mean(args.exercise, assignment.exercises)}",
                          f"the exercises are: {', '.join(assignment.exercises)}")
    try:
        submission = read_submission(args.notebook)  # an unusable file is answered before any worker starts
        # No more workers than exercises to run: one more would only compete with them while starting.
        jobs = args.jobs or max(1, min(os.cpu_count() or 1, 2, _runs_needed(submission, assignment, args.exercise)))
        with Grader(assignment, jobs=jobs) as grader:
            result = grader.grade(args.notebook, only=args.exercise)
    except UnusableSubmission as e:
        if args.format == "json":
            print(json.dumps(unusable_input(str(args.notebook), e.problem)))
        else:
            _error(str(e), e.tip)
        return EXIT_UNUSABLE
    if args.format == "json":
        print(result.to_json())
    else:
        print(render_text(result, color=sys.stdout.isatty()))
    return EXIT_FULL if result.full_marks else EXIT_NOT_FULL


def _runs_needed(submission, assignment, only: str | None) -> int:
    from .extract import extract_exercises

    sources = extract_exercises(submission.notebook, assignment.exercises)[0]
    return sum(1 for ex_id, source in sources.items()
               if only in (None, ex_id) and not source.missing and not source.syntax_error)


def cmd_list(args) -> int:
    from .pipeline import Grader

    assignment = load_assignment(args.rubrics)
    with Grader(assignment, jobs=1) as grader:
        catalog = grader.catalog()
    print(f"{assignment.name}: {assignment.title}")
    for ex_id, exercise in assignment.exercises.items():
        checks = catalog[ex_id]
        points = lambda cs: round(sum(exercise.case_points([c["id"] for c in cs]).values()), 9)  # noqa: E731
        gpu = [c for c in checks if c["needs_cuda"]]
        cpu_points, all_points = points([c for c in checks if not c["needs_cuda"]]), points(checks)
        with_gpu = f" ({all_points:g} with a GPU)" if all_points != cpu_points else ""
        print(f"\n{ex_id}: {exercise.title}")
        print(f"  {cpu_points:g} point{'s' * (cpu_points != 1)} without a GPU{with_gpu}; {len(checks)} "
              f"check{'s' * (len(checks) != 1)}; time limit {exercise.timeout_s:g} s")
        if gpu:
            names = sorted({check_function(c["id"]) for c in gpu})
            print(f"  needs a GPU: {len(gpu)} check case(s) of {', '.join(names)} (skipped without one)")
        else:
            print("  needs a GPU: no")
    return 0


OUT_IS_SUBMISSIONS = "--out {out} is the submissions folder itself: the results would be read as students next time"
OUT_IS_SUBMISSIONS_TIP = "give --out a folder of its own, e.g. --out results (inside the submissions folder is fine)"


def cmd_grade(args) -> int:
    from . import lms
    from .batch import Outputs, grade_batch, local_executor, lock_out
    from .discover import Found, scan
    from .pipeline import Grader
    from .semester import LMS_STAGING, Semester, SemesterOptions

    assignment = load_assignment(args.rubrics)
    if not args.submissions.exists():  # checked before --out is made: a typo leaves no empty results folder
        raise ConfigError(f"{args.submissions}: no such folder or zip")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"{args.out}: --out must be a folder, and this is a file")
    if Path(args.out).resolve() == Path(args.submissions).resolve():
        raise ConfigError(OUT_IS_SUBMISSIONS.format(out=args.out), OUT_IS_SUBMISSIONS_TIP)
    lock = lock_out(args.out)  # held until this process ends; before anything is written under --out
    semester = Semester(args.out, assignment.rubrics_dir, SemesterOptions(
        args.policy, args.adjustments, args.roster, args.canvas_assignment, args.canvas_assignment_id))
    # An LMS download (Canvas, Moodle; zip or folder) is keyed by LMS ids; anything else by the
    # plain class-folder rules (a zip read in place).
    lms_notes: list[str] = []
    lms_entries = lms.discover(args.submissions, args.out / LMS_STAGING, notes=lms_notes)
    found = Found(lms_entries, lms_notes) if lms_entries is not None else scan(args.submissions, out=args.out)
    for note in found.notes:  # residue left out: the TA sees what was not graded, and why
        print(f"note: {for_terminal(note, one_line=True)}", file=sys.stderr)
    entries = found.entries
    if not entries:
        raise ConfigError(f"{args.submissions}: no submissions found",
                          "expected <student>.ipynb files or one folder per student holding one notebook")
    for warning in semester.check(entries, assignment.exercises):
        print(f"WARNING {for_terminal(warning)}", file=sys.stderr)
    outputs = Outputs(args.out, assignment, found.notes, semester)
    # Student code must not read the class's other notebooks or the grades.
    class_folders, warning = lms.folders_to_hide(args.submissions)  # a zip: the folder holding it
    if warning:
        print(f"WARNING {for_terminal(warning)}", file=sys.stderr)
    hidden = (*class_folders, args.out.resolve())
    jobs = args.jobs or os.cpu_count() or 1
    try:
        if args.executor == "dask":
            from .distributed import dask_executor

            executor, closer = dask_executor(assignment, jobs, args.scheduler, hidden)
        else:
            grader = Grader(assignment, jobs=jobs, hidden=hidden)
            executor, closer = local_executor(grader), grader.close
        try:
            summary = grade_batch(entries, outputs, executor, force=args.force)
        finally:
            closer()
    finally:
        outputs.close()
    print(f"{summary.found} submissions: {summary.graded} graded, {summary.skipped} unchanged (not graded again), "
          f"{summary.unusable} unusable; {summary.duration_s:.1f} s. Results in {for_terminal(args.out)}/ "
          f"(grades.csv, gradebook.sqlite, results/, gradescope/, feedback/, summary.html, index.json)")
    lock.close()
    return 0


def cmd_validate(args) -> int:
    from .pipeline import Grader
    from .validate import render_table, validate

    assignment = load_assignment(args.rubrics)
    variants = args.variants or assignment.root / "tests" / "variants"
    jobs = args.jobs or os.cpu_count() or 1
    with Grader(assignment, jobs=jobs) as grader:
        verdicts = validate(assignment, grader, variants, repeat=args.repeat)
        print(render_table(verdicts), flush=True)
        ok = all(v.ok for v in verdicts)
        if args.mutants or args.min_mutation_score is not None:
            from .validate import mutation_test, render_mutations

            reports = mutation_test(assignment, grader, limit=args.max_mutants)
            print(render_mutations(reports))
            if args.min_mutation_score is not None:
                weak = [r for r in reports if r.score < args.min_mutation_score]
                for r in weak:
                    _error(f"{r.exercise}: mutation score {r.score:.1%} is below --min-mutation-score "
                           f"{args.min_mutation_score:.1%}", "strengthen the rubric so the survivors above lose points")
                ok = ok and not weak
    return 0 if ok else 1


def cmd_assign(args) -> int:
    from .assign import assign

    assignment = load_assignment(args.rubrics)
    source, target = assignment.solution_notebook, assignment.exercise_notebook
    if not source.is_file():
        raise ConfigError(f"{source}: no solution notebook", "solutions/<assignment>.ipynb holds the solution regions")
    if args.check:
        if assign(source, target, check_only=True):
            print(f"{target} is up to date with {source}")
            return 0
        _error(f"{target} differs from what `grader assign` writes from {source}", "run `grader assign` and commit")
        return 1
    unchanged = assign(source, target)
    print(f"{'unchanged' if unchanged else 'wrote'} {target}")
    return 0


def cmd_new_exercise(args) -> int:
    from .authoring import new_exercise

    try:
        made = new_exercise(args.id, args.rubrics, args.assignment, args.title, args.lecture or "")
    except ConfigError as e:  # a refusal: nothing was written
        _error(str(e), e.tip)
        return EXIT_UNUSABLE
    print("\n".join([*(f"wrote {for_terminal(p)}" for p in made.written), "next:",
                     *(f"  {for_terminal(s)}" for s in made.next_steps)]))
    return 0


def cmd_similarity(args) -> int:
    from .batch import lock_out
    from .similarity import similarity_report

    assignment = load_assignment(args.rubrics)
    # It writes into OUT (its report, the summary's link): not while a `grader grade` writes there.
    lock = lock_out(args.out) if args.out.is_dir() else None  # noqa: F841 - held until this process ends
    report = similarity_report(args.out, assignment, top=args.top)
    print(f"{report.pairs} pairs compared over {report.students} students; report in {report.path}")
    for line in report.top_lines:
        print(f"  {line}")
    return 0


def add_semester_options(p) -> None:
    """grader/semester.py: the course policy, the TA's adjustments and the LMS's roster and assignment."""
    p.add_argument("--policy", type=Path, default=None,
                   help="the course's late policy YAML (default: policy.yml beside the rubrics, if any)")
    p.add_argument("--adjustments", type=Path, default=None,
                   help="manual adjustments CSV: student,exercise,change,comment,who (default: OUT/adjustments.csv)")
    p.add_argument("--roster", type=Path, default=None,
                   help="a roster/gradebook CSV exported from Canvas or Moodle: SIS ids, sections, e-mails")
    p.add_argument("--canvas-assignment", default=None, help="the Canvas assignment's name for canvas_gradebook.csv")
    p.add_argument("--canvas-assignment-id", default=None, help="the Canvas assignment's id, so the import matches it")


def _user_path(text: str) -> Path:
    """`--out=~/grades` reaches us with its `~` (the shell expands it only as a word of its own); absolute,
    because the gradebook records where each notebook is for later commands run from anywhere (similarity)."""
    return Path(text).expanduser().absolute()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grader", description="Grade PyTorch exercise notebooks.")
    parser.add_argument("--version", action="version", version=f"torchgrade {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help_: str):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--rubrics", type=Path, default=None,
                       help="a course's rubrics folder (default: the bundled pytorch_intro assignment; for `check`, the "
                            "bundled assignment whose exercises the notebook has)")
        p.set_defaults(func=func)
        return p

    p = add("check", cmd_check, "grade one notebook and show the score with a hint for every failed check")
    p.add_argument("notebook", type=Path)
    p.add_argument("--exercise", help="grade only this exercise")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--jobs", type=int, default=None, help="parallel workers (default: up to 2)")

    p = add("grade", cmd_grade, "grade every notebook under a folder (one per student) and write the class's results")
    p.add_argument("submissions", type=_user_path, help="<student>.ipynb files, or one folder per student")
    p.add_argument("--out", type=_user_path, required=True, help="where results, gradebook and reports go")
    p.add_argument("--jobs", type=int, default=None, help="parallel workers (default: the number of cores)")
    p.add_argument("--executor", choices=("local", "dask"), default="local")
    p.add_argument("--scheduler", default=None, help="with --executor dask: tcp://HOST:PORT of a running cluster")
    p.add_argument("--force", action="store_true", help="grade again even if nothing changed")
    add_semester_options(p)

    p = add("validate", cmd_validate,
            "prove the rubrics: solution full marks, stub zero, known-bad variants lose exactly their checks")
    p.add_argument("--variants", type=Path, default=None,
                   help="folder of <exercise>/<name>.py + .yml variants (default: tests/variants of the assignment)")
    p.add_argument("--repeat", type=int, default=1, help="grade each notebook N times and require identical results")
    p.add_argument("--mutants", action="store_true", help="also mutation-test the rubrics and report scores")
    p.add_argument("--max-mutants", type=int, default=None, help="a seeded sample of at most N mutants per exercise")
    p.add_argument("--min-mutation-score", type=float, default=None,
                   help="fail when an exercise's mutation score is below this share (0..1); implies --mutants")
    p.add_argument("--jobs", type=int, default=None, help="parallel workers (default: the number of cores)")

    p = add("assign", cmd_assign, "write exercises/ from solutions/ by replacing solution regions with stubs")
    p.add_argument("--check", action="store_true", help="only check that exercises/ is up to date")

    add("list", cmd_list, "list the exercises, their points and which checks need a GPU")

    p = add("new-exercise", cmd_new_exercise,
            "add an exercise from templates: its rubric, YAML entry, solution cell and a known-bad variant")
    p.add_argument("id", help="the exercise id, a lower-case identifier (the rubric is test_<id>.py)")
    p.add_argument("--assignment", help="with a --rubrics folder that does not exist yet: start the course NAME there")
    p.add_argument("--title", help="the exercise's title (default: from the id)")
    p.add_argument("--lecture", help="the lecture section it practises, for the YAML")

    p = add("similarity", cmd_similarity,
            "compare the students' exercise code of a graded class (as MOSS does) and write OUT/similarity.html")
    p.add_argument("out", type=Path, help="the --out folder of `grader grade`")
    p.add_argument("--top", type=int, default=10, help="pairs to list on the terminal")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UnusableSubmission as e:
        _error(str(e), e.tip)
        return EXIT_UNUSABLE
    except OutputBusy as e:
        _error(str(e), e.tip)
        return EXIT_UNUSABLE
    except ConfigError as e:
        _error(str(e), e.tip)
        return EXIT_GRADER
    except GraderCrash as e:
        _error(f"the grader itself failed: {e}", e.tip)
        return EXIT_GRADER
    except GraderError as e:
        _error(str(e), e.tip)
        return EXIT_GRADER
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:  # `grader check nb | head`
        sys.stderr.close()
        return EXIT_NOT_FULL
