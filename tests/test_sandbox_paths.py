"""Where the grader's Python lives must not change a verdict: a virtual environment, a clone or a
package folder inside /tmp (or /var/tmp, /dev/shm), which every run gets fresh and empty, stays usable."""

import os
import tempfile
from pathlib import Path

import pytest

from conftest import MINI_RUBRICS, write_notebook
from grader import Grader, load_assignment


@pytest.mark.skipif(os.geteuid() != 0, reason="private scratch folders need root (mount namespaces)")
def test_a_module_the_run_imports_late_from_a_folder_in_tmp_is_still_there(monkeypatch):
    site = Path(tempfile.mkdtemp(prefix="torchgrade-test-site-", dir="/var/tmp"))
    site.chmod(0o755)  # as `python -m venv` makes it (mkdtemp's 0700 would bar the run's own user anyway)
    (site / "late_helper_4711.py").write_text("def double(x):\n    return 2 * x\n")
    (site / "secret.txt").write_text("not for students")
    monkeypatch.setenv("PYTHONPATH", str(site))  # the workers' sys.path, as a venv in /tmp would give
    notebook = write_notebook(site.parent / f"{site.name}-student.ipynb", [
        "# exercise: double\n"
        "import late_helper_4711  # imported only now, inside the sandboxed run\n"
        "double = late_helper_4711.double\n"
        "with open(late_helper_4711.__file__.replace('late_helper_4711.py', 'secret.txt')) as f:\n"
        "    assert f.read() == 'not for students'  # read-only, but there: it is the Python path\n"
        "try:\n"
        "    open(late_helper_4711.__file__, 'a')\n"
        "    raise AssertionError('the bound folder is writable')\n"
        "except OSError:\n"
        "    pass\n"
        "assert sorted(os.listdir('/var/tmp')) == [late_helper_4711.__file__.split('/')[3]], os.listdir('/var/tmp')\n",
    ])
    notebook.write_text(notebook.read_text().replace("import late_helper_4711", "import os, late_helper_4711", 1))
    try:
        with Grader(load_assignment(MINI_RUBRICS), jobs=1) as grader:
            ex = grader.grade(notebook, only="double").exercise("double")
        assert ex.status == "graded" and ex.score == ex.max_score, (ex.error, ex.notes)
    finally:
        for p in site.iterdir():
            p.unlink()
        site.rmdir()
        notebook.unlink()
