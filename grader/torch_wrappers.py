"""Which replacements of a watched object (grader.integrity) are torch's own.

Torch replaces some watched objects itself, lazily, the first time a feature is used (the first torch.compile,
the first optimizer of a class, importing torch._dynamo): always by a wrapper of its own around the
original. Such a change is no tampering (issue 14): a new object counts as torch's own when it runs
torch's wrapper code (the very code object, with its module's globals) around exactly the original,
which itself is unchanged (`TORCH_WRAPPERS`). A lookalike (`__wrapped__`, `__module__`) counts for nothing.

grader.integrity asks `wrapped_by_torch` and `unwrapped` while it fingerprints; like it, this module
binds every builtin it uses before student code exists, and is itself watched (WATCHED_MODULES).
"""

from __future__ import annotations

import sys

# Our own references, taken before any student code exists (it may replace the builtins).
_id, _items, _isinstance, _type, _getattr, _len = id, dict.items, isinstance, type, getattr, len
_type_dict = type.__dict__["__dict__"].__get__
_FunctionType = type(lambda: None)
_CodeType = type((lambda: None).__code__)

# Where torch replaces a watched object by itself, lazily: (module, the function that makes the wrapper,
# the wrapper's own (nested) function, the closure variable holding the original). Measured with torch 2.13
# (tests/test_integrity.py): the first torch.compile runs dynamo's TorchPatcher.patch (every optimizer
# class's `_init_group`, LBFGS's and SparseAdam's `step`, the fused optimizer functions, torch.jit.trace,
# trace_module, _get_trace_graph and fx's Tracer.trace, each through `torch._dynamo.disable`) and
# mutation_guard.install_generation_tagging_init (nn.Module.__init__ and __setstate__); importing
# torch._dynamo wraps torch.manual_seed with torch._disable_dynamo; an optimizer class's first instance
# wraps its `step` with Optimizer.profile_hook_step. torch.func, torch.export, jit and the rest replace
# nothing watched.
TORCH_WRAPPERS = (
    ("torch._dynamo.eval_frame", "DisableContext.__call__", "_fn", "fn"),
    ("torch._dynamo.mutation_guard", "install_generation_tagging_init", "patched_init", "init"),
    ("torch._dynamo.mutation_guard", "install_generation_tagging_init", "patched_setstate", "setstate"),
    ("torch", "_disable_dynamo", "inner", "fn"),
    ("torch.optim.optimizer", "Optimizer.profile_hook_step", "wrapper", "func"),
)
_wrapper_codes: dict = {}  # id(code) -> (code, globals, the original's closure index, {other cell index: test})


def learn_torch_wrappers() -> None:
    """Find the code objects of TORCH_WRAPPERS in torch itself, once, before any student code exists."""
    if _wrapper_codes:
        return
    import importlib

    for module_name, maker, nested, holder in TORCH_WRAPPERS:
        try:
            module = importlib.import_module(module_name)
            make = module
            for part in maker.split("."):
                make = _type_dict(make)[part] if _isinstance(make, type) else _getattr(make, part)
            make = _getattr(make, "__func__", make)  # a staticmethod
            code = next(c for c in make.__code__.co_consts if _type(c) is _CodeType and c.co_name == nested)
            others = {i: _CELL_TESTS[name] for i, name in enumerate(code.co_freevars) if name != holder}
            _wrapper_codes[_id(code)] = (code, vars(module), code.co_freevars.index(holder), others)
        except (ImportError, AttributeError, KeyError, StopIteration, ValueError):
            continue  # another torch version: its wrappers, if any, are reported as before


def _plain_disable_context(value) -> bool:
    klass = sys.modules["torch._dynamo.eval_frame"].DisableContext
    return _type(value) is klass and _getattr(value, "callback", 0) is None


# The wrappers' other closure variables: what torch itself puts there.
_CELL_TESTS = {"self": _plain_disable_context, "recursive": lambda v: _type(v) is bool}
NOT_WRAPPED = object()


def wrapped_by_torch(value):
    """The original inside `value` if `value` is one of torch's own wrappers (TORCH_WRAPPERS), else NOT_WRAPPED."""
    if _type(value) is not _FunctionType:
        return NOT_WRAPPED
    spec = _wrapper_codes.get(_id(value.__code__))
    if spec is None:
        return NOT_WRAPPED
    code, namespace, holder, others = spec
    cells = value.__closure__ or ()
    if (value.__code__ is not code or value.__globals__ is not namespace or value.__defaults__ is not None
            or value.__kwdefaults__ is not None or _len(cells) != _len(code.co_freevars)):
        return NOT_WRAPPED
    for i, test in _items(others):
        if not test(cell_contents(cells[i])):
            return NOT_WRAPPED
    return cell_contents(cells[holder])


def unwrapped(value, depth: int = 4) -> list:
    """`value` and the originals inside torch's wrappers of it (LBFGS.step: disable(profile_hook(step)))."""
    out = [value]
    while depth and (value := wrapped_by_torch(value)) is not NOT_WRAPPED:
        out.append(value)
        depth -= 1
    return out


_EMPTY_CELL = object()


def cell_contents(cell):
    return _getattr(cell, "cell_contents", _EMPTY_CELL)
