"""summary.html: the class dashboard a TA reads after a batch.

Top of the page, the class at a glance: counts by status, the score distribution, and the student table,
which is also the student x function heatmap (each function's points coloured by their fraction of the
function's maximum), sortable and filterable, each row linked to the student's feedback, with the measured
figures that have a threshold in assignment.toml (the Keras accuracies). Then the pass rate per function and
per test family (a parametrized test is one family); then every test, collapsed; then the submissions that
were not graded and why. Charts are SVG and CSS drawn by the template (no matplotlib); the one inline script
(sort, filter) is allowed by its hash in the page's Content-Security-Policy, and nothing loads from the network.
"""
from __future__ import annotations

import base64
import hashlib
import math
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from urllib.parse import quote

from grader.config import Assignment
from grader.reports.gradebook import columns, function_scores
from grader.reports.view import TEMPLATES, clean_text, fmt, function_of, is_hidden, render
from grader.results import GRADED, GRADER_ERROR, STATUSES, Results, RunRecord, TestResult, write_atomic

SCRIPT = TEMPLATES / "dashboard.js"
MAX_INTEGER_BINS = 30  # a maximum score up to this gets one histogram bar per point
MAX_BARS = 20          # above, at most this many bars of a round width
# Colour bands of a fraction (of a function's points, or a pass rate): (lowest fraction, CSS name, legend)
BANDS = ((1.0, "full", "100%"), (0.8, "high", "80% to 99%"), (0.5, "mid", "50% to 79%"),
         (1e-9, "low", "under 50%"), (0.0, "none", "0%"))


def band(fraction: float) -> str:
    """The colour band of a fraction of points (or of a pass rate): full, high, mid, low or none."""
    if fraction <= 1e-9:
        return "none"
    return next(name for lowest, name, _ in BANDS if fraction >= lowest - 1e-9)


def points_text(points: float, max_score: float) -> str:
    """A mean number of points for people: one decimal out of 10 or more, two below."""
    return f"{points:.{1 if max_score >= 10 else 2}f}"


def mean_text(values: list[float], max_score: float) -> str:
    """The mean of values (see points_text); '-' for no values."""
    return points_text(statistics.fmean(values), max_score) if values else "-"


@dataclass
class Column:
    """A function of the assignment: a column of the heatmap."""
    name: str
    max: float


@dataclass
class Cell:
    points: float
    max: float

    @property
    def band(self) -> str:
        return band(self.points / self.max) if self.max else "none"

    @property
    def percent(self) -> str:
        return f"{100 * self.points / self.max:.0f}%" if self.max else "-"


@dataclass
class StudentRow:
    """One row of the student table / heatmap."""
    name: str
    href: str
    status: str
    reason: str
    total: float | None          # None: a grader error, no score
    max_score: float
    cells: list[Cell | None]     # None: the grader failed, no score
    metrics: list[float | None]
    seconds: float


@dataclass
class Metric:
    """A measured figure with a threshold in assignment.toml (e.g. an accuracy): a column of the table."""
    name: str
    threshold: float


@dataclass
class RateRow:
    """A test or a test family (the cases of one parametrized test) across the class."""
    name: str
    function: str
    passed: int = 0
    total: int = 0
    cases: int = 0
    points: float = 0.0
    max_score: float = 0.0
    hidden: bool = False
    case_names: set[str] = field(default_factory=set)

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def band(self) -> str:
        return band(self.rate)

    def add(self, test: TestResult) -> None:
        self.passed += test.status == "passed"
        self.total += 1
        self.points += test.score
        self.max_score += test.max_score
        self.hidden = self.hidden or is_hidden(test)
        self.case_names.add(test.name)
        self.cases = len(self.case_names)


@dataclass
class FunctionRate:
    """One function across the class: the mean fraction of its points, and who has them all."""
    name: str
    max: float
    mean: float
    full: int
    students: int

    @property
    def rate(self) -> float:
        return self.mean / self.max if self.max else 0.0

    @property
    def mean_text(self) -> str:
        return points_text(self.mean, self.max)

    @property
    def band(self) -> str:
        return band(self.rate)


def family(name: str) -> str:
    """A parametrized test's name without its parameters: test_conv[2-same] -> test_conv."""
    return name.split("[", 1)[0]


def rates_of(assignment: Assignment, scored: list[Results], key) -> list[RateRow]:
    """Pass rate per key(test name) across the class, most failed first (ties: the order tests run)."""
    rows: dict[str, RateRow] = {}
    for results in scored:
        for test in results.tests:
            name = key(test.name)
            rows.setdefault(name, RateRow(name, function_of(test, assignment.functions))).add(test)
    order = {name: i for i, name in enumerate(rows)}
    return sorted(rows.values(), key=lambda r: (r.rate, order[r.name]))


def function_maxima(assignment: Assignment, scored: list[Results]) -> list[Column]:
    """Per function in the gradebook's column order, its maximum points (functions no test grades are left out)."""
    maxima = {name: 0.0 for name in columns(assignment, scored)}
    for results in scored:
        per_function: dict[str, float] = {}
        for test in results.tests:
            name = function_of(test, assignment.functions)
            per_function[name] = per_function.get(name, 0.0) + test.max_score
        for name, top in per_function.items():
            maxima[name] = max(maxima.get(name, 0.0), top)
    return [Column(name, top) for name, top in maxima.items() if top]


def function_rates(assignment: Assignment, scored: list[Results], functions: list[Column]) -> list[FunctionRate]:
    rows, per_student = [], [function_scores(r, assignment.functions) for r in scored]
    for column in functions:
        earned = [scores.get(column.name, 0.0) for scores in per_student]
        rows.append(FunctionRate(column.name, column.max, statistics.fmean(earned) if earned else 0.0,
                                 sum(1 for e in earned if e >= column.max - 1e-9), len(earned)))
    return rows


def metrics_of(assignment: Assignment, scored: list[Results]) -> list[Metric]:
    """The measured figures that have a threshold in assignment.toml, in its order, if any result holds them."""
    held = {k for r in scored for t in r.tests for k, v in t.metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return [Metric(name, value) for name, value in assignment.thresholds.items() if name in held]


def student_row(assignment: Assignment, results: Results, functions: list[Column], metrics: list[Metric]) -> StudentRow:
    scored = results.status != GRADER_ERROR
    earned = function_scores(results, assignment.functions)
    measured: dict[str, float] = {}
    for test in results.tests:
        for key, value in test.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                measured.setdefault(key, float(value))
    return StudentRow(
        name=clean_text(results.name), href=quote(results.student) + "/feedback.html", status=results.status,
        reason=clean_text(results.reason), total=results.score if scored else None, max_score=results.max_score,
        cells=[Cell(earned.get(c.name, 0.0), c.max) if scored else None for c in functions],
        metrics=[measured.get(m.name) for m in metrics], seconds=float(results.execution_time or 0.0))


def bin_width(top: float) -> float:
    """A round bar width (1, 2, 5, 10, 20, 25, 50, ...) giving at most MAX_BARS bars up to top."""
    for scale in (10 ** k for k in range(12)):
        for step in (1, 2, 2.5, 5):
            width = step * scale
            if float(width).is_integer() and math.ceil(top / width) <= MAX_BARS:
                return width
    return top


def histogram(scores: list[float], max_score: float) -> dict:
    """The score distribution as SVG geometry: bars (x, y, width, height, count, label) in a 600 x 160 box.

    Up to MAX_INTEGER_BINS points, one bar per point; above, bars of a round width (0-10, 10-20, ...)."""
    top = max(max_score, max(scores, default=0.0), 1.0)
    if top <= MAX_INTEGER_BINS and float(top).is_integer():
        edges = [i - 0.5 for i in range(int(top) + 2)]
        labels = [str(i) for i in range(int(top) + 1)]
    else:
        width = bin_width(top)
        edges = [i * width for i in range(math.ceil(top / width) + 1)]
        labels = [f"{fmt(edges[i])}–{fmt(edges[i + 1])}" for i in range(len(edges) - 1)]
    counts = [0] * len(labels)
    for score in scores:
        index = next((i for i in range(len(labels)) if score < edges[i + 1]), len(labels) - 1)
        counts[index] += 1
    tallest = max(counts, default=0) or 1
    step = 600 / len(labels)
    bars = [{"x": round(i * step + 1, 1), "width": round(step - 2, 1), "height": round(140 * c / tallest, 1),
             "y": round(150 - 140 * c / tallest, 1), "count": c, "label": labels[i]} for i, c in enumerate(counts)]
    every = max(1, math.ceil(len(labels) / 12))  # at most 12 axis labels
    ticks = [{"x": round((i + 0.5) * step, 1), "label": labels[i]} for i in range(0, len(labels), every)]
    return {"bars": bars, "ticks": ticks, "tallest": tallest}


def errors_of(all_results: list[Results]) -> list[dict]:
    """Submissions whose status is not graded: no submission, a notebook problem, or a grader error."""
    return [{"student": clean_text(r.name), "href": quote(r.student) + "/feedback.html", "kind": r.status,
             "reason": clean_text(r.reason), "detail": clean_text(r.meta.grader_error)}
            for r in all_results if r.status != GRADED]


@cache
def _script() -> tuple[str, str]:
    """The page's script and its CSP source ('sha256-...')."""
    text = SCRIPT.read_text()
    return text, "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def run_line(run: RunRecord | None, cpu: list[float]) -> dict:
    """Wall time of the last run and CPU time summed over the submissions, each with its label."""
    wall = "-"
    if run is not None:
        wall = f"{run.wall_seconds:.1f} s"
    detail = ""
    if run is not None:
        detail = (f"{run.graded} graded, {run.unchanged} unchanged, {run.jobs} workers"
                  + (f", longest of {run.shards} shards" if run.shards > 1 else "")
                  + (", interrupted" if run.interrupted else "") + (f"; ended {run.finished}" if run.finished else ""))
    measured = [c for c in cpu if c > 0]
    return {"wall": wall, "wall_detail": detail,
            "cpu": f"{sum(measured):.1f} s" if measured else "-",
            "cpu_detail": f"{len(measured)} of {len(cpu)} submissions measured" if len(measured) < len(cpu) else ""}


def render_summary(assignment: Assignment, all_results: list[Results], run: RunRecord | None = None) -> str:
    """The dashboard for these results (a TA's view: every test, hidden ones included); run: the last run."""
    all_results = sorted(all_results, key=lambda r: (r.name.casefold(), r.student))
    scored = [r for r in all_results if r.status != GRADER_ERROR]
    graded = [r for r in all_results if r.status == GRADED]
    max_score = max((r.max_score for r in scored), default=0.0)
    scores = [r.score for r in scored]
    functions = function_maxima(assignment, scored)
    metrics = metrics_of(assignment, scored)
    script, script_hash = _script()
    counts = {status: sum(1 for r in all_results if r.status == status) for status in STATUSES}
    stats = {"submissions": len(all_results), "max_score": fmt(max_score), "mean": mean_text(scores, max_score),
             "median": fmt(statistics.median(scores)) if scores else "-",
             "full": sum(1 for s in scores if max_score and s >= max_score - 1e-9)}
    tests = rates_of(assignment, scored, lambda name: name)
    return render(
        "summary.html.j2", title=assignment.title, name=assignment.name, stats=stats, counts=counts,
        time=run_line(run, [r.meta.cpu_seconds for r in all_results]),
        histogram=histogram(scores, max_score) if graded else None,
        functions=functions, metrics=metrics,
        students=[student_row(assignment, r, functions, metrics) for r in all_results],
        function_rates=function_rates(assignment, scored, functions) if graded else [],
        families=rates_of(assignment, scored, family) if graded else [], tests=tests if graded else [],
        errors=errors_of(all_results), bands=BANDS, script=script, script_hash=script_hash,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), fmt=fmt)


def write_summary(assignment: Assignment, all_results: list[Results], reports: Path) -> Path:
    """Write REPORTS/summary.html from these results and the run recorded in reports."""
    path = Path(reports) / "summary.html"
    write_atomic(path, render_summary(assignment, all_results, RunRecord.read(reports)))
    return path
