"""Hostile submissions (issue 4): each attack gains nothing, costs only its own exercise, leaves nothing behind.

Every attack is a real notebook graded end to end against a private two-exercise assignment
(tests/hostile/rubrics: the tiny `twice`, plus the real `lost_leaf` rubric), so the same
notebook also proves that its other exercise is graded as usual. After every test the
machine is checked: no process of any run is left, scratch memory is released, and the
warm workers are the same processes as before.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import exercise_notebook, write_notebook

from grader import Grader, load_assignment
from grader.sandbox import RUN_UID_BASE

REPO = Path(__file__).resolve().parent.parent
HOSTILE = Path(__file__).resolve().parent / "hostile"

LOST_LEAF_OK = """\
def make_leaves(device, dtype=torch.float32):
    return (torch.randn(5, device=device, dtype=dtype, requires_grad=True),
            torch.randn(5, device=device, dtype=dtype, requires_grad=True))
"""
# The lecture's bug: moved after requires_grad=True, so not a leaf on meta or in float64.
LOST_LEAF_BUGGY = """\
def make_leaves(device, dtype=torch.float32):
    return (torch.randn(5, requires_grad=True).to(device=device, dtype=dtype),
            torch.randn(5, requires_grad=True).to(device=device, dtype=dtype))
"""
TWICE_OK = "def twice(x):\n    return 2 * x\n"
TWICE_WRONG = "def twice(x):\n    return x\n"
SECRET = "SOLUTION-SECRET-7f3a"
ENV_SECRET = "TORCHGRADE_HOSTILE_SECRET"
SHMEM_SLACK_KB = 64 * 1024
LOST_LEAF_TIMEOUT_S = 20
WORKER_GROWTH_KB = 256 * 1024

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="without root the grader has no per-run user and no namespaces (README 'Security model'): "
           "this attack would reach the test runner itself",
)


# -- the course, the grader, and the machine's state ---------------------------------------------


@pytest.fixture(scope="module")
def course():
    """A course laid out like the repository, outside /tmp (so hiding is really tested), world-readable."""
    root = Path(tempfile.mkdtemp(prefix=".course-", dir=HOSTILE))
    try:
        rubrics = root / "rubrics"
        rubrics.mkdir()
        # Kept as twice.py in tests/hostile so that pytest does not collect it as a test module.
        shutil.copy(HOSTILE / "rubrics" / "twice.py", rubrics / "test_twice.py")
        shutil.copy(REPO / "rubrics" / "test_lost_leaf.py", rubrics / "test_lost_leaf.py")
        # lost_leaf's points come from the bundled YAML, so the suite follows the real rubric.
        config = yaml.safe_load((HOSTILE / "rubrics" / "hostile.yml").read_text())
        bundled = yaml.safe_load((REPO / "rubrics" / "pytorch_intro.yml").read_text())
        config["exercises"]["lost_leaf"] = {"timeout_s": LOST_LEAF_TIMEOUT_S,
                                            "checks": bundled["exercises"]["lost_leaf"]["checks"]}
        (rubrics / "hostile.yml").write_text(yaml.safe_dump(config))
        write_notebook(root / "solutions" / "hostile.ipynb", [f"# {SECRET}\n# exercise: twice\n{TWICE_OK}"])
        write_notebook(root / "submissions" / "other_student" / "other.ipynb", [f"# {SECRET}\n{LOST_LEAF_OK}"])
        (root / "out").mkdir()
        (root / "out" / "other_student.json").write_text(f'{{"secret": "{SECRET}"}}')
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def hg(course):
    """One warm two-worker Grader for the module; the workers inherit a secret in their environment."""
    os.environ[ENV_SECRET] = SECRET
    try:
        hidden = (course / "submissions", course / "out", REPO / "rubrics", REPO / "solutions")
        with Grader(load_assignment(course / "rubrics"), jobs=2, hidden=hidden) as g:
            g.catalog()
            yield g
    finally:
        os.environ.pop(ENV_SECRET, None)


@pytest.fixture(scope="module")
def points(hg, tmp_path_factory):
    """What correct and what wrong code earn per exercise: an attack may earn no more than its code does."""
    folder = tmp_path_factory.mktemp("reference")
    full = hg.grade(exercise_notebook(folder / "correct.ipynb", {"lost_leaf": LOST_LEAF_OK, "twice": TWICE_OK}))
    assert full.score == full.max_score > 0, [(e.id, e.status, e.error) for e in full.exercises]
    wrong = hg.grade(exercise_notebook(folder / "wrong.ipynb", {"lost_leaf": LOST_LEAF_BUGGY, "twice": TWICE_WRONG}))
    earned = {"full": {e.id: e.score for e in full.exercises}, "wrong": {e.id: e.score for e in wrong.exercises}}
    assert all(earned["wrong"][i] < earned["full"][i] for i in earned["full"]), earned
    earned["nothing"] = {i: 0.0 for i in earned["full"]}
    return earned


@pytest.fixture(scope="module")
def baseline(hg):
    return {"shmem_kb": _meminfo("Shmem"), "available_kb": _meminfo("MemAvailable"),
            "strays": set(_run_users())}


@pytest.fixture(autouse=True)
def machine_is_fine(hg, baseline):
    """After every attack: no process of any run left, scratch memory released, the same warm workers."""
    workers = _worker_pids(hg)
    rss = {pid: _status(pid).get("VmRSS", 0) for pid in workers}
    yield
    deadline = time.monotonic() + 5
    while True:
        problems = _machine_problems(hg, baseline, workers, rss)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not problems, "\n".join(problems)


def _machine_problems(hg, baseline, workers, rss) -> list[str]:
    problems = []
    if _worker_pids(hg) != workers:
        problems.append(f"the warm workers changed: {sorted(workers)} -> {sorted(_worker_pids(hg))}")
    left = _descendants(workers)
    if left:
        problems.append(f"processes of the runs survived: {left}")
    strays = {pid: cmd for pid, cmd in _run_users().items() if pid not in baseline["strays"]}
    if strays:
        problems.append(f"processes of a run's user escaped to init: {strays}")
    shmem = _meminfo("Shmem")
    if shmem > baseline["shmem_kb"] + SHMEM_SLACK_KB:
        problems.append(f"scratch memory (Shmem) not released: {baseline['shmem_kb']} kB -> {shmem} kB")
    available = _meminfo("MemAvailable")
    if available < baseline["available_kb"] - 2 * 1024 * 1024:
        problems.append(f"memory not given back: MemAvailable {baseline['available_kb']} kB -> {available} kB")
    for pid, before in rss.items():
        after = _status(pid).get("VmRSS", 0)
        if after > before + WORKER_GROWTH_KB:
            problems.append(f"worker {pid} grew from {before} kB to {after} kB")
    return problems


def _meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _status(pid: int) -> dict:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields = value.split()
            if key in ("PPid", "VmRSS") and fields:
                out[key] = int(fields[0])
            elif key == "Uid":
                out["Uid"] = int(fields[0])
            elif key == "State":
                out["State"] = fields[0]
    except (OSError, ValueError):
        pass
    return out


def _processes() -> dict[int, dict]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _status(int(entry))
            if "PPid" in st and st.get("State") != "Z":
                found[int(entry)] = st
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:80]
    except OSError:
        return "?"


def _worker_pids(g: Grader) -> set[int]:
    return {w.proc.pid for w in g.pool._workers}


def _descendants(roots) -> dict[int, str]:
    """Every live process below the given workers (runs' children are re-parented to their worker)."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, st in procs.items():
        children.setdefault(st["PPid"], []).append(pid)
    found, todo = {}, list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = _cmdline(child)
            todo.append(child)
    return found


def _run_users() -> dict[int, str]:
    """Processes of a per-run user that nobody supervises any more (parent is init)."""
    return {pid: _cmdline(pid) for pid, st in _processes().items()
            if st.get("Uid", 0) >= RUN_UID_BASE and st["PPid"] in (0, 1)}


# -- grading an attack ----------------------------------------------------------------------------


def grade(hg, tmp_path, *, lost_leaf=LOST_LEAF_OK, twice=TWICE_OK, name="attack.ipynb"):
    cells = {"lost_leaf": lost_leaf, "twice": twice}
    return hg.grade(exercise_notebook(tmp_path / name, cells))


def assert_contained(result, points, attacked: str, statuses, *, earns: str = "nothing", says: str = ""):
    """The attacked exercise: an expected status, no more than its code `earns` (nothing, what the
    wrong code or what the correct code of the notebook earns); every other exercise: full marks."""
    statuses = (statuses,) if isinstance(statuses, str) else tuple(statuses)
    ex = result.exercise(attacked)
    shown = f"{ex.status}, {ex.score}/{ex.max_score}: {ex.error}\nnotes: {ex.notes}\n" + "\n".join(
        f"  {c.id}: {c.status} {c.message[:200]}" for c in ex.checks)
    assert ex.status in statuses, shown
    assert ex.score <= points[earns][attacked], shown
    if says:
        assert says.lower() in f"{ex.error}\n{' '.join(ex.notes)}".lower(), shown
    assert "ESCAPED" not in shown, shown
    for other in result.exercises:
        if other.id != attacked:
            assert (other.status, other.score) == ("graded", points["full"][other.id]), \
                (other.id, other.error, other.checks)


# -- the attacks that need nothing but a notebook -------------------------------------------------


@dataclass(frozen=True)
class Attack:
    id: str
    target: str  # the exercise whose cell holds the attack; the other exercise is correct
    code: str
    status: str | tuple[str, ...]
    earns: str = "nothing"  # or "wrong", "full": see assert_contained
    says: str = ""
    root: bool = False  # contained only by the per-run user and namespaces
    max_s: float | None = None  # the whole notebook must be graded within this


FORGED_CHECK = (
    '{"token": TOKEN, "kind": "check", "id": "test_values", "status": "passed", "message": "", "duration_s": 0.0}'
)
FORGE_EVERY_FD = """\
import json, os
def _forge(token):
    lines = [json.dumps({"token": token, "kind": k, "id": i, "status": "passed", "message": "", "duration_s": 0.0,
                         "exitstatus": 0, "checks": [], "notes": []})
             for k, i in (("check", "test_defined"), ("check", "test_values"), ("done", None))]
    for fd in range(3, 1025):
        for line in lines:
            try:
                os.write(fd, (line + "\\n").encode())
            except OSError:
                pass
"""
STEAL_TOKEN = """\
import gc, json, os
from grader._plugin import Channel
_channel = next(o for o in gc.get_objects() if isinstance(o, Channel))
def _send(**msg):
    os.write(_channel.fd, (json.dumps({"token": _channel.token, **msg}) + "\\n").encode())
"""
SKIP_FAIL_TRACER = """\
import dis, sys
def _skip_fail(frame, event, arg):
    if event == "line":
        ins = list(dis.get_instructions(frame.f_code))
        here = [i for i, x in enumerate(ins) if x.starts_line == frame.f_lineno]
        if here and any(x.argval == "fail" for x in ins[here[0]:here[0] + 4]):
            end = next(k for k in range(here[0], len(ins)) if ins[k].opname == "POP_TOP")
            target = next((x.starts_line for x in ins[end + 1:] if x.starts_line), None)
            if target:
                try:
                    frame.f_lineno = target
                except ValueError:
                    pass
    return _skip_fail
def _tracer(frame, event, arg):
    return _skip_fail if "test_" in frame.f_code.co_filename else None
"""

ATTACKS = [
    # -- time, memory, output ------------------------------------------------------------------
    Attack("infinite_loop", "twice", "while True:\n    pass\n" + TWICE_OK, "timeout", says="still running"),
    Attack("hangs_inside_a_check", "twice", "def twice(x):\n    while True:\n        pass\n", "timeout",
           earns="wrong", says="still running"),
    Attack("ignores_signals_and_sleeps", "twice", """\
import signal, time
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP, signal.SIGXCPU, signal.SIGUSR1):
    signal.signal(s, signal.SIG_IGN)
time.sleep(10 ** 6)
""" + TWICE_OK, "timeout", says="still running"),
    Attack("memory_torch_empty", "twice", "torch.empty(10 ** 12)\n" + TWICE_OK, ("error", "crashed")),
    Attack("memory_bytearray", "twice", "x = bytearray(10 ** 11)\n" + TWICE_OK, ("error", "crashed")),
    Attack("memory_slow_growing_list", "twice", """\
hoard = []
while True:
    hoard.append(bytearray(16 << 20))
""" + TWICE_OK, ("error", "crashed")),
    Attack("memory_bomb_inside_a_check", "lost_leaf", """\
def make_leaves(device, dtype=torch.float32):
    keep = torch.ones(1 << 40)
    return keep, keep
""", "graded", earns="wrong"),
    Attack("floods_stdout", "twice", """\
line = "x" * (1 << 20) + "\\n"
for _ in range(300):
    print(line, end="")
""" + TWICE_OK, "graded", earns="full", says="printed too much", max_s=20),
    Attack("floods_stderr_raw", "twice", """\
import os
block = b"y" * (1 << 20)
for _ in range(300):
    os.write(2, block)
""" + TWICE_OK, "graded", earns="full", says="printed too much", max_s=20),
    Attack("floods_inside_checks", "lost_leaf", """\
import sys
def make_leaves(device, dtype=torch.float32):
    sys.stdout.write("z" * (20 << 20))
    return (torch.randn(5, device=device, dtype=dtype, requires_grad=True),
            torch.randn(5, device=device, dtype=dtype, requires_grad=True))
""", "graded", earns="full", says="printed too much", max_s=30),
    # -- processes and threads -----------------------------------------------------------------
    Attack("fork_bomb", "twice", """\
import os, time
while True:
    try:
        os.fork()
    except OSError:
        pass
    time.sleep(0.05)  # a bomb of sleepers: the same cleanup, and the machine's other tests keep their CPU
""", "timeout"),
    Attack("thread_bomb", "twice", """\
import threading, time
while True:
    threading.Thread(target=time.sleep, args=(10 ** 6,), daemon=True).start()
""" + TWICE_OK, ("error", "crashed", "timeout")),
    Attack("leaves_a_double_forked_daemon", "twice", """\
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        while True:
            time.sleep(0.1)
    os._exit(0)
""" + TWICE_OK, "graded", earns="full"),
    Attack("leaves_setsid_subprocesses", "twice", """\
import subprocess
for _ in range(3):
    subprocess.Popen(["sleep", "1000"], start_new_session=True)
subprocess.Popen("nohup sh -c 'while true; do sleep 1; done' >/dev/null 2>&1 &", shell=True)
""" + TWICE_OK, "graded", earns="full"),
    Attack("leaves_multiprocessing_children", "twice", """\
import multiprocessing, time
for method in ("fork", "spawn"):
    multiprocessing.get_context(method).Process(target=time.sleep, args=(1000,)).start()
""" + TWICE_OK, "graded", earns="full"),
    Attack("background_thread_keeps_running", "twice", """\
import threading
def spin():
    while True:
        pass
threading.Thread(target=spin, daemon=False).start()
""" + TWICE_OK, "graded", earns="full"),
    Attack("execs_another_program", "twice", """\
import os, sys
os.execv(sys.executable, [sys.executable, "-c", "print('{\\"kind\\": \\"done\\"}')"])
""", "crashed"),
    # -- disk --------------------------------------------------------------------------------------
    Attack("fills_the_scratch_disks", "twice", """\
import os
block = b"0" * (1 << 20)
for folder in ("/tmp", "/var/tmp", "/dev/shm", os.getcwd(), os.path.expanduser("~")):
    for n in range(1000):
        try:
            with open(os.path.join(folder, f"fill{n}"), "wb") as f:
                while True:
                    f.write(block)
                    f.flush()
        except OSError as e:
            if e.errno != 27:  # EFBIG: this file is full, start the next; anything else: the disk is full
                break
""" + TWICE_OK, "graded", earns="full", max_s=40),
    Attack("writes_to_the_host_disk", "twice", """\
import os
written = []
for folder in ("/run/lock", "/var/lock", "/var/crash", "/var/mail", "/", "/work", "/root", "/etc", "/usr/local",
               os.path.dirname(os.__file__)):
    try:
        with open(os.path.join(folder, "torchgrade-hostile-marker"), "w") as f:
            f.write("x")
        written.append(folder)
    except OSError:
        pass
if written:
    raise RuntimeError(f"ESCAPED: wrote to {written}")
""" + TWICE_OK, "graded", earns="full", root=True),
    # -- ending the run early --------------------------------------------------------------------
    Attack("os_exit_while_loaded", "twice", "import os\nos._exit(0)\n", "crashed", says="exit"),
    Attack("os_exit_inside_a_check", "lost_leaf", "import os\ndef make_leaves(device, dtype=None):\n    os._exit(0)\n",
           "crashed"),
    Attack("sys_exit_while_loaded", "twice", "import sys\nsys.exit(0)\n" + TWICE_OK, "crashed", says="SystemExit"),
    Attack("system_exit_inside_a_check", "lost_leaf", "def make_leaves(device, dtype=None):\n    raise SystemExit(0)\n",
           "crashed", says="SystemExit"),
    Attack("keyboard_interrupt_inside_a_check", "lost_leaf",
           "def make_leaves(device, dtype=None):\n    raise KeyboardInterrupt\n", "crashed", says="KeyboardInterrupt"),
    Attack("keyboard_interrupt_while_loaded", "twice", "raise KeyboardInterrupt\n", "crashed",
           says="KeyboardInterrupt"),
    Attack("alarm_inside_a_check", "lost_leaf", """\
import signal, time
def make_leaves(device, dtype=None):
    signal.alarm(1)
    time.sleep(5)
""", "crashed", says="SIGALRM"),
    Attack("segfault", "twice", "import ctypes\nctypes.string_at(0)\n", "crashed", says="segmentation"),
    Attack("atexit_forgery", "twice", FORGE_EVERY_FD.replace("TOKEN", "") + """\
import atexit, os
atexit.register(lambda: (_forge("0" * 32), print('{"kind": "check", "id": "test_values", "status": "passed"}')))
atexit.register(os._exit, 0)
""" + TWICE_WRONG, "graded", earns="wrong"),
    Attack("excepthook_swallows_exceptions", "twice", """\
import sys, threading
sys.excepthook = lambda *a: None
threading.excepthook = lambda *a: None
sys.unraisablehook = lambda *a: None
def twice(x):
    raise ValueError("swallowed?")
""", "graded", earns="wrong"),
    # -- forging the score -------------------------------------------------------------------------
    Attack("prints_fake_results", "twice", """\
import json
for kind, cid in (("check", "test_defined"), ("check", "test_values"), ("done", None)):
    print(json.dumps({"token": "", "kind": kind, "id": cid, "status": "passed", "message": "", "duration_s": 0}))
print('{"score": 2.0, "max_score": 2.0, "status": "graded"}')
""" + TWICE_WRONG, "graded", earns="wrong"),
    Attack("forges_lines_on_every_fd", "twice", FORGE_EVERY_FD + '_forge("")\n' + TWICE_WRONG, "error",
           says="tampering detected"),
    Attack("forges_lines_with_a_guessed_token", "twice",
           FORGE_EVERY_FD + 'import secrets\n_forge(secrets.token_hex(16))\n_forge("0" * 32)\n' + TWICE_WRONG, "error",
           says="tampering detected"),
    Attack("forges_half_a_line", "twice", """\
import os
for fd in range(3, 1025):
    try:
        os.write(fd, b'{"token": "')
    except OSError:
        pass
""" + TWICE_WRONG, "error", says="tampering detected"),
    Attack("steals_the_token_and_sends_passes", "twice", STEAL_TOKEN + """\
for cid in ("test_defined", "test_values"):
    _send(kind="check", id=cid, status="passed", message="", duration_s=0.0)
""" + TWICE_WRONG, "error", says="tampering detected"),
    Attack("steals_the_token_and_sends_a_check_nobody_ran", "twice", STEAL_TOKEN + """\
_send(kind="check", id="test_bonus", status="passed", message="", duration_s=0.0)
""" + TWICE_WRONG, "error", says="tampering detected"),
    Attack("closes_the_result_channel", "twice", """\
import os
for fd in range(3, 1025):
    try:
        os.close(fd)
    except OSError:
        pass
""" + TWICE_WRONG, "crashed"),
    Attack("redirects_the_result_channel", "twice", """\
import os
null = os.open(os.devnull, os.O_WRONLY)
for fd in range(3, 1025):
    if fd != null:
        try:
            os.dup2(null, fd)
        except OSError:
            pass
""" + TWICE_WRONG, "crashed"),
    # -- tampering with what the checks rely on ---------------------------------------------------
    Attack("replaces_torch_allclose", "twice", "torch.allclose = lambda *a, **k: True\n" + TWICE_WRONG, "error",
           says="`torch.allclose`"),
    Attack("replaces_assert_close", "twice",
           "import torch.testing\ntorch.testing.assert_close = lambda *a, **k: None\n" + TWICE_WRONG, "error",
           says="`torch.testing.assert_close`"),
    Attack("replaces_tensor_eq", "twice",
           "torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)\n" + TWICE_WRONG, "error",
           says="`torch.Tensor.__eq__`"),
    Attack("replaces_autograd_grad", "twice",
           "torch.autograd.grad = lambda *a, **k: (torch.zeros(1),)\n" + TWICE_WRONG, "error",
           says="`torch.autograd.grad`"),
    Attack("replaces_is_leaf", "lost_leaf", "torch.Tensor.is_leaf = property(lambda self: True)\n" + LOST_LEAF_BUGGY,
           "error", says="`torch.Tensor.is_leaf`"),
    Attack("replaces_builtins_isinstance", "twice", """\
import builtins
_real = builtins.isinstance
builtins.isinstance = lambda obj, cls: True if cls is BaseException else _real(obj, cls)
""" + TWICE_WRONG, "error", says="`builtins.isinstance`"),
    Attack("replaces_builtins_len", "twice", "import builtins\nbuiltins.len = lambda obj: 0\n" + TWICE_WRONG, "error",
           says="`builtins.len`"),
    Attack("replaces_pytest_fail", "twice", "import pytest\npytest.fail = lambda *a, **k: None\n" + TWICE_WRONG,
           "error", says="`pytest.fail`"),
    Attack("replaces_call_and_report", "twice", """\
import _pytest.runner
_real = _pytest.runner.call_and_report
def call_and_report(item, when, log=True, **kw):
    report = _real(item, when, log, **kw)
    report.outcome = "passed"
    return report
_pytest.runner.call_and_report = call_and_report
""" + TWICE_WRONG, "error", says="`_pytest.runner.call_and_report`"),
    Attack("replaces_checks_fail", "lost_leaf",
           "import grader.checks\ngrader.checks.fail = lambda *a, **k: None\n" + LOST_LEAF_BUGGY, "error",
           says="`grader.checks.fail`"),
    Attack("replaces_channel_send", "twice", """\
import grader._plugin
_real = grader._plugin.Channel.send
def send(self, kind, **data):
    if kind == "check":
        data.update(status="passed", message="")
    _real(self, kind, **data)
grader._plugin.Channel.send = send
""" + TWICE_WRONG, "error", says="`grader._plugin.Channel.send`"),
    Attack("swaps_the_code_of_checks_fail", "lost_leaf",
           "import grader.checks\ngrader.checks.fail.__code__ = (lambda *a, **k: None).__code__\n" + LOST_LEAF_BUGGY,
           "error", says="`grader.checks.fail`"),
    Attack("swaps_the_code_of_the_rubric", "twice", """\
import sys
for module in list(sys.modules.values()):
    if "test_" not in (getattr(module, "__file__", "") or ""):
        continue
    for name, obj in list(vars(module).items()):
        if name.startswith("test_") and callable(obj):
            obj.__code__ = (lambda *a, **k: None).__code__
""" + TWICE_WRONG, "error", says="tampering detected"),
    Attack("swaps_the_rubrics_torch_for_a_fake", "twice", """\
import sys, types
import torch as _torch
fake = types.ModuleType("torch")
fake.__dict__.update(vars(_torch))
fake.arange = lambda *a, **k: _torch.zeros(4, dtype=_torch.float64)  # then x == 2 * x
for module in list(sys.modules.values()):
    if "test_" in (getattr(module, "__file__", "") or "") and hasattr(module, "torch"):
        module.torch = fake
""" + TWICE_WRONG, "error", says="`test_twice.torch`"),
    Attack("traces_the_checks_to_skip_fail", "lost_leaf",
           SKIP_FAIL_TRACER + "sys.settrace(_tracer)\n" + LOST_LEAF_BUGGY, "error", says="tampering detected"),
    Attack("traces_only_inside_a_check", "lost_leaf", SKIP_FAIL_TRACER + """\
def make_leaves(device, dtype=torch.float32):
    sys.settrace(_tracer)
    sys._getframe(1).f_trace = _skip_fail
    return (torch.randn(5, requires_grad=True).to(device=device, dtype=dtype),
            torch.randn(5, requires_grad=True).to(device=device, dtype=dtype))
""", "error", says="tampering detected"),
    Attack("tampers_inside_a_check", "lost_leaf", """\
def make_leaves(device, dtype=torch.float32):
    torch.Tensor.is_leaf = property(lambda self: True)
    return (torch.randn(5, requires_grad=True).to(device=device, dtype=dtype),
            torch.randn(5, requires_grad=True).to(device=device, dtype=dtype))
""", "error", says="`torch.Tensor.is_leaf`"),
    Attack("tampers_from_a_background_thread", "lost_leaf", """\
import threading, time
_called = threading.Event()
def _tamper():
    _called.wait()
    real = torch.Tensor.__dict__.get("is_leaf")
    while True:
        torch.Tensor.is_leaf = property(lambda self: True)
        time.sleep(0.001)
threading.Thread(target=_tamper, daemon=True).start()
def make_leaves(device, dtype=torch.float32):
    _called.set()
    time.sleep(0.01)
    return (torch.randn(5, requires_grad=True).to(device=device, dtype=dtype),
            torch.randn(5, requires_grad=True).to(device=device, dtype=dtype))
""", "error", says="tampering detected"),
    # -- reading what it must not -----------------------------------------------------------------
    Attack("reads_the_initial_environment", "twice", f"""\
import ctypes, os
try:
    with open("/proc/self/environ", "rb") as f:
        if b"{ENV_SECRET}" in f.read():
            raise RuntimeError("ESCAPED: the grader's environment is readable in /proc/self/environ")
except OSError:
    pass
if "{ENV_SECRET}" in os.environ:
    raise RuntimeError("ESCAPED: the grader's environment was inherited")
# The strings of the environment the worker was started with lie on the stack, after argv.
argv0 = ctypes.cast(ctypes.c_char_p.in_dll(ctypes.CDLL(None), "program_invocation_name"), ctypes.c_void_p).value
with open("/proc/self/maps") as f:
    for line in f:
        low, high = (int(x, 16) for x in line.split()[0].split("-"))
        if low <= argv0 < high and b"{ENV_SECRET}" in ctypes.string_at(argv0, high - argv0):
            raise RuntimeError("ESCAPED: the grader's environment is still in memory")
""" + TWICE_OK, "graded", earns="full"),
    Attack("reads_through_the_workers_proc_entries", "twice", """\
import os
got = []
for pid in (os.getppid(), 1):
    for leaf in ("cwd", "root", "environ", "fd/0", "mem", "cmdline"):
        path = f"/proc/{pid}/{leaf}"
        try:
            if os.path.isdir(path):
                os.listdir(path)
            elif leaf != "cmdline":
                open(path, "rb").read(1)
            else:
                continue
            got.append(path)
        except OSError:
            pass
if got:
    raise RuntimeError(f"ESCAPED: read {got}")
""" + TWICE_OK, "graded", earns="full", root=True),
    Attack("gains_privileges", "twice", """\
import os, resource, subprocess
got = []
for what, attempt in (("setuid(0)", lambda: os.setuid(0)), ("setgid(0)", lambda: os.setgid(0)),
                      ("nice(-5)", lambda: os.nice(-5)),
                      ("raise RLIMIT_NPROC", lambda: resource.setrlimit(resource.RLIMIT_NPROC, (10 ** 6, 10 ** 6))),
                      ("raise RLIMIT_AS", lambda: resource.setrlimit(resource.RLIMIT_AS, (-1, -1))),
                      ("read /etc/shadow", lambda: open("/etc/shadow").read(1))):
    try:
        attempt()
        got.append(what)
    except (OSError, ValueError):
        pass
for cmd in (["su", "-c", "id -u"], ["sudo", "-n", "id", "-u"]):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip()
        if out == "0":
            got.append(" ".join(cmd))
    except (OSError, subprocess.SubprocessError):
        pass
if got:
    raise RuntimeError(f"ESCAPED: {got}")
""" + TWICE_OK, "graded", earns="full", root=True),
    Attack("reaches_the_internet", "twice", """\
import socket
got = []
for family, kind, address in ((socket.AF_INET, socket.SOCK_STREAM, ("1.1.1.1", 80)),
                              (socket.AF_INET, socket.SOCK_DGRAM, ("8.8.8.8", 53)),
                              (socket.AF_INET6, socket.SOCK_STREAM, ("2606:4700:4700::1111", 80))):
    try:
        s = socket.socket(family, kind)
        s.settimeout(2)
        s.connect(address)
        s.send(b"x")
        got.append(address)
    except OSError:
        pass
try:
    socket.getaddrinfo("example.com", 80)
    got.append("DNS")
except OSError:
    pass
if got:
    raise RuntimeError(f"ESCAPED: reached {got}")
""" + TWICE_OK, "graded", earns="full", root=True),
    # -- killing -------------------------------------------------------------------------------
    Attack("kills_everything_it_can", "twice", """\
import os, signal, time
me = os.getpid()
end = time.monotonic() + 1.5
while time.monotonic() < end:
    for pid in (-1, os.getppid(), 1):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.005)
for pid in range(2, 1 << 15):
    if pid != me:
        try:
            os.kill(pid, signal.SIGSTOP)
        except OSError:
            pass
""" + TWICE_OK, "graded", earns="full", root=True),
]


@pytest.mark.parametrize("attack", [pytest.param(a, id=a.id, marks=[needs_root] if a.root else []) for a in ATTACKS])
def test_attack_gains_nothing(hg, points, tmp_path, attack):
    cells = {attack.target: attack.code}
    started = time.monotonic()
    result = grade(hg, tmp_path, **cells)
    assert_contained(result, points, attack.target, attack.status, earns=attack.earns, says=attack.says)
    if attack.max_s is not None:
        assert time.monotonic() - started < attack.max_s


@pytest.mark.xfail(strict=True, reason=(
    "known limit (README 'Security model'): student code runs in the rubric's own process, so code that walks the "
    "interpreter's heap to the channel, forges a complete run and exits first cannot be told from the plugin"))
def test_a_complete_forgery_with_a_stolen_token(hg, points, tmp_path):
    code = STEAL_TOKEN + """\
for cid in ("test_defined", "test_values"):
    _send(kind="check", id=cid, status="passed", message="", duration_s=0.0)
_send(kind="done", exitstatus=0)
os._exit(0)
""" + TWICE_WRONG
    assert_contained(grade(hg, tmp_path, twice=code), points, "twice", ("error", "crashed"))


def test_a_tensor_subclass_that_lies_about_its_attributes(hg, points, tmp_path):
    code = """\
class Liar(torch.Tensor):
    is_leaf = property(lambda self: True)
    grad = property(lambda self: self.fake_grad)
def make_leaves(device, dtype=torch.float32):
    a = torch.randn(5, requires_grad=True).to(device=device, dtype=dtype).as_subclass(Liar)
    b = torch.randn(5, requires_grad=True).to(device=device, dtype=dtype).as_subclass(Liar)
    a.fake_grad, b.fake_grad = b.detach().as_subclass(torch.Tensor), (a.detach() + 1).as_subclass(torch.Tensor)
    return a, b
"""
    assert_contained(grade(hg, tmp_path, lost_leaf=code), points, "lost_leaf", "graded", earns="wrong")


def test_the_attack_list_is_long_enough():
    assert len({a.id for a in ATTACKS}) == len(ATTACKS) >= 25


# -- attacks that need the host's side of the story ---------------------------------------------


def test_result_files_written_anywhere_are_never_read(hg, points, tmp_path, course):
    """Fake result files in every folder a run might reach: none is created on the host, none counts."""
    targets = ["os.getcwd()", "os.path.expanduser('~')", "'/tmp'", "'/var/tmp'", "'/dev/shm'"] + [
        repr(str(p)) for p in (course / "rubrics", course / "out", course, REPO, REPO / "rubrics", REPO / "tests",
                               course / "submissions", Path.cwd())]
    before = {p: sorted(os.listdir(p)) for p in (course / "rubrics", course / "out", course, REPO, REPO / "tests")}
    code = "import json, os\n" + "".join(f"""\
for name in ("results.json", "attack.json", "grades.csv"):
    try:
        with open(os.path.join({t}, name), "w") as f:
            json.dump({{"score": 2.0, "max_score": 2.0, "status": "graded"}}, f)
    except OSError:
        pass
""" for t in targets) + TWICE_WRONG
    result = grade(hg, tmp_path, twice=code)
    assert_contained(result, points, "twice", "graded", earns="wrong")
    assert {p: sorted(os.listdir(p)) for p in before} == before


@needs_root
def test_rubrics_solutions_and_other_submissions_are_unreadable(hg, points, tmp_path, course):
    private = [course / "rubrics" / "test_twice.py", course / "rubrics" / "hostile.yml",
               course / "solutions" / "hostile.ipynb", course / "submissions" / "other_student" / "other.ipynb",
               course / "out" / "other_student.json", REPO / "rubrics" / "test_lost_leaf.py"]
    code = f"""\
import glob, importlib.util, inspect, os, sys
got = []
for path in {[str(p) for p in private]!r}:
    try:
        with open(path) as f:
            if "{SECRET}" in f.read() or path.endswith(".py"):
                got.append(path)
    except OSError:
        pass
for folder in {[str(course / d) for d in ("rubrics", "solutions", "submissions", "out")] + [str(REPO / "rubrics")]!r}:
    try:
        if os.listdir(folder):
            got.append(folder)
    except OSError:
        pass
try:
    spec = importlib.util.spec_from_file_location("solution", {str(course / "solutions" / "hostile.ipynb")!r})
    importlib.util.module_from_spec(spec)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    got.append("imported the solution")
except Exception:
    pass
rubric = sys.modules.get("test_twice")
if rubric is not None:
    try:
        inspect.getsource(rubric)
        got.append("the rubric's source")
    except (OSError, TypeError):
        pass
if got:
    raise RuntimeError(f"ESCAPED: read {{got}}")
""" + TWICE_OK
    assert_contained(grade(hg, tmp_path, twice=code), points, "twice", "graded", earns="full")


@needs_root
def test_a_new_user_namespace_does_not_uncover_hidden_folders(hg, points, tmp_path, course):
    hidden = course / "rubrics"
    code = f"""\
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
got = []
if libc.unshare(0x10000000 | 0x00020000) == 0:  # CLONE_NEWUSER | CLONE_NEWNS
    libc.umount2({str(hidden)!r}.encode(), 2)  # MNT_DETACH
    os.makedirs("/tmp/peek", exist_ok=True)
    libc.mount({str(course)!r}.encode(), b"/tmp/peek", None, 0x1000, None)  # non-recursive bind
    libc.mount(None, {str(REPO)!r}.encode(), None, 0x1000 | 0x20, None)  # remount read-write
    for path in ({str(hidden / "test_twice.py")!r}, "/tmp/peek/rubrics/test_twice.py"):
        try:
            open(path).read(1)
            got.append(path)
        except OSError:
            pass
    try:
        open({str(REPO / "torchgrade-hostile-marker")!r}, "w").close()
        got.append("wrote to the repository")
    except OSError:
        pass
if got:
    raise RuntimeError(f"ESCAPED: {{got}}")
""" + TWICE_OK
    assert_contained(grade(hg, tmp_path, twice=code), points, "twice", "graded", earns="full")
    assert not (REPO / "torchgrade-hostile-marker").exists()


@needs_root
def test_no_network_not_even_the_hosts_loopback(hg, points, tmp_path):
    tcp = socket.create_server(("127.0.0.1", 0))
    abstract = socket.socket(socket.AF_UNIX)
    name = f"\0torchgrade-hostile-{os.getpid()}"
    abstract.bind(name)
    abstract.listen()
    port = tcp.getsockname()[1]
    code = f"""\
import socket
got = []
for family, address in ((socket.AF_INET, ("127.0.0.1", {port})), (socket.AF_INET6, ("::1", {port})),
                        (socket.AF_UNIX, {name!r})):
    try:
        s = socket.socket(family)
        s.settimeout(2)
        s.connect(address)
        got.append(address)
    except OSError:
        pass
if got:
    raise RuntimeError(f"ESCAPED: connected to {{got}}")
""" + TWICE_OK
    try:
        assert_contained(grade(hg, tmp_path, twice=code), points, "twice", "graded", earns="full")
        for server in (tcp, abstract):
            server.setblocking(False)
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        tcp.close()
        abstract.close()


LEAK_PLACES = '["/tmp", "/var/tmp", "/dev/shm", "/run/lock", os.path.expanduser("~"), os.getcwd(), ' \
              'os.environ.get("TORCHINDUCTOR_CACHE_DIR", "/tmp"), os.environ.get("TRITON_CACHE_DIR", "/tmp"), ' \
              '"/tmp/torchinductor_root"]'
SYSV_KEY = 0x74677268


@needs_root
def test_nothing_leaks_from_one_student_to_the_next(hg, points, tmp_path):
    marker = f"torchgrade-leak-{os.getpid()}"
    writer = f"""\
import ctypes, os
from multiprocessing import shared_memory
for folder in {LEAK_PLACES}:
    try:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, {marker!r})
        with open(path, "w") as f:
            f.write("planted")
        os.chmod(path, 0o666)
    except OSError:
        pass
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget({SYSV_KEY}, 4096, 0o1666)  # IPC_CREAT, readable by all
_keep = shared_memory.SharedMemory(name={marker + "-shm"!r}, create=True, size=4096)
""" + TWICE_OK
    prober = f"""\
import ctypes, os
from multiprocessing import shared_memory
found = []
for top in {LEAK_PLACES} + ["/tmp", "/var/tmp", "/dev/shm"]:
    for folder, _, files in os.walk(top):
        if {marker!r} in files:
            found.append(folder)
libc = ctypes.CDLL(None, use_errno=True)
if libc.shmget({SYSV_KEY}, 0, 0) != -1:
    found.append("System V shared memory")
try:
    shared_memory.SharedMemory(name={marker + "-shm"!r})
    found.append("POSIX shared memory")
except OSError:
    pass
from torch._inductor.runtime.cache_dir_utils import cache_dir
if not cache_dir().startswith(os.path.expanduser("~")):
    found.append("a compile cache outside the run's home: " + cache_dir())
elif os.path.isdir(cache_dir()) and os.listdir(cache_dir()):
    found.append("a compile cache that is not empty: " + cache_dir())
if found:
    raise RuntimeError(f"ESCAPED: found the other student's files in {{found}}")
""" + TWICE_OK
    for round_ in range(2):  # twice, so that both workers serve a writer and then a prober
        written = grade(hg, tmp_path, twice=writer, name=f"writer{round_}.ipynb")
        assert_contained(written, points, "twice", "graded", earns="full")
        probed = grade(hg, tmp_path, twice=prober, name=f"prober{round_}.ipynb")
        assert_contained(probed, points, "twice", "graded", earns="full")
    for folder in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
        assert not (Path(folder) / marker).exists(), folder


def test_the_previous_run_is_not_alive_in_the_next(course, tmp_path):
    """A run is forked from its worker: nothing of the run before it (that student's output, its
    results) may still be an object there, or the next student's code could read it."""
    mark = f"leak-{os.getpid()}"
    writer = f"print('previous output: ' + {mark!r})\n" + TWICE_OK
    prober = f"""\
import gc
def _scan():
    needle = 'previous output: ' + {mark!r}
    for o in gc.get_objects():
        values = o.values() if isinstance(o, dict) else o if isinstance(o, (list, tuple)) else ()
        for v in values:
            if isinstance(v, str) and needle in v and v is not needle:
                raise RuntimeError("ESCAPED: the previous run's output is alive in this run: " + v[:80])
_scan()
""" + TWICE_OK
    with Grader(load_assignment(course / "rubrics"), jobs=1) as one_worker:
        for name, code in (("writer", writer), ("prober", prober)):
            nb = exercise_notebook(tmp_path / f"{name}.ipynb", {"twice": code})
            ex = one_worker.grade(nb, only="twice").exercise("twice")
            assert (ex.status, ex.score) == ("graded", ex.max_score), (name, ex.status, ex.error)


@needs_root
def test_a_hostile_and_a_clean_notebook_graded_at_once(hg, points, tmp_path):
    """Two students at the same time on the two workers: the clean one's result is untouched."""
    hostile = exercise_notebook(tmp_path / "hostile.ipynb", {
        "twice": """\
import os, signal, time
end = time.monotonic() + 3
while time.monotonic() < end:
    try:
        os.kill(-1, signal.SIGKILL)
        os.fork()
    except OSError:
        pass
while True:
    pass
""",
        "lost_leaf": """\
import os
def make_leaves(device, dtype=torch.float32):
    os.write(1, b"x" * (8 << 20))
    with open("/tmp/fill", "ab") as f:
        f.write(b"0" * (8 << 20))
    return torch.ones(5), torch.ones(5)
""",
    })
    clean = exercise_notebook(tmp_path / "clean.ipynb", {"lost_leaf": LOST_LEAF_OK, "twice": TWICE_OK})
    alone = hg.grade(clean)
    results = {}

    def run(label, path):
        results[label] = hg.grade(path)

    threads = [threading.Thread(target=run, args=pair) for pair in (("hostile", hostile), ("clean", clean))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["clean"].score == results["clean"].max_score == sum(points["full"].values())

    def verdicts(r):
        return [(e.id, e.status, e.score, [(c.id, c.status, c.score) for c in e.checks]) for e in r.exercises]

    assert verdicts(results["clean"]) == verdicts(alone)
    assert results["hostile"].exercise("twice").status in ("timeout", "crashed")
    assert results["hostile"].exercise("lost_leaf").score <= points["wrong"]["lost_leaf"]


def test_correct_code_is_never_taken_for_tampering(hg, points, tmp_path):
    """The integrity checks must not fire on honest code: grade a correct notebook many times."""
    path = exercise_notebook(tmp_path / "correct.ipynb", {"lost_leaf": LOST_LEAF_OK, "twice": TWICE_OK})
    for _ in range(8):
        result = hg.grade(path)
        assert [(e.id, e.status, e.score, e.error) for e in result.exercises] == [
            ("lost_leaf", "graded", points["full"]["lost_leaf"], None),
            ("twice", "graded", points["full"]["twice"], None)]
        assert not any(e.notes for e in result.exercises), [e.notes for e in result.exercises]
