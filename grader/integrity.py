"""Detect student code that replaces what the checks rely on (`torch.allclose = lambda *a: True`).

A snapshot records the identity of every function and class attribute of the modules a
check uses (and of the rubric's own module), and for Python functions also the code they run;
any later replacement or deletion is named in the "tampering detected" verdict.

Torch replaces some of these itself, lazily, for a wrapper of its own around the original: no
tampering (issue 14); grader.torch_wrappers tells such a wrapper from a lookalike.

The check runs after every check of every run, so its common answer, "nothing moved", must be
cheap in a freshly forked child: comparing the 8,000 watched objects one by one takes about 1 ms,
and 9 ms the first time (each read writes the object's reference count, so the child copies its
page). CPython gives every dict a version tag that changes with each change to that dict (PEP 509),
and audits every assignment to a function's code or defaults: equal tags of the watched namespaces
and no such audit event answer "nothing moved" in microseconds, without touching a watched object.
"""

from __future__ import annotations

import builtins
import gc
import inspect  # noqa: F401 - watched: student code could patch what other modules take from it
import operator
import sys
import time

import pytest
import torch
import torch.autograd
import torch.nn.functional
import torch.testing

from .torch_wrappers import NOT_WRAPPED as _NOT_WRAPPED
from .torch_wrappers import TORCH_WRAPPERS  # noqa: F401 - importable here as before
from .torch_wrappers import cell_contents as _cell_contents
from .torch_wrappers import learn_torch_wrappers as _learn_torch_wrappers
from .torch_wrappers import unwrapped as _unwrapped
from .torch_wrappers import wrapped_by_torch as _wrapped_by_torch

WATCHED_MODULES = (
    "builtins", "time", "math", "random", "os", "json", "inspect",
    "torch", "torch.autograd", "torch.testing", "torch.nn.functional", "torch.linalg",
    "torch.autograd.graph", "torch.utils._python_dispatch", "torch.cuda", "torch.optim", "torch.overrides",
    # What torch's own wrappers (TORCH_WRAPPERS) and the sequential_model rubric's SGD step call.
    "torch.optim.optimizer", "torch.optim.sgd", "torch._dynamo.eval_frame", "torch._dynamo.mutation_guard",
    "pytest", "_pytest.runner", "_pytest.python", "_pytest.reports", "_pytest.fixtures",
    "numpy", "numpy.testing",
    "grader.clocks", "grader.speed_verdict",  # grader.timing's parts: its clocks, and the verdict's `fail`
    "grader.torch_wrappers",  # what the fingerprints below ask: is this torch's own wrapper?
    "grader.checks", "grader.timing", "grader._plugin", "grader.integrity", "grader.student_code", "grader.channel",
    # The modules of grader.checks: a rubric's `expect_close` looks `fail` up in grader.checks.tensors.
    "grader.checks.failures", "grader.checks.tensors", "grader.checks.devices", "grader.checks.graphs",
    "grader.checks.probes",
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
    ("torch._dynamo.eval_frame.DisableContext", lambda: sys.modules["torch._dynamo.eval_frame"].DisableContext),
    ("grader._plugin.Channel", lambda: sys.modules["grader._plugin"].Channel),
)

# Our own references, taken before any student code exists (it may replace the builtins).
_id, _items, _vars, _callable, _reversed = id, dict.items, vars, callable, reversed
_isinstance, _type, _sorted, _list, _tuple = isinstance, type, sorted, list, tuple
_type_dict, _type_mro = type.__dict__["__dict__"].__get__, type.__dict__["__mro__"].__get__
_all, _is, _eq, _attrgetter, _len = all, operator.is_, operator.eq, operator.attrgetter, len
_tag_value = operator.attrgetter("value")
_FunctionType = type(lambda: None)
_WATCHED_TYPES = (property, staticmethod, classmethod, type(builtins.len), type(sys))


def _is_watched(value) -> bool:
    # A module counts too: `rubric.torch = fake_torch` must not go unseen.
    return _callable(value) or _isinstance(value, _WATCHED_TYPES)


def _fingerprint(value):
    """Who a value is, and for a Python function also what it runs: `f.__code__ = ...`,
    new defaults or a new closure cell keep the function's identity but change its behaviour.
    For torch's own wrapper, what it wraps too: the original lives on only inside it."""
    if _type(value) is not _FunctionType:
        return _id(value)
    cells = value.__closure__ or ()
    own = (_id(value), _id(value.__code__), _id(value.__defaults__), _id(value.__kwdefaults__),
           _tuple(_id(_cell_contents(c)) for c in cells))
    inner = _wrapped_by_torch(value)
    return own if inner is _NOT_WRAPPED else own + (_fingerprint(inner),)


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


def _values(extra_modules) -> dict[str, object]:
    """Every watched name's object (later classes in an MRO win)."""
    values: dict[str, object] = {}
    for name, _, space, is_module in _namespaces(extra_modules):
        for attr, value in _watched_items(space, is_module):
            values[f"{name}.{attr}"] = value
    return values


def _entries(values: dict[str, object]) -> dict[str, object]:
    """The full record: a fingerprint per watched name."""
    return {key: _fingerprint(value) for key, value in _items(values)}


class _Probes:
    """Everything `_entries` depends on, as probes (same, getter, keys, objects) with, while
    nothing was replaced, `same(getter(key), object)` for every pair, which `map` checks in C.

    Grouped by what else can vouch for them: `by_namespace[i]` by the version tag of
    `namespaces[i]`, `functions` by the absence of audited assignments; `uncovered` always runs."""

    def __init__(self, extra_modules):
        self.namespaces, self.by_namespace, functions, seen = [], [], [], set()
        for _, owner, space, is_module in _namespaces(extra_modules):
            if _id(owner) in seen:  # `object` and `nn.Module` are in many MROs: probe each once
                continue
            seen.add(_id(owner))
            items = _watched_items(space, is_module)
            probes = [(_is, space.get, _tuple(a for a, _ in items), _tuple(v for _, v in items))]
            if not is_module:  # a new name in a subclass hides the base's one
                probes.append((_eq, _len, (space,), (_len(space),)))
            self.namespaces.append(space)
            self.by_namespace.append(_tuple(probes))
            # The originals inside torch's own wrappers too: `original.__code__ = ...` is watched as before.
            functions += [f for _, v in items for f in _unwrapped(v) if _type(f) is _FunctionType]
        self.functions = _tuple((_is, get, _tuple(functions), _tuple(map(get, functions)))
                                for get in map(_attrgetter, ("__code__", "__defaults__", "__kwdefaults__")))
        # Not entries of a watched dict, or not audited when they change.
        names = _tuple(WATCHED_MODULES)
        getters = _tuple(get for _, get in WATCHED_CLASSES)
        klasses = _tuple(map(_class, getters))
        present = _tuple(k for k in klasses if k is not None)
        cells = _tuple(c for f in functions for c in (f.__closure__ or ()))
        self.uncovered = ((_is, sys.modules.get, names, _tuple(map(sys.modules.get, names))),
                          (_is, _class, getters, klasses),
                          (_is, _type_mro, present, _tuple(map(_type_mro, present))),
                          (_is, _cell_contents, cells, _tuple(map(_cell_contents, cells))))
        self.all = _tuple(p for group in self.by_namespace for p in group) + self.functions + self.uncovered


def _all_same(probes) -> bool:
    for same, getter, keys, objects in probes:
        if not _all(map(same, map(getter, keys), objects)):
            return False
    return True


def _version_tags(namespaces) -> tuple | None:
    """Readers of the namespaces' PEP 509 dict version tags, or None where this Python has none
    (the tag sits after the object header and the size in CPython 3.8-3.13: tried on a fresh dict)."""
    if sys.implementation.name != "cpython" or not (3, 8) <= sys.version_info[:2] <= (3, 13):
        return None
    import ctypes

    offset = _type({}).__basicsize__ - 3 * ctypes.sizeof(ctypes.c_void_p)  # ma_used, tag, keys, values
    trial = {}
    tag = ctypes.c_uint64.from_address(_id(trial) + offset)
    used = ctypes.c_ssize_t.from_address(_id(trial) + offset - ctypes.sizeof(ctypes.c_ssize_t))
    before = tag.value
    trial["x"] = 1
    if used.value != 1 or tag.value == before:
        return None
    dicts = []
    for space in namespaces:
        if _type(space) is not dict:  # a class's mappingproxy: the dict behind it
            space = gc.get_referents(space)[0]
            if _type(space) is not dict:
                return None
        dicts.append(space)
    return _tuple(ctypes.c_uint64.from_address(_id(d) + offset) for d in dicts), _tuple(dicts)


class Snapshot:
    """The watched names' fingerprints, and cheap ways to tell that none of them moved.

    `changed()` runs after every check, and its common answer is "nothing". Once `arm`ed (in a
    run, before any student code), equal version tags, no audited assignment to a function and
    a few identity probes answer it. Otherwise the probes compare every watched object by identity
    in C. Only when some object differs are the fingerprints taken again; they alone decide,
    and name what was replaced.
    """

    def __init__(self, values: dict[str, object], extra_modules: tuple):
        self.values = values  # the objects themselves: torch's wrappers are judged by what they wrap
        self.entries = _entries(values)
        self.extra_modules = extra_modules
        self._armed = self._assigned = False
        self._rebase()

    @classmethod
    def take(cls, extra_modules=()) -> "Snapshot":
        """`extra_modules`: (name, module) pairs watched besides WATCHED_MODULES, e.g. the rubric itself."""
        extra_modules = _tuple(extra_modules)
        _learn_torch_wrappers()
        return cls(_values(extra_modules), extra_modules)

    def _rebase(self) -> None:
        self._probes = _Probes(self.extra_modules)
        tags = _version_tags(self._probes.namespaces)
        self._tags, self._dicts = tags if tags else ((), ())  # the dicts stay alive with their readers
        self._versions = _tuple(map(_tag_value, self._tags)) if tags else None

    def arm(self) -> None:
        """From now on in this process, an audited assignment to a function's code or defaults
        (`f.__code__ = ...`) marks the snapshot, so that version tags can vouch for the rest.
        (An audit hook cannot be removed: arm only a process that ends with its run.)"""
        event_name = "object.__setattr__"

        def hook(event, args):
            if event == event_name:
                self._assigned = True

        sys.addaudithook(hook)
        self._armed = True

    def _untouched(self) -> bool:
        probes = self._probes
        if not self._armed or self._versions is None:
            return _all_same(probes.all)
        # Tags read first, the mark cleared first: a change made while the probes run is seen next time.
        versions = _tuple(map(_tag_value, self._tags))
        if versions != self._versions:  # a watched dict changed, often a module's own state variable
            for i in [i for i, (now, then) in enumerate(zip(versions, self._versions)) if now != then]:
                if not _all_same(probes.by_namespace[i]):
                    return False
            self._versions = versions
        if self._assigned:
            self._assigned = False
            if not _all_same(probes.functions):
                return False
        return _all_same(probes.uncovered)

    def changed(self) -> list[str]:
        if self._untouched():
            return []
        values = _values(self.extra_modules)
        now = _entries(values)
        replaced = _sorted(key for key, ident in _items(self.entries) if now.get(key) != ident)
        by_torch = [key for key in replaced if key in values and self._torch_wrapped(key, values[key])]
        for key in by_torch:
            self.values[key], self.entries[key] = values[key], now[key]
        replaced = [key for key in replaced if key not in by_torch]
        if not replaced:
            # Something moved that the fingerprints do not cover (torch imported a submodule), or torch
            # wrapped an original: what they approved is the new baseline of the probes.
            self._rebase()
        return replaced

    def _torch_wrapped(self, key: str, value) -> bool:
        """`value` is torch's own wrapper (perhaps several deep) around the unchanged object recorded for `key`."""
        original = self.values[key]
        inner = _unwrapped(value)[1:]
        return any(_is(o, original) for o in inner) and _fingerprint(original) == self.entries[key]


def _class(get):
    try:
        return get()
    except (KeyError, AttributeError):
        return None


# Keep these modules imported so the snapshot always sees them.
_ = (time, pytest)
