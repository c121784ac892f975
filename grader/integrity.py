"""Detect student code that replaces what the checks rely on (`torch.allclose = lambda *a: True`).

A snapshot records the identity of every function and class attribute of the modules a
check uses; any later replacement or deletion is named in the "tampering detected" verdict.
"""

from __future__ import annotations

import builtins
import inspect
import sys
import time

import pytest
import torch
import torch.autograd
import torch.nn.functional
import torch.testing

WATCHED_MODULES = (
    "builtins", "time", "math", "random", "os", "json",
    "torch", "torch.autograd", "torch.testing", "torch.nn.functional", "torch.linalg",
    "torch.autograd.graph", "torch.utils._python_dispatch", "torch.cuda",
    "pytest", "_pytest.runner", "_pytest.python", "_pytest.reports", "_pytest.fixtures",
    "numpy", "numpy.testing",
    "grader.checks", "grader.timing", "grader._plugin", "grader.integrity",
)
WATCHED_CLASSES = (
    ("torch.Tensor", lambda: torch.Tensor),
    ("torch._C.TensorBase", lambda: torch._C.TensorBase),
    ("torch.autograd.Function", lambda: torch.autograd.Function),
    ("torch.nn.Module", lambda: torch.nn.Module),
    ("torch.nn.Sequential", lambda: torch.nn.Sequential),
    ("torch.utils._python_dispatch.TorchDispatchMode", lambda: torch.utils._python_dispatch.TorchDispatchMode),
    ("grader._plugin.RubricPlugin", lambda: sys.modules["grader._plugin"].RubricPlugin),
    ("grader._plugin.Channel", lambda: sys.modules["grader._plugin"].Channel),
)

_getattr_static, _id, _items = inspect.getattr_static, id, dict.items


def _is_watched(value) -> bool:
    return callable(value) or isinstance(value, (property, staticmethod, classmethod, type(builtins.len)))


class Snapshot:
    def __init__(self, entries: dict[str, int]):
        self.entries = entries

    @classmethod
    def take(cls) -> "Snapshot":
        entries: dict[str, int] = {}
        for name in WATCHED_MODULES:
            module = sys.modules.get(name)
            if module is None:
                continue
            for attr, value in list(_items(vars(module))):
                if _is_watched(value) and not attr.startswith("__"):
                    entries[f"{name}.{attr}"] = _id(value)
        for name, get in WATCHED_CLASSES:
            try:
                klass = get()
            except (KeyError, AttributeError):
                continue
            for attr in dir(klass):
                try:
                    entries[f"{name}.{attr}"] = _id(_getattr_static(klass, attr))
                except AttributeError:
                    continue
        return cls(entries)

    def changed(self) -> list[str]:
        now = Snapshot.take().entries
        return sorted(key for key, ident in _items(self.entries) if now.get(key) != ident)


# Keep these modules imported so the snapshot always sees them.
_ = (time, pytest)
