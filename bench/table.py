"""The batch benchmark's table: floor, `grader grade` and nbgrader side by side (bench/README.md says
what each line means), and whether the three gave the same scores."""

from __future__ import annotations

from common import SINGLE_EXERCISE


def order_bound(rows: list[dict], jobs: int) -> float:
    """The batch wall of a grader with `jobs` workers and no overhead at all that takes the runs in
    `grader grade`'s order (student by student, exercises in the YAML's order), each run going to the
    first free worker: a run that starts late (the hang in the last student) cannot be hidden."""
    free = [0.0] * jobs
    for r in rows:
        i = free.index(min(free))
        free[i] += r["floor_s"]
    return max(free)


def summarize(manifest, floor, tg, nbg, probes, jobs, nohang=None, floor_parallel=None) -> str:
    n = manifest["n"]
    rows = floor["rows"]
    hang_timeout = manifest_timeout(manifest, floor)
    sum_floor = sum(r["floor_s"] for r in rows)
    hang_student = manifest["hang"][0]
    sum_floor_no_hang = sum(r["floor_s"] for r in rows if r["student"] != hang_student)
    checks_floor = sum(r["checks_s"] for r in rows)
    grader_checks = sum(c["duration_s"] for d in tg["results"].values() for e in d.get("exercises", ())
                        for c in e["checks"])
    grader_sub = sum(d.get("duration_s", 0) for d in tg["results"].values())
    hang_sub = tg["results"].get(hang_student, {}).get("duration_s", 0)
    # Without the hang: the other submissions' own grading times, shared over the jobs (an estimate).
    wall = tg["wall_s"]
    lines = []
    add = lines.append
    add("| quantity | value |")
    add("| --- | --- |")
    add(f"| submissions x exercises | {n} x {len(manifest['exercises'])} ({', '.join(manifest['exercises'])}) |")
    add(f"| jobs (`--jobs`) | {jobs} |")
    add(f"| torchgrade batch wall (`grader grade --force`) | {wall:.1f} s (load {tg['load'][0]} -> {tg['load'][1]}) |")
    add(f"| per-submission wall = batch wall x jobs / n | {wall * jobs / n:.2f} s |")
    add(f"| sum of floors (in-process rubric runs; hang = its {manifest_timeout(manifest, floor):g} s timeout) "
        f"| {sum_floor:.1f} s (load {floor['load'][0]} -> {floor['load'][1]}) |")
    add(f"| floor / jobs | {sum_floor / jobs:.1f} s |")
    add(f"| **ratio batch wall / (floor / jobs)**, target <= 1.25 | **{wall / (sum_floor / jobs):.2f}** |")
    per_student = {}
    for r in rows:
        per_student[r["student"]] = per_student.get(r["student"], 0.0) + r["floor_s"]
    bound = max(sum_floor / jobs, max(per_student.values()))
    add(f"| bound for any grader: max(floor / jobs, the longest submission's floor) | {bound:.1f} s "
        f"(batch wall / bound: {wall / bound:.2f}) |")
    in_order = order_bound(rows, jobs)
    add(f"| bound for a grader without any overhead that grades in `grader grade`'s order (student by student, "
        f"each run to the first free of {jobs} workers; the floors above) | {in_order:.1f} s = {in_order / (sum_floor / jobs):.2f} "
        f"x floor / jobs (batch wall / this bound: {wall / in_order:.2f}) |")
    if floor_parallel:
        par_rows = floor_parallel["rows"]
        sum_par = sum(r["floor_s"] for r in par_rows)
        checks_par = sum(r["checks_s"] for r in par_rows)
        add(f"| sum of floors measured {jobs} at a time ({jobs} floor processes at once, each a share of the class) "
            f"| {sum_par:.1f} s ({sum_par / sum_floor:.2f} x the floors measured alone; their checks {checks_par:.1f} s) "
            f"(load {floor_parallel['load'][0]} -> {floor_parallel['load'][1]}) |")
        par_order = order_bound(par_rows, jobs)
        add(f"| the same bound with the floors measured {jobs} at a time | {par_order:.1f} s "
            f"(**batch wall / this bound: {wall / par_order:.2f}**, the grader's own overhead) |")
    add(f"| sum of floors without the hang student | {sum_floor_no_hang:.1f} s |")
    cpu_floor = sum(r.get("cpu_s", 0.0) for r in rows)

    def cpu_ratio(cpu):  # the hang spins for up to its timeout: how much CPU it got depends on the load
        return f"{max(cpu - hang_timeout, 0) / cpu_floor:.2f} .. {cpu / cpu_floor:.2f}"

    add(f"| CPU: torchgrade, all its processes (`grader`, workers, sandboxed children; the hang's spinning "
        f"included, at most {hang_timeout:g} s) | {tg['cpu_s']:.1f} s |")
    add(f"| CPU: floors without the hang (in-process rubric runs) | {cpu_floor:.1f} s |")
    add(f"| **CPU ratio torchgrade / floors** (load-robust view; range: hang's spinning counted as {hang_timeout:g} s .. 0 s) "
        f"| **{cpu_ratio(tg['cpu_s'])}** |")
    add(f"| sum of per-check pytest durations, floor process (setup+call+teardown) | {checks_floor:.1f} s |")
    add(f"| sum of check `duration_s` in grader's results (cross-check) | {grader_checks:.1f} s |")
    add(f"| sum of submission `duration_s` in grader's results | {grader_sub:.1f} s (hang student {hang_sub:.1f} s) |")
    add(f"| time to first result written (worker start-up + collection + first submission) "
        f"| {tg['first_result_s']:.1f} s |")
    if nbg:
        label = nbg["kind"]
        add(f"| {label} total (sequential, one kernel per notebook) | {nbg['wall_s']:.1f} s "
            f"(load {nbg['load'][0]} -> {nbg['load'][1]}) |")
        add(f"| {label} per notebook | {nbg['wall_s'] / n:.2f} s |")
        add(f"| **throughput torchgrade / nbgrader** (wall), target >= 5 | **{nbg['wall_s'] / wall:.1f}x** |")
        add(f"| CPU: nbgrader autograde, all its processes (kernels included) | {nbg['cpu_s']:.1f} s |")
        add(f"| CPU ratio nbgrader / torchgrade | {nbg['cpu_s'] / tg['cpu_s']:.1f}x |")
    if nohang:
        nw = nohang["wall_s"]
        cpu_nohang_floor = sum(r.get("cpu_s", 0.0) for r in rows if r["student"] != hang_student)
        add(f"| torchgrade on the {n - 1} notebooks without the hang: batch wall | {nw:.1f} s "
            f"(load {nohang['load'][0]} -> {nohang['load'][1]}) |")
        add(f"| ... ratio to their floors / jobs ({sum_floor_no_hang:.1f} s / {jobs}); CPU ratio to their floors' CPU "
            f"| **{nw / (sum_floor_no_hang / jobs):.2f}**; {nohang['cpu_s']:.1f} s / {cpu_nohang_floor:.1f} s = "
            f"**{nohang['cpu_s'] / cpu_nohang_floor:.2f}** |")
        add(f"| ... time to first result | {nohang['first_result_s']:.1f} s |")
    if probes:
        add(f"| probe: {jobs} workers ready (python + torch + warm-up, in parallel) | {probes['workers_ready_s']:.2f} s |")
        add(f"| probe: collection job (all rubrics, one sandboxed child) | {probes['collect_job_s']:.2f} s |")
        add(f"| probe: writing one student's outputs (median; of which feedback page / gradebook row) "
            f"| {probes['record_median_s']:.3f} s ({probes['feedback_median_s']:.3f} / {probes['gradebook_median_s']:.3f}); "
            f"first {probes['record_first_s']:.2f} s |")
    return "\n".join(lines)


def manifest_timeout(manifest, floor) -> float:
    return next((r["floor_s"] for r in floor["rows"] if r["variant"] == "__hang__"), 0.0)


def agreement(manifest, floor, tg, nbg) -> str:
    """Do the three graders give the same scores? (Same checks, so they should, timing checks aside.)"""
    floor_scores = {}
    for r in floor["rows"]:
        floor_scores[r["student"]] = floor_scores.get(r["student"], 0.0) + r["score"]
    tg_scores = {s: d.get("score") for s, d in tg["results"].items()}
    diff_tg = [s for s in floor_scores if abs((tg_scores.get(s) or 0) - floor_scores[s]) > 1e-6]
    out = [f"scores: floor process vs torchgrade differ for {len(diff_tg)}/{len(floor_scores)} students"
           + (f" ({', '.join(f'{s}: {floor_scores[s]:g} vs {tg_scores.get(s)}' for s in diff_tg[:8])})" if diff_tg else "")]
    if nbg and nbg.get("scores"):
        nb_scores = nbg["scores"]
        diff_nb = [s for s in floor_scores if abs(nb_scores.get(s, -1) - floor_scores[s]) > 1e-6]
        out.append(f"scores: floor process vs nbgrader differ for {len(diff_nb)}/{len(floor_scores)} students"
                   + (f" ({', '.join(f'{s}: {floor_scores[s]:g} vs {nb_scores.get(s)}' for s in diff_nb[:8])})"
                      if diff_nb else ""))
    return "\n".join(out)


def job_probe_table(probe: dict) -> str:
    lines = [f"One sandboxed exercise run (`grader.supervise.run_isolated` in a process set up as a worker), one correct "
             f"submission, median of {probe['runs']} runs; load {probe['load_before']} -> {probe['load']}", "",
             "| exercise | run wall | CPU (child + helpers) | checks (pytest durations) | overhead (wall - checks) |",
             "| --- | --- | --- | --- | --- |"]
    for ex_id, r in probe["exercises"].items():
        lines.append(f"| {ex_id} | {r['wall_s']:.3f} s | {r['cpu_s']:.3f} s | {r['checks_s']:.3f} s "
                     f"| {r['wall_s'] - r['checks_s']:.3f} s |")
    lines += ["", f"Steps of one {SINGLE_EXERCISE} run, median:", "", "| step | wall |", "| --- | --- |"]
    for name, value in probe["phases"].items():
        lines.append(f"| {name} | {value * 1000:.1f} ms |")
    return "\n".join(lines)
