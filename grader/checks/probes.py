"""Probes: what a check watches while the student's code runs.

`OperatorLog` lists the ATen operators a call ran (every route to an operator ends there),
`CopyRecorder` names the torch call that copied a tensor's data, `time_limit` stops a call that
runs too long and fails only the check that made it. Every torch and signal function used here is
bound at import, before student code exists; the modes keep no reference to student objects
after the `with` block.
"""

from __future__ import annotations

import signal
import threading
import time

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# Our own references, taken before any student code is loaded.
_tree_flatten = torch.utils._pytree.tree_flatten
_Tensor = torch.Tensor
_getattr, _isinstance, _repr, _str, _any, _len = getattr, isinstance, repr, str, any, len
_issubclass, _max = issubclass, max
_setitimer, _set_handler = signal.setitimer, signal.signal
_SIGALRM, _ITIMER_REAL = signal.SIGALRM, signal.ITIMER_REAL
_main_thread, _current_thread = threading.main_thread, threading.current_thread
_monotonic = time.monotonic


# -- which operators ran ------------------------------------------------------------------------


class OperatorLog(TorchDispatchMode):
    """Every ATen operator that runs while active (forward and backward), by schema name ("aten::mm").

    `torch.pdist`, `F.pdist`, `torch._C._VariableFunctions.pdist` and `torch.ops.aten._pdist_forward`
    all run `aten::_pdist_forward`: a check on operators cannot be dodged by another spelling."""

    def __init__(self):
        super().__init__()
        self.names = []
        self.largest = 0  # the most elements any operator's output had (a full n x n Hessian shows here)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func._schema.name)
        out = func(*args, **(kwargs or {}))
        for t in out if _isinstance(out, (tuple, list)) else (out,):
            if _isinstance(t, _Tensor):
                self.largest = _max(self.largest, t.numel())
        return out

    @property
    def count(self) -> int:
        """How many operators ran (work that grows with n shows here)."""
        return _len(self.names)

    def ran(self, fragment: str) -> list[str]:
        """The operators that ran whose name contains `fragment`, sorted, as "aten._pdist_forward"."""
        return sorted({n.replace("::", ".") for n in self.names if fragment in n})


# -- which call copied ----------------------------------------------------------------------------


def storage_of(x) -> int:
    """The address of `x`'s storage: equal for a view and its base, different for a copy."""
    return x.untyped_storage().data_ptr()


class CallRecorder(TorchFunctionMode):
    """Records which torch call made a tensor with fresh storage out of a tensor sharing `storage`,
    and (with OpRecorder) the ATen operators it ran."""

    def __init__(self, storage: int):
        super().__init__()
        self.storage = storage
        self.current_ops = None  # the ATen operators of the torch call now running
        self.copies = []  # (shown name, function name, index text, [aten ops])

    def __torch_function__(self, func, types, args=(), kwargs=None):
        # The mode is off while its handler runs, so only the student's own calls land here.
        kwargs = kwargs or {}
        name = _getattr(func, "__name__", None) or _repr(func)
        qual = _getattr(func, "__qualname__", "") or name
        self.current_ops = ops = []
        try:
            result = func(*args, **kwargs)
        finally:
            self.current_ops = None
        inputs = [x for x in _tree_flatten((args, kwargs))[0] if _isinstance(x, _Tensor)]
        outputs = [x for x in _tree_flatten(result)[0] if _isinstance(x, _Tensor)]
        try:
            read_t = _any(storage_of(x) == self.storage for x in inputs)
            fresh = _any(storage_of(x) != self.storage and x.numel() for x in outputs)
        except RuntimeError:  # a tensor without storage: not made from the watched one
            read_t = fresh = False
        if read_t and fresh:
            index = _index_text(args[1]) if name == "__getitem__" and _len(args) > 1 else ""
            self.copies.append((_pretty(qual, name), name, index, ops))
        return result


class OpRecorder(TorchDispatchMode):
    """The ATen operators that make new tensors (not views), in order."""

    def __init__(self, calls: CallRecorder):
        super().__init__()
        self.calls = calls
        self.all_ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not _getattr(func, "is_view", False):
            op = _str(_getattr(func, "overloadpacket", func))
            self.all_ops.append(op)
            if self.calls.current_ops is not None:
                self.calls.current_ops.append(op)
        return func(*args, **(kwargs or {}))


class CopyRecorder:
    """`with CopyRecorder(t) as copies:` records the calls that copied `t`'s data (`copies.copies`:
    (shown name, function name, index text, [ATen operators]), first copy first) and every ATen
    operator that made a new tensor (`copies.all_ops`)."""

    def __init__(self, watched):
        self.calls = CallRecorder(storage_of(watched))
        self.ops = OpRecorder(self.calls)

    @property
    def copies(self) -> list:
        return self.calls.copies

    @property
    def all_ops(self) -> list:
        return self.ops.all_ops

    def __enter__(self):
        self.calls.__enter__()
        try:
            self.ops.__enter__()
        except BaseException:
            self.calls.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.ops.__exit__(*exc)
        finally:
            self.calls.__exit__(*exc)


def _pretty(qual: str, name: str) -> str:
    if name == "__getitem__":
        return "indexing"
    owner = qual.rsplit(".", 1)[0] if "." in qual else ""
    if owner in ("TensorBase", "Tensor"):
        return f"Tensor.{name}"
    return f"torch.{name}"


def _index_text(index) -> str:
    def one(i):
        if _isinstance(i, slice):
            parts = ["" if v is None else _str(v) for v in (i.start, i.stop, i.step)]
            return ":".join(parts[:2]) + (f":{parts[2]}" if i.step is not None else "")
        if _isinstance(i, _Tensor):
            return f"tensor of {i.numel()} indices"
        text = _repr(i)
        return text if _len(text) <= 30 else text[:27] + "..."
    items = index if _isinstance(index, tuple) else (index,)
    return "t[" + ", ".join(one(i) for i in items) + "]"


# -- how long it may take ---------------------------------------------------------------------


class TooSlow(BaseException):
    """Raised inside the limited code when its time is up. A BaseException, so a student's
    `except Exception:` does not swallow it; `time_limit` turns it into `limit.ran_out`."""


class time_limit:  # noqa: N801 - used as a context manager, like contextlib's
    """`with time_limit(seconds) as limit:` stops the code inside after `seconds` of wall-clock time.

    SIGALRM raises TooSlow in the limited code; the block ends, `limit.ran_out` is True (also when
    the code caught TooSlow and went on) and the caller decides the verdict (`fail(...)`). On the
    way out the previous SIGALRM handler and any timer running before are restored (less the time
    spent inside). Signals reach the main thread
    only, and a limit inside another runs under the outer one: in both cases no limit of its own
    (`limit.active` is False). An alarm that arrives while the block is already ending is ignored.
    """

    _depth = [0]  # limits in force in this process

    def __init__(self, seconds: float):
        self.seconds, self.ran_out, self.active = float(seconds), False, False
        self._armed, self._previous, self._outer_timer, self._start = False, None, 0.0, 0.0

    def _on_alarm(self, signum, frame):
        if self._armed:
            self._armed = False
            self.ran_out = True  # even if the student's code catches TooSlow and goes on
            raise TooSlow()

    def __enter__(self):
        if self._depth[0] or _current_thread() is not _main_thread():
            return self
        self.active, self._armed = True, True
        self._depth[0] += 1
        self._start = _monotonic()
        self._previous = _set_handler(_SIGALRM, self._on_alarm)
        self._outer_timer = _setitimer(_ITIMER_REAL, self.seconds)[0]
        return self

    def __exit__(self, kind, exc, tb):
        if not self.active:
            return False
        self._armed = False
        _setitimer(_ITIMER_REAL, 0)
        _set_handler(_SIGALRM, self._previous)
        self._depth[0] -= 1
        if self._outer_timer:  # someone else's timer was running: it goes on, less our time
            _setitimer(_ITIMER_REAL, _max(self._outer_timer - (_monotonic() - self._start), 1e-3))
        return kind is not None and _issubclass(kind, TooSlow)
