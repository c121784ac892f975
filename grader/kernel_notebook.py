"""Which saved notebook a kernel belongs to, asked from inside the kernel: the file named, VS Code's
variable, the Jupyter server that runs the kernel (loopback only), JPY_SESSION_NAME, or on Colab the
notebook's content itself; and which exercise cells the kernel ran (for "not saved" warnings).

grader.notebook asks this before it hands the file to the grading service. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .errors import NotebookNotFound

SERVER_TIMEOUT_S = 1.0
LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}

NAME_IT = 'name the file: grader.check({args}notebook="my_notebook.ipynb")'
NO_NOTEBOOK = "cannot tell which notebook this kernel belongs to; " + NAME_IT
GONE_NOTEBOOK = "the notebook this kernel was started for, {path}, is gone (renamed or moved?)"
NO_FILE = "no notebook file {path}"


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


def ran_cells() -> list[str]:
    """The sources of the cells this kernel executed, oldest first (those that may be exercise cells)."""
    shell = _shell()
    if shell is None:
        return []
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None) or []
    return [s for s in history if "exercise" in s.lower()]
