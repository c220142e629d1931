"""Renderers: every report is rendered from the results model (grader.results), nothing else.

Per student, beside REPORTS/<student>/results.json: feedback.md, feedback.html, junit.xml.
Per class: REPORTS/gradebook.csv and REPORTS/summary.html.
"""
from __future__ import annotations

import sys
import traceback
from pathlib import Path


def render_reports(assignment, reports: Path, students: list[str]) -> dict[str, str]:
    """Render every report for these students from their results.json; return {report: where}.

    A student whose reports fail to render is named on stderr; the others are still rendered.
    """
    from grader.reports.feedback import write_feedback
    from grader.reports.gradebook import write_gradebook
    from grader.reports.junit import write_junit
    from grader.reports.summary import write_summary
    from grader.results import Results

    reports = Path(reports)
    all_results, failed = [], []
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
            print(f"could not render the reports of {student}:\n{traceback.format_exc()}", file=sys.stderr)
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
