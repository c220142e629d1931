"""Grade one submission: ingest -> isolated student process -> hidden tests -> one results model."""
from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from grader.config import Assignment
from grader.errors import IngestError
from grader.ingest import submissions as ingest
from grader.ingest.notebook import keep_definitions, read_notebook
from grader.ingest.submissions import Submission, UnsafeFile, left_out, open_regular, read_chunks
from grader.results import Results, SubmissionMeta, TestResult
from grader.sandbox import static_scan
from grader.sandbox.process import StudentSession
from grader.testing.plugin import GradingPlugin, Outcome, run_hidden_tests


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
                        written += out.write(chunk)
            finally:
                os.close(fd)
            total += written
        except (UnsafeFile, OSError) as exc:
            destination.unlink(missing_ok=True)
            why = str(exc) if isinstance(exc, UnsafeFile) else f"it could not be read ({exc.strerror or exc})"
            notes.append(left_out(rel, why))
    return notes


def _test_result(outcome: Outcome, assignment: Assignment) -> TestResult:
    points = outcome.markers.points
    return TestResult(
        name=outcome.name, score=points if outcome.passed else round(points * outcome.credit, 6),
        max_score=points, passed=outcome.passed, functions=outcome.markers.calls,
        category=outcome.markers.category,
        visibility=assignment.hidden_visibility if outcome.markers.hidden else "visible",
        message="" if outcome.passed else outcome.message, diagnosis="" if outcome.passed else outcome.diagnosis,
        duration=outcome.duration, metrics=outcome.metrics, grader_error=outcome.grader_error)


def _student_output(results: list[TestResult], session: StudentSession, problem: str, notes: list[str]) -> str:
    earned, possible = sum(t.score for t in results), sum(t.max_score for t in results)
    lines = [f"Score: {earned:g} / {possible:g}"]
    if problem:
        lines.append(f"Your submission could not be graded: {problem}")
    for log in sorted(session.cell_logs.values(), key=lambda log: log.number):
        if log.status != "ok":
            lines.append(f"Cell {log.number} {'raised an error' if log.status == 'raised' else log.status}:\n"
                         f"{log.error}")
    lines += notes
    return "\n".join(lines)


def grade_submission(assignment: Assignment, submission: Submission, *, seed: int, data_dir: str | None = None,
                     sandbox_mode: str = "strict") -> Results:
    """Grade one submission and return its results model (nothing is written here)."""
    began = time.monotonic()
    timings: dict[str, float] = {}
    workdir = Path(tempfile.mkdtemp(prefix=f"grader-{submission.student}-"))
    sandbox, files = workdir / "sandbox", workdir / "files"
    problem, notes, cells = submission.problem, list(submission.notes), []
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
        if assignment.cells == "definitions":
            cells = [keep_definitions(cell) for cell in cells]
        sandbox.mkdir(exist_ok=True)
        files.mkdir(exist_ok=True)
        timings["ingest"] = time.monotonic() - began
        session = StudentSession(
            cells, sandbox, assignment.limits, forbidden_modules=assignment.forbidden_modules,
            sandbox_mode=sandbox_mode,
            unavailable=f"your notebook could not be graded: {problem}" if problem else "")
        plugin = GradingPlugin(assignment, session, files=files, workdir=workdir, seed=seed, data_dir=data_dir,
                               static_forbidden=static_scan.scan(cells, assignment.forbidden_modules))
        try:
            outcomes = run_hidden_tests(plugin)
        finally:
            session.close()
        began_results = time.monotonic()
        tests = [_test_result(o, assignment) for o in outcomes]
        meta = SubmissionMeta(
            student=submission.student, assignment=assignment.ref, seed=seed, problem=problem,
            notebook=str(submission.notebook) if submission.notebook else None,
            cells=sorted(session.cell_logs.values(), key=lambda log: log.number),
            isolation=session.isolation, restarts=session.restarts)
        timings.update(session.timings)
        timings["train_eval"] = sum(float(o.metrics.get("train_eval_seconds", 0.0)) for o in outcomes)
        timings["results"] = time.monotonic() - began_results
        meta.timings = {k: round(v, 4) for k, v in timings.items()}
        meta.peak_rss_mb = {"grader": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                            "student": session.peak_memory_mb}
        return Results(score=round(sum(t.score for t in tests), 6), max_score=sum(t.max_score for t in tests),
                       output=_student_output(tests, session, problem, notes), tests=tests, meta=meta,
                       execution_time=round(time.monotonic() - began, 3))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
