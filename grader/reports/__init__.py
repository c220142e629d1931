"""Renderers: every report is rendered from the results model (grader.results), nothing else.

Per student, beside REPORTS/<student>/results.json: feedback.md, feedback.html, junit.xml.
Per class: REPORTS/gradebook.csv and REPORTS/summary.html.
The similarity report (similarity.py) is separate: it reads the notebooks, not the results.
"""
from __future__ import annotations

import logging
from pathlib import Path

from grader.config import Assignment

log = logging.getLogger(__name__)


def render_reports(assignment: Assignment, reports: Path, students: list[str]) -> dict[str, str]:
    """Render every report for these students from their results.json; return {report: where}.

    A student whose reports fail to render is logged (with the traceback) and listed under
    "render errors"; the others are still rendered.
    """
    from grader.reports.feedback import write_feedback
    from grader.reports.gradebook import write_gradebook
    from grader.reports.junit import write_junit
    from grader.reports.summary import write_summary
    from grader.results import Results

    reports = Path(reports)
    all_results: list[Results] = []
    failed: list[str] = []
    for student in students:
        folder = reports / student
        if not (folder / "results.json").is_file():
            continue
        try:
            results = Results.read(folder / "results.json")
            all_results.append(results)
            write_feedback(assignment, results, folder)
            write_junit(assignment, results, folder)
        except Exception:
            failed.append(student)
            log.exception("could not render the reports of %s", student)
    written = {
        "results": f"{reports}/<student>/results.json",
        "feedback": f"{reports}/<student>/feedback.md, feedback.html",
        "junit": f"{reports}/<student>/junit.xml",
        "gradebook": str(write_gradebook(assignment, reports, students)),
        "summary": str(write_summary(assignment, all_results, reports)),
    }
    if failed:
        written["render errors"] = ", ".join(failed)
    return written
