"""gradebook.csv: one row per student, one column per student function, the raw score, the late penalty,
the total, max_score, status, days late and the instructor's overrides.

The function columns and total carry the overrides (REPORTS/overrides.csv); raw_score is the grader's
own score, late_penalty the points the late policy took off, total = the score after both. status is
graded, notebook problem, grader error or no submission (grader.results.STATUSES). A grader error has no
score: its function columns, scores and max_score are empty, never a number.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from grader.config import Assignment
from grader.results import GRADER_ERROR, Results, write_atomic


def function_scores(results: Results, functions: tuple[str, ...]) -> dict[str, float]:
    """Points earned per function (function overrides applied); a test counts for the first function it calls."""
    return results.function_points(functions)


def overrides_text(results: Results) -> str:
    """The overrides applied to these results, for one cell: `target: autograded -> points (reason)`."""
    if not results.adjustments:
        return ""
    return "; ".join(f"{o.target}: {o.autograded:g} -> {o.points:g} ({o.reason})" for o in results.adjustments.overrides)


def columns(assignment: Assignment, all_results: list[Results]) -> list[str]:
    """Stable column order: the assignment's functions, then any others in first-seen order."""
    names = list(assignment.functions)
    for results in all_results:
        for name in function_scores(results, assignment.functions):
            if name not in names:
                names.append(name)
    return names


def render_gradebook(assignment: Assignment, all_results: list[Results]) -> str:
    """The CSV text: student (the name as submitted), one column per function, raw_score, late_penalty, total,
    max_score, status, days_late, overrides."""
    names = columns(assignment, all_results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *names, "raw_score", "late_penalty", "total", "max_score", "status", "days_late",
                     "overrides"])
    for results in sorted(all_results, key=lambda r: (r.name.casefold(), r.student)):
        if results.status == GRADER_ERROR:
            writer.writerow([results.name, *("" for _ in names), "", "", "", "", results.status, "", ""])
            continue
        scores = function_scores(results, assignment.functions)
        late = results.adjustments.late if results.adjustments else None
        writer.writerow([results.name, *(f"{scores.get(n, 0.0):g}" for n in names),
                         f"{results.autograded_score:g}", f"{late.points if late else 0:g}",
                         f"{results.score:g}", f"{results.max_score:g}", results.status,
                         late.days_late if late else "", overrides_text(results)])
    return buffer.getvalue()


def write_gradebook(assignment: Assignment, reports: Path, all_results: list[Results]) -> Path:
    """Write REPORTS/gradebook.csv from these results."""
    path = reports / "gradebook.csv"
    write_atomic(path, render_gradebook(assignment, all_results))
    return path
