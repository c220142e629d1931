"""`grader check NOTEBOOK`: what a student runs before submitting.

The notebook runs exactly as the grader runs it (the same ingest, cell mode, sandbox, limits and
environment), but no hidden test is run and nothing is scored. The check says which graded functions
are defined, which cells failed or were skipped and why, how the notebook's own self-checks (cells
with `assert`) fared, and which files would be submitted with it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from grader.config import Assignment
from grader.errors import IngestError, StudentError
from grader.grade import (
    cell_failure,
    cell_logs,
    copy_files,
    runnable_cells,
    undefined_reason,
)
from grader.ingest.notebook import read_notebook
from grader.ingest.outline import self_checks
from grader.ingest.submissions import Submission, scan
from grader.ingest.workdir import make_workdir, remove_workdir
from grader.results import CELL_NUMBERING, CellLog, SubmissionMeta
from grader.sandbox import static_scan
from grader.sandbox.process import StudentSession
from grader.testing.proxy import forbidden_message


@dataclass
class FunctionCheck:
    """One graded function after the notebook ran: defined or not, and why not."""
    name: str
    defined: bool
    position: int | None = None  # the cell that defines it
    problem: str = ""


@dataclass
class CheckReport:
    """What `grader check` found."""
    assignment: str
    notebook: str
    mode: str                     # the assignment's cell mode
    problem: str = ""             # why the notebook could not run at all
    functions: list[FunctionCheck] = field(default_factory=list)
    cells: list[CellLog] = field(default_factory=list)
    checks: list[int] = field(default_factory=list)  # positions of the self-check cells
    files: list[tuple[str, int]] = field(default_factory=list)  # (path in the submission, bytes)
    missing_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    weak: str = ""                # with --sandbox best-effort: the sandbox layers this machine could not apply

    @property
    def ok(self) -> bool:
        """True when the notebook ran cleanly: every function defined, no cell failed, no file missing."""
        return (not self.problem and all(f.defined and not f.problem for f in self.functions)
                and all(c.status == "ok" for c in self.cells) and not self.missing_files)


def check_notebook(assignment: Assignment, notebook: Path, sandbox_mode: str = "strict") -> CheckReport:
    """Run the notebook as the grader would, without the hidden tests (SandboxError if the sandbox is refused)."""
    notebook = Path(notebook)
    folder = notebook.parent
    found = scan(folder, first=notebook.name)
    report = CheckReport(assignment.name, notebook.name, assignment.cells, notes=list(found.notes),
                         files=[(rel, _size(folder / rel)) for rel in found.files],
                         missing_files=[f for f in assignment.submission_files if f not in found.files])
    if notebook.name != assignment.notebook:
        report.notes.append(f"the grader looks for a notebook named {assignment.notebook}: with several notebooks "
                            "in the folder, it grades the one with that name")
    workdir = make_workdir("check")
    try:
        try:
            ingested = read_notebook(notebook)
        except IngestError as exc:
            report.problem = str(exc)
            return report
        submission = Submission("check", notebook, folder, notes=found.notes)
        report.notes += [n for n in copy_files(submission, workdir / "sandbox") if n not in report.notes]
        report.notes += ingested.notes
        cells, plan = runnable_cells(assignment, ingested.cells)
        report.checks = self_checks(ingested.cells, ingested.positions)
        forbidden = static_scan.scan(cells, assignment.forbidden_modules)
        session = StudentSession(cells, workdir / "sandbox", assignment.limits,
                                 forbidden_modules=assignment.forbidden_modules, sandbox_mode=sandbox_mode)
        try:
            defined = session.defined(assignment.functions)
        except StudentError as exc:
            report.problem, defined = str(exc), []
        finally:
            session.close()
        report.weak = session.isolation.get("weak", "")
        report.cells = cell_logs(session, ingested.positions, plan)
        meta = SubmissionMeta(student="check", cells=report.cells, defined_in={
            f: ingested.outline.defined_in[f] for f in assignment.functions if f in ingested.outline.defined_in})
        for name in assignment.functions:
            problem = "" if name in defined else undefined_reason(name, meta)
            if name in defined and name in ingested.outline.stubs:
                problem = "not implemented yet (it still raises NotImplementedError)"
            if name in forbidden:
                problem = forbidden_message(name, forbidden[name])
            report.functions.append(FunctionCheck(name, name in defined, meta.defined_in.get(name), problem))
        return report
    finally:
        remove_workdir(workdir)


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB" if n >= 1e3 else f"{n} bytes"


def render_check(report: CheckReport) -> str:
    """The report as text for the terminal (or the starter's last cell)."""
    mode = ("every cell runs, in order" if report.mode == "all" else
            "only the definitions of each cell run (imports, functions, classes, constants)")
    lines = [f"Checked {report.notebook} as the grader runs it (assignment {report.assignment}: {mode}).",
             "The hidden tests were not run: this says whether your notebook runs, not whether it is right.", ""]
    if report.problem:
        lines += [f"✗ Your notebook could not be run: {report.problem}", ""]
    if report.functions:
        ready = [f for f in report.functions if f.defined and not f.problem]
        lines.append(f"Graded functions: {len(ready)} of {len(report.functions)} defined and implemented")
        for f in report.functions:
            where = f" (cell {f.position})" if f.position else ""
            lines.append(f"  ✓ {f.name}{where}" if f.defined and not f.problem else f"  ✗ {f.name}{where}: {f.problem}")
        lines.append("")
    failed = [c for c in report.cells if c.status != "ok"]
    lines.append(f"Cells ({CELL_NUMBERING}): {len(report.cells) - len(failed)} ran, {len(failed)} failed or skipped")
    lines += [f"  ✗ {cell_failure(c)}" for c in failed]
    lines.append("")
    if report.checks and report.mode != "all":
        lines += [f"Self-checks (cells with assert): the grader does not run them in this assignment; run cells "
                  f"{', '.join(map(str, report.checks))} yourself in Jupyter.", ""]
    elif report.checks:
        status = {c.position: c for c in report.cells}
        ran = [p for p in report.checks if p in status]
        passed = [p for p in ran if status[p].status == "ok"]
        lines.append(f"Self-checks (cells with assert): {len(passed)} of {len(report.checks)} passed")
        lines += [f"  ✗ {cell_failure(status[p])}" for p in ran if p not in passed]
        lines += [f"  - cell {p} did not run" for p in report.checks if p not in status]
        lines.append("")
    lines.append(f"Files that will be submitted ({len(report.files)}):")
    lines += [f"  {rel} ({_bytes(size)})" for rel, size in report.files]
    lines += [f"  ✗ missing: {name} (the grader expects it beside the notebook)" for name in report.missing_files]
    notes = report.notes + ([f"this machine ran it{report.weak.removeprefix('graded')}; the grader's own machine "
                             "applies every layer"] if report.weak else [])
    if notes:
        lines += ["", "Notes:"] + [f"  {note}" for note in notes]
    lines += ["", "✓ Ready to submit." if report.ok else "✗ Fix the problems above before you submit."]
    return "\n".join(lines) + "\n"
