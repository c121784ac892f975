"""`grader.check("lost_leaf")` in a notebook: find the saved notebook, grade it in a warm service, show the answer.

The student's kernel only finds the notebook and asks; grading happens in the grading service
(`grader/service.py`, a process of its own) exactly as `grader check` grades, so nothing the student ran
in the kernel can change the verdict, and the kernel never imports torch for it. The service starts
with the first check (not at `import grader`: importing stays free of processes, and a kernel that
never checks pays nothing) and is reused by every later check of the kernel; it ends with the kernel.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .errors import GraderCrash, GraderError, NotebookNotFound
from .results import SubmissionResult

PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
RUBRICS_ENV = "TORCHGRADE_RUBRICS"  # a course's rubrics folder, for every check of the kernel
START_TIMEOUT_S = 180
# Beyond the exercises' own time limits, what one answer may take before the service counts as hung.
ANSWER_SLACK_S = 60
SERVER_TIMEOUT_S = 1.0
LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}

NAME_IT = 'name the file: grader.check({args}notebook="my_notebook.ipynb")'
NO_NOTEBOOK = "cannot tell which notebook this kernel belongs to; " + NAME_IT
GONE_NOTEBOOK = "the notebook this kernel was started for, {path}, is gone (renamed or moved?)"
NO_FILE = "no notebook file {path}"
UNSAVED = "you ran code for `{id}` that is not in the saved file: save with Ctrl+S, then check again"
SERVICE_FAILED = "the grading service stopped: {why}"
CRASH_TIP = "check again; if it keeps failing, run `grader check NOTEBOOK` in a terminal and show its output to your TA"


@dataclass(frozen=True)
class CheckAnswer:
    """What `grader.check` returns: the result, what was graded, and how Jupyter shows it."""

    graded: str  # the notebook file, or "Colab notebook NAME"
    result: SubmissionResult | None = None
    sha256: str = ""
    saved_at: float | None = None  # the file's mtime when it was graded
    unsaved: tuple[str, ...] = ()
    feedback_html: str = ""
    error: str | None = None
    tip: str = ""

    @property
    def score(self) -> float:
        return self.result.score if self.result else 0.0

    @property
    def max_score(self) -> float:
        return self.result.max_score if self.result else 0.0

    @property
    def full_marks(self) -> bool:
        return self.result is not None and self.result.full_marks

    def what_was_graded(self) -> str:
        what = f"Graded {self.graded}"
        if self.saved_at is not None:
            what += f", saved {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.saved_at))}"
        if self.sha256:
            what += f" (sha256 {self.sha256[:12]})"
        return what

    def __str__(self) -> str:
        if self.error:  # one line and the fix, never a traceback; a long tip (pytest's output) is in the HTML
            tip = self.tip.strip().splitlines()[0] if self.tip.strip() else ""
            return f"grader.check: {self.error.strip().splitlines()[0]}" + (f"\n  {tip}" if tip else "")
        from .report import render_text

        lines = [self.what_was_graded()]
        lines += [f"WARNING {UNSAVED.format(id=ex)}" for ex in self.unsaved]
        return "\n".join(lines + ["", render_text(self.result)])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        e = html.escape
        if self.error:
            first, _, rest = str(self).partition("\n")
            tip = f"<br><span style='opacity:.8'>{e(rest.strip())}</span>" if rest else ""
            more = (self.error + "\n" + self.tip).strip()
            details = (f"<details><summary>details</summary><pre>{e(more)}</pre></details>"
                       if more.count("\n") > 1 else "")
            return (f"<div class='torchgrade-answer' style='border-left:4px solid #c0392b;padding:4px 10px'>"
                    f"<b>grader.check</b>: {e(first.removeprefix('grader.check: '))}{tip}{details}</div>")
        r = self.result
        colour = "#2e7d32" if r.full_marks else "#c0392b"
        parts = [f"<div class='torchgrade-answer' style='border-left:4px solid {colour};padding:4px 10px'>",
                 f"<p style='font-size:1.15em;margin:.2em 0'><b>Score: {r.score:g} / {r.max_score:g}</b></p>",
                 f"<p style='opacity:.75;margin:.2em 0'>{e(self.what_was_graded())}</p>"]
        for ex in self.unsaved:
            parts.append(f"<p style='background:rgba(255,193,7,.25);padding:4px 8px'>⚠ {e(UNSAVED.format(id=ex))}</p>")
        parts += [self.feedback_html, "</div>"]
        return "\n".join(parts)


def check(exercise_id: str, notebook: str | os.PathLike | None = None,
          rubrics: str | os.PathLike | None = None) -> CheckAnswer:
    """Grade exercise `exercise_id` of the saved notebook this kernel belongs to (or `notebook`)."""
    return _check(str(exercise_id), notebook, rubrics)


def check_all(notebook: str | os.PathLike | None = None, rubrics: str | os.PathLike | None = None) -> CheckAnswer:
    """Grade every exercise of the saved notebook this kernel belongs to (or `notebook`)."""
    return _check(None, notebook, rubrics)


def _check(only: str | None, notebook, rubrics) -> CheckAnswer:
    args = f'"{only}", ' if only else ""
    try:
        target = locate_notebook(notebook, args)
        rubrics = rubrics or os.environ.get(RUBRICS_ENV)
        service = _service(str(Path(rubrics).expanduser().resolve()) if rubrics else None)
        answer = service.ask({"only": only, "ran": _ran_cells() if "notebook" in target else [], **target},
                             only)
    except GraderError as e:
        return CheckAnswer(graded="", error=str(e), tip=e.tip)
    except Exception as e:  # noqa: BLE001 - a student at midnight gets one line, not our traceback
        return CheckAnswer(graded="", error=f"the grader itself failed: {type(e).__name__}: {e}", tip=CRASH_TIP)
    graded = target.get("notebook") or f"Colab notebook {target.get('name') or ''}".strip()
    if not answer["ok"]:
        return CheckAnswer(graded=graded, error=answer["error"], tip=answer.get("tip", ""))
    result = SubmissionResult.from_dict(answer["result"])
    return CheckAnswer(graded=graded, result=result, sha256=result.sha256, saved_at=answer.get("mtime"),
                       unsaved=tuple(answer.get("unsaved", ())), feedback_html=answer["html"])


# -- which notebook ---------------------------------------------------------------------------------


def _shell():
    """The IPython shell this code runs in, or None (plain Python)."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def locate_notebook(explicit=None, args: str = "") -> dict:
    """{"notebook": path} of the saved file, or {"content": json, "name": ...} on Colab (no file there)."""
    if explicit is not None:
        path = Path(explicit).expanduser().resolve()
        if not path.is_file():
            raise NotebookNotFound(NO_FILE.format(path=path), f"check the name and folder; the kernel runs in {os.getcwd()}")
        return {"notebook": str(path)}
    if "google.colab" in sys.modules:
        return _colab_notebook()
    shell = _shell()
    vscode = shell.user_ns.get("__vsc_ipynb_file__") if shell is not None else None
    if vscode and Path(vscode).is_file():
        return {"notebook": str(Path(vscode).resolve())}
    path = notebook_from_server(_kernel_id())
    if path is not None and path.is_file():
        return {"notebook": str(path)}
    session = os.environ.get("JPY_SESSION_NAME")  # jupyter_server >= 2: the notebook the kernel was started for
    if session and Path(session).is_file():
        return {"notebook": str(Path(session).resolve())}
    if session:
        raise NotebookNotFound(GONE_NOTEBOOK.format(path=session), NAME_IT.format(args=args))
    raise NotebookNotFound(NO_NOTEBOOK.format(args=args))


def _colab_notebook() -> dict:
    try:
        from google.colab import _message  # type: ignore[import-not-found]

        reply = _message.blocking_request("get_ipynb", request="", timeout_sec=30)
    except Exception as e:  # noqa: BLE001 - Colab's own errors (a timeout of its front-end)
        raise NotebookNotFound(f"Colab did not hand over the notebook's content ({type(e).__name__}: {e})",
                               "run the check cell again") from None
    content = (reply or {}).get("ipynb")
    if not content:
        raise NotebookNotFound("Colab did not hand over the notebook's content", "run the check cell again")
    name = (content.get("metadata", {}).get("colab", {}) or {}).get("name", "")
    return {"content": json.dumps(content), "name": name}


def _kernel_id() -> str | None:
    """The kernel's id, from its connection file's name (`kernel-<id>.json`)."""
    if "ipykernel" not in sys.modules:  # not a Jupyter kernel: nothing to ask, and nothing worth importing
        return None
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).name
    except Exception:  # noqa: BLE001 - not in an ipykernel
        return None
    return name[len("kernel-"):-len(".json")] if name.startswith("kernel-") and name.endswith(".json") else None


def notebook_from_server(kernel_id: str | None, runtime_dir: str | None = None) -> Path | None:
    """Ask each Jupyter server running on this machine (loopback only) which notebook owns `kernel_id`:
    unlike JPY_SESSION_NAME it follows renames."""
    if not kernel_id:
        return None
    import urllib.parse
    import urllib.request

    if runtime_dir is None:
        try:
            from jupyter_core.paths import jupyter_runtime_dir

            runtime_dir = jupyter_runtime_dir()
        except ImportError:
            return None
    servers = sorted(Path(runtime_dir).glob("jpserver-*.json")) + sorted(Path(runtime_dir).glob("nbserver-*.json"))
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the token never goes through a proxy
    for info_file in servers:
        try:
            info = json.loads(info_file.read_text())
            url = info["url"]
            if urllib.parse.urlparse(url).hostname not in LOOPBACK:
                continue  # the token must not leave this machine
            request = urllib.request.Request(url.rstrip("/") + "/api/sessions",  # JupyterHub: .../user/NAME/
                                             headers={"Authorization": f"token {info.get('token', '')}"})
            with direct.open(request, timeout=SERVER_TIMEOUT_S) as reply:
                sessions = json.loads(reply.read())
        except Exception:  # noqa: BLE001 - a stale server file, a server that wants a password: try the next
            continue
        for s in sessions:
            if (s.get("kernel") or {}).get("id") == kernel_id:
                rel = s.get("path") or (s.get("notebook") or {}).get("path")
                root = info.get("root_dir") or info.get("notebook_dir") or ""
                if rel:
                    return Path(root, rel).expanduser().resolve()
    return None


def _ran_cells() -> list[str]:
    """The sources of the cells this kernel executed, oldest first (those that may be exercise cells)."""
    shell = _shell()
    if shell is None:
        return []
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None) or []
    return [s for s in history if "exercise" in s.lower()]


# -- the service ---------------------------------------------------------------------------------------


class _Service:
    """The kernel's handle on one grading service process (grader/service.py)."""

    def __init__(self, rubrics: str | None):
        env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.stderr = tempfile.TemporaryFile()
        # Its own session: an interrupt of the kernel (SIGINT to the kernel's process group) must not stop it.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "grader.service", str(os.getpid()), rubrics or ""],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, env=env, text=True, bufsize=1,
            start_new_session=True,
        )
        self.hello: dict | None = None
        self.next_id = 0
        self.lock = threading.Lock()  # one question at a time on the pipe

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _line(self, timeout: float) -> dict:
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.kill()
                raise GraderCrash(SERVICE_FAILED.format(why=f"no answer within {timeout:.0f} s"),
                                  "check again: a fresh service starts")
        line = self.proc.stdout.readline()
        if not line:
            raise GraderCrash(SERVICE_FAILED.format(why=self._death()), "check again: a fresh service starts")
        return json.loads(line)

    def _death(self) -> str:
        code = self.proc.wait()
        self.stderr.seek(0)
        tail = [line for line in self.stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return f"exit code {code}" + (f": {tail[-1].strip()[:300]}" if tail else "")

    def ready(self) -> dict:
        if self.hello is None:
            hello = self._line(START_TIMEOUT_S)
            if hello.get("refused"):
                self.kill()
                raise GraderCrash(*hello["refused"])
            self.hello = hello
        return self.hello

    def ask(self, request: dict, only: str | None) -> dict:
        with self.lock:
            return self._ask(request, only)

    def _ask(self, request: dict, only: str | None) -> dict:
        limits = self.ready()["exercises"]
        self.next_id += 1
        request = {**request, "id": self.next_id}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        limit = {ex.lower(): s for ex, s in limits.items()}.get(only.strip().lower(), 60) if only else None
        timeout = (limit if only else sum(limits.values())) + ANSWER_SLACK_S
        while True:  # an answer to a check that was interrupted (Ctrl+C in the kernel) arrives first
            answer = self._line(timeout)
            if answer.get("id") == self.next_id:
                return answer

    def pids(self) -> list[int]:
        return [self.proc.pid, *(self.hello or {}).get("workers", [])]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


_services: dict[str | None, _Service] = {}  # one per rubrics folder, for the kernel's lifetime
_services_lock = threading.Lock()
# The service dies with the thread that started it (PR_SET_PDEATHSIG): start it from one that lives as
# long as the kernel, not from whichever thread runs a cell.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchgrade-check")


def _service(rubrics: str | None) -> _Service:
    with _services_lock:
        service = _services.get(rubrics)
        if service is None or not service.alive():
            service = _services[rubrics] = _spawner.submit(_Service, rubrics).result()
        return service


def service_pids() -> list[int]:
    """The processes of this kernel's grading services (the services and their workers): for tests."""
    with _services_lock:
        return [pid for s in _services.values() if s.alive() for pid in s.pids()]
