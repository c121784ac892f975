"""Where a check runs: the devices and dtypes a check is parametrized over, and the GPU mark."""

from __future__ import annotations

import pytest
import torch

_cuda_available = torch.cuda.is_available  # our own reference, taken before any student code is loaded


def cuda_available() -> bool:
    return _cuda_available()


# Decided in the run's own process (the plugin skips it there), never in the warm worker:
# a fork server must not touch CUDA.
NEEDS_CUDA = pytest.mark.needs_cuda
NO_CUDA_REASON = "needs a CUDA GPU, and none is present here"

# The devices a device-generic check runs on: `meta` finds device bugs without a GPU.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("meta", id="meta"),
    pytest.param("cuda", id="cuda", marks=NEEDS_CUDA),
]
DTYPES = [pytest.param(torch.float32, id="float32"), pytest.param(torch.float64, id="float64")]
