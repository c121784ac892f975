"""Pictures of a mistake: plain data from the sandbox, validated and bounded by the grader, drawn as our own SVG.

End to end through the real grader: the known-bad variants' feedback pages show the picture drawn from the
student's own tensors, a correct submission's page has none, and a hostile class name never becomes markup.
"""

import json
import math
import re
import xml.etree.ElementTree as ET

import pytest
import torch

from conftest import VARIANTS, exercise_notebook
from grader import pictures
from grader.checks import CheckFailure, autograd_graph, fail
from grader.export import FeedbackRenderer, gradescope_json
from grader.read import read_submission
from grader.results import CheckResult, ExerciseResult, SubmissionResult
from grader.channel import admit_picture

HOSTILE = "<script>alert(1)</script>\"'`&<img src=x onerror=alert(2)>"
MARKUP = re.compile(r"[<>\"`&]")
SVG = "{http://www.w3.org/2000/svg}"


def strings_of(data):
    if isinstance(data, dict):
        for k, v in data.items():
            yield k
            yield from strings_of(v)
    elif isinstance(data, list):
        for v in data:
            yield from strings_of(v)
    elif isinstance(data, str):
        yield data


def svg_root(svg: str) -> ET.Element:
    """Parsed as XML: well-formed, so no text of ours broke out of its element."""
    return ET.fromstring(svg)


def node(i, label="AddBackward0", kind="op", **extra):
    return {"id": f"n{i}", "label": label, "kind": kind, **extra}


# -- validation (what the grader accepts from the result channel) --------------------------------


def test_clean_restricts_characters_and_caps_every_string():
    data = {"kind": "graph", "title": HOSTILE, "caption": "x" * 10_000,
            "nodes": [node(0, HOSTILE, detail="\x1b[31mred\x00" + "y" * 500), node(1, "fine", "leaf")],
            "edges": [{"from": "n1", "to": "n0", "label": HOSTILE}], "highlight": ["n0", "nope"]}
    out = pictures.clean(data)
    for text in strings_of(out):
        assert not MARKUP.search(text) and "\x1b" not in text and "\x00" not in text, text
    assert out["nodes"][0]["label"].startswith("?script?alert(1)?/script?")
    assert len(out["caption"]) == pictures.MAX_CAPTION and all(len(n["detail"]) <= pictures.MAX_TEXT
                                                               for n in out["nodes"] if "detail" in n)
    assert out["highlight"] == ["n0"]  # an unknown id is dropped, not drawn


@pytest.mark.parametrize("bad, why", [
    ("not a dict", "not an object"),
    ({"kind": "video"}, "unknown kind"),
    ({"kind": "graph", "nodes": [node(i) for i in range(pictures.MAX_NODES + 1)]}, "more than 40"),
    ({"kind": "graph", "nodes": [node(0, kind="<b>")]}, "unknown kind"),
    ({"kind": "graph", "nodes": [{"id": "<a>", "label": "x"}]}, "node id"),
    ({"kind": "graph", "nodes": [node(0), node(0)]}, "node id"),
    ({"kind": "graph", "nodes": [node(0)], "edges": [{"from": "n0", "to": "n9"}]}, "not in the picture"),
    ({"kind": "graph", "nodes": [node(i, "A" * 60, detail="B" * 60) for i in range(40)],
      "edges": [{"from": f"n{i}", "to": f"n{i + 1}", "label": "C" * 60} for i in range(39)]}, "bytes of picture data"),
    ({"kind": "timing", "student_s": [1e-3, math.nan], "reference_s": [1e-3], "ratio": 1, "threshold": 1}, "numbers"),
    ({"kind": "timing", "student_s": [1e-3] * 201, "reference_s": [1e-3], "ratio": 1, "threshold": 1}, "more than 200"),
    ({"kind": "timing", "student_s": [], "reference_s": [1e-3], "ratio": 1, "threshold": 1}, "without student"),
])
def test_clean_rejects_what_it_cannot_draw(bad, why):
    with pytest.raises(pictures.PictureError, match=re.escape(why)):
        pictures.clean(bad)


def test_a_run_gets_a_bounded_budget_of_pictures_and_a_note_for_what_is_left_out():
    picture = {"kind": "graph", "nodes": [node(i, "A" * 60, detail="B" * 60) for i in range(30)],
               "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(29)]}
    size = pictures.encoded_size(pictures.clean(picture))
    used, kept, notes = 0, [], []
    ids = [f"test_x[{i}]" for i in range(pictures.MAX_RUN_PICTURE_BYTES // size + 2)]
    for check_id in ids:
        admitted, used, note = admit_picture(check_id, picture, used)
        kept += [admitted] if admitted is not None else []
        notes += [note] if note else []
    assert 0 < len(kept) < len(ids) and used <= pictures.MAX_RUN_PICTURE_BYTES
    assert any("would exceed 65,536 bytes" in n for n in notes)
    assert admit_picture("test_bad", {"kind": "graph", "nodes": [node(0, kind="x")]}, 0) == (
        None, 0, "the picture for `test_bad` was left out: a node of unknown kind 'x'")


# -- drawing -------------------------------------------------------------------------------------


def test_graph_svg_escapes_its_text_and_draws_every_node_and_edge():
    data = pictures.clean({"kind": "graph", "title": "found", "nodes": [node(0, "leaf", "leaf"), node(1, "op"),
                           node(2, "Pow & <b>", "op")], "edges": [{"from": "n0", "to": "n1"},
                           {"from": "n1", "to": "n2", "label": "x < y"}], "highlight": ["n1"]})
    svg = pictures.graph_svg(data)
    root = svg_root(svg)
    texts = ["".join(t.itertext()) for t in root.iter(SVG + "text")]
    assert "Pow ? ?b?" in texts and "x ? y" in texts and "where it goes wrong" in texts
    assert len(root.findall(".//" + SVG + "g")) == 3  # one group per node
    # the output (n2) is drawn below its inputs, as the lecture's ptgraph does
    ys = {"".join(g.find(SVG + "title").itertext()): float(g.find(SVG + "rect").get("y")) for g in root.iter(SVG + "g")}
    assert ys["leaf"] < ys["op"] < ys["Pow ? ?b?"]


@pytest.mark.parametrize("graph", [
    {"kind": "graph"},  # nothing to draw
    {"kind": "graph", "nodes": [node(0), node(1)], "edges": [{"from": "n0", "to": "n1"}, {"from": "n1", "to": "n0"},
                                                           {"from": "n0", "to": "n0"}]},  # a cycle: only bad data
    {"kind": "graph", "nodes": [node(i, "x" * 60) for i in range(40)],
     "edges": [{"from": f"n{i}", "to": f"n{(i * 7) % 40}"} for i in range(40)]},
])
def test_any_graph_the_grader_accepts_is_drawn(graph):
    svg = pictures.graph_svg(pictures.clean(graph))
    root = svg_root(svg)
    assert float(root.get("width")) > 0 and float(root.get("height")) > 0
    assert len(root.findall(".//" + SVG + "g")) == len(graph.get("nodes", ()))


def test_timing_svg_from_synthetic_data_shows_each_call_the_ratio_and_the_threshold():
    student = [2.0e-3, 2.1e-3, 1.9e-3, 2.4e-3, 2.0e-3]
    reference = [1.5e-3, 1.6e-3, 1.4e-3, 1.5e-3, 1.7e-3]
    data = pictures.clean({"kind": "timing", "title": "your lunif_fast against the reference",
                           "student_s": student, "reference_s": reference, "ratio": 0.75, "threshold": 1.5})
    root = svg_root(pictures.timing_svg(data))
    circles = root.findall(".//" + SVG + "circle")
    assert len(circles) == 2 * len(student) + len(student)  # every timed call, then every pair's speed-up
    text = " ".join("".join(t.itertext()) for t in root.iter(SVG + "text"))
    assert "needed ×1.5" in text and "yours ×0.75 (median)" in text and "median 2 ms" in text
    with_pdist = pictures.clean({**data, "pdist_s": [3e-3] * 5})
    text = "".join(svg_root(pictures.timing_svg(with_pdist)).itertext())
    assert "torch.pdist version" in text and "pdist time / your time" in text


def test_a_check_can_fail_with_the_measurement_it_judged():
    """How the timing check attaches its picture: the data the verdict came from, no re-measuring."""
    timing = {"kind": "timing", "student_s": [2e-3, 2e-3], "reference_s": [1e-3, 1e-3], "ratio": 0.5, "threshold": 1.2}
    with pytest.raises(CheckFailure) as failure:
        fail("lunif_fast is not faster than the reference", picture=timing)
    assert pictures.clean(failure.value.picture)["ratio"] == 0.5
    assert "ratio" not in str(failure.value)


# -- the graph helper rubrics call, on real tensors --------------------------------------------------


def test_autograd_graph_of_a_lost_leaf_names_the_copy_and_the_hidden_leaf():
    a = torch.randn(5, requires_grad=True).to(torch.float64)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    g = pictures.clean(autograd_graph([("c", (a + 1) * b), ("a", a), ("b", b)]))
    labels = {n["label"]: n for n in g["nodes"]}
    assert set(labels) == {"c (MulBackward0)", "AddBackward0", "a (ToCopyBackward0)", "AccumulateGrad",
                           "b (AccumulateGrad)"}
    assert labels["AccumulateGrad"]["detail"] == "float32 (5,) on cpu"  # the leaf that gets the gradient
    ids = {n["label"]: n["id"] for n in g["nodes"]}
    assert {"from": ids["AccumulateGrad"], "to": ids["a (ToCopyBackward0)"]} in g["edges"]
    assert len(g["edges"]) == 4  # each once, though a is reached from c and drawn as a root too


def test_autograd_graph_marks_the_saved_tensor_an_inplace_operation_changed():
    a = torch.randn(5, requires_grad=True)
    b1 = a + 1
    b2 = b1 ** 2
    b1 += 1
    g = autograd_graph([("b2", b2), ("b1", b1)], names=[("a", a)])
    (saved,) = [n for n in g["nodes"] if n["kind"] == "saved"]
    assert saved["label"] == "self saved (it is b1)" and saved["detail"] == "saved at version 0, now 1"
    writer = next(n["id"] for n in g["nodes"] if n["label"] == "b1 (AddBackward0)")  # b1 += 1
    assert g["highlight"] == [saved["id"], writer]
    fine = autograd_graph([("b2", (a + 1) ** 2)], saved="all")
    assert [n["detail"] for n in fine["nodes"] if n["kind"] == "saved"] == ["version 0, unchanged"]
    assert fine["highlight"] == []


def test_autograd_graph_is_bounded_however_long_the_graph():
    x = torch.randn(3, requires_grad=True)
    y = x
    for _ in range(500):
        y = y * 1.01 + x
    g = pictures.clean(autograd_graph([("y", y)]))
    assert len(g["nodes"]) <= pictures.MAX_NODES and any(n["kind"] == "more" for n in g["nodes"])
    assert len(json.dumps(g)) <= pictures.MAX_PICTURE_BYTES


def test_a_check_result_carries_its_picture_in_the_json_only_where_there_is_one():
    picture = pictures.clean({"kind": "graph", "nodes": [node(0)]})
    result = SubmissionResult("s.ipynb", "0", "a", "v", "t", ("cpu",), 0.0, 2.0, 0.1, exercises=(
        ExerciseResult("e", 0.0, 2.0, "graded", checks=(
            CheckResult("test_a", "a", "failed", 0.0, 1.0, "m", 0.0, picture),
            CheckResult("test_b", "b", "failed", 0.0, 1.0, "m")),),))
    d = json.loads(result.to_json())
    a, b = d["exercises"][0]["checks"]
    assert a["picture"] == picture and "picture" not in b
    assert SubmissionResult.from_dict(d) == result


# -- end to end: the real grader, the known-bad variants, the feedback page -------------------------

# (exercise/variant, text the student's picture must show)
BAD = [
    ("lost_leaf/lecture_cuda_after_requires_grad", "a (ToCopyBackward0)"),
    ("lost_leaf/double_after_requires_grad", "ToCopyBackward0"),
    ("lost_leaf/no_requires_grad", "requires_grad=False"),
    ("inplace/lecture_inplace_after_square", "saved at version 0, now 1"),
    ("inplace/increment_under_no_grad", "b2 (no grad_fn)"),
    ("implicit_function/backward_missing_nones", "nothing returned"),
    ("implicit_function/sign_error_backward", "returns 0.5774"),
    ("implicit_function/not_a_function_subclass", "found: the graph of your y"),
]
GOOD = ["lost_leaf/ok_requires_grad_after_move", "inplace/ok_clone_then_inplace", "implicit_function/ok_lecture_lbfgs"]


@pytest.fixture(scope="module")
def renderer():
    return FeedbackRenderer()


def grade_variant(grader, tmp_path, key):
    exercise, name = key.split("/")
    code = (VARIANTS / exercise / f"{name}.py").read_text()
    nb = exercise_notebook(tmp_path / f"{name}.ipynb", {exercise: code})
    return nb, grader.grade(nb, only=exercise)


def picture_divs(page: str) -> list[str]:
    return re.findall(r'<div class="tg-picture".*?</div>', page, flags=re.S)


@pytest.mark.parametrize("key, shows", BAD, ids=[k for k, _ in BAD])
def test_the_feedback_page_of_a_known_bad_variant_shows_the_picture(grader, renderer, tmp_path, key, shows):
    nb, result = grade_variant(grader, tmp_path, key)
    exercise = result.exercise(key.split("/")[0])
    with_picture = [c for c in exercise.checks if c.picture]
    assert with_picture and all(c.status != "passed" for c in with_picture)
    page = renderer.render(read_submission(nb).notebook, result)
    divs = picture_divs(page)
    # one picture per failed check (not one per parameter), the student's beside the expected one
    assert len(divs) == len({c.id.split("[")[0] for c in with_picture})
    assert all(d.count("<svg") == 2 and "expected:" in d and "found:" in d for d in divs)
    assert shows in " ".join(divs)
    assert len(page.encode()) < 1_000_000
    data = json.loads(result.to_json())
    sizes = [pictures.encoded_size(c["picture"]) for e in data["exercises"] for c in e["checks"] if "picture" in c]
    assert max(sizes) <= pictures.MAX_PICTURE_BYTES and sum(sizes) <= pictures.MAX_RUN_PICTURE_BYTES
    gradescope = json.loads(gradescope_json(result))
    html_tests = [t for t in gradescope["tests"] if t.get("output_format") == "html"]
    assert len(html_tests) == len(with_picture) and all("<svg" in t["output"] and t["output"].startswith("<pre>")
                                                       for t in html_tests)
    assert all("output_format" not in t for t in gradescope["tests"] if t["status"] == "passed")


@pytest.mark.parametrize("key", GOOD)
def test_a_correct_submissions_page_has_no_picture(grader, renderer, tmp_path, key):
    nb, result = grade_variant(grader, tmp_path, key)
    assert result.full_marks
    page = renderer.render(read_submission(nb).notebook, result)
    assert not picture_divs(page) and "<svg" not in page
    assert '"picture"' not in result.to_json()
    assert "output_format" not in gradescope_json(result)


HOSTILE_FUNCTION = f'''
NAME = {HOSTILE!r}
def forward(ctx, x, y0, F, max_iter=100):
    ctx.save_for_backward(x)
    return torch.sqrt(1 - x.detach() ** 2)
def backward(ctx, output_grad):
    (x,) = ctx.saved_tensors
    return x / torch.sqrt(1 - x ** 2) * output_grad, None, None, None  # the sign error
Implicit = type(NAME, (torch.autograd.Function,), {{"forward": staticmethod(forward), "backward": staticmethod(backward)}})
'''

HOSTILE_LEAF = f'''
Copy = type({HOSTILE!r}, (torch.autograd.Function,), {{
    "forward": staticmethod(lambda ctx, t: t.clone()), "backward": staticmethod(lambda ctx, g: g)}})
def make_leaves(device, dtype=torch.float32):
    a = Copy.apply(torch.randn(5, device=device, dtype=dtype, requires_grad=True))
    return a, torch.randn(5, device=device, dtype=dtype, requires_grad=True)
'''


@pytest.mark.parametrize("exercise, code", [("implicit_function", HOSTILE_FUNCTION), ("lost_leaf", HOSTILE_LEAF)],
                         ids=["implicit_function", "lost_leaf"])
def test_a_hostile_class_name_never_becomes_markup(grader, renderer, tmp_path, exercise, code):
    nb = exercise_notebook(tmp_path / "hostile.ipynb", {exercise: code})
    result = grader.grade(nb, only=exercise)
    drawn = [c.picture for c in result.exercise(exercise).checks if c.picture]
    assert drawn, "the hostile submission's mistake should still be drawn"
    labels = [s for p in drawn for s in strings_of(p)]
    assert any("?script?alert(1)?/script?" in s for s in labels)  # shown, as text
    assert not any(MARKUP.search(s) for s in labels)
    page = renderer.render(read_submission(nb).notebook, result)
    for div in picture_divs(page):
        assert "<script" not in div and "<img" not in div
        assert "?script?alert(1)?/script?" in div
    for svg in re.findall(r"<svg.*?</svg>", "".join(picture_divs(page)), flags=re.S):
        names = {el.tag.split("}")[-1] for el in svg_root(svg).iter()}
        assert names <= {"svg", "rect", "text", "g", "title", "path", "line", "circle"}, names


FORGED_PICTURE = '''
from grader.checks import CheckFailure
def make_leaves(device, dtype=torch.float32):
    failure = CheckFailure("my own failure")
    failure.picture = {"kind": "graph", "title": "<script>alert(1)</script>",
                       "nodes": [{"id": "n0", "label": "<img src=x onerror=alert(1)>", "kind": "op"}]}
    if device == "meta":
        failure.picture["nodes"] = [{"id": f"n{i}", "label": "x"} for i in range(10_000)]
    raise failure
'''


def test_a_picture_the_students_code_makes_up_is_held_to_the_same_bounds(grader, renderer, tmp_path):
    """Student code can raise the rubric's own CheckFailure with a picture of its making: it fails
    itself, and its picture is restricted like any other (or left out when it is out of bounds)."""
    nb = exercise_notebook(tmp_path / "forged.ipynb", {"lost_leaf": FORGED_PICTURE})
    result = grader.grade(nb, only="lost_leaf")
    checks = result.exercise("lost_leaf").checks
    assert result.exercise("lost_leaf").score == 0
    drawn = [c for c in checks if c.picture]
    assert drawn and all("meta" not in c.id for c in drawn)  # the 10,000-node one never left the sandbox
    assert not any(MARKUP.search(s) for c in drawn for s in strings_of(c.picture))
    page = renderer.render(read_submission(nb).notebook, result)
    assert "<script>alert" not in page and "<img src=x" not in page
