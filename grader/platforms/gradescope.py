"""Gradescope: build autograder.zip, and grade one submission inside Gradescope's container.

    python -m grader.platforms.gradescope build <assignment> [--out build/gradescope/<name>/autograder.zip]
    python -m grader.platforms.gradescope run <assignment folder> --submission DIR --results FILE

The zip holds setup.sh (Gradescope runs it once, when it builds the image: a venv with
requirements.lock), run_autograder (run for every submission), the grader package, the assignment
folder, requirements.lock and pyproject.toml, laid out as in this repository. run_autograder grades
/autograder/submission into /autograder/results/results.json; AUTOGRADER_ROOT, GRADER_SOURCE_DIR,
GRADER_SUBMISSION_DIR, GRADER_RESULTS_FILE and GRADER_PYTHON override the paths (for tests).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zipfile
from pathlib import Path

from grader.assignment import load_assignment
from grader.platforms import grade_folder, render, source_files, source_path
from grader.reports.feedback import render_feedback_md, write_feedback
from grader.reports.junit import write_junit
from grader.reports.view import student_results
from grader.results import write_atomic

EXECUTABLE = 0o100755 << 16
REGULAR = 0o100644 << 16
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # reproducible zips


def _datasets(assignment) -> list[str]:
    """Datasets the assignment's tests load, to download once in setup.sh instead of per submission."""
    text = "\n".join(p.read_text(errors="replace") for p in assignment.folder.rglob("*.py"))
    return [name for name in ("mnist", "cifar10") if f"load_{name}" in text]


def build(assignment, out: Path) -> Path:
    """Write autograder.zip for this assignment."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    context = dict(assignment=assignment, assignment_path=source_path(assignment), datasets=_datasets(assignment))
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
    try:
        users = json.loads(Path(metadata).read_text()).get("users") or []
        return users[0].get("email") or users[0].get("name") or "submission"
    except (OSError, ValueError, TypeError, AttributeError, IndexError):
        return "submission"


def run(assignment_dir: str, submission: Path, results_path: Path, metadata: Path | None = None,
        reports: Path | None = None) -> int:
    """Grade the submission folder; write the student-facing results.json Gradescope reads."""
    assignment = load_assignment(assignment_dir)
    with tempfile.TemporaryDirectory(prefix="grader-gradescope-") as tmp:
        reports = Path(reports or Path(tmp) / "reports")
        student = "submission"
        results = grade_folder(assignment, Path(submission), student, reports)
        results.extra_data["submitter"] = _student(metadata)
        write_feedback(assignment, results, reports / student)
        write_junit(assignment, results, reports / student)
        write_atomic(Path(results_path), json.dumps(student_results(assignment, results).to_json(), indent=2) + "\n")
        print(render_feedback_md(assignment, results))  # the log Gradescope shows to instructors
    print(f"wrote {results_path}: score {results.score:g} / {results.max_score:g}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.platforms.gradescope", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="write autograder.zip")
    b.add_argument("assignment", help="assignment name or folder")
    b.add_argument("--out", help="zip to write (default: build/gradescope/<name>/autograder.zip)")
    r = commands.add_parser("run", help="grade one submission (what run_autograder calls)")
    r.add_argument("assignment", help="assignment folder")
    r.add_argument("--submission", required=True, help="the submission folder")
    r.add_argument("--results", required=True, help="results.json to write")
    r.add_argument("--metadata", help="submission_metadata.json, if any")
    r.add_argument("--reports", help="keep the full reports here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.command == "build":
        assignment = load_assignment(args.assignment)
        out = build(assignment, Path(args.out or f"build/gradescope/{assignment.name}/autograder.zip"))
        print(f"wrote {out}: upload it as the autograder of a Gradescope programming assignment")
        return 0
    return run(args.assignment, Path(args.submission), Path(args.results),
               Path(args.metadata) if args.metadata else None, Path(args.reports) if args.reports else None)


if __name__ == "__main__":
    sys.exit(main())
