"""Rubric for `checkpoint`: the lecture's training loop, and a checkpoint that resumes it exactly.

`train(model, opt, batches)` is the lecture's pattern (loss, `opt.zero_grad()`, `loss.backward()`,
`opt.step()`) and returns the losses as numbers; `save_checkpoint(model, opt)` returns bytes (a
`torch.save` into a BytesIO) that hold the state dicts only, so `torch.load(..., weights_only=True)`
reads them (lecture, "Loading and Saving models": save the state dict, not the model); and
`load_checkpoint(data, model, opt)` restores a freshly made model and optimizer, so that training
resumed from the checkpoint continues exactly as uninterrupted training would (with momentum, the
optimizer's state is part of that: "Optimizers also have a state_dict for saving / restoring").
"""

import io
import numbers
import re

import torch

from grader.checks import describe, expect_close, fail, need

# Our own references, taken before any student code is loaded (it may replace torch's functions).
_load = torch.load
_mse_loss = torch.nn.functional.mse_loss
_randn = torch.randn
_linspace = torch.linspace
_sin = torch.sin
_no_grad = torch.no_grad
_manual_seed = torch.manual_seed
_Sequential, _Linear, _Tanh = torch.nn.Sequential, torch.nn.Linear, torch.nn.Tanh
_SGD = torch.optim.SGD
_tensor = torch.tensor

LR, MOMENTUM = 1e-2, 0.9
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torch.load's refusal is formatted for a terminal
FIX_LOOP = ("for each batch: `loss = mse_loss(model(x), target, reduction='sum')`, `opt.zero_grad()`, "
            "`loss.backward()`, `opt.step()`, and keep `loss.item()`")


def make_model(seed):
    """The lecture's model, Linear(1, 10) -> Tanh -> Linear(10, 1), with seeded weights."""
    _manual_seed(seed)
    return _Sequential(_Linear(1, 10), _Tanh(), _Linear(10, 1))


def make_opt(model):
    return _SGD(model.parameters(), lr=LR, momentum=MOMENTUM)  # momentum: the optimizer has a state


def make_batches(count, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        x = _randn(10, 1, generator=g)
        out.append((x, _sin(2 * x)))  # the lecture's target
    return out


def reference_train(model, opt, batches):
    losses = []
    for x, target in batches:
        loss = _mse_loss(model(x), target, reduction="sum")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def outputs(model):
    with _no_grad():
        return model(_linspace(-2, 2, 50)[:, None])


def student_train(student, model, opt, batches):
    losses = need(student, "train")(model, opt, batches)
    if not isinstance(losses, (list, tuple)) or len(losses) != len(batches):
        fail("train must return one loss per batch", expected=f"a list of {len(batches)} losses",
             found=describe(losses) if not isinstance(losses, (list, tuple)) else f"a list of {len(losses)}")
    return losses


def test_train_losses(student):
    """train follows the lecture's loop: the same losses and weights as the reference, batch by batch"""
    batches = make_batches(6, seed=1)
    model, expected_model = make_model(0), make_model(0)
    losses = student_train(student, model, make_opt(model), batches)
    expected = reference_train(expected_model, make_opt(expected_model), batches)
    found = _tensor([float(loss) for loss in losses], dtype=torch.float64)
    expect_close(found, _tensor(expected, dtype=torch.float64), "the losses train returned, batch by batch",
                 rtol=1e-4, atol=1e-5, fix="losses that drift from the second batch on mean gradients that pile up: "
                                           "call `opt.zero_grad()` before every `loss.backward()`; " + FIX_LOOP)
    expect_close(outputs(model), outputs(expected_model), "the trained model's outputs on linspace(-2, 2, 50)",
                 rtol=1e-4, atol=1e-5, fix=FIX_LOOP)


def test_losses_are_numbers(student):
    """the recorded losses are plain numbers (loss.item()), not tensors that keep the graph alive"""
    model = make_model(0)
    losses = student_train(student, model, make_opt(model), make_batches(3, seed=2))
    kept = [loss for loss in losses if not isinstance(loss, numbers.Real)]
    if kept:
        fail("train returns losses that are not numbers", expected="floats, from `loss.item()`",
             found=f"{describe(kept[0])}" + (f" with grad_fn {type(kept[0].grad_fn).__name__}"
                                            if getattr(kept[0], "grad_fn", None) is not None else ""),
             fix="lecture: \"Using item and detach for things to keep around longer than the next backward is "
                 "generally a good idea (e.g. when you record loss history ...)\": a kept loss tensor keeps its "
                 "whole graph in memory")


def saved(student, model, opt) -> bytes:
    data = need(student, "save_checkpoint")(model, opt)
    if not isinstance(data, (bytes, bytearray)):
        fail("save_checkpoint must return the checkpoint as bytes", expected="bytes (torch.save into an io.BytesIO, "
             "then `.getvalue()`)", found=describe(data))
    return bytes(data)


def trained(batches=3, seed=0):
    model = make_model(seed)
    opt = make_opt(model)
    reference_train(model, opt, make_batches(batches, seed=3))
    return model, opt


def test_round_trip(student):
    """a fresh model loaded from the checkpoint gives the trained model's outputs"""
    model, opt = trained()
    data = saved(student, model, opt)
    fresh = make_model(99)  # other weights, as a model made in another session has
    need(student, "load_checkpoint")(data, fresh, make_opt(fresh))
    expect_close(outputs(fresh), outputs(model), "the outputs of a fresh model after load_checkpoint", rtol=0, atol=0,
                 fix="save `model.state_dict()`; to load, `model.load_state_dict(...)` into the model you were given")


def test_weights_only(student):
    """the checkpoint holds state dicts only: torch.load(..., weights_only=True) reads it"""
    model, opt = trained()
    try:
        _load(io.BytesIO(saved(student, model, opt)), weights_only=True)
    except Exception as e:  # noqa: BLE001 - the unpickler's refusal names what it found
        lines = [ANSI.sub("", line).strip() for line in str(e).splitlines() if line.strip()] or [""]
        why = next((line for line in lines if "Unsupported global" in line), lines[0])
        fail("the checkpoint cannot be read with torch.load(..., weights_only=True)",
             expected="state dicts: tensors, numbers, strings, lists and dicts",
             found=f"{type(e).__name__}: {why[:200]}",
             fix="lecture, \"Loading and Saving models\": \"save the state dict and upon loading instantiate the "
                 "model and load the state dict\"; `torch.save(model)` pickles the class itself")


def test_resume(student):
    """training resumed from the checkpoint continues exactly as uninterrupted training (optimizer state too)"""
    batches = make_batches(6, seed=4)
    uninterrupted = make_model(5)
    reference_train(uninterrupted, make_opt(uninterrupted), batches)
    model = make_model(5)
    opt = make_opt(model)
    reference_train(model, opt, batches[:3])
    data = saved(student, model, opt)
    fresh = make_model(77)
    fresh_opt = make_opt(fresh)
    need(student, "load_checkpoint")(data, fresh, fresh_opt)
    reference_train(fresh, fresh_opt, batches[3:])
    expect_close(outputs(fresh), outputs(uninterrupted),
                 "the outputs after 3 batches, a checkpoint, and 3 more batches in a fresh model and optimizer",
                 rtol=1e-5, atol=1e-6,
                 fix="SGD with momentum keeps a momentum buffer per parameter: save `opt.state_dict()` beside "
                     "`model.state_dict()` and restore both (lecture: \"Optimizers also have a state_dict for "
                     "saving / restoring\")")


def probe(student):
    """What a mutant of the solution must reproduce to count as equivalent (`grader validate --mutants`)."""
    model = make_model(0)
    opt = make_opt(model)
    losses = student.train(model, opt, make_batches(3, seed=6))
    fresh = make_model(1)
    fresh_opt = make_opt(fresh)
    student.load_checkpoint(student.save_checkpoint(model, opt), fresh, fresh_opt)
    reference_train(fresh, fresh_opt, make_batches(2, seed=7))
    return [[float(loss) for loss in losses], outputs(fresh)]
