"""Gradescope: build autograder.zip, and grade one submission inside Gradescope's container.

    python -m grader gradescope build <assignment> [--out build/gradescope/<name>/autograder.zip]
    python -m grader gradescope run <assignment folder> --submission DIR --results FILE

The zip holds setup.sh (Gradescope runs it once, when it builds the image: a venv with
requirements.lock), run_autograder (run for every submission), the grader package, the assignment
folder, requirements.lock and pyproject.toml, laid out as in this repository. run_autograder grades
/autograder/submission into /autograder/results/results.json; AUTOGRADER_ROOT, GRADER_SOURCE_DIR,
GRADER_SUBMISSION_DIR, GRADER_RESULTS_FILE and GRADER_PYTHON override the paths (for tests).
"""
from __future__ import annotations

import json
import logging
import tempfile
import zipfile
from pathlib import Path

from grader.config import Assignment, load_assignment
from grader.platforms import grade_folder, render, source_files, source_path
from grader.reports.feedback import render_feedback_md, write_feedback
from grader.reports.junit import write_junit
from grader.reports.view import student_results
from grader.results import write_atomic

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


def run(assignment_dir: str, submission: Path, results_path: Path, metadata: Path | None = None,
        reports: Path | None = None) -> int:
    """Grade the submission folder; write the student-facing results.json Gradescope reads."""
    assignment = load_assignment(assignment_dir)
    with tempfile.TemporaryDirectory(prefix="grader-gradescope-") as tmp:
        reports = Path(reports or Path(tmp) / "reports")
        student = "submission"
        results = grade_folder(assignment, Path(submission), student, reports)
        results.meta.submitter = _student(metadata)
        write_feedback(assignment, results, reports / student)
        write_junit(assignment, results, reports / student)
        write_atomic(Path(results_path), json.dumps(student_results(assignment, results).to_json(), indent=2) + "\n")
        print(render_feedback_md(assignment, results))  # the log Gradescope shows to instructors
    print(f"wrote {results_path}: score {results.score:g} / {results.max_score:g}")
    return 0
