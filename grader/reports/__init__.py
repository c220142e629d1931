"""Renderers: every report is rendered from the results model (grader.results), nothing else.

Per student, beside REPORTS/<student>/results.json: feedback.md, feedback.html, junit.xml.
Per class: REPORTS/gradebook.csv and REPORTS/summary.html, from every results.json in REPORTS (a run
that grades part of a class leaves the other students' rows as they were).
The similarity report (similarity.py) is separate: it reads the notebooks, not the results.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import traceback
from pathlib import Path

from grader.config import Assignment
from grader.results import Results

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
    from grader.reports.gradebook import write_gradebook
    from grader.reports.summary import write_summary
    from grader.results import read_reports

    reports = Path(reports)
    all_results = adjust_all(assignment, reports, read_reports(reports))
    adjusted = {r.student: r for r in all_results}
    todo = [(student, adjusted.get(student)) for student in students if (reports / student / "results.json").is_file()]
    if len(todo) > 1:  # one process per core: the feedback of a class is most of the rendering
        pool = multiprocessing.get_context("fork").Pool(min(len(todo), os.cpu_count() or 1))
        try:
            outcomes = pool.starmap(_render_student, [(assignment, reports, s, r) for s, r in todo])
        finally:
            pool.close()  # its processes end on their own: no SIGTERM, which the CLI turns into ^C
            pool.join()
    else:
        outcomes = [_render_student(assignment, reports, s, r) for s, r in todo]
    failed = []
    for (student, _), error in zip(todo, outcomes):
        if error:
            failed.append(student)
            log.error("could not render the reports of %s:\n%s", student, error)
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


def _render_student(assignment: Assignment, reports: Path, student: str, results: Results | None) -> str:
    """Write one student's feedback and JUnit report (results: adjusted, else read from disk); the traceback
    if they could not be rendered, else ""."""
    from grader.reports.feedback import write_feedback
    from grader.reports.junit import write_junit
    folder = reports / student
    try:
        results = results or Results.read(folder / "results.json")
        write_feedback(assignment, results, folder)
        write_junit(assignment, results, folder)
        return ""
    except Exception:
        return traceback.format_exc()
