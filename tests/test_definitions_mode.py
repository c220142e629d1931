"""The "definitions" cell mode (grader.ingest.notebook.skip_training): every definition a student writes stays
defined, what loads data or trains does not run, and the feedback says what was skipped and why."""
from __future__ import annotations

import shutil
import traceback
from pathlib import Path

from grader.ingest.notebook import skip_training
from grader.results import MAX_SKIPPED_LISTED, CellLog, Results, SubmissionMeta, bound
from tests.conftest import TOY, read_results, run_grader, toy_notebook, write_student

# A stand-in for Keras: loading or training raises, so a test fails if the mode lets either run.
FAKE_KERAS = '''
import types
def _refuse(*args, **kwargs):
    raise AssertionError("the grader ran a statement that loads data or trains")
class Model:
    fit = evaluate = predict = save_weights = _refuse
    def __init__(self, *layers):
        self.layers = layers
keras = types.SimpleNamespace(datasets=types.SimpleNamespace(mnist=types.SimpleNamespace(load_data=_refuse)),
                              Model=Model, __version__="3.1.0",
                              regularizers=types.SimpleNamespace(l2=lambda factor: ("l2", factor)))
'''

# What the students wrote: every name below must exist after the filtered cells run.
STUDENT_CELLS = [
    FAKE_KERAS,
    '''import functools
import numpy as np
try:
    import keras_is_not_installed_here as keras_alt
except ImportError:
    keras_alt = None
SCALE = np.float32(1 / 255)
MEAN = np.array([0.49, 0.48, 0.45], dtype=np.float32)
Conv = functools.partial(dict, kernel_size=3, padding="same")
REG = keras.regularizers.l2(1e-4)
if keras.__version__.startswith("3"):
    ACT = "relu"
else:
    ACT = "tanh"


class Widths:
    BLOCKS = (32, 64, 128)
''',
    '''def load(name):
    """The student's own loader: calling it loads a dataset."""
    return keras.datasets.mnist.load_data()


def build():
    return keras.Model(Conv(filters=Widths.BLOCKS[0]), ACT, REG)
''',
    '''(x_train, y_train), (x_test, y_test) = load("mnist")
x_train = x_train * SCALE
model = build()
history = model.fit(x_train, y_train, epochs=5)
print(history.history["accuracy"])
AFTER_TRAINING = 1  # a definition after the training statements still runs
for epoch in range(3):
    model.fit(x_train, y_train)
model.save_weights("model.weights.h5")
''',
]


def run_cells(cells: list[str]) -> dict:
    namespace: dict = {"__name__": "__main__"}
    for number, source in enumerate(cells, 1):
        exec(compile(source, f"cell {number}", "exec"), namespace)
    return namespace


def test_every_definition_stays_defined_and_nothing_trains():
    plan = skip_training(STUDENT_CELLS)
    namespace = run_cells(plan.cells)  # raises if anything that loads or trains ran
    for name in ("SCALE", "MEAN", "Conv", "REG", "ACT", "Widths", "keras_alt", "load", "build", "model",
                 "AFTER_TRAINING", "functools", "np"):
        assert name in namespace, f"{name} vanished"
    assert namespace["ACT"] == "relu" and namespace["REG"] == ("l2", 1e-4) and namespace["SCALE"].dtype.name == "float32"
    assert namespace["model"].layers[1] == "relu"
    assert not {"x_train", "history", "epoch"} & namespace.keys()


def test_each_skipped_statement_is_listed_with_its_reason():
    plan = skip_training(STUDENT_CELLS)
    assert plan.skipped[:3] == [[], [], []]
    texts = [entry.text() for entry in plan.skipped[3]]
    assert texts == [
        'line 1: `(x_train, y_train), (x_test, y_test) = load("mnist")` calls `load`, which loads a dataset',
        "line 2: `x_train = x_train * SCALE` uses `x_train`, which is not created during grading (cell 4, line 1 "
        "was skipped)",
        "line 4: `history = model.fit(x_train, y_train, epochs=5)` trains a model (`fit`)",
        "line 5: `print(history.history[\"accuracy\"])` uses `history`, which is not created during grading (cell 4, "
        "line 4 was skipped)",
        "line 7: `for epoch in range(3):` trains a model (`fit`)",
        'line 9: `model.save_weights("model.weights.h5")` saves or loads a model file (`save_weights`)',
    ]
    assert plan.unset["x_train"].line == 1 and plan.unset["history"].line == 4 and "model" not in plan.unset


def test_line_numbers_are_kept():
    cell = "x = load_data()\nmodel.fit(x,\n          x)\nraise ValueError('line 4')\n"
    (kept,) = skip_training([cell]).cells
    try:
        exec(compile(kept, "cell 1", "exec"), {})
    except ValueError:
        assert traceback.extract_tb(__import__("sys").exc_info()[2])[-1].lineno == 4
    else:
        raise AssertionError("the statement after the skipped ones did not run")


def test_blocks_keep_their_definitions_and_lose_their_training():
    cell = ("import os\nif not os.path.exists('w.h5'):\n    model.fit(x)\n    TRAINED = True\nelse:\n    TRAINED = False\n"
            "with open(os.devnull) as f:\n    EMPTY = f.read()\n    model.fit(x)\n")
    plan = skip_training([cell])
    namespace = run_cells(plan.cells)
    assert namespace["EMPTY"] == "" and namespace["TRAINED"] in (True, False)
    assert [entry.line for entry in plan.skipped[0]] == [3, 9]


def test_the_skipped_statements_stay_within_the_results_bounds():
    log = CellLog(1, "ok", skipped=[f"line {i}: `model.fit()` trains a model" for i in range(500)])
    results = Results(0.0, 1.0, "", [], SubmissionMeta(student="s", cells=[log]))
    bound(results)
    assert len(log.skipped) == MAX_SKIPPED_LISTED + 1 and log.skipped[-1] == "[... 480 more statements skipped]"
    bound(results)
    assert len(log.skipped) == MAX_SKIPPED_LISTED + 1  # bounding again changes nothing


def toy_in_definitions_mode(tmp_path: Path) -> Path:
    assignment = tmp_path / "toy"
    shutil.copytree(TOY, assignment)
    config = assignment / "assignment.toml"
    config.write_text(config.read_text().replace('cells = "all"', 'cells = "definitions"'))
    return assignment


def test_the_feedback_says_what_was_skipped_and_why_a_name_is_missing(tmp_path):
    """A toy submission whose relu uses a variable that only a data-loading statement creates: the NameError
    is explained, the skipped statements are in the cell log and in the student's output, and double, which
    uses a constant computed by a call, earns its points."""
    notebook = toy_notebook(
        replace={"return 2 * np.asarray(x)": "return FACTOR * np.asarray(x)",
                 "return np.maximum(x, 0)": "return np.maximum(x, LOW)"},
        before=["import numpy as np\nFACTOR = int(np.float64(2.0))\ndef load_data():\n    return np.zeros(3)\n"
                "data = load_data()\nLOW = data.min()\n"])
    subs = tmp_path / "subs"
    write_student(subs, "ada", notebook)
    reports = tmp_path / "reports"
    run_grader("grade", str(toy_in_definitions_mode(tmp_path)), str(subs), "--reports", str(reports), "--quiet")
    results = read_results(reports, "ada")
    outcome = {t["name"]: t for t in results["tests"]}
    assert all(t["status"] == "passed" for name, t in outcome.items() if name.startswith("test_double"))
    relu = outcome["test_relu_values_and_inputs"]
    assert relu["status"] == "failed"
    assert ("`LOW` does not exist during grading: cell 1, line 6 creates it, and the grader does not run that "
            "statement: it uses `data`, which is not created during grading (cell 1, line 5 was skipped)") in relu["output"]
    (first,) = [c for c in results["extra_data"]["cells"] if c["number"] == 1]
    assert first["skipped"] == [
        "line 5: `data = load_data()` loads a dataset (`load_data`)",
        "line 6: `LOW = data.min()` uses `data`, which is not created during grading (cell 1, line 5 was skipped)"]
    assert "- cell 1, line 5: `data = load_data()` loads a dataset (`load_data`)" in results["output"]
    assert Results.read(reports / "ada" / "results.json").meta.cells[0].skipped == first["skipped"]


def test_training_through_a_chain_of_the_students_functions_is_found():
    chain = "\n".join(f"def step{i}(m):\n    return step{i + 1}(m)" for i in range(2000))
    plan = skip_training([chain + "\ndef step2000(m):\n    return m.fit()\n", "RESULT = step0(model)\nKEPT = 1\n"])
    assert [entry.text() for entry in plan.skipped[1]] == [
        "line 1: `RESULT = step0(model)` calls `step0`, which trains a model"]
    assert plan.cells[1] == "pass\nKEPT = 1\n"


def test_odd_line_breaks_and_non_ascii_text_do_not_misplace_what_is_skipped():
    """A line separator inside a string is not a line break for Python, and column offsets count bytes."""
    cell = 'NOTE = "a\u2028b"\nfit(x)\nKEPT = 1\nmodel.fit("éé");AFTER = 2\n'
    plan = skip_training([cell])
    assert [(entry.line, entry.statement) for entry in plan.skipped[0]] == [(2, "fit(x)"), (4, 'model.fit("éé")')]
    namespace: dict = {}
    exec(plan.cells[0], namespace)  # fit is not defined here: it must not run
    assert namespace["NOTE"] == "a\u2028b" and namespace["KEPT"] == 1 and namespace["AFTER"] == 2
