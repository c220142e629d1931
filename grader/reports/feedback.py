"""feedback.md and feedback.html: what a student reads about one graded submission.

Summary first (the score, what to fix first, points per function), then the cells that failed and
each function's failed cases grouped by mistake (see grader.reports.view). Hidden tests show only
name and pass/fail unless the assignment sets `[visibility] hidden_output = true`. feedback.html
also shows the student's notebook, annotated (grader.reports.notebook).
"""
from __future__ import annotations

from pathlib import Path

from grader.config import Assignment
from grader.reports.notebook import render_notebook
from grader.reports.view import render, student_view
from grader.results import Results, write_atomic


def render_feedback_md(assignment: Assignment, results: Results) -> str:
    return render("feedback.md.j2", v=student_view(assignment, results))


def render_feedback_html(assignment: Assignment, results: Results) -> str:
    view = student_view(assignment, results)
    return render("feedback.html.j2", v=view, notebook=render_notebook(results, view))


def write_feedback(assignment: Assignment, results: Results, folder: Path) -> list[Path]:
    """Write folder/feedback.md and folder/feedback.html."""
    paths = [Path(folder) / "feedback.md", Path(folder) / "feedback.html"]
    write_atomic(paths[0], render_feedback_md(assignment, results))
    write_atomic(paths[1], render_feedback_html(assignment, results))
    return paths
