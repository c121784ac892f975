"""Mutation testing of the rubrics: small, plausible bugs in the reference solution must lose points.

Mutants are made at the AST level, only inside the solution regions: flipped operators and
comparisons, changed constants, dropped `.detach()` / `.clone()` / `requires_grad`, swapped
arguments, removed statements, in-place <-> out-of-place. A mutant is *equivalent* when the
rubric's `probe(student)` sees exactly the solution's values; it is then left out of the score.
"""

from __future__ import annotations

import ast
import copy
import difflib
import json
import math
import random
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from .assign import BEGIN, END

INPLACE_PAIRS = {"add", "sub", "mul", "div", "pow", "clamp", "exp", "log", "neg", "abs", "sqrt", "tanh", "copy",
                 "fill", "zero", "normal", "uniform", "t", "transpose", "squeeze", "unsqueeze", "addmm", "addcmul"}
DROPPABLE_METHODS = {"detach", "clone", "contiguous", "requires_grad_", "double", "float", "t", "sum", "mean", "abs",
                     "sqrt", "log", "exp"}
DROPPABLE_KEYWORDS = {"device", "dtype", "requires_grad", "dim", "keepdim", "diagonal", "p", "min", "max"}
BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
              ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.MatMult: ast.Mult}
CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


@dataclass(frozen=True)
class Mutant:
    exercise: str
    operator: str
    line: int
    source: str  # the whole mutated cell
    diff: str


def solution_lines(source: str) -> set[int]:
    lines, inside, out = source.splitlines(), False, set()
    for number, line in enumerate(lines, 1):
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif inside:
            out.add(number)
    return out


def _mutations(node: ast.AST):
    """(operator name, function that mutates a copy of `node` in place, or returns a replacement)."""
    if isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAP:
        new = BINOP_SWAP[type(node.op)]
        yield f"binop {type(node.op).__name__}->{new.__name__}", lambda n: setattr(n, "op", new())
    if isinstance(node, ast.AugAssign):
        yield "inplace->out-of-place", lambda n: ast.Assign(
            targets=[copy.deepcopy(n.target)], value=ast.BinOp(left=_load(n.target), op=n.op, right=n.value),
            lineno=n.lineno)
        if type(node.op) in BINOP_SWAP:
            new = BINOP_SWAP[type(node.op)]
            yield f"augassign {type(node.op).__name__}->{new.__name__}", lambda n: setattr(n, "op", new())
    if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.BinOp) and isinstance(node.value.left, ast.Name)
            and node.value.left.id == node.targets[0].id):
        yield "out-of-place->inplace", lambda n: ast.AugAssign(
            target=n.targets[0], op=n.value.op, value=n.value.right, lineno=n.lineno)
    if isinstance(node, ast.Compare) and type(node.ops[0]) in CMP_SWAP:
        new = CMP_SWAP[type(node.ops[0])]
        yield f"compare {type(node.ops[0]).__name__}->{new.__name__}", lambda n: n.ops.__setitem__(0, new())
    if isinstance(node, ast.Constant) and not isinstance(node.value, (str, bytes)) and node.value is not None:
        v = node.value
        if isinstance(v, bool):
            yield f"constant {v}->{not v}", lambda n: setattr(n, "value", not v)
        elif isinstance(v, int):
            yield f"constant {v}->{v + 1}", lambda n: setattr(n, "value", v + 1)
            if v != 0:
                yield f"constant {v}->{v - 1}", lambda n: setattr(n, "value", v - 1)
        elif isinstance(v, float) and math.isfinite(v):
            w = v * 2 if v else 1.0
            yield f"constant {v}->{w}", lambda n: setattr(n, "value", w)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        yield f"drop unary {type(node.op).__name__}", lambda n: n.operand
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute):
            name = func.attr
            if name in DROPPABLE_METHODS:
                yield f"drop .{name}()", lambda n: n.func.value
            if name.endswith("_") and name[:-1] in INPLACE_PAIRS:
                yield f".{name}->.{name[:-1]}", lambda n: setattr(n.func, "attr", name[:-1])
            elif name in INPLACE_PAIRS:
                yield f".{name}->.{name}_", lambda n: setattr(n.func, "attr", name + "_")
        for i, kw in enumerate(node.keywords):
            if kw.arg in DROPPABLE_KEYWORDS:
                yield f"drop {kw.arg}=", lambda n, i=i: n.keywords.pop(i) and None
        if len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args[:2]):
            yield "swap arguments", lambda n: n.args.__setitem__(slice(0, 2), [n.args[1], n.args[0]])
    if isinstance(node, ast.Slice):
        if node.step is not None:
            yield "drop slice step", lambda n: setattr(n, "step", None)
        if node.lower is not None:
            yield "drop slice start", lambda n: setattr(n, "lower", None)
        if node.upper is not None:
            yield "drop slice stop", lambda n: setattr(n, "upper", None)


def _load(target: ast.AST) -> ast.AST:
    t = copy.deepcopy(target)
    t.ctx = ast.Load()
    return t


def _statement_removals(tree: ast.AST, eligible: set[int]):
    for owner in ast.walk(tree):
        for field in ("body", "orelse"):
            body = getattr(owner, field, None)
            if not isinstance(body, list) or len(body) < 2:
                continue
            for i, stmt in enumerate(body):
                if getattr(stmt, "lineno", None) in eligible and isinstance(stmt, (ast.Expr, ast.Assign, ast.AugAssign, ast.Return)):
                    yield owner, field, i, stmt.lineno


def make_mutants(cell_source: str, exercise: str, limit: int | None = None, seed: int = 0) -> list[Mutant]:
    """Every single-site mutant of the solution regions (a seeded sample of `limit` if given)."""
    eligible = solution_lines(cell_source)
    tree = ast.parse(cell_source)
    original = ast.unparse(tree)
    nodes = [n for n in ast.walk(tree) if getattr(n, "lineno", None) in eligible]
    plans = []  # (operator, index of node in walk order or statement removal, mutation)
    walk = list(ast.walk(tree))
    for node in nodes:
        for op, fn in _mutations(node):
            plans.append((op, node.lineno, ("node", walk.index(node), fn)))
    for owner, field, i, line in _statement_removals(tree, eligible):
        plans.append(("remove statement", line, ("stmt", walk.index(owner), field, i)))
    mutants, seen = [], {original}
    for op, line, plan in plans:
        t = copy.deepcopy(tree)
        twalk = list(ast.walk(t))
        if plan[0] == "node":
            target = twalk[plan[1]]
            replacement = plan[2](target)
            if isinstance(replacement, ast.AST) and replacement is not target:
                _replace(t, target, replacement)
        else:
            owner = twalk[plan[1]]
            getattr(owner, plan[2])[plan[3]] = ast.Pass(lineno=line)
        ast.fix_missing_locations(t)
        try:
            text = ast.unparse(t)
            compile(text, "<mutant>", "exec")
        except (SyntaxError, ValueError, TypeError):
            continue
        if text in seen:
            continue
        seen.add(text)
        diff = "\n".join(l for l in difflib.unified_diff(original.splitlines(), text.splitlines(), lineterm="", n=0)
                         if not l.startswith(("---", "+++", "@@")))
        mutants.append(Mutant(exercise, op, line, f"# exercise: {exercise}\n{text}\n", diff))
    if limit is not None and len(mutants) > limit:
        mutants = sorted(random.Random(seed).sample(mutants, limit), key=lambda m: (m.line, m.operator))
    return mutants


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return


# -- equivalence: what the rubric's probe sees -----------------------------------------------------


def digest(value, depth: int = 0):
    """A comparable, JSON-able picture of a probe's result (tensors: attributes, then values)."""
    import torch

    if depth > 6:
        return "..."
    if isinstance(value, torch.Tensor):
        info = {"shape": list(value.shape), "dtype": str(value.dtype), "device": value.device.type,
                "requires_grad": value.requires_grad, "is_leaf": value.is_leaf}
        if value.device.type != "meta":
            v = value.detach().to("cpu", torch.float64).reshape(-1)[:4096]
            info["values"] = [float(f"{x:.8g}") if math.isfinite(x) else str(x) for x in v.tolist()]
        return info
    if isinstance(value, (list, tuple)):
        return [digest(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): digest(v, depth + 1) for k, v in value.items()}
    if isinstance(value, float):
        return float(f"{value:.8g}") if math.isfinite(value) else str(value)
    if isinstance(value, (int, str, bool)) or value is None:
        return value
    return type(value).__name__


def probe_main() -> None:
    """Child process: run the rubric's probe on the solution and each mutant (trusted code: our own)."""
    job = json.loads(sys.stdin.read())
    import importlib.util

    import numpy
    import torch

    spec = importlib.util.spec_from_file_location("rubric_probe", job["rubric"])
    rubric = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rubric)
    from .checks import time_limit

    answers = []
    for source in job["sources"]:
        module = types.ModuleType("student")
        torch.manual_seed(0)
        numpy.random.seed(0)
        random.seed(0)
        limit = time_limit(float(job.get("timeout_s", 20)))
        try:
            with limit:
                exec(compile("import torch\n" + source, "<probe>", "exec"), module.__dict__)
                torch.manual_seed(0)
                answer = json.dumps(digest(rubric.probe(module)), sort_keys=True)
        except BaseException as e:  # noqa: BLE001 - a mutant may raise anything
            answer = f"raised {type(e).__name__}"
        answers.append("raised TimeoutError" if limit.ran_out else answer)
    print(json.dumps(answers))


def equivalent_to_solution(rubric: Path, solution: str, mutants: list[Mutant], timeout_s: float = 600) -> list[bool]:
    """For each mutant: does the rubric's probe see exactly the solution's values?"""
    job = {"rubric": str(rubric), "sources": [solution] + [m.source for m in mutants]}
    r = subprocess.run([sys.executable, "-m", "grader.mutate"], input=json.dumps(job), capture_output=True,
                       text=True, timeout=timeout_s)
    if r.returncode != 0:
        raise RuntimeError(f"the probe of {rubric} failed: {r.stderr.strip()[-800:]}")
    answers = json.loads(r.stdout.strip().splitlines()[-1])
    reference = answers[0]
    if reference.startswith("raised"):
        raise RuntimeError(f"the probe of {rubric} fails on the solution itself ({reference})")
    return [a == reference for a in answers[1:]]


if __name__ == "__main__":
    probe_main()
