"""What rubrics call to judge student code, and the shape of every failure message.

A failed check reads like `torch.testing`: the verdict, expected vs found (attributes before
values), where, the tolerance. Advice has one home per kind:

- the lecture's advice for a check, the same whatever the student wrote, is the check's `hint`
  in the assignment YAML; the grader adds it under every failure of that check;
- `fail(..., fix=...)` only where the repair depends on what was found: the copying call the
  student used, the argument they overwrote, the way a call ran out of time. A `fix=` that
  would read the same for every failure of the check belongs in the hint instead.

Points live in the YAML too, per check function (split across its cases, `Exercise.case_points`).

Modules, by job: `failures` (fail, need, CheckFailure), `tensors` (expect_*, describe),
`devices` (DEVICES, DTYPES, NEEDS_CUDA), `graphs` (autograd_graph, with_picture), `probes`
(OperatorLog, CopyRecorder, time_limit); the timing probe is `grader.timing`'s `expect_speedup`
and `measure_speedup`, importable from here. Every torch function they use is bound at import,
before student code exists, so a submission that replaces `torch.allclose` cannot make a check
pass (it is also detected: grader.integrity watches these modules).
"""

from __future__ import annotations

from .devices import DEVICES, DTYPES, NEEDS_CUDA, NO_CUDA_REASON, cuda_available
from .failures import FEEDBACK, NOT_DEFINED, CheckFailure, NotDefined, fail, need, not_defined
from .graphs import GRAPH_DEPTH, GRAPH_NODES, autograd_graph, tensor_summary, with_picture
from .probes import CallRecorder, CopyRecorder, OperatorLog, OpRecorder, TooSlow, storage_of, time_limit
from .tensors import (describe, expect_attributes, expect_close, expect_plain_tensor, expect_tensor, grad_fn_name,
                      shape_text)

# Re-exported from grader.timing, which itself imports `fail` from here: looked up on first use.
_FROM_TIMING = ("expect_speedup", "measure_speedup")


def __getattr__(name: str):
    if name in _FROM_TIMING:
        from .. import timing

        return getattr(timing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEVICES", "DTYPES", "FEEDBACK", "GRAPH_DEPTH", "GRAPH_NODES", "NEEDS_CUDA", "NOT_DEFINED", "NO_CUDA_REASON",
    "CallRecorder", "CheckFailure", "CopyRecorder", "NotDefined", "OpRecorder", "OperatorLog", "TooSlow",
    "autograd_graph", "cuda_available", "describe", "expect_attributes", "expect_close", "expect_plain_tensor",
    "expect_speedup", "expect_tensor", "fail", "grad_fn_name", "measure_speedup", "need", "not_defined",
    "shape_text", "storage_of", "tensor_summary", "time_limit", "with_picture",
]
