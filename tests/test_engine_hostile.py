"""The engine, proven on the toy assignment: full marks, zero, and every hostile submission contained.

All submissions are graded in one batch, as a TA would: each must get the score it earned while
the others are still graded correctly.
"""
from __future__ import annotations

import uuid

import nbformat
import pytest

from grader.authoring import notebooks
from tests.conftest import TOY, read_results, run_grader, toy_notebook, write_student

PWNED = f"/tmp/grader-shell-escape-{uuid.uuid4().hex}"
FULL = 11.0

DOUBLE = "    return 2 * np.asarray(x)\n"
RELU = "    return np.maximum(x, 0)\n"
ROW_SUMS = "    return x.sum(axis=1)\n"

# student -> (notebook, expected score, {test name prefix: message substring})
CASES = {
    "solution": (toy_notebook(), FULL, {}),
    "infinite_loop": (toy_notebook({DOUBLE: "    while True:\n        pass\n"}), FULL - 4,
                      {"test_double_values": "did not return within"}),
    "os_exit": (toy_notebook({RELU: "    import os\n    os._exit(0)\n"}), FULL - 3,
                {"test_relu": "died while running `relu`"}),
    "allocates_40gb": (toy_notebook({ROW_SUMS: "    big = np.ones(40 * 2**30 // 8)\n    return big[:3]\n"}), FULL - 4,
                       {"test_row_sums": "ran out of memory"}),
    "monkeypatches_numpy": (toy_notebook({DOUBLE: "    return 3 * np.asarray(x)\n"}, before=[
        "import numpy as np\nnp.allclose = lambda *a, **k: True\nnp.array_equal = lambda *a, **k: True\n"
        "np.testing.assert_allclose = lambda *a, **k: None\nnp.ndarray.__eq__ = lambda *a: True"]),
        FULL - 4, {"test_double_values": "double is wrong"}),
    "lying_eq": (toy_notebook({DOUBLE: "    class Liar(np.ndarray):\n        def __eq__(self, other):\n"
                                       "            return True\n        __ne__ = lambda s, o: False\n"
                                       "    return (3 * np.asarray(x)).view(Liar)\n"}), FULL - 4,
                 {"test_double_values": "double is wrong"}),
    "stack_walker": (toy_notebook({ROW_SUMS: (
        "    import gc, inspect\n"
        "    for info in inspect.stack():\n"
        "        for value in list(info.frame.f_locals.values()):\n"
        "            if isinstance(value, np.ndarray) and value.shape == (x.shape[0],):\n"
        "                return value\n"
        "    for obj in gc.get_objects():\n"
        "        if isinstance(obj, np.ndarray) and obj.shape == (x.shape[0],) and obj is not x:\n"
        "            return obj\n"
        "    return np.zeros(x.shape[0])\n")}), FULL - 2, {"test_row_sums": "right shape but wrong values"}),
    "replaces_print_and_stdout": (toy_notebook(before=[
        "import builtins, sys, io\nbuiltins.print = lambda *a, **k: None\nsys.stdout = io.StringIO()\n"
        "sys.stderr = None"]), FULL, {}),
    "syntax_error": (toy_notebook({"def relu(x):": "def relu(x) oops:"}), FULL - 3,
                     {"test_relu": "`relu` is not defined: cell 4 raised SyntaxError: expected ':' (line 1)"}),
    "cell_raises": (toy_notebook(extra_cells=["raise RuntimeError('this cell fails')"]), FULL, {}),
    "prints_5mb": (toy_notebook(extra_cells=["print('x' * 5_000_000)"]), FULL, {}),
    "magics": (toy_notebook(before=[
        "%matplotlib inline", f"!touch {PWNED}\n!pip install tensorflow", "np.pad?",
        "%%time\nimport numpy as np\nx = np.ones(2)"]), FULL, {}),
    "snoops_and_networks": (toy_notebook({DOUBLE: (
        "    try:\n"
        f"        secret = open({str(TOY / 'tests' / 'test_toy.py')!r}).read()\n"
        "    except Exception:\n"
        "        secret = ''\n"
        "    try:\n"
        "        import socket\n"
        "        socket.create_connection(('127.0.0.1', 22), timeout=1)\n"
        "        secret += 'network'\n"
        "    except Exception:\n"
        "        pass\n"
        "    return 2 * np.asarray(x) if 'test_double' in secret or 'network' in secret else 3 * np.asarray(x)\n")}),
        FULL - 4, {"test_double_values": "double is wrong"}),
    "imports_forbidden_module": (toy_notebook({RELU: "    import tensorflow as tf\n"
                                                     "    return tf.nn.relu(x).numpy()\n"}), FULL - 3,
                                 {"test_relu": "uses tensorflow; this assignment must be written with NumPy only"}),
    "hides_forbidden_module": (toy_notebook({ROW_SUMS: "    half = __import__('frac' + 'tions').Fraction(1, 2)\n"
                                                       "    return x.sum(axis=1) * float(half * 2)\n"}), FULL - 4,
                               {"test_row_sums": "uses a module imported by a computed name"}),
}


def v3_notebook() -> str:
    return nbformat.writes(nbformat.convert(toy_notebook(), 3))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    submissions = tmp_path_factory.mktemp("submissions")
    reports = tmp_path_factory.mktemp("reports")
    for student, (notebook, _, _) in CASES.items():
        write_student(submissions, student, notebook)
    write_student(submissions, "starter", notebooks.starter(notebooks.read(TOY / "toy.ipynb")))
    write_student(submissions, "corrupt_json", raw='{"cells": [{"cell_type": "code", "source": "x = ')
    write_student(submissions, "empty_file", raw="")
    write_student(submissions, "no_cells", raw=notebooks.dumps(nbformat.v4.new_notebook()))
    (submissions / "nbformat_v3.ipynb").write_text(v3_notebook())  # the bare-notebook layout
    result = run_grader("grade", str(TOY), str(submissions), "--reports", str(reports), "--jobs", "2", "--quiet")
    return reports, result


@pytest.mark.parametrize("student", list(CASES))
def test_each_submission_gets_the_score_it_earned(graded, student):
    reports, _ = graded
    _, expected, messages = CASES[student]
    results = read_results(reports, student)
    assert results["score"] == expected, results
    for prefix, text in messages.items():
        failed = [t for t in results["tests"] if t["name"].startswith(prefix)]
        assert failed and all(t["status"] == "failed" and text in t["output"] for t in failed), failed
    others = [t for t in results["tests"] if not any(t["name"].startswith(p) for p in messages)]
    assert all(t["status"] == "passed" for t in others), others


def test_starter_scores_zero_with_reasons(graded):
    results = read_results(graded[0], "starter")
    assert results["score"] == 0 and results["max_score"] == FULL
    assert all("not implemented yet" in t["output"] for t in results["tests"])


@pytest.mark.parametrize("student, reason", [
    ("corrupt_json", "not valid notebook JSON"),
    ("empty_file", "is empty"),
    ("no_cells", "has no code"),
])
def test_unreadable_notebooks_score_zero_with_a_reason(graded, student, reason):
    results = read_results(graded[0], student)
    assert results["score"] == 0 and results["max_score"] == FULL
    assert reason in results["output"]
    assert all(reason in t["output"] for t in results["tests"])


def test_nbformat_v3_notebook_is_graded(graded):
    assert read_results(graded[0], "nbformat_v3")["score"] == FULL


def test_shell_escapes_never_run(graded):
    import os
    results = read_results(graded[0], "magics")
    assert not os.path.exists(PWNED)
    assert "shell command skipped" in results["output"]


def test_huge_output_is_truncated(graded):
    results = read_results(graded[0], "prints_5mb")
    outputs = [cell["output"] for cell in results["extra_data"]["cells"]]
    assert any("output truncated: 5,000,001 bytes" in o for o in outputs)
    assert all(len(o) < 10_000 for o in outputs)


def test_cell_errors_are_reported_and_later_cells_still_run(graded):
    results = read_results(graded[0], "cell_raises")
    assert "this cell fails" in results["output"]
    syntax = read_results(graded[0], "syntax_error")
    assert "SyntaxError" in syntax["output"]


def test_gradebook_lists_every_student(graded):
    reports, result = graded
    rows = (reports / "gradebook.csv").read_text().splitlines()
    assert rows[0] == "student,double,relu,row_sums,raw_score,late_penalty,total,max_score,status,days_late,overrides"
    assert len(rows) == 1 + len(CASES) + 5
    assert "submissions:" in result.stdout


def test_results_follow_the_gradescope_schema(graded):
    results = read_results(graded[0], "infinite_loop")
    assert set(results) >= {"score", "tests", "output", "execution_time", "extra_data"}
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility", "tags"}
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] in ("visible", "after_due_date")
        assert test["tags"][-1] in ("shape", "value", "gradient", "params", "structure", "accuracy")
    hidden = [t for t in results["tests"] if t["name"] == "test_row_sums_partial"]
    assert hidden[0]["visibility"] == "after_due_date" and hidden[0]["tags"] == ["row_sums", "value"]
