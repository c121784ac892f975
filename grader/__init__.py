"""torchgrade: grade the PyTorch exercises of "Introduction to PyTorch" notebooks.

The public surface: load an assignment, grade notebooks with a Grader, read results; in a notebook,
`grader.check("id")` and `grader.check_all()` (imported on first use: `import grader` stays cheap).
"""

__version__ = "0.1.0"

from .assignment import Assignment, load_assignment  # noqa: E402
from .errors import ConfigError, GraderCrash, GraderError, UnusableSubmission  # noqa: E402
from .pipeline import Grader  # noqa: E402
from .results import CheckResult, ExerciseResult, SubmissionResult  # noqa: E402

__all__ = [
    "Assignment", "load_assignment", "Grader",
    "CheckResult", "ExerciseResult", "SubmissionResult",
    "GraderError", "UnusableSubmission", "ConfigError", "GraderCrash",
    "check", "check_all",
    "__version__",
]


def __getattr__(name: str):
    if name in ("check", "check_all"):
        from . import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'grader' has no attribute {name!r}")
