"""Gradescope: build autograder.zip, and grade one submission inside Gradescope's container.

    python -m grader gradescope build <assignment> [--out build/gradescope/<name>/autograder.zip]
    python -m grader gradescope run <assignment folder> --submission DIR --results FILE

The zip holds setup.sh (Gradescope runs it once, when it builds the image: a venv with
requirements.lock), run_autograder (run for every submission), the grader package, the assignment
folder, requirements.lock and pyproject.toml, laid out as in this repository. run_autograder grades
/autograder/submission into /autograder/results/results.json; AUTOGRADER_ROOT, GRADER_SOURCE_DIR,
GRADER_SUBMISSION_DIR, GRADER_RESULTS_FILE and GRADER_PYTHON override the paths (for tests).

The results.json Gradescope reads is the student's view of the results model: tests in the order of the
assignment's functions, hidden tests' messages withheld, the late penalty of [late] applied to the time in
submission_metadata.json, and as top-level `output` a Markdown summary whose total counts only the tests a
student sees before the due date (the grade, `score`, counts every test).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from grader.adjust import SubmissionTime, adjust
from grader.config import Assignment, load_assignment
from grader.platforms import grade_folder, render, source_files, source_path
from grader.reports import view
from grader.reports.view import function_of, is_hidden, student_results
from grader.results import Results, write_atomic

EXECUTABLE = 0o100755 << 16
REGULAR = 0o100644 << 16
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # reproducible zips
log = logging.getLogger(__name__)


def build(assignment: Assignment, out: Path) -> Path:
    """Write autograder.zip for this assignment."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    context = dict(assignment=assignment, assignment_path=source_path(assignment), datasets=list(assignment.datasets))
    scripts = {"setup.sh": render("gradescope/setup.sh.j2", **context),
               "run_autograder": render("gradescope/run_autograder.j2", **context)}
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, text in scripts.items():
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.external_attr, info.compress_type = EXECUTABLE, zipfile.ZIP_DEFLATED
            bundle.writestr(info, text)
        for name, path in source_files(assignment):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.external_attr, info.compress_type = REGULAR, zipfile.ZIP_DEFLATED
            bundle.writestr(info, path.read_bytes())
    tmp.replace(out)
    return out


def _student(metadata: Path | None) -> str:
    """The submitter's name from Gradescope's submission_metadata.json, if there is one."""
    if metadata is None:
        return "submission"
    try:
        users = json.loads(Path(metadata).read_text()).get("users") or []
        return users[0].get("email") or users[0].get("name") or "submission"
    except (OSError, ValueError, TypeError, AttributeError, IndexError) as exc:
        log.warning("no submitter in %s (%s: %s); recording 'submission'", metadata, type(exc).__name__, exc)
        return "submission"


def _submitted_at(metadata: Path | None) -> SubmissionTime | None:
    """When the student submitted, from submission_metadata.json's created_at."""
    if metadata is None:
        return None
    try:
        created = dt.datetime.fromisoformat(str(json.loads(Path(metadata).read_text())["created_at"]))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("no submission time in %s (%s: %s)", metadata, type(exc).__name__, exc)
        return None
    if created.tzinfo is None:
        log.warning("the submission time in %s has no offset; taken as UTC", metadata)
        created = created.replace(tzinfo=dt.UTC)
    return SubmissionTime(created, "submission_metadata.json")


def visible_summary(assignment: Assignment, results: Results) -> str:
    """The top-level Markdown output: the total and the points per function a student sees before the due
    date (hidden tests left out), the adjustments, and the grader's notes."""
    rows: dict[str, dict[str, float]] = {}
    for test in results.tests:
        row = rows.setdefault(function_of(test, assignment.functions), {"score": 0.0, "max_score": 0.0, "hidden": 0.0})
        if is_hidden(test):
            row["hidden"] += test.max_score
        else:
            row["score"] += test.score
            row["max_score"] += test.max_score
    order = {name: i for i, name in enumerate(assignment.functions)}
    sv = view.student_view(assignment, results)
    return view.render("gradescope_output.md.j2", v=sv,
                       rows=sorted(rows.items(), key=lambda item: order.get(item[0], len(order))),
                       visible_score=sum(r["score"] for r in rows.values()),
                       visible_max=sum(r["max_score"] for r in rows.values()),
                       hidden_max=sum(r["hidden"] for r in rows.values()))


def gradescope_json(assignment: Assignment, results: Results) -> dict[str, Any]:
    """The results.json Gradescope reads: the student's view, tests in the assignment's function order."""
    shown = student_results(assignment, results)
    order = {name: i for i, name in enumerate(assignment.functions)}
    shown.tests.sort(key=lambda t: order.get(function_of(t, assignment.functions), len(order)))  # stable
    data = shown.to_json()
    data.update(output=visible_summary(assignment, shown), output_format="md", stdout_visibility="hidden")
    return data


def run(assignment_dir: str, submission: Path, results_path: Path, metadata: Path | None = None,
        reports: Path | None = None) -> int:
    """Grade the submission folder; write the student-facing results.json Gradescope reads."""
    assignment = load_assignment(assignment_dir)
    with tempfile.TemporaryDirectory(prefix="grader-gradescope-") as tmp:
        reports = Path(reports or Path(tmp) / "reports")
        student = "submission"
        results = grade_folder(assignment, Path(submission), student, reports)
        from grader.reports.feedback import render_feedback_md, write_feedback  # imported while the worker graded
        from grader.reports.junit import write_junit
        results.meta.submitter = _student(metadata)
        submitted = _submitted_at(metadata)
        if submitted:
            results.meta.submitted_at, results.meta.submitted_from = submitted.at.isoformat(), submitted.source
        results = adjust(assignment, results, [], submitted)
        write_feedback(assignment, results, reports / student)
        write_junit(assignment, results, reports / student)
        write_atomic(Path(results_path), json.dumps(gradescope_json(assignment, results), indent=2) + "\n")
        print(render_feedback_md(assignment, results))  # the log Gradescope shows to instructors
    print(f"wrote {results_path}: score {results.score:g} / {results.max_score:g}")
    return 0
