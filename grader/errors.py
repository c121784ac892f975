"""Typed errors the library raises; only the CLI turns them into messages and exit codes."""

from __future__ import annotations

import difflib


class GraderError(Exception):
    """Base class: something the user can fix; `tip` says how."""

    tip: str = ""

    def __init__(self, message: str, tip: str = ""):
        super().__init__(message)
        if tip:
            self.tip = tip


class UnusableSubmission(GraderError):
    """The submitted file cannot be graded at all (SPEC: exit code 2)."""

    def __init__(self, path, problem: str, tip: str = ""):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}", tip)


class ConfigError(GraderError):
    """A rubric folder or its YAML is wrong; says which file and key."""


class OutputBusy(GraderError):
    """Another `grader grade` is writing the same --out folder (exit code 2: nothing was done)."""


class GraderCrash(GraderError):
    """The grader's own machinery failed (SPEC: exit code 3), not the student's code."""


class NotebookNotFound(GraderError):
    """`grader.check` in a kernel cannot tell which notebook file the kernel belongs to."""


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
