"""Feedback a student can act on: summary first, failures grouped by mistake, one message for an
unreadable notebook, diagnoses that reproduce the student's values (overwrite-instead-of-accumulate
included), "fix X first", cell errors linked to what they broke with the student's own cell and line
numbers, no expected value anywhere, the notebook rendered and sanitized in feedback.html, and
`grader check`."""
from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grader.authoring import notebooks
from grader.config import load_assignment
from grader.ingest.notebook import keep_definitions, to_python
from grader.reports.view import md_escape
from grader.results import Results
from grader.testing.checks import Mismatch, assert_matches, assert_scalar_matches
from tests.conftest import TOY, run_grader, toy_notebook, write_student
from tests.test_reports import check_html

CNN = load_assignment("cnn_layers")
FLIPPED = "the kernel is flipped"
OVERWRITE_DX = "accumulate with += (dx[...] += ...), never assign with ="
OVERWRITE_POOL = "add up their gradients with +="

CONV_BACKWARD_BY_POSITION = '''
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    s = stride if np.ndim(stride) else (stride, stride)
    d = dilation if np.ndim(dilation) else (dilation, dilation)
    if isinstance(padding, str) and padding.lower() == 'same':
        th = max((-(-H // s[0]) - 1) * s[0] + d[0] * (KH - 1) + 1 - H, 0)
        tw = max((-(-W // s[1]) - 1) * s[1] + d[1] * (KW - 1) + 1 - W, 0)
        pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    elif isinstance(padding, str):
        pads = ((0, 0), (0, 0))
    elif np.ndim(padding) == 0:
        pads = ((padding, padding), (padding, padding))
    else:
        pads = ((padding[0], padding[0]), (padding[1], padding[1]))
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    dxp = np.zeros(xp.shape)
    dw = np.zeros(w.shape)
    Ho, Wo = dout.shape[1:3]
    for i in range(Ho):
        for j in range(Wo):
            rows = slice(i * s[0], i * s[0] + d[0] * (KH - 1) + 1, d[0])
            cols = slice(j * s[1], j * s[1] + d[1] * (KW - 1) + 1, d[1])
            dxp[:, rows, cols, :] = np.einsum('nf,uvcf->nuvc', dout[:, i, j], w)
            dw += np.einsum('nuvc,nf->uvcf', xp[:, rows, cols, :], dout[:, i, j])
    return dxp[:, pads[0][0]:pads[0][0] + H, pads[1][0]:pads[1][0] + W], dw, dout.sum(axis=(0, 1, 2))
'''

POOL_BACKWARD_BY_WINDOW = '''
    N, H, W, C = x.shape
    kh, kw = (pool_size, pool_size) if np.ndim(pool_size) == 0 else pool_size
    st = (kh, kw) if stride is None else stride
    sh, sw = (st, st) if np.ndim(st) == 0 else st
    if padding.lower() == 'same':
        th = max((-(-H // sh) - 1) * sh + kh - H, 0)
        tw = max((-(-W // sw) - 1) * sw + kw - W, 0)
        pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    else:
        pads = ((0, 0), (0, 0))
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-np.inf)
    dxp = np.zeros(xp.shape)
    for i in range(dout.shape[1]):
        for j in range(dout.shape[2]):
            win = xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]
            mask = win == win.max(axis=(1, 2), keepdims=True)
            dxp[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :] = mask * dout[:, i:i + 1, j:j + 1, :]
    return dxp[:, pads[0][0]:pads[0][0] + H, pads[1][0]:pads[1][0] + W]
'''


def with_body(notebook, function: str, body: str):
    """The notebook with one function's body (after its docstring) replaced."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.source.startswith(f"def {function}("):
            end = cell.source.index('"""', cell.source.index('"""') + 3) + 3
            cell.source = cell.source[:end] + "\n" + body
            return notebook
    raise AssertionError(f"no cell defines {function}")


def cnn_student(root: Path, name: str, notebook) -> None:
    notebooks.write_submission(root / name, CNN, notebook, [])


def cnn_mutant(name: str):
    [mutant] = [m for m in notebooks.load_mutants(CNN) if m.name == name]
    return notebooks.mutate(notebooks.read(CNN.master), mutant.replace)


@pytest.fixture(scope="module")
def cnn_class(tmp_path_factory):
    """cnn_layers submissions, each with one kind of problem, graded as a TA would."""
    subs, reports = tmp_path_factory.mktemp("cnn-subs"), tmp_path_factory.mktemp("cnn-reports")
    master = notebooks.read(CNN.master)
    cnn_student(subs, "flipped", cnn_mutant("conv_kernel_flipped"))
    (subs / "corrupt").mkdir()
    (subs / "corrupt" / "cnn_layers.ipynb").write_text('{"cells": [{"cell_type": "code", "source": "def f(')
    cnn_student(subs, "conv_overwrite", with_body(notebooks.solution(master), "conv2d_backward",
                                                  CONV_BACKWARD_BY_POSITION))
    cnn_student(subs, "pool_overwrite", with_body(notebooks.solution(master), "maxpool2d_backward",
                                                  POOL_BACKWARD_BY_WINDOW))
    broken = notebooks.mutate(master, [("e = np.exp(shifted)", "e = np.exp(shifted")])
    cnn_student(subs, "syntax_error", broken)
    reuses = cnn_mutant("output_size_off_by_one")
    for cell in reuses.cells:
        cell.source = (cell.source.replace("Ho = (xp.shape[1] - ekh) // sh + 1", "Ho = conv_output_size(Hin, KH, pads_h, sh, dh)")
                       .replace("Wo = (xp.shape[2] - ekw) // sw + 1", "Wo = conv_output_size(Win, KW, pads_w, sw, dw)")
                       .replace("    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))\n",
                                "    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))\n"
                                "    pads_h, pads_w = sum(pads[0]) / 2, sum(pads[1]) / 2\n"))
    cnn_student(subs, "reuses_wrong_size", reuses)
    run_grader("grade", "cnn_layers", str(subs), "--reports", str(reports), "--jobs", "2", "--quiet", "--seed", "1")
    return reports


def feedback(reports: Path, student: str) -> tuple[str, str]:
    return (reports / student / "feedback.md").read_text(), (reports / student / "feedback.html").read_text()


def top_of(md: str) -> str:
    """The summary at the top of feedback.md: everything before the first function's section."""
    return md[:md.index("## Points per function")]


# ---------------------------------------------------------------- summary first, grouped, once

def test_a_one_bug_submission_names_its_mistake_once_at_the_top(cnn_class):
    md, html = feedback(cnn_class, "flipped")
    top = top_of(md)
    assert top.count(FLIPPED) == 1 and "1. `conv2d_forward` (14 / 36)" in top
    assert re.findall(r"^\d+\. ", top, re.M) == ["1. "]  # one function to fix
    assert md.count(FLIPPED) == 2  # once at the top, once over the 11 cases it explains
    assert "(11 cases, 22 points)" in md
    assert html.count(FLIPPED) == 3  # the top, the group, the note under the function's cell
    check_html(html)


def test_passing_tests_are_counted_not_listed(cnn_class):
    md, _ = feedback(cnn_class, "flipped")
    assert "| `conv2d_forward` | 14 / 36 | ❌ 13 of 24 |" in md and "| `relu` | 4 / 4 | ✅ 4 of 4 |" in md
    assert "test_relu" not in md and "test_conv2d_forward_shape" not in md
    assert md.count("test_conv2d_forward_values[") == 11


def test_a_corrupt_notebook_gets_one_message(cnn_class):
    md, html = feedback(cnn_class, "corrupt")
    assert md.count("not valid notebook JSON") == 1 and html.count("not valid notebook JSON") == 1
    assert "test_" not in md and "What to fix first" not in md and "Probably" not in md
    assert "**Score: 0 / 200**" in md
    check_html(html)


# ---------------------------------------------------------------- diagnoses: right or absent

@pytest.mark.parametrize("student, function, hint, lost", [
    ("conv_overwrite", "conv2d_backward", OVERWRITE_DX, 20),
    ("pool_overwrite", "maxpool2d_backward", OVERWRITE_POOL, None),  # how much depends on the random maxima
])
def test_overwriting_instead_of_accumulating_is_diagnosed(cnn_class, student, function, hint, lost):
    results = Results.read(cnn_class / student / "results.json")
    failed = [t for t in results.tests if not t.passed]
    assert failed and all(t.functions[0] == function and hint in t.diagnosis for t in failed)
    assert results.max_score - results.score == lost if lost else results.max_score > results.score
    assert hint in top_of(feedback(cnn_class, student)[0])


def test_a_function_that_reuses_a_wrong_one_is_told_to_fix_it_first(cnn_class):
    md, html = feedback(cnn_class, "reuses_wrong_size")
    top = top_of(md)
    assert top.index("1. `conv_output_size`") < top.index("2. `conv2d_forward`")
    assert "`conv2d_forward` (0 / 36): it calls your `conv_output_size`, which loses points: fix " \
           "`conv_output_size` first." in top
    assert "fix <code>conv_output_size</code> first" in html


def test_a_diagnosis_is_named_only_when_its_variant_reproduces_the_values():
    expected = np.arange(24.0).reshape(1, 4, 6, 1)
    right_shape_wrong_values = np.zeros((1, 3, 6, 1))
    mistakes = {"cropped": (expected[:, :3], "the output size is off by one")}
    with pytest.raises(Mismatch) as shape_only:
        assert_matches(right_shape_wrong_values, expected, what="out", case="c", mistakes=mistakes)
    assert shape_only.value.diagnosis == ""
    with pytest.raises(Mismatch) as reproduced:
        assert_matches(expected[:, :3].copy(), expected, what="out", case="c", mistakes=mistakes)
    assert reproduced.value.diagnosis == "the output size is off by one"


# ---------------------------------------------------------------- no leaks

def test_no_message_gives_an_expected_value_away():
    for actual in (0, 1, 12344):
        with pytest.raises(Mismatch) as exc:
            assert_scalar_matches(actual, 12345, what="n", case="c", integer=True)
        assert "12345" not in exc.value.message and "error" not in exc.value.message
    with pytest.raises(Mismatch) as exc:
        assert_scalar_matches(0.0, 3.14159, what="loss", case="c")
    assert "3.14" not in exc.value.message and "about 100%" in exc.value.message
    with pytest.raises(Mismatch) as exc:
        assert_matches(np.zeros(3), np.array([1.5, -2.25, 7.125]), what="out", case="c")
    assert not re.search(r"7\.1|2\.2|1\.5", exc.value.message) and "about 100%" in exc.value.message


def test_no_report_holds_an_absolute_error(cnn_class):
    for path in cnn_class.glob("*/*"):
        if path.suffix in (".md", ".html", ".json", ".xml"):
            assert "abs error" not in path.read_text(), path


# ---------------------------------------------------------------- cell errors, cell and line numbers

def test_a_cell_error_is_linked_to_what_it_broke(cnn_class):
    md, html = feedback(cnn_class, "syntax_error")
    linked = "`softmax` is not defined: cell 46 raised SyntaxError: '(' was never closed (line 4)"
    assert f"1. `softmax` (0 / 10): {md_escape(linked)}" in md and "cells are numbered from the top of the notebook" in md
    assert "**Cell 46** raised SyntaxError: '(' was never closed (line 4), so `softmax` is not defined." in md
    assert "softmax</code> is not defined: cell 46 raised SyntaxError" in html
    results = Results.read(cnn_class / "syntax_error" / "results.json")
    assert all(t.message == linked for t in results.tests if t.functions[0] == "softmax")


def test_magics_and_dropped_statements_keep_every_line_where_the_student_wrote_it():
    source = ("%matplotlib inline\nimport numpy as np\nx = train(); y = 2\n\n@decorate\n"
              "def f(a):\n    # comment\n\n    return missing\n!ls\n")
    for python in (to_python(source, 1, []), keep_definitions(to_python(source, 1, []))):
        lines = python.splitlines()
        assert lines[5] == "def f(a):" and lines[8] == "    return missing" and lines[4] == "@decorate"
    assert to_python("%%time\nimport os\n\ndef g():\n    return zz\n", 1, []).splitlines()[4] == "    return zz"
    assert to_python("\n\nx = 1\n!ls\n", 1, []).splitlines()[2] == "x = 1"


def test_tracebacks_carry_the_students_cell_and_line_in_definitions_mode(tmp_path):
    shutil.copytree(TOY, tmp_path / "toy")
    config = tmp_path / "toy" / "assignment.toml"
    config.write_text(config.read_text().replace('cells = "all"', 'cells = "definitions"'))
    student = toy_notebook({"    return 2 * np.asarray(x)\n": "    # scaled\n\n    return SCALE * np.asarray(x)\n",
                            'def double(x):\n': 'SCALE = load_data()  # loads data: skipped in definitions mode\n\n'
                                               'def double(x):\n'})
    student.cells.insert(1, nbformat.v4.new_markdown_cell("Some text"))
    write_student(tmp_path / "subs", "ann", student)
    run_grader("grade", str(tmp_path / "toy"), str(tmp_path / "subs"), "--reports", str(tmp_path / "out"), "--quiet")
    results = Results.read(tmp_path / "out" / "ann" / "results.json")
    [message] = {t.message for t in results.tests if t.functions[0] == "double"}
    cell = student.cells[3].source.splitlines()  # the 4th cell from the top (2 Markdown cells above it)
    line = cell.index("    return SCALE * np.asarray(x)") + 1
    assert line == 7 and f"cell 4, line {line}, in double" in message
    assert "NameError: name 'SCALE' is not defined" in message


# ---------------------------------------------------------------- the notebook in feedback.html

def png_base64() -> str:
    from matplotlib.figure import Figure
    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_notebook_is_rendered_sanitized_and_annotated(tmp_path):
    student = toy_notebook({"    return 2 * np.asarray(x)\n": "    return 3 * np.asarray(x)\n"})
    student.cells.insert(1, nbformat.v4.new_markdown_cell(
        "Hello <script>alert('md')</script> <img src=x onerror=alert(1)> ![t](http://evil.example/t.png) "
        "[click](javascript:alert(2)) <iframe src='http://evil.example'></iframe> **bold**"))
    png = png_base64()
    student.cells[2].outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": "<script>alert('out')</script>",
                                                     "application/javascript": "alert('js')",
                                                     "text/plain": "plain fallback"}),
        nbformat.v4.new_output("display_data", data={"image/png": png}),
        nbformat.v4.new_output("stream", name="stdout", text="printed </pre><script>alert(3)</script>"),
    ]
    write_student(tmp_path / "subs", "eve", student)
    run_grader("grade", str(TOY), str(tmp_path / "subs"), "--reports", str(tmp_path / "out"), "--quiet")
    html = (tmp_path / "out" / "eve" / "feedback.html").read_text()
    parser = check_html(html)  # no script, frame or network load; every image an embedded PNG
    assert parser.images == [f"data:image/png;base64,{png}"]
    notebook = html[html.index("Your notebook"):]
    assert "<strong>bold</strong>" in notebook and "plain fallback" in notebook
    assert "javascript:" not in notebook.replace("&lt;", "<").split("[click]")[0]
    assert not re.search(r"<[a-z]+[^>]*\son\w+=", html) and "href=\"javascript" not in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in notebook
    # each graded function's cell is followed by its points and diagnosis, in order
    double, relu = notebook.index("<code>double</code>: 0 / 4 points"), notebook.index("<code>relu</code>: 3 / 3 points")
    assert notebook.index("def double(x):") < double < notebook.index("def relu(x):") < relu
    assert "GRADERNOTE" not in html


# ---------------------------------------------------------------- grader check

def check(path: Path) -> tuple[int, str]:
    result = run_grader("check", str(path), check=False, timeout=600)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, result.stdout


def test_check_on_the_solution_the_starter_and_a_broken_notebook(tmp_path):
    notebooks.write_submission(tmp_path / "solution", CNN, notebooks.solution(notebooks.read(CNN.master)), [])
    code, out = check(tmp_path / "solution" / "cnn_layers.ipynb")
    assert code == 0 and "17 of 17 defined and implemented" in out and "Self-checks (cells with assert): 17 of 17" \
        in out and "✓ Ready to submit." in out and "The hidden tests were not run" in out

    (tmp_path / "starter").mkdir()
    shutil.copyfile(CNN.starter, tmp_path / "starter" / "cnn_layers.ipynb")
    code, out = check(tmp_path / "starter" / "cnn_layers.ipynb")
    assert code == 1 and "0 of 17 defined and implemented" in out
    assert "✗ softmax (cell 46): not implemented yet (it still raises NotImplementedError)" in out
    assert "cell 47 raised NotImplementedError (in cell 46, line 3: raise NotImplementedError)" in out

    broken = notebooks.mutate(notebooks.read(CNN.master), [("e = np.exp(shifted)", "e = np.exp(shifted")])
    notebooks.write_submission(tmp_path / "broken", CNN, broken, [])
    (tmp_path / "broken" / "helpers.py").write_text("X = 1\n")
    code, out = check(tmp_path / "broken" / "cnn_layers.ipynb")
    assert code == 1 and "16 of 17 defined" in out
    assert "✗ softmax (cell 46): `softmax` is not defined: cell 46 raised SyntaxError: '(' was never closed " \
           "(line 4)" in out
    assert "Files that will be submitted (2):\n  cnn_layers.ipynb (" in out and "  helpers.py (6 bytes)" in out


def test_check_lists_the_weights_that_will_be_submitted(tmp_path):
    keras_models = load_assignment("keras_models")
    notebooks.write_submission(tmp_path / "s", keras_models, notebooks.solution(notebooks.read(keras_models.master)),
                               ["lenet5.weights.h5"])
    code, out = check(tmp_path / "s" / "keras_models.ipynb")
    assert "4 of 4 defined and implemented" in out and "  lenet5.weights.h5 (" in out
    assert code == 1 and "✗ missing: vgg.weights.h5" in out


def test_the_starters_last_cell_runs_the_check_and_does_nothing_while_grading():
    for name in ("cnn_layers", "keras_models"):
        assignment = load_assignment(name)
        last = nbformat.read(assignment.starter, as_version=4).cells[-1]
        assert f"-m grader check {assignment.notebook}" in last.source and "get_ipython()" in last.source
    namespace: dict = {}
    exec(compile(last.source, "check cell", "exec"), namespace)  # no IPython here: as in the grader
    assert namespace["_shell"] is None
