"""gradebook.csv: one row per student, one column per student function, the total, max_score and status.

status is graded, notebook problem, grader error or no submission (grader.results.STATUSES). A grader
error has no score: its function columns, total and max_score are empty, never a number.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from grader.config import Assignment
from grader.results import GRADER_ERROR, Results, write_atomic


def function_scores(results: Results, functions: tuple[str, ...]) -> dict[str, float]:
    """Points earned per function; a test counts for the first function it calls."""
    scores = {name: 0.0 for name in functions}
    for test in results.tests:
        key = test.functions[0] if test.functions and test.functions[0] in scores else "other"
        scores[key] = scores.get(key, 0.0) + test.score
    return scores


def columns(assignment: Assignment, all_results: list[Results]) -> list[str]:
    """Stable column order: the assignment's functions, then any others in first-seen order."""
    names = list(assignment.functions)
    for results in all_results:
        for name in function_scores(results, assignment.functions):
            if name not in names:
                names.append(name)
    return names


def render_gradebook(assignment: Assignment, all_results: list[Results]) -> str:
    """The CSV text: student (the name as submitted), one column per function, total, max_score, status."""
    names = columns(assignment, all_results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *names, "total", "max_score", "status"])
    for results in sorted(all_results, key=lambda r: (r.name.casefold(), r.student)):
        if results.status == GRADER_ERROR:
            writer.writerow([results.name, *("" for _ in names), "", "", results.status])
            continue
        scores = function_scores(results, assignment.functions)
        writer.writerow([results.name, *(f"{scores.get(n, 0.0):g}" for n in names),
                         f"{results.score:g}", f"{results.max_score:g}", results.status])
    return buffer.getvalue()


def write_gradebook(assignment: Assignment, reports: Path, all_results: list[Results]) -> Path:
    """Write REPORTS/gradebook.csv from these results."""
    path = reports / "gradebook.csv"
    write_atomic(path, render_gradebook(assignment, all_results))
    return path
