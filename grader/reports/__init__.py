"""Renderers: every report is rendered from the results model (grader.results), nothing else.

Per student, beside REPORTS/<student>/results.json: feedback.md, feedback.html, junit.xml.
Per class: REPORTS/gradebook.csv and REPORTS/summary.html, from every results.json in REPORTS (a run
that grades part of a class leaves the other students' rows as they were).
The similarity report (similarity.py) is separate: it reads the notebooks, not the results.
"""
from __future__ import annotations

import logging
from pathlib import Path

from grader.config import Assignment

log = logging.getLogger(__name__)


def render_reports(assignment: Assignment, reports: Path, students: list[str]) -> dict[str, str]:
    """Render the per-student reports of these students (report folders), and the class reports
    (gradebook.csv, summary.html) from every results.json in reports, whichever run wrote it, with
    REPORTS/overrides.csv and the late policy applied (grader.adjust); return {report: where}.
    A malformed overrides.csv or submitted_at.csv row is a CourseFileError, before anything is written.

    A student whose reports fail to render is logged (with the traceback) and listed under
    "render errors"; the others are still rendered.
    """
    from grader.adjust import adjust_all
    from grader.reports.feedback import write_feedback
    from grader.reports.gradebook import write_gradebook
    from grader.reports.junit import write_junit
    from grader.reports.summary import write_summary
    from grader.results import Results, read_reports

    reports = Path(reports)
    failed: list[str] = []
    all_results = adjust_all(assignment, reports, read_reports(reports))
    adjusted = {r.student: r for r in all_results}
    for student in students:
        folder = reports / student
        if not (folder / "results.json").is_file():
            continue
        try:
            results = adjusted.get(student) or Results.read(folder / "results.json")
            write_feedback(assignment, results, folder)
            write_junit(assignment, results, folder)
        except Exception:
            failed.append(student)
            log.exception("could not render the reports of %s", student)
    written = {
        "results": f"{reports}/<student>/results.json",
        "feedback": f"{reports}/<student>/feedback.md, feedback.html",
        "junit": f"{reports}/<student>/junit.xml",
        "gradebook": str(write_gradebook(assignment, reports, all_results)),
        "summary": str(write_summary(assignment, all_results, reports)),
    }
    overrides = sum(len(r.adjustments.overrides) for r in all_results if r.adjustments)
    late = sum(1 for r in all_results if r.adjustments and r.adjustments.late and r.adjustments.late.points)
    if overrides or late:
        written["adjusted"] = f"{overrides} override(s) from {reports}/overrides.csv, {late} late penalty(ies)"
    if failed:
        written["render errors"] = ", ".join(failed)
    return written
