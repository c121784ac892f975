"""`python -m grader.worker [--root DIR] RUBRIC...`: the process the pool starts (`grader.pool.Worker`).

Only the entry point: the warm worker itself is `grader.forkserver`, one run is `grader.supervise`
(and `grader.child` inside it), what a run reports is `grader.channel`, huge pages `grader.hugepages`.
The module keeps its name: it is how a worker is started, and how one is recognised in `ps` (tests/test_cleanup.py).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from grader.forkserver import serve

    args = sys.argv[1:]
    root = None
    if args[:1] == ["--root"]:
        root, args = args[1], args[2:]
    serve(args, root)
