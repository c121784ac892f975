#!/usr/bin/env python3
"""Remake docs/check_answer.png: the README's picture of `grader.check("lost_leaf")` in a notebook.

    python docs/make_check_screenshot.py [WORKDIR]

Runs the student notebook's lost_leaf part (the lecture's buggy code, as handed out, its `raise` line
deleted) in a real kernel,
started as jupyter_server starts one for the notebook, converts the executed notebook to HTML with
nbconvert (JupyterLab's look) and photographs it with headless Chromium.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

# A virtual environment on top of the system's site packages: nbconvert's templates are under the base prefix.
os.environ.setdefault("JUPYTER_PATH", str(Path(sys.base_prefix) / "share" / "jupyter"))

import nbclient  # noqa: E402
import nbformat  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402
from nbconvert import HTMLExporter  # noqa: E402

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

from grader.assignment import load_assignment  # noqa: E402
from grader.extract import exercise_id_of  # noqa: E402

EXERCISE = "lost_leaf"


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="check-shot-"))
    work.mkdir(parents=True, exist_ok=True)
    student = nbformat.read(str(load_assignment().exercise_notebook), as_version=4)
    cells = student.cells
    ex = next(i for i, c in enumerate(cells) if exercise_id_of(c) == EXERCISE)
    setup = next(c for c in cells if c.cell_type == "code")
    nb = nbformat.v4.new_notebook(metadata=student.metadata)
    # The student followed the stub's instruction and deleted the `raise` line, but kept the lecture's bug.
    answer = nbformat.v4.new_code_cell("\n".join(line for line in cells[ex].source.splitlines()
                                                 if "NotImplementedError" not in line))
    nb.cells = [setup, nbformat.v4.new_code_cell("import torch"), answer, cells[ex + 1]]
    path = work / "pytorch_intro.ipynb"
    nbformat.write(nb, str(path))
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(work), env={**os.environ, "JPY_SESSION_NAME": str(path)})
    try:
        nbclient.NotebookClient(nb, km=km, timeout=300).execute()
    finally:
        km.shutdown_kernel(now=True)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    page = work / "executed.html"
    page.write_text(body, encoding="utf-8")
    shot = DOCS / "check_answer.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1000,900", page.as_uri()], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"wrote {shot} ({shot.stat().st_size // 1024} KB) from {page}")


if __name__ == "__main__":
    main()
