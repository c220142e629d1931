"""Ingest of notebooks, layouts of submission folders, and generated notebooks."""
import nbformat
import pytest

from grader.authoring import notebooks
from grader.errors import IngestError
from grader.ingest.notebook import keep_definitions, read_notebook, to_python
from grader.ingest.submissions import discover
from tests.conftest import TOY, toy_notebook


def test_magics_and_shell_escapes_become_harmless_python():
    notes = []
    # every statement stays on the line the student wrote it on
    assert to_python("%matplotlib inline\nimport numpy as np", 1, notes) == "None\nimport numpy as np\n"
    assert to_python("%%time\nx = 1\n!ls", 2, notes) == "\nx = 1\nNone\n"
    assert to_python("np.pad?", 3, notes) == "None\n"
    assert to_python("files = !ls", 4, notes) == "files = None\n"
    assert to_python("%%bash\nrm -rf /", 5, notes) == "pass\n"
    assert any("never runs `!ls`" in n for n in notes) and any("%%bash" in n for n in notes)


def test_definitions_mode_drops_training_statements():
    source = ("import numpy as np\nEPOCHS = 3\nL = np.linalg\ndef f():\n    return 1\nmodel.fit(x)\nh = train()\n"
              "w[0, 0] = 1.0\nobj.attr = 2")
    assert keep_definitions(source) == "import numpy as np\nEPOCHS = 3\nL = np.linalg\ndef f():\n    return 1\n"


def test_unreadable_notebooks_raise_student_readable_errors(tmp_path):
    for raw, reason in [("", "is empty"), ("{nope", "not valid notebook JSON"), ('{"cells": 3}', "could not be read")]:
        path = tmp_path / "n.ipynb"
        path.write_text(raw)
        with pytest.raises(IngestError, match=reason):
            read_notebook(path)


def test_v3_notebooks_are_read(tmp_path):
    path = tmp_path / "v3.ipynb"
    path.write_text(nbformat.writes(nbformat.convert(toy_notebook(), 3)))
    assert any("def double" in cell for cell in read_notebook(path).cells)


def test_every_layout_is_discovered(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "toy.ipynb").write_text("{}")
    (tmp_path / "alice" / "weights.h5").write_text("w")
    (tmp_path / "bob.ipynb").write_text("{}")
    for user in ("carol", "dave"):
        repo = tmp_path / f"toy-assignment-{user}"
        (repo / ".git").mkdir(parents=True)
        (repo / "work").mkdir()
        (repo / "work" / "toy.ipynb").write_text("{}")
        (repo / ".ipynb_checkpoints").mkdir()
        (repo / ".ipynb_checkpoints" / "toy-checkpoint.ipynb").write_text("{}")
    (tmp_path / "erin").mkdir()
    (tmp_path / "erin" / "a.ipynb").write_text("{}")
    (tmp_path / "erin" / "b.ipynb").write_text("{}")
    (tmp_path / "frank").mkdir()
    found = {s.student: s for s in discover(tmp_path, "toy.ipynb")}
    assert sorted(found) == ["alice", "bob", "carol", "dave", "erin", "frank"]
    assert [p.name for p in found["alice"].files()] == ["toy.ipynb", "weights.h5"]
    assert found["bob"].files() == [tmp_path / "bob.ipynb"]
    assert found["carol"].notebook == tmp_path / "toy-assignment-carol" / "work" / "toy.ipynb"
    assert "several notebooks" in found["erin"].problem and "no notebook" in found["frank"].problem


def test_starter_replaces_solution_blocks_and_solution_drops_markers():
    master = notebooks.read(TOY / "toy.ipynb")
    starter = "\n".join(c.source for c in notebooks.starter(master).cells)
    solution = "\n".join(c.source for c in notebooks.solution(master).cells)
    assert "    raise NotImplementedError" in starter and "2 * np.asarray" not in starter
    assert "SOLUTION" not in solution and "return 2 * np.asarray(x)" in solution
    with pytest.raises(ValueError, match="exactly once"):
        notebooks.mutate(master, [("np.", "numpy.")])


def test_run_magic_runs_a_file_submitted_beside_the_notebook(tmp_path):
    """`%run helpers.py` runs the submitted file in the notebook's namespace; other %run forms are noted."""
    from tests.conftest import read_results, run_grader, write_student
    notebook = toy_notebook({"return 2 * np.asarray(x)": "return twice(x)"}, before=["%run helpers.py"])
    folder = write_student(tmp_path / "subs", "alice", notebook).parent
    (folder / "helpers.py").write_text("import numpy as np\n\ndef twice(x):\n    return 2 * np.asarray(x)\n")
    run_grader("grade", str(TOY), str(tmp_path / "subs"), "--reports", str(tmp_path / "reports"), "--quiet")
    results = read_results(tmp_path / "reports", "alice")
    assert results["score"] == results["max_score"] == 11, results["tests"]
    notes: list[str] = []
    assert to_python("%run ../outside.py", 7, notes).strip() == "None"
    assert notes == ["cell 7: `%run ../outside.py` skipped: the grader runs `%run file.py` only for a .py file "
                     "submitted beside the notebook, with no arguments"]
