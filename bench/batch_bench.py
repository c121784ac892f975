#!/usr/bin/env python3
"""Batch-grading benchmark of torchgrade (issue 5, item 6); bench/README.md says what each number means.

    python bench/batch_bench.py                 # class of 40: floor, `grader grade`, nbgrader, table
    python bench/batch_bench.py --skip-nbgrader # without the nbgrader part (about 5 minutes less)
    python bench/batch_bench.py --single        # `grader check` on one exercise vs `import torch` vs its floor
    python bench/batch_bench.py --add-nohang    # after a run: the same class without the hang student
    python bench/batch_bench.py --redo-nbgrader # after a run: nbgrader measured again
    python bench/batch_bench.py --report-only   # the table of the last run again

Everything it writes goes under --work (default bench/out/, git-ignored); the table is printed and
also saved as <work>/table.md, the raw numbers as <work>/raw.json. The parts, one module each:
classgen.py (the class), floor.py (the floor process), nbgrader_compare.py and nbcheck.py (nbgrader),
probes.py (where the grader's time goes), table.py (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from classgen import generate, notebook, variants_of
from common import BENCH, REPO, SINGLE_EXERCISE, children_cpu, load, log
from table import agreement, job_probe_table, summarize

# floor.py, probes.py and nbgrader_compare.py import torch (with the grader's plugin): imported where
# they are used, so that `--help` and `--report-only` answer at once.

DEFAULT_WORK = BENCH / "out"
DEFAULT_VENV = BENCH / ".venv-nbgrader"


def run_torchgrade(work: Path, jobs: int, rubrics: str | None, class_dir: Path | None = None,
                   name: str = "torchgrade") -> dict:
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["grader", "grade", str(class_dir or work / "class"), "--out", str(out), "--jobs", str(jobs), "--force"]
    if rubrics:
        cmd += ["--rubrics", rubrics]
    before = load()
    start_epoch = time.time()
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    results = {}
    mtimes = []
    # Result files are named by a stem of the student id (grader.discover.file_stem); index.json maps them back.
    for student, files in sorted(json.loads((out / "index.json").read_text()).items()):
        path = out / files["results"]
        mtimes.append(path.stat().st_mtime - start_epoch)
        results[student] = json.loads(path.read_text())
    return {"wall_s": wall, "cpu_s": cpu, "load": [before, load()], "first_result_s": min(mtimes), "last_result_s": max(mtimes),
            "results": results, "stdout": proc.stdout.strip()}


def single(work: Path, repeat: int) -> str:
    import nbformat
    from floor import run_floor

    from grader.assignment import load_assignment

    work.mkdir(parents=True, exist_ok=True)
    assignment = load_assignment()
    if SINGLE_EXERCISE not in assignment.exercises:
        raise SystemExit(f"{SINGLE_EXERCISE} is not in {assignment.config_path}")
    name, code = variants_of(SINGLE_EXERCISE)[0][0]
    one = work / "single"
    shutil.rmtree(one, ignore_errors=True)
    (one / "class").mkdir(parents=True)
    nbformat.write(notebook(["import torch", f"# exercise: {SINGLE_EXERCISE}\n{code}"]), one / "class" / "one.ipynb")
    # A one-exercise class for the floor machinery: only lost_leaf is timed (the others are absent).
    manifest = {"seed": 0, "n": 1, "exercises": [SINGLE_EXERCISE], "students": {"one": {SINGLE_EXERCISE: name}},
                "hang": [None, None], "syntax_error": None, "rubrics": str(assignment.rubrics_dir)}
    (one / "class.json").write_text(json.dumps(manifest))

    def timed(cmd) -> list[float]:
        walls = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
        return walls

    results = {}
    load0 = load()
    results["python -c 'import torch'"] = timed([sys.executable, "-c", "import torch"])
    results["grader check one.ipynb (default --jobs)"] = timed(["grader", "check", str(one / "class" / "one.ipynb")])
    results["grader check one.ipynb --jobs 1"] = timed(["grader", "check", str(one / "class" / "one.ipynb"),
                                                        "--jobs", "1"])
    floor = run_floor(one, repeat=5)
    row = next(r for r in floor["rows"] if r["exercise"] == SINGLE_EXERCISE)
    lines = [f"--single on this machine ({os.cpu_count()} cores); load {load0} -> {load()}; "
             f"exercise {SINGLE_EXERCISE} ({name}), {repeat} runs each, median [min]", "",
             "| what | wall |", "| --- | --- |"]
    for what, walls in results.items():
        lines.append(f"| `{what}` | {statistics.median(walls):.2f} s [{min(walls):.2f}] |")
    lines.append(f"| {SINGLE_EXERCISE} floor: its rubric in a warm process (best of 5) | {row['floor_s']:.3f} s |")
    lines.append(f"| ... of which the checks themselves (pytest setup+call+teardown) | {row['checks_s']:.3f} s |")
    lines.append(f"| ... the first run in a fresh warm process (rubric import + assert rewrite) "
                 f"| {floor['first_runs_s'][SINGLE_EXERCISE]:.3f} s |")
    lines.append(f"| worker warm-up after `import torch` (torch._dynamo, gradcheck) | {floor['warm_up_s']:.2f} s |")
    text = "\n".join(lines)
    (work / "single.md").write_text(text + "\n")
    (work / "single.json").write_text(json.dumps({"walls": results, "floor": floor}, indent=1))
    return text


# -- main ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help="work folder (default bench/out/)")
    p.add_argument("-n", "--students", type=int, default=40)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--rubrics", default=None, help="another rubrics folder (default: the bundled assignment)")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the benchmark-only nbgrader virtualenv")
    p.add_argument("--skip-nbgrader", action="store_true")
    p.add_argument("--skip-probes", action="store_true", help="skip the per-stage probes")
    p.add_argument("--single", action="store_true", help="only the one-exercise `grader check` comparison")
    p.add_argument("--report-only", action="store_true", help="print the table of the last run in --work again")
    p.add_argument("--redo-nbgrader", action="store_true", help="after a run: measure nbgrader again, keep the rest")
    p.add_argument("--add-nohang", action="store_true",
                   help="after a run: grade the same class without the hang student, add it to the table")
    p.add_argument("--repeat", type=int, default=3, help="--single: runs of each command")
    p.add_argument("--child-vs-floor", nargs="+", metavar="EXERCISE",
                   help="only: the solution's checks in a worker's child vs in the floor process, 8 runs each")
    args = p.parse_args(argv)
    work = args.work.resolve()
    if args.single:
        print(single(work, args.repeat))
        return 0
    if args.child_vs_floor:
        from probes import child_vs_floor

        for exercise_id in args.child_vs_floor:
            print(child_vs_floor(exercise_id, 8))
        return 0
    if args.report_only:
        return report(work)
    if args.add_nohang:
        return add_nohang(work)
    if args.redo_nbgrader:
        return redo_nbgrader(work, args.venv)
    from floor import run_floor
    from nbgrader_compare import run_nbgrader
    from probes import run_job_probe, stage_probes

    from grader.assignment import load_assignment

    work.mkdir(parents=True, exist_ok=True)
    # One snapshot of the rubrics for all three measurements (other people edit rubrics/ meanwhile).
    source = Path(args.rubrics).resolve() if args.rubrics else REPO / "rubrics"
    snapshot = work / "assignment" / "rubrics"
    shutil.rmtree(snapshot.parent, ignore_errors=True)
    shutil.copytree(source, snapshot, ignore=shutil.ignore_patterns("__pycache__"))
    # Calibrated speed thresholds are measured against the reference solution beside the rubrics
    # (grader/calibration.py): without it `grader grade` refuses the assignment.
    if (source.parent / "solutions").is_dir():
        shutil.copytree(source.parent / "solutions", snapshot.parent / "solutions")
    args.rubrics = str(snapshot)
    assignment = load_assignment(snapshot)
    log(f"generating {args.students} notebooks ({', '.join(assignment.exercises)}) in {work / 'class'}")
    manifest = generate(work, assignment, args.students, args.seed)
    log("floor: every exercise of every submission in one warm process")
    floor = run_floor(work)
    floor_parallel = None
    if args.jobs > 1:
        log(f"floor, {args.jobs} processes at once, each a share of the class")
        floor_parallel = run_floor(work, parts=args.jobs)
    log(f"torchgrade: grader grade --jobs {args.jobs}")
    tg = run_torchgrade(work, args.jobs, args.rubrics)
    nbg = None
    if not args.skip_nbgrader:
        log("nbgrader: generate_assignment + autograde")
        nbg = run_nbgrader(work, manifest, assignment, args.venv, floor)
    probes = jobprobe = None
    if not args.skip_probes:
        try:
            log("probes: worker start-up, collection job, outputs per student")
            probes = stage_probes(work, assignment, tg, args.jobs)
            log("probes: one sandboxed exercise run taken apart")
            jobprobe = run_job_probe(work)
        except Exception as e:  # noqa: BLE001 - the main table matters more than the probes
            log(f"probes failed: {type(e).__name__}: {e}")
    raw = {"manifest": manifest, "floor": floor, "floor_parallel": floor_parallel, "torchgrade": tg, "nbgrader": nbg,
           "probes": probes, "jobprobe": jobprobe, "jobs": args.jobs, "seed": args.seed}
    (work / "raw.json").write_text(json.dumps(raw, default=str))
    return report(work)


def redo_nbgrader(work: Path, venv: Path) -> int:
    from nbgrader_compare import run_nbgrader

    from grader.assignment import load_assignment

    raw = json.loads((work / "raw.json").read_text())
    assignment = load_assignment(work / "assignment" / "rubrics")
    log("nbgrader again: generate_assignment + autograde")
    raw.setdefault("nbgrader_earlier", []).append(raw.get("nbgrader"))
    raw["nbgrader"] = run_nbgrader(work, raw["manifest"], assignment, venv, raw["floor"])
    (work / "raw.json").write_text(json.dumps(raw, default=str))
    return report(work)


def add_nohang(work: Path) -> int:
    """`grader grade` on the class without the hanging student: the grader's overhead without the
    hang's 30 s tail (which no grader can shorten), against the floors of the same notebooks."""
    raw = json.loads((work / "raw.json").read_text())
    hang = raw["manifest"]["hang"][0]
    folder = work / "class-nohang"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for nb in sorted((work / "class").glob("*.ipynb")):
        if nb.stem != hang:
            shutil.copy(nb, folder / nb.name)
    log(f"torchgrade without {hang}: grader grade --jobs {raw['jobs']}")
    raw["nohang"] = run_torchgrade(work, raw["jobs"], str(work / "assignment" / "rubrics"), class_dir=folder,
                                   name="torchgrade-nohang")
    (work / "raw.json").write_text(json.dumps(raw, default=str))
    return report(work)


def report(work: Path) -> int:
    """The table from <work>/raw.json (`--report-only` rebuilds it without measuring again)."""
    raw = json.loads((work / "raw.json").read_text())
    manifest, floor, tg, nbg = raw["manifest"], raw["floor"], raw["torchgrade"], raw["nbgrader"]
    probes, jobprobe, jobs, seed = raw["probes"], raw["jobprobe"], raw["jobs"], raw["seed"]
    table = summarize(manifest, floor, tg, nbg, probes, jobs, raw.get("nohang"), raw.get("floor_parallel"))
    for earlier in raw.get("nbgrader_earlier") or ():
        if earlier:
            table += (f"\n\nAn earlier nbgrader run on the same course, its test cells calling pytest without "
                      f"`-p no:unraisableexception` (so with pytest's gc.collect() x5 per test cell): "
                      f"{earlier['wall_s']:.1f} s, {earlier['wall_s'] / manifest['n']:.2f} s per notebook, "
                      f"CPU {earlier['cpu_s']:.1f} s (load {earlier['load'][0]} -> {earlier['load'][1]}); "
                      f"{earlier['wall_s'] / tg['wall_s']:.1f}x torchgrade's batch wall.")
    if jobprobe:
        table += "\n\n" + job_probe_table(jobprobe)
    head = (f"torchgrade batch benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
            f"seed {seed}; hang: {manifest['hang'][0]}/{manifest['hang'][1]}, syntax error: "
            f"{(manifest['syntax_error'] or ['-', '-'])[0]}/{(manifest['syntax_error'] or ['-', '-'])[1]}")
    text = f"{head}\n\n{table}\n\n{agreement(manifest, floor, tg, nbg)}"
    print(text)
    (work / "table.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
