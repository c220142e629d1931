"""What course staff change on top of the autograded results: overrides and the late policy.

    REPORTS/overrides.csv     student,target,points,reason  (target: a test, a function, or `total`)
    REPORTS/submitted_at.csv  student,submitted_at           (ISO 8601 with an offset)
    assignment.toml [late]    due date, grace period, penalty per day or a table, maximum

Both files are read again every time the reports are rendered and applied to the results.json files as
grading wrote them, which are never changed: regrading keeps every override. An override gives the points
of a test, a function or the total instead of the grader's (tests first, then functions, then the total);
the late penalty then takes its fraction of that score. A malformed row is a CourseFileError naming the
file and the line.
"""
from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from grader.config import Assignment, LatePolicy
from grader.errors import CourseFileError
from grader.results import GRADER_ERROR, NO_SUBMISSION, Adjustments, LatePenalty, Override, Results

log = logging.getLogger(__name__)
OVERRIDES, SUBMITTED_AT = "overrides.csv", "submitted_at.csv"
TOTAL = "total"
KIND_ORDER = {"test": 0, "function": 1, "total": 2}


@dataclass(frozen=True)
class OverrideRow:
    """One row of overrides.csv."""
    line: int
    student: str
    target: str
    points: float
    reason: str

    def fail(self, why: str) -> CourseFileError:
        return CourseFileError(f"{OVERRIDES} line {self.line}: {why}")


@dataclass(frozen=True)
class SubmissionTime:
    """When a submission was made, and where that comes from."""
    at: dt.datetime
    source: str


def _rows(path: Path, columns: tuple[str, ...]) -> Iterable[tuple[int, list[str]]]:
    """(line, cells) of a staff CSV: blank lines and `#` comments skipped, an optional header row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CourseFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if line == 1 and [c.strip().lower() for c in cells] == list(columns):
            continue
        if len(cells) != len(columns):
            raise CourseFileError(f"{path.name} line {line}: {len(cells)} columns, expected {len(columns)} "
                                  f"({','.join(columns)})")
        yield line, [c.strip() for c in cells]


def read_overrides(path: Path) -> list[OverrideRow]:
    """The rows of overrides.csv (none if the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows: list[OverrideRow] = []
    seen: dict[tuple[str, str], int] = {}
    for line, (student, target, points_text, reason) in _rows(path, ("student", "target", "points", "reason")):
        try:
            points = float(points_text)
        except ValueError:
            points = math.nan
        if not math.isfinite(points) or points < 0:
            raise CourseFileError(f"{OVERRIDES} line {line}: points must be a number of at least 0, "
                                  f"not {points_text!r}")
        if not student or not target or not reason:
            empty = [n for n, v in (("student", student), ("target", target), ("reason", reason)) if not v]
            raise CourseFileError(f"{OVERRIDES} line {line}: {', '.join(empty)} must not be empty "
                                  "(the reason is what the student reads)")
        if (student, target) in seen:
            raise CourseFileError(f"{OVERRIDES} line {line}: {student} / {target} is already overridden on "
                                  f"line {seen[student, target]}")
        seen[student, target] = line
        rows.append(OverrideRow(line, student, target, points, reason))
    return rows


def read_submitted_at(path: Path) -> dict[str, SubmissionTime]:
    """student -> submission time from submitted_at.csv (none if the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return {}
    times: dict[str, SubmissionTime] = {}
    for line, (student, text) in _rows(path, ("student", "submitted_at")):
        try:
            at = dt.datetime.fromisoformat(text)
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            raise CourseFileError(f"{SUBMITTED_AT} line {line}: submitted_at must be an ISO 8601 time with an "
                                  f"offset such as 2026-03-01T23:59:00-05:00, not {text!r}")
        if not student or student in times:
            raise CourseFileError(f"{SUBMITTED_AT} line {line}: " + ("student must not be empty" if not student
                                                                     else f"{student} is listed twice"))
        times[student] = SubmissionTime(at, SUBMITTED_AT)
    return times


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"))
             if n]
    return " ".join(parts[:2]) or "less than a minute"


def late_penalty(policy: LatePolicy, submitted: SubmissionTime, score: float) -> LatePenalty:
    """The penalty on this score for a submission at this time, with the sentence that explains it."""
    from grader.reports.view import fmt
    due = policy.due
    at = submitted.at.astimezone(due.tzinfo)
    days = policy.days_late(submitted.at)
    fraction = policy.fraction(days)
    points = round(fraction * score, 6)
    shown = f"Submitted {at:%Y-%m-%d %H:%M %Z} ({submitted.source}); due {due:%Y-%m-%d %H:%M %Z}"
    late_by = (submitted.at - due).total_seconds()
    if late_by <= 0:
        why = ": on time, no penalty."
    elif days == 0:
        why = (f": {_duration(late_by)} late, within the {fmt(policy.grace_minutes)}-minute grace period, "
               "no penalty.")
    else:
        step = min(days, len(policy.table))
        rule = (f"{fmt(100 * policy.per_day)}% per day" if not policy.table
                else f"{fmt(100 * policy.table[step - 1])}% " + (f"for day {days}" if step == days
                                                                  else f"from day {step} on"))
        capped = f", capped at {fmt(100 * policy.maximum)}%" if fraction == policy.maximum < 1.0 else ""
        why = (f": {_duration(late_by)} late, counted as {days} day{'s' if days != 1 else ''}; {rule}{capped} "
               f"= {fmt(100 * fraction)}% of {fmt(score)} points = {fmt(points)} points off.")
    return LatePenalty(submitted_at=submitted.at.isoformat(), source=submitted.source, due=due.isoformat(),
                       days_late=days, fraction=fraction, points=points, explanation=shown + why)


def _override(results: Results, assignment: Assignment, row: OverrideRow) -> Override:
    """The override this row makes to these results; CourseFileError for an unknown target or too many points."""
    from grader.reports.view import fmt
    tests = {t.name: t for t in results.tests}
    if row.target in tests:
        kind, maximum = "test", tests[row.target].max_score
        autograded = tests[row.target].score
    elif row.target in assignment.functions:
        kind = "function"
        maximum = sum(t.max_score for t in results.tests if t.functions[:1] == (row.target,))
        autograded = results.function_points(assignment.functions)[row.target]
    elif row.target.lower() == TOTAL:
        kind, maximum, autograded = TOTAL, results.max_score, results.score
    else:
        hints = difflib.get_close_matches(row.target, [*tests, *assignment.functions, TOTAL], n=2)
        raise row.fail(f"{row.target!r} is no test or function of {results.name} and not `total`"
                       + (f" (did you mean {' or '.join(hints)}?)" if hints else ""))
    if row.points > maximum:
        raise row.fail(f"{fmt(row.points)} points is more than the {fmt(maximum)} {row.target} is worth")
    return Override(target=TOTAL if kind == TOTAL else row.target, kind=kind, points=row.points,
                    autograded=autograded, reason=row.reason)


def adjust(assignment: Assignment, results: Results, rows: list[OverrideRow],
           submitted: SubmissionTime | None) -> Results:
    """These results with the overrides and the late penalty applied (a copy); the results themselves
    when there is nothing to apply or they are adjusted already. A grader error is never adjusted: it has
    no score to adjust."""
    late = assignment.late if results.status != NO_SUBMISSION else None
    if results.status == GRADER_ERROR or results.adjustments or (not rows and late is None):
        return results  # nothing to adjust, or adjusted already
    copy = Results.from_json(results.to_json())
    copy.adjustments = Adjustments(autograded=results.score, before_penalty=results.score)
    overrides = sorted((_override(copy, assignment, row) for row in rows), key=lambda o: KIND_ORDER[o.kind])
    for override in overrides:
        copy.adjustments.overrides.append(override)
        if override.kind == "test":
            next(t for t in copy.tests if t.name == override.target).score = override.points
    score = round(sum(copy.function_points(assignment.functions).values()), 6)
    for override in overrides:
        if override.kind == TOTAL:
            score = override.points
    copy.adjustments.before_penalty = score
    if late is not None:
        if submitted is None:
            log.warning("%s: no submission time known (no %s row, no commit time, no Gradescope metadata); "
                        "no late penalty applied", results.name, SUBMITTED_AT)
        else:
            copy.adjustments.late = late_penalty(late, submitted, score)
            score = round(score - copy.adjustments.late.points, 6)
    copy.score = score
    return copy


def submission_time(results: Results, times: dict[str, SubmissionTime]) -> SubmissionTime | None:
    """submitted_at.csv's time for this student, else the one recorded at grading, else None."""
    listed = times.get(results.name) or times.get(results.student)
    if listed:
        return listed
    if results.meta.submitted_at:
        try:
            return SubmissionTime(dt.datetime.fromisoformat(results.meta.submitted_at), results.meta.submitted_from)
        except ValueError:
            log.warning("%s: unreadable submission time %r", results.name, results.meta.submitted_at)
    return None


def check_course_files(reports: Path) -> None:
    """Read overrides.csv and submitted_at.csv now, so a malformed row stops a run before it grades."""
    read_overrides(Path(reports) / OVERRIDES)
    read_submitted_at(Path(reports) / SUBMITTED_AT)


def adjust_all(assignment: Assignment, reports: Path, all_results: list[Results]) -> list[Results]:
    """Every student's results with REPORTS/overrides.csv, submitted_at.csv and the late policy applied.

    An override naming a student who has no results is a CourseFileError naming its line."""
    reports = Path(reports)
    rows = read_overrides(reports / OVERRIDES)
    times = read_submitted_at(reports / SUBMITTED_AT)
    by_student: dict[str, list[OverrideRow]] = {}
    names = {r.name: r.student for r in all_results} | {r.student: r.student for r in all_results}
    for row in rows:
        if row.student not in names:
            hints = difflib.get_close_matches(row.student, list(names), n=2)
            raise row.fail(f"no student {row.student!r} in {reports}"
                           + (f" (did you mean {' or '.join(hints)}?)" if hints else ""))
        by_student.setdefault(names[row.student], []).append(row)
    adjusted = []
    for results in all_results:
        mine = by_student.get(results.student, [])
        if mine and results.status == GRADER_ERROR:
            log.warning("%s: the grader failed on this submission; its overrides (%s line %s) apply once it is "
                        "graded again", results.name, OVERRIDES, ", ".join(str(r.line) for r in mine))
        adjusted.append(adjust(assignment, results, mine, submission_time(results, times)))
    return adjusted
