#!/usr/bin/env python3
"""How fast `grader.check("ID")` answers in a notebook, against the rubric's own compute (issue 15, item 3).

    python bench/check_bench.py                        # lost_leaf, 9 rounds
    python bench/check_bench.py --exercise views --rounds 15

A real ipykernel kernel (jupyter_client), started as jupyter_server starts one for `student.ipynb`
(JPY_SESSION_NAME), runs the reference solution's cells and then `grader.check(ID)`: the first check
(it starts the grading service) and then `--rounds` more. Beside it, a floor process runs the same
exercise's rubric on the same module in one warm process without any sandbox (bench/floor.py's
floor: torch imported and warmed once, the grader's pytest arguments and fixtures, one torch thread).
Floor runs and checks alternate, so both see the same load. Target: second check <= floor + 0.3 s.

The check's time is taken in the kernel around the call (what the student waits for, minus drawing the
HTML) and, from outside, as the round trip of the execute request (what the front-end waits for).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))
TARGET_OVERHEAD_S = 0.3


def floor_server(rubrics: str, notebook: str, exercise_id: str) -> None:
    """`_floor`: warm up as a grader worker does, then time one in-process rubric run per stdin line."""
    from floor import rubric_run

    from grader.assignment import load_assignment
    from grader.extract import extract_exercises
    from grader.read import read_submission

    assignment = load_assignment(rubrics)
    threads = assignment.cpu_threads
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    import torch

    from grader import forkserver

    torch.set_num_threads(threads)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # pytest's progress dots
    forkserver.warm_up()
    torch.set_num_threads(threads)
    exercise = assignment.exercises[exercise_id]
    source = extract_exercises(read_submission(notebook).notebook, [exercise_id])[0][exercise_id]
    rootdir = tempfile.mkdtemp(prefix="check-floor-")
    rubric_run(exercise, source, rootdir)  # the rubric's import, once, as in any warm process
    out.write("ready\n")
    for _ in sys.stdin:
        run = rubric_run(exercise, source, rootdir)
        out.write(json.dumps({"wall_s": run["wall_s"], "checks_s": run["checks_s"], "failed":
                              sorted(k for k, v in run["checks"].items() if v["status"] in ("failed", "error"))}) + "\n")


class Kernel:
    def __init__(self, cwd: Path, notebook: Path):
        from jupyter_client.manager import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(cwd), env={**os.environ, "JPY_SESSION_NAME": str(notebook)})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str) -> tuple[float, str]:
        """Execute `code`; the round trip and the text of its result (or its error)."""
        self._last = ""
        started = time.perf_counter()
        reply = self.kc.execute_interactive(code, timeout=600, output_hook=self._keep)
        wall = time.perf_counter() - started
        if reply["content"]["status"] != "ok":
            raise SystemExit(f"{code!r} failed in the kernel: {reply['content'].get('evalue')}")
        return wall, self._last

    def _keep(self, msg) -> None:
        if msg["msg_type"] == "execute_result":
            self._last = msg["content"]["data"]["text/plain"]

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exercise", default="lost_leaf")
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args()

    import nbformat

    from grader.assign import add_check_cells
    from grader.assignment import load_assignment
    from grader.extract import exercise_id_of

    assignment = load_assignment()
    work = Path(tempfile.mkdtemp(prefix="check-bench-"))
    nb = nbformat.read(str(assignment.solution_notebook), as_version=4)
    add_check_cells(nb)
    path = work / "student.ipynb"
    nbformat.write(nb, str(path))
    cells = [c.source for c in nb.cells if c.cell_type == "code" and (exercise_id_of(c) in (None, args.exercise))
             and "grader.check" not in c.source]

    floor = subprocess.Popen([sys.executable, __file__, "_floor", str(assignment.rubrics_dir), str(path), args.exercise],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    kernel = Kernel(work, path)
    try:
        for source in cells:  # the student ran their notebook
            kernel.run(source)
        call = (f"_t = time.perf_counter(); _a = grader.check({args.exercise!r}); "
                "(time.perf_counter() - _t, _a.score, _a.max_score, _a.result.exercises[0].status)")
        kernel.run("import time, grader")
        first_trip, first = kernel.run(call)
        assert floor.stdout.readline().strip() == "ready"
        load0 = open("/proc/loadavg").read().split()[:3]
        floors, checks, trips = [], [], []
        for _ in range(args.rounds):
            floor.stdin.write("run\n")
            floor.stdin.flush()
            run = json.loads(floor.stdout.readline())
            floors.append(run["wall_s"])
            trip, text = kernel.run(call)
            in_kernel, score, max_score, status = eval(text)  # noqa: S307 - a tuple our own kernel printed
            checks.append(in_kernel)
            trips.append(trip)
        load1 = open("/proc/loadavg").read().split()[:3]
    finally:
        kernel.close()
        floor.stdin.close()
        floor.wait()
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    first_s = eval(first)[0]  # noqa: S307
    overhead = med(checks) - med(floors)
    print(f"grader.check({args.exercise!r}) in a notebook kernel; {os.cpu_count()} cores, load {' '.join(load0)} -> "
          f"{' '.join(load1)}; {args.rounds} rounds, median [min]; score {score:g} / {max_score:g} ({status})\n")
    print("| what | wall |\n| --- | --- |")
    print(f"| first check (starts the grading service: worker, torch, rubrics) | {first_s:.2f} s (round trip {first_trip:.2f} s) |")
    print(f"| floor: the rubric in a warm process, no sandbox | {med(floors):.3f} s [{min(floors):.3f}] |")
    print(f"| second check, in the kernel | {med(checks):.3f} s [{min(checks):.3f}] |")
    print(f"| second check, execute round trip (front-end view) | {med(trips):.3f} s [{min(trips):.3f}] |")
    print(f"| second check - floor (target <= {TARGET_OVERHEAD_S} s) | {overhead:+.3f} s: "
          f"{'within' if overhead <= TARGET_OVERHEAD_S else 'OVER'} target |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_floor":
        floor_server(*sys.argv[2:5])
    else:
        main()
