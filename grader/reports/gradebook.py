"""gradebook.csv: one row per student, one column per student function, and the total."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from grader.config import Assignment
from grader.results import Results, read_all, write_atomic


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
    """The CSV text: student, one column per function, total, max_score."""
    names = columns(assignment, all_results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *names, "total", "max_score"])
    for results in sorted(all_results, key=lambda r: r.student):
        scores = function_scores(results, assignment.functions)
        writer.writerow([results.student, *(f"{scores.get(n, 0.0):g}" for n in names),
                         f"{results.score:g}", f"{results.max_score:g}"])
    return buffer.getvalue()


def write_gradebook(assignment: Assignment, reports: Path, students: list[str]) -> Path:
    """Write REPORTS/gradebook.csv from the students' results.json files."""
    path = reports / "gradebook.csv"
    write_atomic(path, render_gradebook(assignment, read_all(reports, students)))
    return path
