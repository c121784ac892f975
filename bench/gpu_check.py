"""On a CUDA machine: time beat_pdist's solution and timing variants with the rubric's own timing code.

Prints one row per submission (measured speed-up over the pdist reference, pair-ratio spread,
per-call times, verdict against the CUDA threshold, and the verdict the variant's yml expects),
each measured `--runs` times, then a suggested threshold halfway (in log scale) between the
fastest pdist-based row and the slowest correct one. The threshold is the YAML's policy for the
device (issue 12: calibrated, max(least, R ** share) with R the solution's median speed-up here,
measured first; a fixed number where the YAML gives one), or `--threshold`. Without CUDA it says
so and exits 0.

    python bench/gpu_check.py [--runs 5] [--size 1024,128] [--threshold 3.0] [--cpu]

`--cpu` runs the same table on the CPU with one torch thread (the grader's setting), for comparison.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
RUBRIC = REPO / "rubrics" / "test_beat_pdist.py"
CONFIG = REPO / "rubrics" / "pytorch_intro.yml"
VARIANTS = REPO / "tests" / "variants" / "beat_pdist"
SOLUTION_NB = REPO / "solutions" / "pytorch_intro.ipynb"
TIMING_VARIANTS = ["lecture_lunif2", "calls_torch_pdist", "ok_cdist", "ok_triu_mask", "ok_full_matrix_minus_diag",
                   "grad_right_first_call_only", "slow_python_loop"]


def load_rubric():
    sys.path.insert(0, str(REPO))
    spec = importlib.util.spec_from_file_location("beat_pdist_rubric", RUBRIC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def solution_source() -> str | None:
    """The exercise cell of the solution notebook, solution regions kept, markers dropped."""
    if not SOLUTION_NB.is_file():
        return None
    nb = json.loads(SOLUTION_NB.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        src = "".join(cell.get("source", "")) if cell.get("cell_type") == "code" else ""
        lines = src.strip().splitlines()
        if lines and lines[0].replace(" ", "").lower() == "#exercise:beat_pdist":
            keep, stub = [], False
            for line in lines[1:]:
                marker = line.strip()
                if marker.startswith("### BEGIN STUB"):
                    stub = True
                elif marker.startswith("### END STUB"):
                    stub = False
                elif not stub and not marker.startswith("### "):
                    keep.append(line)
            return "\n".join(keep) + "\n"
    return None


def submissions():
    out = []
    sol = solution_source()
    if sol is not None:
        out.append(("solution", sol, True))
    for name in TIMING_VARIANTS:
        py, meta = VARIANTS / f"{name}.py", VARIANTS / f"{name}.yml"
        if py.is_file():
            fails = (yaml.safe_load(meta.read_text()) or {}).get("fails", []) if meta.is_file() else []
            out.append((name, py.read_text(), "test_faster_than_pdist" not in fails))
    return out


def function_of(source: str):
    namespace = {"torch": torch, "__name__": "student"}
    exec(compile(source, "<variant>", "exec"), namespace)  # our own fixtures, not student code
    return namespace["lunif_fast"]


def policy_from_yaml(device: str):
    from grader.timing import ThresholdPolicy

    raw = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return ThresholdPolicy.from_config(raw["exercises"]["beat_pdist"]["thresholds"][device],
                                       f"exercises.beat_pdist.thresholds.{device}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="measurements per submission (default 5)")
    parser.add_argument("--size", help="N,D of the timed inputs (default: the rubric's)")
    parser.add_argument("--threshold", type=float, help="threshold to judge by (default: the YAML's)")
    parser.add_argument("--cpu", action="store_true", help="run the table on the CPU (1 thread) instead")
    args = parser.parse_args()

    device = "cpu" if args.cpu else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("No CUDA device here: nothing to check (run this on a GPU host; --cpu gives the CPU table).")
        return 0
    if device == "cpu":
        torch.set_num_threads(1)
    from grader.timing import describe_device

    rubric = load_rubric()
    if args.size:
        rubric.TIMING_SIZE[device] = tuple(int(v) for v in args.size.split(","))
    n, d = rubric.TIMING_SIZE[device]
    rows = submissions()
    policy = policy_from_yaml(device)
    reference_speedup = None
    if args.threshold:
        threshold = args.threshold
    elif policy.calibrated:  # the calibration, as each grading worker makes it: the solution against pdist
        solution = function_of(rows[0][1])
        cal = sorted(rubric.measure(solution, device, 0.0, repeats=rubric.CALIBRATION_PAIRS).speedup
                     for _ in range(args.runs))
        reference_speedup = cal[len(cal) // 2]
        threshold = policy.threshold(reference_speedup)
        if policy.skip_reason({"speedup": reference_speedup}, "pdist", device):
            print(f"the solution reached only {reference_speedup:.2f}x here (separable needs {policy.separable:g}x): "
                  "the grader would skip the speed check on this device")
    else:
        threshold = policy.threshold(None)
    print(f"beat_pdist timing on {describe_device(device)}, torch {torch.__version__}, "
          f"x of shape ({n}, {d}) float32, threshold {threshold:.3g}x"
          + (f" (calibrated: {policy.describe()}; the solution reached {reference_speedup:.3g}x)"
             if reference_speedup else "") + f", {args.runs} runs each")
    header = f"{'submission':28s} {'expect':6s} {'median':>7s} {'runs min-max':>13s} {'pairs':>5s} " \
             f"{'yours ms':>9s} {'ref ms':>8s}  verdicts"
    print(header)
    print("-" * len(header))
    good, bad = [], []
    for name, source, should_pass in rows:
        fn = function_of(source)
        speedups, passes, row, errors = [], 0, None, 0
        for run in range(args.runs):
            torch.manual_seed(run)
            try:
                result = rubric.measure(fn, device, threshold, reference_speedup=reference_speedup)
            except AssertionError:  # a wrong answer in a timed call (the verifier): no speed verdict, a fail
                errors += 1
                continue
            speedups.append(result.speedup)
            passes += result.passed
            row = result
        if not speedups:
            print(f"{name:28s} {'pass' if should_pass else 'fail':6s} every run failed the verification of a timed "
                  f"call ({errors}/{args.runs}) {'OK' if not should_pass else '<-- not as expected'}")
            continue
        speedups.sort()
        median = speedups[len(speedups) // 2]
        (good if should_pass else bad).append(median)
        ok = passes == args.runs if should_pass else passes == 0
        print(f"{name:28s} {'pass' if should_pass else 'fail':6s} {median:6.2f}x {speedups[0]:5.2f}-{speedups[-1]:5.2f}x "
              f"{row.pairs:5d} {row.student_s * 1e3:9.3f} {row.reference_s * 1e3:8.3f}  "
              f"{passes}/{args.runs} passed{f', {errors} wrong' if errors else ''} "
              f"{'OK' if ok else '<-- not as expected'}")
    if good and bad:
        lo, hi = max(bad), min(good)
        if lo < hi:
            print(f"\nslowest correct submission {hi:.2f}x, fastest pdist-based one {lo:.2f}x: a threshold near "
                  f"{math.sqrt(lo * hi):.2f}x (geometric mean) separates them")
        else:
            print(f"\nno threshold separates them: slowest correct {hi:.2f}x <= fastest pdist-based {lo:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
