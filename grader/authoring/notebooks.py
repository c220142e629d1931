"""Generate notebooks from an assignment's master: the student starter, the solution, seeded bugs, valid variants.

Solution code sits between `### BEGIN SOLUTION` and `### END SOLUTION` lines, as in nbgrader.
The starter replaces each block with `raise NotImplementedError` and ends with a cell that runs
`grader check` on the saved notebook; the solution drops the marker lines. Generated files are
never edited by hand.
"""
from __future__ import annotations

import copy
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.config import Assignment

BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)", re.M | re.S)
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*(\n|$)", re.M)


@dataclass(frozen=True)
class Mutant:
    """A seeded bug: text replacements on the solution, and the tests it must fail."""
    name: str
    function: str
    replace: list[tuple[str, str]]
    fails: list[str]
    diagnosis: str = ""
    drop_files: list[str] = field(default_factory=list)
    replace_files: list[tuple[str, str]] = field(default_factory=list)  # (submission file, assignment file)


@dataclass(frozen=True)
class Variant:
    """Another correct way to write the solution: text replacements on it, and the tests it need not pass
    (those its changed architecture cannot pass with the solution's weights files)."""
    name: str
    function: str
    replace: list[tuple[str, str]]
    exempt: list[str] = field(default_factory=list)


def _clean(notebook) -> None:
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None


def _map_code(master, transform):
    notebook = copy.deepcopy(master)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = transform(cell.source)
    _clean(notebook)
    return notebook


def starter(master):
    """The student starter: every solution block becomes `raise NotImplementedError`."""
    return _map_code(master, lambda src: BLOCK.sub(lambda m: f"{m.group(1)}raise NotImplementedError{m.group(2)}", src))


CHECK_CELL = """\
# Before you submit: run your saved notebook as the grader will (same sandbox, same limits), without the
# hidden tests. It says which functions are defined, which cells fail, and which files will be submitted.
# Save the notebook first. This needs the course's grader installed; while grading, this cell does nothing.
import importlib.util
import sys

try:
    _shell = get_ipython()
except NameError:  # not in Jupyter: the grader is running this notebook
    _shell = None
if _shell is not None and importlib.util.find_spec("grader") is None:
    print("The grader is not installed here: `python -m grader check {notebook}` runs where it is.")
elif _shell is not None:
    _shell.system(f'"{{sys.executable}}" -m grader check {notebook}')
"""


def student_starter(assignment: Assignment):
    """The starter students get: the master's starter plus a last cell that runs `grader check` on it."""
    notebook = starter(read(assignment.master))
    notebook.cells.append(nbformat.v4.new_markdown_cell(
        "## Check before you submit\n\nSave the notebook, then run the cell below: it runs your notebook as "
        "the grader will (without the hidden tests) and lists the files that will be submitted."))
    notebook.cells.append(nbformat.v4.new_code_cell(CHECK_CELL.format(notebook=assignment.notebook)))
    notebook.cells[-2].id, notebook.cells[-1].id = "check-before-submitting", "grader-check"  # stable ids
    return notebook


def solution(master):
    """The solution: the master without its marker lines."""
    return _map_code(master, lambda src: MARKER.sub("", src))


def mutate(master, replacements: list[tuple[str, str]]):
    """The solution with each `old` text (which must occur exactly once) replaced by `new`."""
    notebook = solution(master)
    for old, new in replacements:
        hits = [cell for cell in notebook.cells if cell.cell_type == "code" and old in cell.source]
        count = sum(cell.source.count(old) for cell in hits)
        if count != 1:
            raise ValueError(f"mutant text must occur exactly once in the master, found {count}: {old!r}")
        hits[0].source = hits[0].source.replace(old, new)
    return notebook


def read(path: Path):
    return nbformat.read(path, as_version=4)


def dumps(notebook) -> str:
    return nbformat.writes(notebook) + "\n"


def generate_starter(assignment: Assignment) -> Path:
    """Write assignments/<name>/<notebook> from the master."""
    assignment.starter.parent.mkdir(parents=True, exist_ok=True)
    assignment.starter.write_text(dumps(student_starter(assignment)))
    return assignment.starter


def starter_is_current(assignment: Assignment) -> bool:
    """True if the committed starter equals what the master generates."""
    return (assignment.starter.is_file()
            and assignment.starter.read_text() == dumps(student_starter(assignment)))


def load_mutants(assignment: Assignment) -> list[Mutant]:
    """The seeded bugs listed in the assignment's mutants.toml."""
    path = assignment.folder / "mutants.toml"
    if not path.is_file():
        return []
    entries = tomllib.loads(path.read_text()).get("mutant", [])
    return [Mutant(name=e["name"], function=e["function"], replace=[tuple(r) for r in e.get("replace", [])],
                   fails=list(e["fails"]), diagnosis=e.get("diagnosis", ""),
                   drop_files=list(e.get("drop_files", [])),
                   replace_files=[tuple(r) for r in e.get("replace_files", [])]) for e in entries]


def load_variants(assignment: Assignment) -> list[Variant]:
    """The valid variants listed in the assignment's variants.toml."""
    path = assignment.folder / "variants.toml"
    if not path.is_file():
        return []
    entries = tomllib.loads(path.read_text()).get("variant", [])
    return [Variant(name=e["name"], function=e["function"], replace=[tuple(r) for r in e["replace"]],
                    exempt=list(e.get("exempt", []))) for e in entries]


def write_submission(folder: Path, assignment: Assignment, notebook, files: list[str]) -> Path:
    """Write a submission folder: the notebook plus the named solution files (e.g. weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / assignment.notebook
    path.write_text(dumps(notebook))
    for name in files:
        shutil.copyfile(assignment.folder / name, folder / name)
    return path


def write_samples(assignment: Assignment, out: Path) -> list[Path]:
    """Sample submissions: the solution, the untouched starter, every seeded bug and every valid variant."""
    if out.exists():
        shutil.rmtree(out)
    master = read(assignment.master)
    files = list(assignment.submission_files)
    written = [write_submission(out / "solution", assignment, solution(master), files),
               write_submission(out / "starter", assignment, student_starter(assignment), [])]
    for mutant in load_mutants(assignment):
        written.append(write_mutant(out / f"mutant-{mutant.name}", assignment, master, mutant))
    for variant in load_variants(assignment):
        written.append(write_submission(out / f"variant-{variant.name}", assignment, mutate(master, variant.replace),
                                        files))
    return written


def write_mutant(folder: Path, assignment: Assignment, master, mutant: Mutant) -> Path:
    """Write the submission of one seeded bug: its edited notebook and its (dropped or replaced) files."""
    kept = [f for f in assignment.submission_files if f not in mutant.drop_files]
    path = write_submission(folder, assignment, mutate(master, mutant.replace), kept)
    for target, source in mutant.replace_files:
        shutil.copyfile(assignment.folder / source, folder / target)
    return path
