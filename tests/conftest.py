"""Shared helpers for the grader's own tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.authoring import notebooks
from grader.config import PROJECT_ROOT, load_assignment

TOY = Path(__file__).parent / "fixtures" / "toy"
collect_ignore = ["fixtures"]  # assignments used as test data, graded by the grader itself


@pytest.fixture(scope="session", autouse=True)
def private_training_cache(tmp_path_factory):
    """Every run retrains from scratch: no result cached by an earlier run can hide a change."""
    os.environ["GRADER_CACHE_DIR"] = str(tmp_path_factory.mktemp("training-cache"))


@pytest.fixture(scope="session")
def toy():
    return load_assignment(TOY)


def toy_notebook(replace: dict[str, str] | None = None, extra_cells: list[str] = (), before: list[str] = ()):
    """The toy solution with text replacements and extra code cells before/after it."""
    notebook = notebooks.mutate(notebooks.read(TOY / "toy.ipynb"), list((replace or {}).items()))
    notebook.cells = ([nbformat.v4.new_code_cell(src) for src in before] + notebook.cells
                      + [nbformat.v4.new_code_cell(src) for src in extra_cells])
    for i, cell in enumerate(notebook.cells):
        cell.id = f"cell-{i}"
    return notebook


def write_student(root: Path, student: str, notebook=None, raw: str | None = None) -> Path:
    """Write <root>/<student>/toy.ipynb from a notebook node or raw text."""
    folder = root / student
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "toy.ipynb"
    path.write_text(raw if raw is not None else notebooks.dumps(notebook))
    return path


def run_grader(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m grader ...` from the project root."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-m", "grader", *args], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"grader failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def read_results(reports: Path, student: str) -> dict:
    return json.loads((reports / student / "results.json").read_text())
