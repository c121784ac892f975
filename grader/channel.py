"""The run channel, both ends and what it means: one private pipe from a sandboxed run to its worker.

In the run, the plugin writes JSON lines with `Channel`, each carrying the run's secret token. In the
worker, `decode` reads them back, trusting only lines with that token and only in the order the plugin
sends them, and adds how the child ended: the result is a `RunOutcome`, the one typed record of a run
that the rest of the grader reads (pool, pipeline, calibration, score). What a run's outcome means for
its grade (`RunOutcome.verdict`) is decided here, once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
from dataclasses import dataclass

from .results import CRASHED, ERROR, GRADED, TIMEOUT

# The message kinds, in the order a run sends them: the list of checks first (before any student code
# exists), then notes, each check's report, and "done"; a run may end early with one of the others.
COLLECTED, NOTES, CHECK, DONE = "collected", "notes", "check", "done"
TAMPERING_KIND, LOAD_ERROR, CRASH, CALIBRATION = "tampering", "load_error", "crash", "calibration"
KINDS = frozenset({COLLECTED, NOTES, CHECK, DONE, TAMPERING_KIND, LOAD_ERROR, CRASH, CALIBRATION})

# How a run ended (`RunOutcome.ended`): the plugin reported its end, or the grader had to step in.
REPORTED, TIMED_OUT, DIED, WORKER_FAILED = "reported", "timeout", "crashed", "worker_failed"

STOPPED = "the grader stopped this exercise because {reason}"
TAMPERING = "tampering detected: {what}; the exercise scores 0"
FORGED = "something other than the grader wrote to its result channel ({details})"
MAX_RESULT_BYTES = 16 << 20  # what the worker reads of the result pipe; the rest is dropped


class Channel:
    """The write end of the result pipe; one JSON object per line, each carrying the token."""

    def __init__(self, fd: int, token: str):
        self.fd, self.token = fd, token
        self._write, self._dumps = os.write, json.dumps  # our own references

    def send(self, kind: str, **data) -> None:
        payload = (self._dumps({"token": self.token, "kind": kind, **data}) + "\n").encode()
        while payload:
            payload = payload[self._write(self.fd, payload):]


@dataclass(frozen=True)
class CheckReport:
    """One check as the run reported it (`picture`: validated here, on a failure that drew one)."""

    id: str
    status: str
    message: str
    duration_s: float
    picture: dict | None = None


@dataclass(frozen=True)
class Tampering:
    """What the run's integrity checks found replaced (or which tracing calls were made), and when."""

    replaced: tuple[str, ...] = ()
    called: tuple[str, ...] = ()
    when: str = ""

    def describe(self) -> str:
        """"`torch.allclose` was replaced during the check `test_x`", "`sys.settrace` was called ..."."""
        parts = []
        for names, verb in ((self.replaced, "replaced"), (self.called, "called")):
            if names:
                shown = ", ".join(f"`{n}`" for n in names[:5])
                shown += f" and {len(names) - 5} more" if len(names) > 5 else ""
                parts.append(f"{shown} {'was' if len(names) == 1 else 'were'} {verb}")
        return f"{' and '.join(parts) or 'the checks were interfered with'} {self.when}".strip()


@dataclass(frozen=True)
class RunOutcome:
    """What one run reported and how it ended. `collected`: the checks the run's rubric lists, as the
    plugin describes them (the catalogue's own entries: rubric, id, name, needs_cuda), None if it never
    said; `forged`: why genuine-looking lines cannot be the plugin's; `forged_lines`: lines without the
    token; `reason`: why the grader stepped in (ended TIMED_OUT, DIED or WORKER_FAILED)."""

    ended: str = REPORTED
    reason: str | None = None
    collected: tuple[dict, ...] | None = None
    checks: tuple[CheckReport, ...] = ()
    notes: tuple[str, ...] = ()
    load_error: str | None = None
    crash: str | None = None
    tampering: Tampering | None = None
    forged: tuple[str, ...] = ()
    forged_lines: int = 0
    done: bool = False
    cuda: bool = False
    threads: int = 0
    calibration: dict | None = None
    output: str = ""
    output_dropped: int = 0
    duration_s: float = 0.0

    @classmethod
    def worker_failed(cls, reason: str) -> "RunOutcome":
        """The outcome of a job whose worker (a grading worker, a Dask worker) failed or died: no run to read."""
        return cls(ended=WORKER_FAILED, reason=reason)

    @property
    def verdict(self) -> tuple[str, str | None]:
        """(the exercise's status, its error): a lost worker, then forged lines, tampering, a time-out, a
        run that died, a crash it reported, its code failing to load; otherwise GRADED, check by check."""
        if self.ended == WORKER_FAILED:
            return CRASHED, STOPPED.format(reason=self.reason)
        forged = list(self.forged)
        if self.forged_lines:
            n = self.forged_lines
            forged.insert(0, f"{n} line{'s' if n != 1 else ''} without the run's secret token")
        if forged:
            return ERROR, TAMPERING.format(what=FORGED.format(details="; ".join(forged[:3])))
        if self.tampering:
            return ERROR, TAMPERING.format(what=self.tampering.describe())
        if self.ended == TIMED_OUT:
            return TIMEOUT, STOPPED.format(reason=self.reason)
        if self.ended == DIED:
            return CRASHED, STOPPED.format(reason=self.reason)
        if self.crash:
            return CRASHED, STOPPED.format(reason=self.crash)
        if self.load_error:
            return ERROR, self.load_error
        return GRADED, None

    def to_dict(self) -> dict:
        """Plain JSON-able data (how a worker process answers the grader). Shallow, for speed (`asdict`
        deep-copies: 4x the time of the JSON encoding itself): it shares this outcome's dicts."""
        data = dict(vars(self))
        data["checks"] = [dict(vars(c)) for c in self.checks]
        data["tampering"] = dict(vars(self.tampering)) if self.tampering is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunOutcome":
        """The inverse of `to_dict` (also after a JSON round trip); ValueError if `data` is not one."""
        try:
            fields = dict(data)
            fields["checks"] = tuple(CheckReport(**c) for c in fields.get("checks", ()))
            if fields.get("tampering") is not None:
                t = fields["tampering"]
                fields["tampering"] = Tampering(tuple(t["replaced"]), tuple(t["called"]), t["when"])
            if fields.get("collected") is not None:
                fields["collected"] = tuple(dict(c) for c in fields["collected"])
            fields["notes"] = tuple(fields.get("notes", ()))
            fields["forged"] = tuple(fields.get("forged", ()))
            return cls(**fields)
        except (TypeError, KeyError, AttributeError) as e:
            raise ValueError(f"not a run outcome: {e}") from None


# -- the worker's end: decoding ---------------------------------------------------------------


def decode(results: bytes, token: str, *, status: int | None, timed_out: bool, timeout_s: float,
           output: str = "", output_dropped: int = 0, duration_s: float = 0.0) -> RunOutcome:
    """Turn what came over the private pipe (`results`), and how the child ended (its wait `status`,
    or killed at the deadline: `timed_out`), into the run's outcome.

    Only lines with the run's token count, and only in the order the plugin sends them: the list of
    checks first (sent before any student code existed), each of those checks at most once, nothing
    after "done". Anything else is recorded as forged (the verdict: tampering).
    """
    reader = _Reader()
    for line in results.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            reader.forged_lines += 1
            continue
        if not isinstance(msg, dict) or not secrets.compare_digest(str(msg.get("token", "")).encode(), token.encode()):
            reader.forged_lines += 1
            continue
        try:
            problem = reader.take(msg)
        except (KeyError, TypeError, ValueError, AttributeError):
            problem = f"a malformed `{str(msg.get('kind'))[:40]}` message"
        if problem:
            reader.forged.append(problem)
    reason = None
    if timed_out:
        ended, reason = TIMED_OUT, f"it was still running after {timeout_s:g} s (the exercise's time limit)"
    elif status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
        ended, reason = TIMED_OUT, "it used up its CPU-time limit"
    elif reader.crash or reader.load_error or reader.tampering or reader.done:
        ended = REPORTED
    else:
        ended, reason = DIED, describe_exit(status)
    return RunOutcome(
        ended=ended, reason=reason, collected=reader.collected, checks=tuple(reader.checks),
        notes=tuple(reader.notes), load_error=reader.load_error, crash=reader.crash, tampering=reader.tampering,
        forged=tuple(reader.forged), forged_lines=reader.forged_lines, done=reader.done, cuda=reader.cuda,
        threads=reader.threads, calibration=reader.calibration, output=output, output_dropped=output_dropped,
        duration_s=duration_s,
    )


class _Reader:
    """The messages of one run so far, and the order rules they must keep."""

    def __init__(self):
        self.collected: tuple[dict, ...] | None = None
        self.checks: list[CheckReport] = []
        self.notes: list[str] = []
        self.load_error = self.crash = None
        self.tampering: Tampering | None = None
        self.done, self.cuda, self.threads, self.calibration = False, False, 0, None
        self.forged: list[str] = []
        self.forged_lines = 0
        self.expected: set[str] = set()
        self.seen: set[str] = set()
        self.picture_bytes = 0

    def take(self, msg: dict) -> str | None:
        """Record one genuine-looking message; return why it cannot be the plugin's, if it cannot."""
        kind = msg.get("kind")
        if self.done:
            return f"a `{str(kind)[:40]}` message after the last check"
        if kind == CHECK:
            check_id = str(msg["id"])
            if check_id not in self.expected:
                return f"a result for `{check_id[:80]}`, which is not a check of this rubric"
            if check_id in self.seen:
                return f"a second result for `{check_id}`"
            self.seen.add(check_id)
            report = CheckReport(check_id, str(msg["status"]), str(msg["message"]), float(msg["duration_s"]))
            self.checks.append(report)
            if msg.get("picture") is not None:
                picture, self.picture_bytes, note = admit_picture(check_id, msg["picture"], self.picture_bytes)
                if note:
                    self.notes.append(note)
                else:
                    self.checks[-1] = dataclasses.replace(report, picture=picture)
        elif kind == COLLECTED:
            if self.collected is not None:
                return "a second list of checks"
            self.collected = tuple(dict(c) for c in msg["checks"])
            self.expected.update(str(c["id"]) for c in self.collected)
            self.cuda = bool(msg.get("cuda"))
        elif kind == NOTES:
            self.notes += [str(n) for n in msg["notes"]]
        elif kind == TAMPERING_KIND:
            self.tampering = self.tampering or Tampering(tuple(str(r) for r in msg["replaced"]),
                                                         tuple(str(c) for c in msg.get("called", ())), str(msg["when"]))
        elif kind in (LOAD_ERROR, CRASH):
            text = str(msg.get("message") or msg.get("reason"))
            if kind == LOAD_ERROR:
                self.load_error = self.load_error or text
            else:
                self.crash = self.crash or text
        elif kind == DONE:
            self.done = True
            self.threads = int(msg.get("threads") or 0)
        elif kind == CALIBRATION:
            self.calibration = dict(msg["data"])
        else:
            return f"a message of an unknown kind `{str(kind)[:40]}`"
        return None


def admit_picture(check_id: str, data, used: int) -> tuple[dict | None, int, str | None]:
    """A check's picture, validated here, outside the sandbox, and within the run's budget (`used`
    bytes so far): (the picture, the bytes used then, None), or (None, `used`, the note that says why
    it was left out; the check's verdict and message are kept)."""
    from . import pictures

    try:
        picture = pictures.clean(data)
        size = pictures.encoded_size(picture)
        if used + size > pictures.MAX_RUN_PICTURE_BYTES:
            raise pictures.PictureError(f"the run's pictures would exceed {pictures.MAX_RUN_PICTURE_BYTES:,} bytes")
    except pictures.PictureError as e:
        return None, used, pictures.DROPPED.format(check=check_id[:80], why=e)
    return picture, used + size, None


def describe_exit(status: int | None) -> str:
    """Why a run that never reported its end ended, from its wait status."""
    if status is None:
        return "the process vanished"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name
        if sig == signal.SIGKILL:
            return f"it was killed ({name}), most likely for going over the memory limit"
        if sig == signal.SIGSEGV:
            return f"it crashed with a segmentation fault ({name})"
        return f"it was ended by the signal {name}"
    return f"the process exited (exit code {os.WEXITSTATUS(status)}) before the checks finished, e.g. by os._exit()"


__all__ = ["Channel", "CheckReport", "Tampering", "RunOutcome", "decode", "admit_picture", "describe_exit",
           "STOPPED", "TAMPERING", "FORGED"]
