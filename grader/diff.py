"""Run-to-run diff: which students' score or status changed between two reports folders, and which tests.

    python -m grader diff REPORTS_A REPORTS_B [--out FILE]

Compares the results.json files as grading wrote them (the autograded scores: overrides and late
penalties are the staff's, not the grader's), e.g. before and after a hidden test is fixed or the grader
is upgraded. Students are matched by report folder; one present on one side only is listed as added or
removed.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import SubmissionsError
from grader.results import Results, TestResult, read_reports, write_atomic

COLUMNS = ("student", "change", "status_a", "status_b", "score_a", "score_b", "delta", "tests_changed")


@dataclass
class TestChange:
    """One test whose outcome differs; a side is None when the test is not in that run."""
    __test__ = False  # not a pytest test class

    name: str
    a: TestResult | None
    b: TestResult | None

    def describe(self) -> str:
        def side(t: TestResult | None) -> str:
            return "absent" if t is None else f"{t.status} {t.score:g}/{t.max_score:g}"
        return f"{self.name}: {side(self.a)} -> {side(self.b)}"


@dataclass
class StudentChange:
    """A student whose score, status or tests differ between run A and run B."""
    student: str
    change: str                      # changed, added (only in B) or removed (only in A)
    a: Results | None
    b: Results | None
    tests: list[TestChange] = field(default_factory=list)

    @property
    def delta(self) -> float:
        return (self.b.score if self.b else 0.0) - (self.a.score if self.a else 0.0)

    def row(self) -> list[str]:
        def score(r: Results | None) -> str:
            return "" if r is None else f"{r.score:g}"
        return [self.b.name if self.b else self.a.name if self.a else self.student, self.change,
                self.a.status if self.a else "", self.b.status if self.b else "", score(self.a), score(self.b),
                f"{self.delta:+g}", "; ".join(t.describe() for t in self.tests)]


def _same(a: TestResult, b: TestResult) -> bool:
    return a.passed == b.passed and a.score == b.score and a.max_score == b.max_score


def test_changes(a: Results, b: Results) -> list[TestChange]:
    """The tests whose status or points differ, added or removed; in B's order, then the removed ones."""
    before, after = {t.name: t for t in a.tests}, {t.name: t for t in b.tests}
    changes = [TestChange(n, before.get(n), t) for n, t in after.items() if n not in before or not _same(before[n], t)]
    return changes + [TestChange(n, t, None) for n, t in before.items() if n not in after]


def diff_reports(reports_a: Path, reports_b: Path) -> list[StudentChange]:
    """Every student whose score, status or tests changed from reports_a to reports_b."""
    for folder in (reports_a, reports_b):
        if not Path(folder).is_dir():
            raise SubmissionsError(f"reports folder not found: {folder}")
    a = {r.student: r for r in read_reports(reports_a)}
    b = {r.student: r for r in read_reports(reports_b)}
    changes = []
    for student in sorted(a.keys() | b.keys(), key=lambda s: ((b.get(s) or a[s]).name.casefold(), s)):
        old, new = a.get(student), b.get(student)
        if old is None or new is None:
            changes.append(StudentChange(student, "added" if old is None else "removed", old, new))
            continue
        tests = test_changes(old, new)
        if tests or old.score != new.score or old.status != new.status:
            changes.append(StudentChange(student, "changed", old, new, tests))
    return changes


def render_csv(changes: list[StudentChange]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(c.row() for c in changes)
    return buffer.getvalue()


def write_diff(changes: list[StudentChange], out: Path) -> Path:
    write_atomic(Path(out), render_csv(changes))
    return Path(out)


def describe(change: StudentChange) -> str:
    """One line for the terminal."""
    name, _, status_a, status_b, score_a, score_b, delta, _ = change.row()
    if change.change != "changed":
        return f"{name}: {change.change} ({status_b or status_a}, {score_b or score_a})"
    status = f"{status_a} -> {status_b}, " if status_a != status_b else ""
    tests = f"; {len(change.tests)} test{'s' if len(change.tests) != 1 else ''} changed" if change.tests else ""
    return f"{name}: {status}{score_a} -> {score_b} ({delta}){tests}"
