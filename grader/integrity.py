"""Detect student code that replaces what the checks rely on (`torch.allclose = lambda *a: True`).

A snapshot records the identity of every function and class attribute of the modules a
check uses (and of the rubric's own module), and for Python functions also the code they run;
any later replacement or deletion is named in the "tampering detected" verdict.
"""

from __future__ import annotations

import builtins
import inspect  # noqa: F401 - watched: student code could patch what other modules take from it
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
_FunctionType = type(lambda: None)
_DESCRIPTORS = (property, staticmethod, classmethod, type(builtins.len))


def _is_watched(value) -> bool:
    return _callable(value) or _isinstance(value, _DESCRIPTORS)


def _fingerprint(value):
    """Who a value is, and for a Python function also what it runs: `f.__code__ = ...`,
    new defaults or a new closure cell keep the function's identity but change its behaviour."""
    if _type(value) is not _FunctionType:
        return _id(value)
    cells = value.__closure__ or ()
    return (_id(value), _id(value.__code__), _id(value.__defaults__), _id(value.__kwdefaults__),
            _tuple(_id(_getattr(c, "cell_contents", None)) for c in cells))


class Snapshot:
    def __init__(self, entries: dict[str, object], extra_modules: tuple = ()):
        self.entries = entries
        self.extra_modules = extra_modules

    @classmethod
    def take(cls, extra_modules=()) -> "Snapshot":
        """`extra_modules`: (name, module) pairs watched besides WATCHED_MODULES, e.g. the rubric itself."""
        entries: dict[str, object] = {}
        modules = [(name, sys.modules.get(name)) for name in WATCHED_MODULES] + _list(extra_modules)
        for name, module in modules:
            if module is None:
                continue
            for attr, value in _list(_items(_vars(module))):
                if _is_watched(value) and not attr.startswith("__"):
                    entries[f"{name}.{attr}"] = _fingerprint(value)
        for name, get in WATCHED_CLASSES:
            try:
                klass = get()
            except (KeyError, AttributeError):
                continue
            # What a static lookup would find: the first class in the MRO that defines the name
            # (inspect.getattr_static per attribute made a snapshot 5 times slower).
            for base in _reversed(_type_mro(klass)):
                for attr, value in _type_dict(base).items():
                    entries[f"{name}.{attr}"] = _fingerprint(value)
        return cls(entries, _tuple(extra_modules))

    def changed(self) -> list[str]:
        now = Snapshot.take(self.extra_modules).entries
        return _sorted(key for key, ident in _items(self.entries) if now.get(key) != ident)


# Keep these modules imported so the snapshot always sees them.
_ = (time, pytest)
