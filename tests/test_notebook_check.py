"""`grader.check` in a real notebook: real ipykernel kernels driven by nbclient, grading by the real service.

One kernel is shared by most tests (its grading service starts once); the mini assignment is copied
with a 3 s time limit so that the hanging exercise costs little.
"""

from __future__ import annotations

import ast
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from conftest import MINI_RUBRICS, build_notebook

nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.manager import KernelManager  # noqa: E402

from grader import notebook as nbcheck  # noqa: E402
from grader import tempdirs  # noqa: E402
from grader.service import NOT_INSTALLED_TIP, unsaved_exercises  # noqa: E402

DOUBLE_OK = "# exercise: double\ndef double(x):\n    return 2 * x"
DOUBLE_BUGGY = "# exercise: double\ndef double(x):\n    return x + x + 1"
DOUBLE_HANGS = "# exercise: double\ndef double(x):\n    while True:\n        pass"
SQUARE_OK = "# exercise: square\ndef square(x):\n    return x ** 2"
TIME_LIMIT_S = 3


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """The mini assignment with a short time limit (its rubrics folder)."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(MINI_RUBRICS.parent, root / "mini")
    yml = root / "mini" / "rubrics" / "mini.yml"
    yml.write_text(re.sub(r"timeout_s: \d+", f"timeout_s: {TIME_LIMIT_S}", yml.read_text()))
    return root / "mini" / "rubrics"


def start_kernel(cwd: Path, env: dict) -> KernelManager:
    """A kernel as jupyter_server starts one: its connection file `kernel-<id>.json` in the runtime folder."""
    runtime = cwd / "runtime"
    runtime.mkdir(exist_ok=True)
    km = KernelManager(kernel_name="python3", connection_file=str(runtime / f"kernel-{uuid.uuid4()}.json"))
    km.start_kernel(cwd=str(cwd), env={**os.environ, **env})
    return km


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, course):
    """A kernel started as jupyter_server starts one for `student.ipynb` (JPY_SESSION_NAME), for the course."""
    home = tmp_path_factory.mktemp("student")
    km = start_kernel(home, {"JPY_SESSION_NAME": str(home / "student.ipynb"), nbcheck.RUBRICS_ENV: str(course)})
    yield km, home / "student.ipynb"
    km.shutdown_kernel(now=True)


def run(km: KernelManager, cells: list[str], path: Path | None, saved: list[str] | None = None) -> nbformat.NotebookNode:
    """Save `saved` (default: `cells`) as the notebook at `path`, then execute `cells` in the kernel: as a
    student does, except that with `saved` the editor holds edits that were run but not saved."""
    if path is not None:
        nbformat.write(build_notebook(saved if saved is not None else cells), str(path))
    nb = build_notebook(cells)
    nbclient.NotebookClient(nb, km=km, timeout=120).execute()
    return nb


def answer_of(cell) -> tuple[str, str]:
    """The (HTML, plain text) the check cell shows."""
    data = next(o for o in cell.outputs if o.output_type == "execute_result")["data"]
    return data.get("text/html", ""), data["text/plain"]


def test_correct_exercise_scores_full_marks_and_names_the_saved_file(kernel):
    km, path = kernel
    nb = run(km, ["import grader", DOUBLE_OK, 'grader.check("double")'], path)
    html, text = answer_of(nb.cells[2])
    assert "Score: 3 / 3" in html and "Feedback: <code>double</code> &#8212; 3 / 3 points" in html
    assert "✓ double(3) == 6" in html
    saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    assert f"Graded {path}, saved {saved}" in text
    import hashlib

    assert f"(sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:12]})" in text
    assert "not in the saved file" not in text


def test_buggy_exercise_shows_expected_found_and_hint(kernel):
    km, path = kernel
    nb = run(km, ["import grader", DOUBLE_BUGGY, 'grader.check("double")'], path)
    html, text = answer_of(nb.cells[2])
    assert "Score: 0 / 3" in html
    assert re.search(r"double\(3\) is wrong.\s+Expected: 6\s+Found:\s+7", html)
    assert "Hint: Lecture: most operations work on tensors as on numbers." in html
    assert "✗ double" in text and "test_values  (0 / 2)" in text


def test_same_verdict_as_grader_check(kernel, course):
    """Otter #138: a "passed" in the notebook while the real grading fails. Here both are one pipeline."""
    km, path = kernel
    nb = run(km, ["import grader, json", DOUBLE_BUGGY, SQUARE_OK, "json.dumps(grader.check_all().result.to_dict())"], path)
    in_notebook = json.loads(ast.literal_eval(answer_of(nb.cells[3])[1]))
    cli = subprocess.run([sys.executable, "-m", "grader", "check", str(path), "--format", "json", "--rubrics", str(course)],
                         capture_output=True, text=True)
    graded = json.loads(cli.stdout)
    verdict = lambda r: (r["sha256"], r["score"], r["max_score"],  # noqa: E731
                         [(e["id"], e["status"], [(c["id"], c["status"], c["score"]) for c in e["checks"]]) for e in r["exercises"]])
    assert verdict(in_notebook) == verdict(graded) and in_notebook["score"] == 2


def test_hanging_exercise_is_stopped_at_its_time_limit(kernel):
    km, path = kernel
    started = time.monotonic()
    nb = run(km, ["import grader", DOUBLE_HANGS, SQUARE_OK, 'grader.check_all()'], path)
    html, text = answer_of(nb.cells[3])
    assert f"it was still running after {TIME_LIMIT_S:g} s" in html
    assert "Score: 2 / 5" in html  # the hang costs `double` only
    assert "[timeout]" in text
    assert time.monotonic() - started < TIME_LIMIT_S + 30


def test_code_run_but_not_saved_is_reported(kernel):
    km, path = kernel
    nb = run(km, ["import grader", DOUBLE_OK, 'grader.check("double")'], path, saved=["import grader", DOUBLE_BUGGY, 'grader.check("double")'])
    html, text = answer_of(nb.cells[2])
    assert nbcheck.UNSAVED.format(id="double") in text
    assert "Score: 0 / 3" in html  # the saved (buggy) code is graded, and the answer says so
    assert "save with Ctrl+S, then check again" in html


def test_the_kernel_never_imports_torch_and_unknown_ids_get_one_line(kernel):
    km, path = kernel
    nb = run(km, ["import grader, sys", DOUBLE_OK, 'grader.check("dubble")', "'torch' in sys.modules"], path)
    html, text = answer_of(nb.cells[2])
    assert text.startswith("grader.check: no exercise 'dubble' in mini (did you mean 'double'?)")
    assert len(text.splitlines()) == 2 and "Traceback" not in text
    assert answer_of(nb.cells[3])[1] == "False"
    service = eval(run(km, ["from grader import notebook; notebook.service_pids()"], None).cells[0].outputs[0]["data"]["text/plain"])[0]  # noqa: S307
    assert "libtorch" not in Path(f"/proc/{service}/maps").read_text()  # torch (and CUDA) only in the worker


def test_exercise_ids_are_case_and_space_insensitive_as_markers_are(kernel):
    """`# Exercise: Double` marks `double`; so `grader.check("Double ")` checks it, not "no exercise 'Double '"."""
    km, path = kernel
    nb = run(km, ["import grader", DOUBLE_OK, 'grader.check("Double ")'], path)
    html, text = answer_of(nb.cells[2])
    assert "Score: 3 / 3" in html, text


def test_import_grader_stays_cheap():
    code = ("import sys, grader; assert 'torch' not in sys.modules and 'grader.notebook' not in sys.modules; "
            "grader.check; assert 'grader.notebook' in sys.modules and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def bare_kernel(tmp_path_factory, course):
    """A kernel that does not know its notebook (no Jupyter server session)."""
    home = tmp_path_factory.mktemp("bare")
    km = start_kernel(home, {nbcheck.RUBRICS_ENV: str(course), "JPY_SESSION_NAME": "",
                             "JUPYTER_RUNTIME_DIR": str(home / "runtime")})
    yield km, home
    km.shutdown_kernel(now=True)


def test_no_notebook_found_gives_the_fix(bare_kernel):
    km, home = bare_kernel
    nb = run(km, ["import grader", 'grader.check("double")', f'grader.check("double", notebook={str(home / "mine.ipynb")!r})'], None)
    assert answer_of(nb.cells[1])[1] == (
        'grader.check: cannot tell which notebook this kernel belongs to; name the file: '
        'grader.check("double", notebook="my_notebook.ipynb")')
    assert answer_of(nb.cells[2])[1].startswith(f"grader.check: no notebook file {home / 'mine.ipynb'}")
    nb = run(km, ["import grader, os", "os.environ['JPY_SESSION_NAME'] = '/gone/old.ipynb'", "grader.check_all()",
                  "del os.environ['JPY_SESSION_NAME']"], None)
    assert answer_of(nb.cells[2])[1] == (
        "grader.check: the notebook this kernel was started for, /gone/old.ipynb, is gone (renamed or moved?)\n"
        '  name the file: grader.check(notebook="my_notebook.ipynb")')


def test_explicit_and_vscode_notebooks(bare_kernel):
    km, home = bare_kernel
    nbformat.write(build_notebook(["import grader", DOUBLE_BUGGY]), str(home / "mine.ipynb"))
    nbformat.write(build_notebook(["import grader", DOUBLE_OK]), str(home / "vscode.ipynb"))
    nb = run(km, ["import grader", 'grader.check("double", notebook="mine.ipynb")',
                  f"__vsc_ipynb_file__ = {str(home / 'vscode.ipynb')!r}",  # what VS Code sets in the kernel
                  'grader.check("double")', "del __vsc_ipynb_file__"], None)
    assert f"Graded {home / 'mine.ipynb'}" in answer_of(nb.cells[1])[1] and "Score: 0 / 3" in answer_of(nb.cells[1])[0]
    assert f"Graded {home / 'vscode.ipynb'}" in answer_of(nb.cells[3])[1] and "Score: 3 / 3" in answer_of(nb.cells[3])[0]


class _Sessions(http.server.BaseHTTPRequestHandler):
    """GET /api/sessions as jupyter_server answers it, for the right token only."""

    sessions: list = []
    token = "secret-token"

    def do_GET(self):  # noqa: N802 - the http.server API
        ok = self.path in ("/api/sessions", "/user/ada/api/sessions") and self.headers.get("Authorization") == f"token {self.token}"
        body = json.dumps(self.sessions if ok else {"message": "Forbidden"}).encode()
        self.send_response(200 if ok else 403)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def jupyter_server(bare_kernel):
    """A server on loopback, announced in the kernel's runtime folder as jupyter_server announces itself."""
    km, home = bare_kernel
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sessions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    info = home / "runtime" / f"jpserver-{os.getpid()}.json"
    info.write_text(json.dumps({"url": f"http://127.0.0.1:{server.server_port}/", "token": _Sessions.token,
                                "root_dir": str(home)}))
    yield _Sessions
    info.unlink()
    server.shutdown()
    server.server_close()


def test_a_renamed_notebook_is_found_through_the_jupyter_server(bare_kernel, jupyter_server):
    """JPY_SESSION_NAME keeps the name the kernel started with; the server's session follows the rename."""
    km, home = bare_kernel
    kernel_id = Path(km.connection_file).stem.removeprefix("kernel-")
    (home / "week2").mkdir(exist_ok=True)
    nbformat.write(build_notebook(["import grader", DOUBLE_OK]), str(home / "week2" / "renamed.ipynb"))
    jupyter_server.sessions = [{"id": "s1", "path": "elsewhere.ipynb", "kernel": {"id": "another-kernel"}},
                               {"id": "s2", "path": "week2/renamed.ipynb", "kernel": {"id": kernel_id}}]
    nb = run(km, ["import grader, os", "os.environ['JPY_SESSION_NAME'] = 'Untitled.ipynb'", 'grader.check("double")',
                  "del os.environ['JPY_SESSION_NAME']"], None)
    assert answer_of(nb.cells[2])[1].startswith(f"Graded {home / 'week2' / 'renamed.ipynb'}, saved ")


def test_the_server_is_asked_only_on_loopback_and_with_its_token(tmp_path, jupyter_server, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # never through a proxy: it would see the token
    jupyter_server.sessions = [{"id": "s", "path": "a.ipynb", "kernel": {"id": "k1"}}]
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    port = json.loads(next((tmp_path.parent).glob("bare*/runtime/jpserver-*.json")).read_text())["url"].rsplit(":", 1)[1]
    info = runtime / "jpserver-1.json"
    info.write_text(json.dumps({"url": f"http://127.0.0.1:{port}", "token": _Sessions.token, "root_dir": "/srv"}))
    assert nbcheck.notebook_from_server("k1", str(runtime)) == Path("/srv/a.ipynb")
    assert nbcheck.notebook_from_server("k2", str(runtime)) is None
    info.write_text(json.dumps({"url": f"http://127.0.0.1:{port}/user/ada", "token": _Sessions.token, "root_dir": "/h"}))
    assert nbcheck.notebook_from_server("k1", str(runtime)) == Path("/h/a.ipynb")  # JupyterHub's base URL
    info.write_text(json.dumps({"url": f"http://127.0.0.1:{port}", "token": "wrong", "root_dir": "/srv"}))
    assert nbcheck.notebook_from_server("k1", str(runtime)) is None
    info.write_text(json.dumps({"url": f"http://192.0.2.1:{port}", "token": _Sessions.token, "root_dir": "/srv"}))
    started = time.monotonic()
    assert nbcheck.notebook_from_server("k1", str(runtime)) is None
    assert time.monotonic() - started < 0.5  # not even tried: the token stays on this machine


HIDE_TORCH = """import sys
class HideTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
sys.meta_path.insert(0, HideTorch())
"""


def test_a_python_without_torch_is_one_line(tmp_path, monkeypatch):
    """The kernel's Python has the grader but not what grading needs: one line naming it, no traceback."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(HIDE_TORCH)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    shutil.copytree(MINI_RUBRICS.parent, tmp_path / "mini")
    nb = tmp_path / "mine.ipynb"
    nbformat.write(build_notebook([DOUBLE_OK]), str(nb))
    answer = nbcheck.check("double", notebook=nb, rubrics=tmp_path / "mini" / "rubrics")
    assert str(answer) == (f"grader.check: `torch` is not installed in the Python that runs this notebook ({sys.executable}), "
                           f"so the grader cannot run there\n  {NOT_INSTALLED_TIP}")
    assert answer.result is None and "Traceback" not in answer._repr_html_()


def test_rubric_problems_are_one_line(bare_kernel, tmp_path):
    km, home = bare_kernel
    old = tmp_path / "old"
    shutil.copytree(MINI_RUBRICS.parent, old)
    yml = old / "rubrics" / "mini.yml"
    yml.write_text(yml.read_text().replace("test_values: 2", "test_value: 2", 1))  # a check the rubric renamed
    nbformat.write(build_notebook(["import grader", DOUBLE_OK]), str(home / "mine.ipynb"))
    nb = run(km, ["import grader",
                  f'grader.check("double", notebook="mine.ipynb", rubrics={str(tmp_path / "none")!r})',
                  f'grader.check("double", notebook="mine.ipynb", rubrics={str(old / "rubrics")!r})'], None)
    missing, renamed = answer_of(nb.cells[1])[1], answer_of(nb.cells[2])[1]
    assert missing == f"grader.check: {tmp_path / 'none'}: no such rubrics folder"
    assert renamed.startswith("grader.check: ") and "test_values" in renamed and "test_value" in renamed
    assert len(renamed.splitlines()) <= 2 and "Traceback" not in renamed


def test_colab_content_is_graded(bare_kernel):
    """Colab has no file: the notebook's content comes from its front-end (`get_ipynb`), stood in for here
    by a module of the same name and reply, as Colab's kernel has it."""
    km, home = bare_kernel
    content = nbformat.writes(build_notebook(["import grader", DOUBLE_BUGGY]))
    fake = (
        "import json, sys, types\n"
        "google, colab, message = (types.ModuleType(n) for n in ('google', 'google.colab', 'google.colab._message'))\n"
        f"_nb = json.loads({content!r}); _nb['metadata']['colab'] = {{'name': 'Copy of lab.ipynb'}}\n"
        "message.blocking_request = lambda kind, request='', timeout_sec=5, parent=None: "
        "{'ipynb': _nb} if kind == 'get_ipynb' else None\n"
        "google.colab, colab._message = colab, message\n"
        "sys.modules.update({'google': google, 'google.colab': colab, 'google.colab._message': message})"
    )
    nb = run(km, ["import grader", fake, 'grader.check("double")',
                  "for m in ('google', 'google.colab', 'google.colab._message'): del sys.modules[m]"], None)
    html, text = answer_of(nb.cells[2])
    assert text.startswith("Graded Colab notebook Copy of lab.ipynb (sha256 ") and "Score: 0 / 3" in html
    assert "\nColab notebook Copy of lab.ipynb  (mini)" in text


def test_the_service_and_its_worker_end_with_the_kernel(tmp_path, course):
    path = tmp_path / "student.ipynb"
    km = start_kernel(tmp_path, {"JPY_SESSION_NAME": str(path), nbcheck.RUBRICS_ENV: str(course)})
    try:
        nb = run(km, ["import grader", DOUBLE_OK, 'grader.check("double")',
                      "from grader import notebook; notebook.service_pids()"], path)
        pids = eval(answer_of(nb.cells[3])[1])  # noqa: S307 - a list of ints printed by our own kernel
        assert len(pids) == 2 and all(_alive(p) for p in pids)  # the service and its worker
        folders = [d for p in pids for d in Path(tempfile.gettempdir()).glob(f"{tempdirs.CHECK_PREFIX}{p}-*")]
        assert len(folders) == 1  # the service's own, named after it
    finally:
        km.shutdown_kernel(now=True)  # SIGKILL: no atexit handler runs, only the parent-death signal helps
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)]
    # Killed with its kernel, the service could not remove its folder: the next grader's sweep does.
    tempdirs.sweep_stale()
    assert not [d for d in folders if d.exists()]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


# -- the unsaved-edit rule, on its own ---------------------------------------------------------------


@pytest.mark.parametrize("ran, unsaved", [
    ([DOUBLE_OK], []),
    ([DOUBLE_BUGGY, DOUBLE_OK], []),  # run, edited, run again, saved: the older run is not "unsaved"
    ([DOUBLE_OK, DOUBLE_BUGGY], ["double"]),  # the kernel's latest run is not what was saved
    ([DOUBLE_OK + "\n\n   "], []),  # trailing blanks do not count
    (["x = 1", 'grader.check("double")'], []),
    ([SQUARE_OK], ["square"]),  # saved without any `square` cell
])
def test_unsaved_rule(ran, unsaved):
    saved = build_notebook(["import grader", DOUBLE_OK])
    assert unsaved_exercises(saved, ran, ["double", "square"]) == unsaved


def test_unsaved_rule_reads_markers_as_grading_does():
    """A marker annotated by the student (`# exercise: double (done)`) counts in grading; so an unsaved edit of
    that cell is reported too, not silently graded from the old file."""
    annotated = DOUBLE_OK.replace("# exercise: double", "# exercise: double (done)")
    saved = build_notebook(["import grader", annotated])
    assert unsaved_exercises(saved, [annotated], ["double", "square"]) == []
    assert unsaved_exercises(saved, [annotated.replace("2 * x", "x + x + 1")], ["double", "square"]) == ["double"]


def test_an_interrupted_check_leaves_the_service_usable(kernel):
    """Ctrl+C in the kernel during a check: the service is in its own session (the interrupt does not
    reach it), and the next check gets its own answer, not the interrupted one's."""
    km, path = kernel
    run(km, ["import grader", DOUBLE_OK, 'grader.check("double")'], path)  # the service is warm
    pids = run(km, ["from grader import notebook; notebook.service_pids()"], None).cells[0]
    run(km, ["import grader", DOUBLE_HANGS], path)
    kc = km.client()  # the check cell, run and interrupted as the notebook's ■ button does
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        request = kc.execute('grader.check("double")')
        time.sleep(1)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=30)
    finally:
        kc.stop_channels()
    assert reply["parent_header"]["msg_id"] == request and reply["content"]["ename"] == "KeyboardInterrupt"
    nb = run(km, ["import grader", DOUBLE_OK, 'grader.check("double")', "notebook.service_pids()"], path)
    assert "Score: 3 / 3" in answer_of(nb.cells[2])[0]
    assert answer_of(nb.cells[3])[1] == answer_of(pids)[1]  # the same, warm service
