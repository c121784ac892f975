"""Writes the whole-notebook variants (`<exercise>/<name>.ipynb`) byte for byte, as the editors students use
save them: `python tests/variants/_notebooks.py`. Their expectations are in the `.yml` beside each."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
          "language_info": {"name": "python"}}


def cell(source: str, *, cell_id=None, metadata=None, outputs=None, kind="code"):
    c = {"cell_type": kind, "metadata": metadata or {}, "source": source.splitlines(keepends=True)}
    if cell_id is not None:
        c["id"] = cell_id
    if kind == "code":
        c["execution_count"] = None
        c["outputs"] = outputs or []
    return c


TARGET = [HERE]  # where write() puts the files: tests compare a fresh copy with the committed one


def write(path: str, cells, *, minor=5, metadata=None, crlf=False, indent=1):
    nb = {"cells": cells, "metadata": metadata or PYTHON, "nbformat": 4, "nbformat_minor": minor}
    text = json.dumps(nb, indent=indent, ensure_ascii=False) + "\n"
    if crlf:
        text = text.replace("\n", "\r\n")
    target = TARGET[0] / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text.encode("utf-8"))


def write_all(target: Path = HERE) -> None:
    TARGET[0] = target
    try:
        _write_all()
    finally:
        TARGET[0] = HERE


def _write_all() -> None:


    # JupyterLab 4 (cell ids); a helper cell pasted from a PDF: U+2028/U+2029 in comments, a form feed line.
    write("lost_leaf/unicode_line_breaks_in_helper.ipynb", [
        cell("import torch", cell_id="a1b2c3d4"),
        cell("# helpers\u2028(pasted from the lecture PDF)\n\x0c\ndef fresh_leaf(device, dtype):\n"
             "    # created on the device:\u2029a true leaf\n"
             "    return torch.randn(5, device=device, dtype=dtype, requires_grad=True)\n", cell_id="e5f6a7b8"),
        cell("# exercise: lost_leaf\ndef make_leaves(device, dtype=torch.float32):\n"
             "    return fresh_leaf(device, dtype), fresh_leaf(device, dtype)\n", cell_id="c9d0e1f2"),
    ])

    # JupyterLab 4 with a copied cell: two cells share an id (nbformat warns DuplicateCellId).
    write("lost_leaf/duplicate_cell_ids.ipynb", [
        cell("import torch", cell_id="same-id"),
        cell("x = torch.ones(1)", cell_id="same-id"),
        cell("# exercise: lost_leaf\ndef make_leaves(device, dtype=torch.float32):\n"
             "    a = torch.randn(5, dtype=dtype).to(device).requires_grad_()\n"
             "    b = torch.randn(5, device=device, dtype=dtype).requires_grad_(True)\n    return a, b\n", cell_id="same-id"),
    ])

    # VS Code: `vscode` cell metadata, no outputs; helper cells under cell magics, and cells in other languages.
    VSCODE = {"vscode": {"languageId": "python"}}
    write("inplace/cell_magics_on_helper_cells.ipynb", [
        cell("%%capture\n!pip install torch\nimport torch", cell_id="v1", metadata=VSCODE),
        cell("%%time\ndef plus(a, k):\n    return a + k\n\n\ndef zeros_rows(a, rows):\n"
             "    return a.new_zeros(rows, a.shape[0] + 2)\n\n\nplus(torch.ones(2), 1)\n", cell_id="v2", metadata=VSCODE),
        cell("%%bash\necho 'def plus(): this is not Python'", cell_id="v3", metadata={"vscode": {"languageId": "shellscript"}}),
        cell("%%html\n<b>The inplace exercise</b>", cell_id="v4", metadata={"vscode": {"languageId": "html"}}),
        cell("# exercise: inplace\ndef increment_and_square(a):\n    b1 = plus(a, 1)\n    b2 = b1 ** 2\n"
             "    return plus(b1, 1), b2\n\n\ndef padded_stack(a, b):\n    c = zeros_rows(a, 4)\n"
             "    c[1, 1:-1] = a\n    c[2, 1:-1] = b\n    return c\n", cell_id="v5", metadata=VSCODE),
    ], metadata={**PYTHON, "vscode": {"interpreter": {"hash": "0" * 64}}})

    # Colab: form fields (#@title, #@param), shell escapes and line magics, a Colab-only import, display().
    COLAB = {"colab": {"provenance": [], "toc_visible": True}, "accelerator": "GPU", **PYTHON}
    write("views/colab_form_fields.ipynb", [
        cell("!pip install -q torchviz\n%matplotlib inline\nimport torch\ntry:\n    from google.colab import drive\n"
             "except ImportError:\n    drive = None", metadata={"id": "setup"}),
        cell('#@title Settings { display-mode: "form" }\nK = 2 #@param {type:"integer"}', metadata={"cellView": "form"}),
        cell("# exercise: views\n#@title Views, not copies\ndef last_columns(t, k):\n    return t[:, -k:]\n\n\n"
             "def diagonal(t):\n    m, n = t.shape\n"
             "    return t.as_strided((min(m, n),), (t.stride(0) + t.stride(1),), t.storage_offset())\n\n\n"
             "def every_other_column(t):\n    return t[:, 0::2]\n\n\ndisplay(last_columns(torch.ones(2, 3), 1))\n",
             metadata={"id": "views", "outputId": "0f3c"}),
    ], minor=0, metadata=COLAB, indent=2)

    # nbformat 4.0 (no cell ids) saved on Windows: CRLF in the file and inside the cell sources.
    write("sequential_model/nbformat40_crlf.ipynb", [
        cell("import torch\r\nfrom torch import nn\r\n"),
        cell("# exercise: sequential_model\r\nclass MyModel(nn.Sequential):\r\n    def __init__(self, hidden=10):\r\n"
             "        super().__init__(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 1))\r\n"),
    ], minor=0, crlf=True)

    # A constant of another cell used by the exercise: grading does not run that cell's statements.
    write("sequential_model/hidden_assigned_in_other_cell.ipynb", [
        cell("import torch"),
        cell("HIDDEN = 10"),
        cell("# exercise: sequential_model\nclass MyModel(torch.nn.Sequential):\n    def __init__(self, hidden=HIDDEN):\n"
             "        super().__init__(torch.nn.Linear(1, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))\n"),
    ], minor=4)

    # `%%time` above the marker: the marker is not the first line, so no cell counts as marked.
    write("views/marker_below_cell_magic.ipynb", [
        cell("import torch"),
        cell("%%time\n# exercise: views\ndef last_columns(t, k):\n    return t[:, -k:]\n\n\ndef diagonal(t):\n"
             "    return t.diagonal()\n\n\ndef every_other_column(t):\n    return t[:, ::2]\n"),
    ], minor=4)

    # Colab, marker pasted from the assignment's web page (BOM, U+00A0), IPython help lines and a top-level
    # await in the exercise cell, a helper cell with `@torch.no_grad()` and `?` help: all IPython-only (QA, issue 14).
    write("lost_leaf/pasted_marker_and_ipython_help.ipynb", [
        cell("import torch\nimport asyncio\ntorch.randn?\n%load_ext autoreload\n%autoreload 2", metadata={"id": "s"}),
        cell("@torch.no_grad()\ndef fresh(device, dtype):\n    return torch.randn(5, device=device, dtype=dtype)\n\n\n"
             "??torch.Tensor.requires_grad_", metadata={"id": "h"}),
        cell("\ufeff\u00a0# exercise: lost_leaf\nmake_leaves?\ndef make_leaves(device, dtype=torch.float32):\n"
             "    return fresh(device, dtype).requires_grad_(), fresh(device, dtype).requires_grad_()\n\n\n"
             "await asyncio.sleep(0)\nprint(make_leaves('cpu'))\n", metadata={"id": "e"}),
    ], minor=0, metadata={"colab": {"provenance": []}, **PYTHON}, indent=2)

    # The new-style autograd.Function (torch >= 2.0): forward without ctx, setup_context saves, vmap-ready.
    write("implicit_function/setup_context_newton.ipynb", [
        cell("import torch", cell_id="i1"),
        cell("# exercise: implicit_function\nclass Implicit(torch.autograd.Function):\n    @staticmethod\n"
             "    def forward(x, y0, F, max_iter=100):\n        y = y0.detach().clone()\n        for _ in range(max_iter):\n"
             "            with torch.enable_grad():\n                yv = y.requires_grad_()\n"
             "                f = F(x.detach(), yv)\n                (dfdy,) = torch.autograd.grad(f.sum(), yv)\n"
             "            step = f.detach() / dfdy\n            y = y.detach() - step\n"
             "            if step.abs().max() < 1e-12:\n                break\n        return y\n\n"
             "    @staticmethod\n    def setup_context(ctx, inputs, output):\n        x, y0, F, *_ = inputs\n"
             "        ctx.F = F\n        ctx.save_for_backward(x, output)\n\n    @staticmethod\n"
             "    def backward(ctx, grad_y):\n        x, y = ctx.saved_tensors\n        with torch.enable_grad():\n"
             "            xv, yv = x.detach().requires_grad_(), y.detach().requires_grad_()\n"
             "            dfdx, dfdy = torch.autograd.grad(ctx.F(xv, yv).sum(), [xv, yv])\n"
             "        return -grad_y * dfdx / dfdy, None, None, None\n", cell_id="i2"),
    ])

    # Colab with a GPU: "Add a form" put `#@title` above the marker, which the student annotated; the exercise
    # cell imports pandas, sets matplotlib up through get_ipython(), and ends with a demo on "cuda" (QA, issue 14).
    write("views/colab_gpu_demo_in_exercise_cell.ipynb", [
        cell("import torch", metadata={"id": "a"}),
        cell('#@title Views { display-mode: "form" }\n# exercise: views (done)\nimport pandas as pd_not_graded_xyz\n'
             "get_ipython().run_line_magic('matplotlib', 'inline')\n\n\ndef last_columns(t, k):\n"
             "    return t[:, t.shape[1] - k:]\n\n\ndef diagonal(t):\n    return torch.diagonal(t)\n\n\n"
             "def every_other_column(t):\n    return t[:, ::2]\n\n\nt = torch.arange(12.).reshape(3, 4).cuda()\n"
             "print(diagonal(t).data_ptr() == t.data_ptr())\n", metadata={"id": "b", "cellView": "form"}),
    ], minor=0, metadata={"colab": {"provenance": []}, "accelerator": "GPU", **PYTHON}, indent=2)


if __name__ == "__main__":
    write_all()
