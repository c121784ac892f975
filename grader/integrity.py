"""Detect student code that replaces what the checks rely on (`torch.allclose = lambda *a: True`).

A snapshot records the identity of every function and class attribute of the modules a
check uses (and of the rubric's own module), and for Python functions also the code they run;
any later replacement or deletion is named in the "tampering detected" verdict.
"""

from __future__ import annotations

import builtins
import inspect  # noqa: F401 - watched: student code could patch what other modules take from it
import operator
import sys
import time

import pytest
import torch
import torch.autograd
import torch.nn.functional
import torch.testing

WATCHED_MODULES = (
    "builtins", "time", "math", "random", "os", "json", "inspect",
    "torch", "torch.autograd", "torch.testing", "torch.nn.functional", "torch.linalg",
    "torch.autograd.graph", "torch.utils._python_dispatch", "torch.cuda", "torch.optim", "torch.overrides",
    "pytest", "_pytest.runner", "_pytest.python", "_pytest.reports", "_pytest.fixtures",
    "numpy", "numpy.testing",
    "grader.checks", "grader.timing", "grader._plugin", "grader.integrity",
)
WATCHED_CLASSES = (
    ("torch.Tensor", lambda: torch.Tensor),
    # The sequential_model rubric trains with these: a patched step() would fake the training check.
    ("torch.optim.Optimizer", lambda: torch.optim.Optimizer),
    ("torch.optim.SGD", lambda: torch.optim.SGD),
    ("torch.nn.Linear", lambda: torch.nn.Linear),
    ("torch.nn.Tanh", lambda: torch.nn.Tanh),
    ("torch.overrides.TorchFunctionMode", lambda: torch.overrides.TorchFunctionMode),
    ("torch._C.TensorBase", lambda: torch._C.TensorBase),
    ("torch.autograd.Function", lambda: torch.autograd.Function),
    ("torch.nn.Module", lambda: torch.nn.Module),
    ("torch.nn.Sequential", lambda: torch.nn.Sequential),
    ("torch.utils._python_dispatch.TorchDispatchMode", lambda: torch.utils._python_dispatch.TorchDispatchMode),
    ("grader._plugin.RubricPlugin", lambda: sys.modules["grader._plugin"].RubricPlugin),
    ("grader._plugin.Channel", lambda: sys.modules["grader._plugin"].Channel),
)

# Our own references, taken before any student code exists (it may replace the builtins).
_id, _items, _vars, _callable, _reversed = id, dict.items, vars, callable, reversed
_isinstance, _type, _sorted, _list, _tuple, _getattr = isinstance, type, sorted, list, tuple, getattr
_type_dict, _type_mro = type.__dict__["__dict__"].__get__, type.__dict__["__mro__"].__get__
_all, _is, _eq, _attrgetter, _len = all, operator.is_, operator.eq, operator.attrgetter, len
_FunctionType = type(lambda: None)
_WATCHED_TYPES = (property, staticmethod, classmethod, type(builtins.len), type(sys))


def _is_watched(value) -> bool:
    # A module counts too: `rubric.torch = fake_torch` must not go unseen.
    return _callable(value) or _isinstance(value, _WATCHED_TYPES)


def _fingerprint(value):
    """Who a value is, and for a Python function also what it runs: `f.__code__ = ...`,
    new defaults or a new closure cell keep the function's identity but change its behaviour."""
    if _type(value) is not _FunctionType:
        return _id(value)
    cells = value.__closure__ or ()
    return (_id(value), _id(value.__code__), _id(value.__defaults__), _id(value.__kwdefaults__),
            _tuple(_id(_cell_contents(c)) for c in cells))


def _namespaces(extra_modules) -> list[tuple[str, object, object, bool]]:
    """(name, owner, namespace, is_module) for every watched module, then every class of a watched MRO."""
    spaces = []
    modules = [(name, sys.modules.get(name)) for name in WATCHED_MODULES] + _list(extra_modules)
    for name, module in modules:
        if module is not None:
            spaces.append((name, module, _vars(module), True))
    for name, get in WATCHED_CLASSES:
        klass = _class(get)
        if klass is None:
            continue
        # What a static lookup would find: the first class in the MRO that defines the name
        # (inspect.getattr_static per attribute made a snapshot 5 times slower).
        for base in _reversed(_type_mro(klass)):
            spaces.append((name, base, _type_dict(base), False))
    return spaces


def _watched_items(space, is_module: bool) -> list[tuple[str, object]]:
    if not is_module:
        return _list(space.items())
    return [(attr, value) for attr, value in _list(space.items()) if _is_watched(value) and not attr.startswith("__")]


def _entries(extra_modules) -> dict[str, object]:
    """The full record: a fingerprint per watched name (later classes in an MRO win)."""
    entries: dict[str, object] = {}
    for name, _, space, is_module in _namespaces(extra_modules):
        for attr, value in _watched_items(space, is_module):
            entries[f"{name}.{attr}"] = _fingerprint(value)
    return entries


def _probes(extra_modules) -> tuple:
    """Everything `_entries` depends on, as (same, getter, keys, objects) with, while nothing
    was replaced, `same(getter(key), object)` for every pair, which `map` checks in C."""
    probes, functions, seen = [], [], set()
    for _, owner, space, is_module in _namespaces(extra_modules):
        if _id(owner) in seen:  # `object` and `nn.Module` are in many MROs: probe each once
            continue
        seen.add(_id(owner))
        items = _watched_items(space, is_module)
        probes.append((_is, space.get, _tuple(a for a, _ in items), _tuple(v for _, v in items)))
        if not is_module:  # a new name in a subclass hides the base's one
            probes.append((_eq, _len, (space,), (_len(space),)))
        functions += [v for _, v in items if _type(v) is _FunctionType]
    names = _tuple(WATCHED_MODULES)
    probes.append((_is, sys.modules.get, names, _tuple(map(sys.modules.get, names))))
    getters = _tuple(get for _, get in WATCHED_CLASSES)
    klasses = _tuple(map(_class, getters))
    probes.append((_is, _class, getters, klasses))
    present = _tuple(k for k in klasses if k is not None)
    probes.append((_is, _type_mro, present, _tuple(map(_type_mro, present))))
    for attr in ("__code__", "__defaults__", "__kwdefaults__"):
        get = _attrgetter(attr)
        probes.append((_is, get, _tuple(functions), _tuple(map(get, functions))))
    cells = _tuple(c for f in functions for c in (f.__closure__ or ()))
    probes.append((_is, _cell_contents, cells, _tuple(map(_cell_contents, cells))))
    return _tuple(probes)


class Snapshot:
    """The watched names' fingerprints, and a cheap way to tell that none of them moved.

    `changed()` runs after every check, and its common answer is "nothing": the probes answer
    that with identity comparisons in C. Only when some object differs are the fingerprints
    taken again; they alone decide, and name what was replaced.
    """

    def __init__(self, entries: dict[str, object], extra_modules: tuple, probes: tuple):
        self.entries = entries
        self.extra_modules = extra_modules
        self._probes = probes

    @classmethod
    def take(cls, extra_modules=()) -> "Snapshot":
        """`extra_modules`: (name, module) pairs watched besides WATCHED_MODULES, e.g. the rubric itself."""
        extra_modules = _tuple(extra_modules)
        return cls(_entries(extra_modules), extra_modules, _probes(extra_modules))

    def _untouched(self) -> bool:
        for same, getter, keys, objects in self._probes:
            if not _all(map(same, map(getter, keys), objects)):
                return False
        return True

    def changed(self) -> list[str]:
        if self._untouched():
            return []
        now = _entries(self.extra_modules)
        replaced = _sorted(key for key, ident in _items(self.entries) if now.get(key) != ident)
        if not replaced:
            # Something moved that the fingerprints do not cover (torch imported a submodule):
            # what they approved is the new baseline of the probes.
            self._probes = _probes(self.extra_modules)
        return replaced


def _class(get):
    try:
        return get()
    except (KeyError, AttributeError):
        return None


_EMPTY_CELL = object()


def _cell_contents(cell):
    return _getattr(cell, "cell_contents", _EMPTY_CELL)


# Keep these modules imported so the snapshot always sees them.
_ = (time, pytest)
