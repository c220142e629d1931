"""Grade one submission: ingest -> isolated student process -> hidden tests -> one results model.

One deadline per submission ([limits] submission_budget): the student session (grader.sandbox.process) caps every
cell and call by what is left of it and starts nothing once it is spent, and the batch's
supervisor (grader.batch) stops a worker that is still busy past it plus a grace period.

The submission's temporary copy (grader.ingest.workdir) is removed on every way out: normally, on an
exception, and on SIGTERM (grader.ingest.workdir.stop_worker).
"""
from __future__ import annotations

import os
import re
import resource
import time
from pathlib import Path

from grader.config import Assignment
from grader.errors import IngestError
from grader.ingest import submissions as ingest
from grader.ingest.git_time import last_commit_time
from grader.ingest.notebook import Notebook, Plan, read_notebook, skip_training
from grader.ingest.submissions import Submission, UnsafeFile, left_out, open_regular, read_chunks
from grader.ingest.workdir import make_workdir, remove_workdir
from grader.results import (
    CELL_NUMBERING,
    GRADED,
    MAX_CELL_ERRORS,
    MAX_CELL_TEXT,
    MISSING,
    NO_SUBMISSION,
    NOTEBOOK_PROBLEM,
    CellLog,
    Results,
    SubmissionMeta,
    TestResult,
    clip,
)
from grader.sandbox import static_scan
from grader.sandbox.process import StudentSession, budget_exceeded
from grader.testing.plugin import GradingPlugin, Outcome, run_hidden_tests

COMPILED_MAGIC = b"\x7fELF"


def copy_files(submission: Submission, target: Path) -> list[str]:
    """Copy the submission's regular files (not .git) into target; return a note per file left out.

    Never follows a link: each file is opened with open_regular (O_NOFOLLOW on every component,
    O_NONBLOCK, fstat of the descriptor), so a file swapped for a link or a FIFO after discovery is
    left out; so is a file over the per-file limit, or one that would take the submission over its limit.
    """
    target.mkdir(parents=True, exist_ok=True)
    base, found = submission.base, submission.scan()
    notes, total = list(found.notes), 0
    if base is None:
        return notes
    for rel in found.files:
        destination, left, written = target / rel, ingest.MAX_SUBMISSION_BYTES - total, 0
        try:
            fd = open_regular(base, rel)
            try:
                destination.parent.mkdir(parents=True, exist_ok=True)
                with open(destination, "wb") as out:
                    for chunk in (read_chunks(fd) if left >= ingest.MAX_FILE_BYTES
                                  else read_chunks(fd, left, "left for the whole submission")):
                        if not written and chunk.startswith(COMPILED_MAGIC):
                            raise UnsafeFile("it is compiled code (an ELF binary or shared library), which the "
                                             "grader does not run: submit Python source")
                        written += out.write(chunk)
            finally:
                os.close(fd)
            total += written
        except (UnsafeFile, OSError) as exc:
            destination.unlink(missing_ok=True)
            why = str(exc) if isinstance(exc, UnsafeFile) else f"it could not be read ({exc.strerror or exc})"
            notes.append(left_out(rel, why))
    return notes


def _test_result(outcome: Outcome, assignment: Assignment, positions: list[int], plan: Plan | None) -> TestResult:
    points = outcome.markers.points
    failed = not outcome.passed
    return TestResult(
        name=outcome.name, score=points if outcome.passed else round(points * outcome.credit, 6),
        max_score=points, passed=outcome.passed, functions=outcome.markers.calls,
        category=outcome.markers.category,
        visibility=assignment.hidden_visibility if outcome.markers.hidden else "visible",
        message=renumber(_explain_unset(outcome.message, plan, positions), positions) if failed else "",
        diagnosis=outcome.diagnosis if failed else "",
        duration=outcome.duration, metrics=outcome.metrics, grader_error=outcome.grader_error,
        cause=outcome.cause if failed else "", culprit=outcome.culprit if failed else "")


_CELL_FRAME = re.compile(r'(<?)cell (\d+)(>?"?, line \d)')


def renumber(text: str, positions: list[int]) -> str:
    """The student process's tracebacks name code cell N (the Nth cell it ran): name the cell's position in
    the notebook instead, the numbering every report uses."""
    def position(match: re.Match) -> str:
        number = int(match.group(2))
        where = positions[number - 1] if 0 < number <= len(positions) else number
        return f"{match.group(1)}cell {where}{match.group(3)}"
    return _CELL_FRAME.sub(position, text or "")


def cell_failure(log: CellLog) -> str:
    """What went wrong in a cell, in one line: "cell 31 raised SyntaxError: '(' was never closed"."""
    return f"cell {log.position or log.number} {log.what}"


def undefined_reason(name: str, meta: SubmissionMeta) -> str:
    """Why a graded function is not defined, linked to the cell that should have defined it."""
    position = meta.defined_in.get(name)
    if position is None:
        return (f"`{name}` is not defined: no cell of your notebook defines it (the tests call `{name}`: "
                "check the spelling)")
    log = next((c for c in meta.cells if c.position == position), None)
    if log is not None and log.status != "ok":
        return f"`{name}` is not defined: {cell_failure(log)}"
    return (f"`{name}` is not defined after running your notebook, although cell {position} defines it: check "
            "that it is defined at the top level of the cell, not inside an `if` or a function")


_NAME_ERROR = re.compile(r"NameError: name '(\w+)' is not defined")


def _position(cell: int, positions: list[int]) -> int:
    """Code cell number cell (from 1) as its position in the notebook."""
    return positions[cell - 1] if 0 < cell <= len(positions) else cell


def _explain_unset(message: str, plan: Plan | None, positions: list[int]) -> str:
    """A NameError on a variable that a skipped statement creates, explained."""
    found = _NAME_ERROR.search(message)
    if plan is None or found is None or (entry := plan.unset.get(found.group(1))) is None:
        return message
    return (f"{message}\n`{found.group(1)}` does not exist during grading: cell {_position(entry.cell, positions)}, "
            f"line {entry.line} creates it, and the grader does not run that statement: it {entry.reason}. Define "
            "what your functions use outside the cells that load data or train.")


def _skipped_text(plan: Plan | None, positions: list[int]) -> list[str]:
    """The statements the "definitions" mode skipped, for the student (the first MAX_CELL_ERRORS)."""
    entries = [entry for cell in plan.skipped for entry in cell] if plan is not None else []
    if not entries:
        return []
    lines = [f"The grader ran your notebook without {len(entries)} statement(s) that load data, train, evaluate or "
             "save models, and without those that use what they create:"]
    lines += [f"- cell {_position(entry.cell, positions)}, {entry.text()}" for entry in entries[:MAX_CELL_ERRORS]]
    if len(entries) > MAX_CELL_ERRORS:
        lines.append(f"[... {len(entries) - MAX_CELL_ERRORS:,} more]")
    return lines


def _student_output(results: list[TestResult], cells: list[CellLog], problem: str, notes: list[str],
                    skipped: list[str]) -> str:
    earned, possible = sum(t.score for t in results), sum(t.max_score for t in results)
    lines = [f"Score: {earned:g} / {possible:g}"]
    if problem:
        lines.append(f"Your submission could not be graded: {problem}")
    failing = [log for log in cells if log.status != "ok"]
    if failing:
        lines.append(f"Cells that failed ({CELL_NUMBERING}):")
    for log in failing[:MAX_CELL_ERRORS]:
        lines.append(f"Cell {log.position} {'raised an error' if log.status == 'raised' else log.status}:\n"
                     f"{clip(log.error, MAX_CELL_TEXT, keep_end=True)}")
    if len(failing) > MAX_CELL_ERRORS:
        lines.append(f"[... {len(failing) - MAX_CELL_ERRORS:,} more cells failed (cells "
                     f"{failing[MAX_CELL_ERRORS].position} to {failing[-1].position}); only the first "
                     f"{MAX_CELL_ERRORS} are shown]")
    lines += notes + skipped
    return "\n".join(lines)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def runnable_cells(assignment: Assignment, cells: list[str]) -> tuple[list[str], Plan | None]:
    """The cells as the student process runs them in the assignment's cell mode, and the "definitions" mode's
    plan (what it skips), if that is the mode."""
    if assignment.cells == "definitions":
        plan = skip_training(cells)
        return plan.cells, plan
    return cells, None


def grade_submission(assignment: Assignment, submission: Submission, *, seed: int, data_dir: str | None = None,
                     sandbox_mode: str = "strict") -> Results:
    """Grade one submission and return its results model (nothing is written here)."""
    began, began_cpu = time.monotonic(), cpu_seconds()
    timings: dict[str, float] = {}
    workdir = make_workdir(submission.student)
    sandbox, files = workdir / "sandbox", workdir / "files"
    problem, notes, cells = submission.problem, list(submission.notes), []
    notebook, plan = Notebook(cells=[]), None
    try:
        if not problem and submission.notebook is not None:
            try:
                notebook = read_notebook(submission.notebook)
                cells = notebook.cells
                copied = copy_files(submission, sandbox) + copy_files(submission, files)
                notes += [n for i, n in enumerate(copied) if n not in notes and n not in copied[:i]]
                notes += notebook.notes
            except IngestError as exc:
                problem = str(exc)
        cells, plan = runnable_cells(assignment, cells)
        sandbox.mkdir(exist_ok=True)
        files.mkdir(exist_ok=True)
        timings["ingest"] = time.monotonic() - began
        session = StudentSession(
            cells, sandbox, assignment.limits, forbidden_modules=assignment.forbidden_modules,
            sandbox_mode=sandbox_mode,
            unavailable=f"your notebook could not be graded: {problem}" if problem else "")
        session.spawn()  # it boots while the tests are collected
        plugin = GradingPlugin(assignment, session, files=files, workdir=workdir, seed=seed, data_dir=data_dir,
                               static_forbidden=static_scan.scan(cells, assignment.forbidden_modules))
        try:
            outcomes = run_hidden_tests(plugin)
        finally:
            session.close()
        began_results = time.monotonic()
        status = NO_SUBMISSION if submission.missing else NOTEBOOK_PROBLEM if problem else GRADED
        if status == GRADED and session.over_budget:
            status, problem = NOTEBOOK_PROBLEM, budget_exceeded(assignment.limits.submission_budget)
        tests = [_test_result(o, assignment, notebook.positions, plan) for o in outcomes]
        meta = SubmissionMeta(
            student=submission.student, name=submission.display_name, status=status,
            assignment=assignment.ref, seed=seed, problem=problem,
            notebook=str(submission.notebook) if submission.notebook else None,
            cells=cell_logs(session, notebook.positions, plan), isolation=session.isolation, restarts=session.restarts,
            notes=notes, source=notebook.shown,
            defined_in={f: notebook.outline.defined_in[f] for f in assignment.functions
                        if f in notebook.outline.defined_in},
            uses=notebook.outline.graded_uses(assignment.functions))
        committed = last_commit_time(submission.repo) if submission.repo else None
        if committed:
            meta.submitted_at, meta.submitted_from = committed.isoformat(), "last git commit"
        for test in tests:
            if test.cause == MISSING:
                test.message = undefined_reason(test.culprit, meta)
        timings.update(session.timings)
        timings["train_eval"] = sum(float(o.metrics.get("train_eval_seconds", 0.0)) for o in outcomes)
        timings["results"] = time.monotonic() - began_results
        meta.timings = {k: round(v, 4) for k, v in timings.items()}
        meta.cpu_seconds = round(cpu_seconds() - began_cpu, 3)
        meta.peak_rss_mb = {"grader": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                            "student": session.peak_memory_mb}
        return Results(score=round(sum(t.score for t in tests), 6), max_score=sum(t.max_score for t in tests),
                       output=_student_output(tests, meta.cells, problem, notes,
                                              _skipped_text(plan, notebook.positions)), tests=tests, meta=meta,
                       execution_time=round(time.monotonic() - began, 3))
    finally:
        remove_workdir(workdir)


def cell_logs(session: StudentSession, positions: list[int], plan: Plan | None = None) -> list[CellLog]:
    """The cells' logs in order, numbered by position in the notebook, each error's last line apart, each with
    what the cell mode skipped in it (results.bound keeps the first failing ones and counts the rest)."""
    logs = sorted(session.cell_logs.values(), key=lambda log: log.number)
    for log in logs:
        if plan is not None and 0 < log.number <= len(plan.skipped):
            log.skipped = [entry.text() for entry in plan.skipped[log.number - 1]]
        log.position = positions[log.number - 1] if 0 < log.number <= len(positions) else log.number
        log.error = renumber(log.error, positions)
        log.summary = _summary(log.error, log.position) if log.status == "raised" else ""
    return logs


_FRAME_LINE = re.compile(r"^\s*cell (\d+), line (\d+), in ")
_SYNTAX_LINE = re.compile(r'File "<cell \d+>", line (\d+)')


def _summary(error: str, position: int) -> str:
    """A traceback in one line: its last line, and the student's line that raised it (in the cell at position,
    unless it names another)."""
    lines = [line for line in error.splitlines() if line.strip()]
    if not lines:
        return ""
    frame = _FRAME_LINE.match(lines[-3]) if len(lines) >= 3 else None
    if frame:
        where = f"line {frame.group(2)}" if int(frame.group(1)) == position else \
            f"in cell {frame.group(1)}, line {frame.group(2)}"
        return f"{lines[-1].strip()} ({where}: {lines[-2].strip()})"
    compiled = _SYNTAX_LINE.search(error)  # a SyntaxError: where the parser stopped
    return lines[-1].strip() + (f" (line {compiled.group(1)})" if compiled else "")
