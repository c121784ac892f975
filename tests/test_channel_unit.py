"""Unit layer for grader/channel.py: what a run's lines decode to, and the verdict, without a worker.

Lines are written by the plugin's own encoder (`Channel`, into a temporary file) or, for what the
plugin never sends, by hand; `decode` reads them as the worker does after a child ended."""

from __future__ import annotations

import ast
import json
import os
import pickle
import signal
import tempfile
from pathlib import Path

import pytest

import grader
from grader.channel import (DIED, FORGED, KINDS, REPORTED, STOPPED, TAMPERING, TIMED_OUT, WORKER_FAILED, Channel,
                            CheckReport, RunOutcome, Tampering, decode)
from grader.results import CRASHED, ERROR, GRADED, TIMEOUT

TOKEN = "5ecret"
CATALOG = [{"rubric": "test_double", "id": "test_a", "name": "A", "needs_cuda": False},
           {"rubric": "test_double", "id": "test_b", "name": "B", "needs_cuda": False}]


def sent(*messages: tuple[str, dict], token: str = TOKEN) -> bytes:
    """What the plugin's `Channel` writes for `messages` ((kind, data) pairs)."""
    with tempfile.TemporaryFile() as sink:
        channel = Channel(sink.fileno(), token)
        for kind, data in messages:
            channel.send(kind, **data)
        sink.seek(0)
        return sink.read()


def collected() -> tuple[str, dict]:
    return "collected", {"checks": CATALOG, "cuda": False}


def check(check_id: str, status: str = "passed", message: str = "", **extra) -> tuple[str, dict]:
    return "check", {"id": check_id, "status": status, "message": message, "duration_s": 0.25, **extra}


def done() -> tuple[str, dict]:
    return "done", {"threads": 2}


def read(results: bytes, status: int | None = 0, timed_out: bool = False) -> RunOutcome:
    return decode(results, TOKEN, status=status, timed_out=timed_out, timeout_s=6.0, output="hi", output_dropped=3,
                  duration_s=1.5)


def forged_verdict(*details: str) -> tuple[str, str]:
    return ERROR, TAMPERING.format(what=FORGED.format(details="; ".join(details)))


def test_a_good_run_decodes_to_typed_checks_and_is_graded():
    out = read(sent(collected(), ("notes", {"notes": ["a note"]}), check("test_a"),
                    check("test_b", "failed", "wrong"), done()))
    assert out.collected == tuple(CATALOG) and out.cuda is False
    assert out.checks == (CheckReport("test_a", "passed", "", 0.25), CheckReport("test_b", "failed", "wrong", 0.25))
    assert (out.notes, out.done, out.threads, out.ended, out.reason) == (("a note",), True, 2, REPORTED, None)
    assert (out.output, out.output_dropped, out.duration_s) == ("hi", 3, 1.5)
    assert (out.forged, out.forged_lines) == ((), 0)
    assert out.verdict == (GRADED, None)


def test_lines_without_the_token_or_not_json_are_counted_as_forged():
    good = sent(collected(), check("test_a"), check("test_b"), done())
    fake = sent(check("test_a"), token="guessed") + b'{"kind": "done"}\n' + b'{"token": "5ecret", "kind": "che'
    out = read(good + fake)
    assert out.forged_lines == 3 and out.forged == ()
    assert [c.id for c in out.checks] == ["test_a", "test_b"]  # the forged lines changed nothing
    assert out.verdict == forged_verdict("3 lines without the run's secret token")
    assert read(good + b"[1, 2]\n").verdict == forged_verdict("1 line without the run's secret token")


@pytest.mark.parametrize("messages, problem", [
    ((collected(), check("test_a", "failed"), check("test_a", "passed"), done()), "a second result for `test_a`"),
    ((collected(), check("test_zzz"), done()), "a result for `test_zzz`, which is not a check of this rubric"),
    ((check("test_a"), collected(), done()), "a result for `test_a`, which is not a check of this rubric"),
    ((collected(), done(), check("test_a")), "a `check` message after the last check"),
    ((collected(), collected(), done()), "a second list of checks"),
    ((collected(), ("surprise", {}), done()), "a message of an unknown kind `surprise`"),
    ((collected(), ("check", {"id": "test_a", "status": "passed"}), done()), "a malformed `check` message"),
])
def test_a_token_line_out_of_the_plugins_order_is_forged(messages, problem):
    out = read(sent(*messages))
    assert out.forged == (problem,)
    assert out.verdict == forged_verdict(problem)


def test_a_duplicate_check_keeps_the_first_report():
    out = read(sent(collected(), check("test_a", "failed", "no"), check("test_a", "passed"), done()))
    assert out.checks == (CheckReport("test_a", "failed", "no", 0.25),)


def test_how_the_run_ended_without_reporting_its_end():
    reported = sent(collected(), check("test_a"))
    timed = read(reported, status=signal.SIGKILL, timed_out=True)
    assert (timed.ended, timed.reason) == (TIMED_OUT, "it was still running after 6 s (the exercise's time limit)")
    assert timed.verdict == (TIMEOUT, STOPPED.format(reason=timed.reason))
    cpu = read(reported, status=signal.SIGXCPU)
    assert (cpu.ended, cpu.reason) == (TIMED_OUT, "it used up its CPU-time limit")
    killed = read(reported, status=signal.SIGKILL)
    assert (killed.ended, killed.verdict[0]) == (DIED, CRASHED) and "memory limit" in killed.reason
    exited = read(reported, status=3 << 8)
    assert exited.reason.startswith("the process exited (exit code 3)")
    assert read(reported, status=None).reason == "the process vanished"


def test_the_verdict_order_forged_tampering_timeout_death_crash_load_error():
    tampering = Tampering(("torch.allclose",), (), "during the check `test_a`")
    everything = RunOutcome(forged=("a second list of checks",), tampering=tampering, ended=TIMED_OUT, reason="late",
                            crash="boom", load_error="ZeroDivisionError")
    assert everything.verdict == forged_verdict("a second list of checks")
    assert RunOutcome(forged_lines=1, ended=DIED, reason="gone").verdict[0] == ERROR
    steps = [
        (RunOutcome(tampering=tampering, ended=TIMED_OUT, reason="late", crash="boom"),
         (ERROR, TAMPERING.format(what="`torch.allclose` was replaced during the check `test_a`"))),
        (RunOutcome(ended=TIMED_OUT, reason="late", crash="boom", load_error="x"), (TIMEOUT, STOPPED.format(reason="late"))),
        (RunOutcome(ended=DIED, reason="gone", crash="boom", load_error="x"), (CRASHED, STOPPED.format(reason="gone"))),
        (RunOutcome(crash="boom", load_error="x"), (CRASHED, STOPPED.format(reason="boom"))),
        (RunOutcome(load_error="ZeroDivisionError at cell 2"), (ERROR, "ZeroDivisionError at cell 2")),
        (RunOutcome(done=True), (GRADED, None)),
    ]
    for outcome, verdict in steps:
        assert outcome.verdict == verdict


def test_a_lost_worker_is_one_constructor_and_crashes_the_exercise():
    lost = RunOutcome.worker_failed("the grading worker died while running this job (BrokenPipeError)")
    assert (lost.ended, lost.checks, lost.collected) == (WORKER_FAILED, (), None)
    assert lost.verdict == (CRASHED, STOPPED.format(reason=lost.reason))


def test_tampering_is_described_with_what_was_replaced_and_called():
    out = read(sent(collected(), ("tampering", {"replaced": [f"f{i}" for i in range(7)], "called": ["sys.settrace"],
                                                "when": "while your code ran"}),
                    ("tampering", {"replaced": ["second"], "when": "later"})))
    assert out.tampering.when == "while your code ran"  # the first report stands
    assert out.ended == REPORTED
    assert out.tampering.describe() == ("`f0`, `f1`, `f2`, `f3`, `f4` and 2 more were replaced and `sys.settrace` was "
                                        "called while your code ran")
    assert Tampering(when="x").describe() == "the checks were interfered with x"


def test_a_failed_checks_picture_is_kept_within_the_budget():
    picture = {"kind": "graph", "nodes": [{"id": "n0", "label": "x", "kind": "leaf"}]}
    out = read(sent(collected(), check("test_a", "failed", "no", picture=picture),
                    check("test_b", "failed", "no", picture={"kind": "video"}), done()))
    assert out.checks[0].picture["nodes"][0]["id"] == "n0"
    assert out.checks[1].picture is None and out.checks[1].message == "no"
    assert out.notes == ("the picture for `test_b` was left out: unknown kind 'video'",)


def test_an_outcome_survives_the_trip_between_processes():
    picture = {"kind": "graph", "nodes": [{"id": "n0", "label": "x", "kind": "leaf"}]}
    out = read(sent(collected(), ("notes", {"notes": ["n"]}), check("test_a", "failed", "no", picture=picture),
                    ("tampering", {"replaced": ["torch.add"], "called": [], "when": "at the end"}),
                    ("calibration", {"data": {"cpu": {"speedup": 3.5}}})), status=signal.SIGSEGV)
    assert out.tampering is not None and out.calibration and out.checks[0].picture
    through_json = RunOutcome.from_dict(json.loads(json.dumps(out.to_dict())))
    assert through_json == out and through_json.verdict == out.verdict
    assert pickle.loads(pickle.dumps(out)) == out
    lost = RunOutcome.worker_failed("gone")
    assert RunOutcome.from_dict(json.loads(json.dumps(lost.to_dict()))) == lost


@pytest.mark.parametrize("data", [{"checks": [{"id": "a"}]}, {"surprise": 1}, {"tampering": {"when": "x"}}, [1, 2]])
def test_what_is_not_an_outcome_is_a_value_error(data):
    with pytest.raises(ValueError, match="not a run outcome"):
        RunOutcome.from_dict(data)


def test_every_kind_the_plugin_sends_is_a_kind_the_decoder_knows():
    # The plugin writes its kinds as literals (student code could rebind a module-level name): they must not drift.
    source = Path(os.path.dirname(grader.__file__), "_plugin.py").read_text()
    kinds = {node.args[0].value for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "send"
             and node.args and isinstance(node.args[0], ast.Constant)}
    assert kinds == KINDS
