"""Evidence for issue 12: beat_pdist's speed verdict, graded many times, in environments that used to change it.

Grades notebooks holding only the `beat_pdist` exercise, `--runs` times each (interleaved: run 1 of
every submission, then run 2, ...), through the real grader (warm workers, sandboxed runs), in each
environment, and prints one table: passes per submission and environment, and the measured ratios,
thresholds and the reference solution's own speed-up (calibration) behind them.

Submissions: the reference solution (solutions/), two other correct formulations (`ok_triu_mask`, and
`ok_cdist`, the one nearest the threshold), the lecture's `lunif2` with its `t=2` line removed, the
lecture's pdist version under the new name, and a Python loop over the pairs.

Environments:
  quiet     nothing else on purpose (the machine's other load is shown as the load average)
  busy      one core kept busy by a spinning process for the whole run
  malloc    MALLOC_TRIM_THRESHOLD_=65536 in the grader's environment (what a Dask nanny sets)
  dask      --executor dask: a LocalCluster (whose nanny sets MALLOC_TRIM_THRESHOLD_ itself)
  taskset   the grader and its workers pinned to one core (taskset -c 0)
  quota     a CPU quota of --quota CPUs (cgroup v2 cpu.max, else cgroup v1 cpu.cfs_quota_us, else
            systemd-run -p CPUQuota=); where none can be set, the row says so

    python bench/timing_bench.py                       # 20 runs x 6 submissions x 6 environments
    python bench/timing_bench.py --runs 5 --envs quiet,malloc --jobs 1
    python bench/timing_bench.py --report-only         # the table again from --work's raw.jsonl

Every raw line goes to `--work`/raw.jsonl (default bench/out/timing/).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = REPO / "tests" / "variants" / "beat_pdist"
SOLUTION = REPO / "solutions" / "pytorch_intro.ipynb"
ENVS = ("quiet", "busy", "malloc", "dask", "taskset", "quota")
# (name, should pass the speed check)
SUBMISSIONS = (("solution", True), ("ok_triu_mask", True), ("ok_cdist", True), ("lunif2_t_fixed", True),
               ("calls_torch_pdist", False), ("slow_python_loop", False))
SPEED = "test_faster_than_pdist[cpu]"
CGROUP_NAME = "torchgrade-timing-bench"


def solution_source() -> str:
    import nbformat

    from grader.extract import exercise_id_of

    nb = nbformat.read(str(SOLUTION), as_version=4)
    cell = next(c for c in nb.cells if exercise_id_of(c) == "beat_pdist")
    return cell.source.split("\n", 1)[1]


def source_of(name: str) -> str:
    if name == "solution":
        return solution_source()
    if name == "lunif2_t_fixed":  # the lecture's lunif2 without the line that overwrites t
        code = (VARIANTS / "lecture_lunif2.py").read_text()
        return "\n".join(line for line in code.splitlines() if line.strip() != "t=2") + "\n"
    return (VARIANTS / f"{name}.py").read_text()


def write_class(folder: Path) -> dict[str, Path]:
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, _ in SUBMISSIONS:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("import torch"),
                    nbformat.v4.new_code_cell("# exercise: beat_pdist\n" + source_of(name))]
        paths[name] = folder / f"{name}.ipynb"
        nbformat.write(nb, str(paths[name]))
    return paths


NUMBER = r"([\d.]+)×"


def measured(message: str) -> dict:
    """ratio, threshold and the reference solution's speed-up, read from the check's feedback."""
    out = {}
    if m := re.search(NUMBER, message):
        out["ratio"] = float(m.group(1))
    if m := re.search(r"threshold (?:on [^\n]*? is )?" + NUMBER, message):
        out["threshold"] = float(m.group(1))
    if m := re.search(r"reached " + NUMBER + " here", message):
        out["reference"] = float(m.group(1))
    return out


# -- inner: one environment, in a process of its own -----------------------------------------------


def inner(env: str, runs: int, jobs: int, folder: Path, raw: Path) -> None:
    from grader import Grader, load_assignment
    from grader.batch import Entry

    paths = write_class(folder)
    assignment = load_assignment()
    def record(name, run, result, seconds):
        check = {c.id: c for c in result.exercise("beat_pdist").checks}[SPEED]
        rec = {"env": env, "name": name, "run": run, "status": check.status, "seconds": round(seconds, 2),
               **measured(check.message), "message": check.message.splitlines()[0][:300]}
        with raw.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    if env == "dask":
        from grader.distributed import dask_executor

        executor, closer = dask_executor(assignment, jobs, None, ())
        try:
            for run in range(runs):
                entries = [Entry(student=name, path=paths[name]) for name, _ in SUBMISSIONS]
                started = time.monotonic()
                for entry, result, problem in executor(entries):
                    if result is None:
                        raise RuntimeError(problem)
                    record(entry.student, run, result, time.monotonic() - started)
        finally:
            closer()
        return
    with Grader(assignment, jobs=jobs) as grader:
        for run in range(runs):
            for name, _ in SUBMISSIONS:
                started = time.monotonic()
                record(name, run, grader.grade(paths[name], only="beat_pdist"), time.monotonic() - started)


# -- outer: the environments ------------------------------------------------------------------------


def quota_wrapper(cpus: float) -> tuple[list[str], callable, str]:
    """(command prefix, preexec function, how) that run a process under a CPU quota, or raise OSError."""
    period = 100_000
    quota = int(cpus * period)
    v2 = Path("/sys/fs/cgroup")
    for root in (v2, v2 / "unified"):
        if "cpu" in (root / "cgroup.controllers").read_text().split() if (root / "cgroup.controllers").exists() else ():
            group = root / CGROUP_NAME
            group.mkdir(exist_ok=True)
            (group / "cpu.max").write_text(f"{quota} {period}")
            return [], _join(group / "cgroup.procs"), f"cgroup v2 {group}/cpu.max = {quota} {period}"
    v1 = Path("/sys/fs/cgroup/cpu")
    if (v1 / "cpu.cfs_quota_us").exists():
        group = v1 / CGROUP_NAME
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(str(period))
        (group / "cpu.cfs_quota_us").write_text(str(quota))
        return [], _join(group / "cgroup.procs"), f"cgroup v1 {group}: cpu.cfs_quota_us={quota}, period {period}"
    probe = subprocess.run(["systemd-run", "--scope", "-p", f"CPUQuota={int(cpus * 100)}%", "true"],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        return (["systemd-run", "--scope", "-p", f"CPUQuota={int(cpus * 100)}%"], None,
                f"systemd-run --scope -p CPUQuota={int(cpus * 100)}%")
    raise OSError(f"no way to set a CPU quota here (no writable cgroup cpu controller; systemd-run: "
                  f"{probe.stderr.strip()[:100]})")


def _join(procs: Path):
    def preexec():
        procs.write_text(str(os.getpid()))
    return preexec


def quota_enforced(preexec) -> str:
    """How much CPU a process spinning for 1 s of wall time got under the quota (the check that it bites)."""
    code = ("import time,resource\nt=time.time()\nwhile time.time()-t<1: pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_utime)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=preexec)
    return out.stdout.strip()


def outer(args) -> int:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "raw.jsonl"
    notes = work / "notes.jsonl"
    for env in args.envs.split(","):
        if env not in ENVS:
            print(f"unknown environment {env!r} (known: {', '.join(ENVS)})")
            return 2
    for env in args.envs.split(","):
        cmd = [sys.executable, __file__, "--inner", env, "--runs", str(args.runs), "--jobs", str(args.jobs),
               "--work", str(work)]
        environ = {**os.environ}
        preexec, busy, how = None, None, ""
        if env == "malloc":
            environ["MALLOC_TRIM_THRESHOLD_"] = "65536"
        elif env == "taskset":
            cmd = ["taskset", "-c", "0", *cmd]
        elif env == "busy":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            how = f"spinner pid {busy.pid}"
        elif env == "quota":
            try:
                prefix, preexec, how = quota_wrapper(args.quota)
            except OSError as e:
                _note(notes, env, f"not run: {e}")
                print(f"[quota] not run: {e}")
                continue
            how += f"; a 1 s spin got {quota_enforced(preexec)} s of CPU under it"
            cmd = [*prefix, *cmd]
        load = Path("/proc/loadavg").read_text().split()[:3]
        started = time.monotonic()
        print(f"[{env}] {how} load {' '.join(load)}", flush=True)
        try:
            rc = subprocess.run(cmd, env=environ, preexec_fn=preexec).returncode
        finally:
            if busy is not None:
                busy.send_signal(signal.SIGKILL)
                busy.wait()
        _note(notes, env, f"{how}; load {' '.join(load)} -> {' '.join(Path('/proc/loadavg').read_text().split()[:3])}; "
                          f"{time.monotonic() - started:.0f} s; rc {rc}")
    if args.quota_cleanup:
        for group in (Path("/sys/fs/cgroup") / CGROUP_NAME, Path("/sys/fs/cgroup/unified") / CGROUP_NAME,
                      Path("/sys/fs/cgroup/cpu") / CGROUP_NAME):
            if group.is_dir():
                group.rmdir()
    print(report(raw, notes))
    return 0


def _note(notes: Path, env: str, text: str) -> None:
    with notes.open("a") as f:
        f.write(json.dumps({"env": env, "note": text}) + "\n")


def report(raw: Path, notes: Path) -> str:
    records = [json.loads(line) for line in raw.read_text().splitlines()] if raw.exists() else []
    envs = [e for e in ENVS if any(r["env"] == e for r in records)]
    lines = ["| submission | expected | " + " | ".join(envs) + " |", "| --- | --- | " + " | ".join("---" for _ in envs) + " |"]
    for name, should_pass in SUBMISSIONS:
        cells = []
        for env in envs:
            rs = [r for r in records if r["env"] == env and r["name"] == name]
            if not rs:
                cells.append("-")
                continue
            passed = sum(r["status"] == "passed" for r in rs)
            ratios = sorted(r["ratio"] for r in rs if "ratio" in r)
            span = f" ({ratios[0]:.2f}-{ratios[-1]:.2f}x)" if ratios else ""
            ok = passed >= len(rs) * 19 / 20 if should_pass else passed == 0
            cells.append(f"{'' if ok else '**'}{passed}/{len(rs)}{'' if ok else '**'}{span}")
        lines.append(f"| {name} | {'pass' if should_pass else 'fail'} | " + " | ".join(cells) + " |")
    thr = []
    for env in envs:
        rs = [r for r in records if r["env"] == env and "threshold" in r]
        if rs:
            t = sorted(r["threshold"] for r in rs)
            ref = sorted(r["reference"] for r in rs if "reference" in r)
            thr.append(f"| {env} | {t[0]:.2f}-{t[-1]:.2f}x | " + (f"{ref[0]:.2f}-{ref[-1]:.2f}x" if ref else "-") + " |")
    lines += ["", "| environment | threshold (calibrated) | reference solution's speed-up (calibration) |",
              "| --- | --- | --- |", *thr]
    if notes.exists():
        lines += ["", "Environments:"] + [f"- {n['env']}: {n['note']}" for n in map(json.loads, notes.read_text().splitlines())]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20, help="gradings of each submission per environment (20)")
    parser.add_argument("--envs", default=",".join(ENVS), help=f"comma-separated, of {', '.join(ENVS)}")
    parser.add_argument("--jobs", type=int, default=1, help="grading workers (1)")
    parser.add_argument("--quota", type=float, default=0.5, help="CPUs the quota environment allows (0.5)")
    parser.add_argument("--work", default=str(REPO / "bench" / "out" / "timing"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    parser.add_argument("--quota-cleanup", action="store_true", default=True, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work)
    if args.inner:
        inner(args.inner, args.runs, args.jobs, work / "class", work / "raw.jsonl")
        return 0
    if args.report_only:
        print(report(work / "raw.jsonl", work / "notes.jsonl"))
        return 0
    return outer(args)


if __name__ == "__main__":
    sys.exit(main())
