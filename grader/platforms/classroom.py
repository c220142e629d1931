"""GitHub Classroom: write a student template repository, and grade a student's repository in Actions.

    python -m grader classroom template <assignment> [--out DIR] [--grader-repo OWNER/NAME] [--grader-ref REF]
    python -m grader classroom grade <assignment folder> [--repo .] [--out .autograder]

The template holds the starter notebook, a README for students and .github/workflows/classroom.yml
(workflow "Autograding Tests", job "run-autograding-tests"). In the workflow,
classroom-resources/autograding-command-grader runs `grade` with everything it needs on its command
line (that action passes only PATH and HOME to the command). `grade` writes into --out:
feedback.md, feedback.html, junit.xml, results.json (student view) and reporter.b64, the base64 JSON
that classroom-resources/autograding-grading-reporter reads from `<ID>_RESULTS`: one entry per test
whose `score` values sum to the grader's score, and the `max_score`.
"""
from __future__ import annotations

import base64
import json
import logging
import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from grader.config import Assignment, load_assignment
from grader.errors import ConfigError
from grader.ingest.submissions import safe_name
from grader.platforms import PYTHON_VERSION, check_ref, check_repo, grade_folder, render, source_path
from grader.reports.view import HIDDEN_FAILED, case_view, student_results
from grader.results import Results, write_atomic

RUNNER_ID = "grader"          # the reporter reads GRADER_RESULTS
OUT = ".autograder"           # grade's output folder inside the student's repository
MESSAGE_CHARS = 400
PAYLOAD_LIMIT = 100_000       # one environment variable must stay well under Linux's 128 KiB
log = logging.getLogger(__name__)


def _exact_scores(scores: list[float], total: float) -> list[float]:
    """Per-test scores whose left-to-right float sum (as the reporter adds them) is the total."""
    scores = [round(s, 6) for s in scores]
    if not scores:
        return scores
    partial = 0.0
    for s in scores[:-1]:
        partial += s
    if partial + scores[-1] != total:
        scores[-1] = total - partial
    return scores


def reporter_payload(assignment: Assignment, results: Results, message_chars: int = MESSAGE_CHARS) -> dict[str, Any]:
    """What autograding-grading-reporter reads: {version, status, max_score, tests[{name, status, score, ...}]}."""
    tests: list[dict[str, Any]] = []
    for test in results.tests:
        case = case_view(assignment, test)
        if case.passed:
            message = ""
        elif case.details:
            message = case.message + (f" Probably: {case.diagnosis}" if case.diagnosis else "")
        else:
            message = HIDDEN_FAILED
        if len(message) > message_chars:
            message = message[:message_chars - 3] + "..."
        tests.append({"name": test.name, "status": "pass" if case.passed else "fail", "score": test.score,
                      "message": message or ("" if case.passed else "failed"), "test_code": "", "filename": "",
                      "line_no": 0, "duration": round(1000 * test.duration)})
    for entry, score in zip(tests, _exact_scores([t["score"] for t in tests], results.score)):
        entry["score"] = score
    if results.meta.grader_error or not tests:
        status = "error"
        tests.append({"name": "grader", "status": "error", "score": 0,
                      "message": (results.output or "the grader produced no test results")[:message_chars],
                      "test_code": "", "filename": "", "line_no": 0, "duration": 0})
    else:
        status = "pass" if all(t["status"] == "pass" for t in tests) else "fail"
    return {"version": 1, "status": status, "max_score": results.max_score, "tests": tests}


def encode_payload(payload: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode("ascii")


def reporter_b64(assignment: Assignment, results: Results) -> str:
    """The base64 payload, with messages shortened (then dropped) to stay under PAYLOAD_LIMIT."""
    for chars in (MESSAGE_CHARS, 100, 0):
        encoded = encode_payload(reporter_payload(assignment, results, chars))
        if len(encoded) <= PAYLOAD_LIMIT:
            break
        log.info("the reporter payload with messages of up to %d characters is %d characters, over %d",
                 chars, len(encoded), PAYLOAD_LIMIT)
    return encoded


def grade(assignment_dir: str, repo: Path, out: Path, student: str | None = None) -> Results:
    """Grade the notebook in a student's repository; write what the workflow's later steps read."""
    assignment = load_assignment(assignment_dir)
    repo, out = Path(repo).resolve(), Path(out).resolve()
    student = safe_name(student or repo.name)
    exclude = {out.name, OUT, ".venv", "venv"} if out.parent == repo else {OUT, ".venv", "venv"}
    with tempfile.TemporaryDirectory(prefix="grader-classroom-") as tmp:
        results = grade_folder(assignment, repo, student, Path(tmp) / "reports", exclude=exclude)
    from grader.reports.feedback import render_feedback_html, render_feedback_md  # imported while the worker graded
    from grader.reports.junit import render_junit
    shown = student_results(assignment, results)
    feedback = render_feedback_md(assignment, results)
    write_atomic(out / "feedback.md", feedback)
    write_atomic(out / "feedback.html", render_feedback_html(assignment, results))
    write_atomic(out / "junit.xml", render_junit(assignment, results))
    write_atomic(out / "results.json", json.dumps(shown.to_json(), indent=2) + "\n")
    write_atomic(out / "reporter.b64", reporter_b64(assignment, results) + "\n")
    print(feedback)
    return results


def shard_roster(roster: Path, shard: str) -> list[tuple[str, str]]:
    """(login, owner/repository) of the students of shard "i/N" in a roster of `login<TAB>owner/repository`
    lines (the classroom's accepted assignments), chosen as `grade --shard i/N` chooses them: by the report
    folder of the student name, which is the login when each repository is cloned into a folder named so."""
    from grader.ingest.submissions import report_folder, select_shard, shard_of
    select_shard([], shard)  # checks i/N
    index, count = (int(part) for part in shard.split("/"))
    chosen = []
    for number, line in enumerate(Path(roster).read_text().splitlines(), 1):
        if not line.strip():
            continue
        login, _, repository = line.strip().partition("\t")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository) or not re.fullmatch(r"[A-Za-z0-9-]+", login):
            raise ConfigError(f"{roster} line {number}: expected login<TAB>owner/repository, not {line!r}")
        if shard_of(report_folder(login), count) == index:
            chosen.append((login, repository))
    return chosen


def default_grader_repo() -> str:
    """owner/name of this repository's GitHub remote, if it has one."""
    try:
        url = subprocess.run(["git", "remote", "get-url", "origin"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    for prefix in ("https://github.com/", "git@github.com:", "ssh://git@github.com/"):
        if url.startswith(prefix):
            return url[len(prefix):].removesuffix(".git").strip("/")
    return ""


def _names(items, last: str = "and") -> str:
    """`a`, `b` and `c`."""
    items = [f"`{i}`" for i in items]
    return f"{', '.join(items[:-1])} {last} {items[-1]}" if len(items) > 1 else "".join(items)


def template(assignment: Assignment, out: Path, grader_repo: str = "", grader_ref: str = "main") -> list[Path]:
    """Write the student template repository for GitHub Classroom into out/."""
    from grader.authoring.notebooks import dumps, student_starter
    grader_repo = check_repo(grader_repo or default_grader_repo() or "YOUR-ORG/cnn-autograder")
    grader_ref = check_ref(grader_ref)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    minutes = math.ceil(assignment.limits.submission_budget / 60) + 5
    context = dict(assignment=assignment, assignment_path=source_path(assignment), grader_repo=grader_repo,
                   grader_ref=grader_ref, grade_minutes=minutes, job_minutes=minutes + 20, runner=RUNNER_ID,
                   out=OUT, functions=_names(assignment.functions), python_version=PYTHON_VERSION,
                   trigger_paths=[assignment.notebook, *assignment.submission_files], datasets=bool(assignment.datasets),
                   files=_names(assignment.submission_files),
                   forbidden=_names(assignment.forbidden_modules, "or"))
    written = []
    for name, template_name in ((".github/workflows/classroom.yml", "classroom/classroom.yml.j2"),
                                ("README.md", "classroom/README.md.j2"), (".gitignore", "classroom/gitignore.j2")):
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(template_name, **context))
        written.append(path)
    notebook = out / assignment.notebook
    if assignment.starter.is_file():
        shutil.copyfile(assignment.starter, notebook)
    else:  # not generated yet (`make assignments`): the same starter, made from the master
        log.info("%s is not generated yet; writing the starter from %s", assignment.starter, assignment.master)
        notebook.write_text(dumps(student_starter(assignment)))
    written.append(notebook)
    return written
