"""summary.html: the class dashboard a TA reads after a batch.

Score histogram, pass rate of every test (most failed first), mean score per function, time per
submission, and the submissions that errored with the reason. Figures are drawn with matplotlib
(Agg, no pyplot) and embedded as base64 PNG; the page loads nothing from the network.
"""
from __future__ import annotations

import base64
import io
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from grader.config import Assignment
from grader.reports.gradebook import columns, function_scores
from grader.reports.view import clean_text, fmt, function_of, is_hidden, render
from grader.results import GRADED, GRADER_ERROR, Results, write_atomic

MAX_BARS = 40  # tests drawn in the pass-rate figure (the table lists all)


@dataclass
class RateRow:
    name: str
    passed: int
    total: int
    mean: float
    max_score: float
    hidden: bool

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), layout="constrained")


def pass_rates(all_results: list[Results]) -> list[RateRow]:
    """Per test: how many passed, mean points; sorted so the most failed tests come first."""
    rates: dict[str, RateRow] = {}
    for results in all_results:
        for test in results.tests:
            rate = rates.setdefault(test.name, RateRow(test.name, 0, 0, 0.0, test.max_score, is_hidden(test)))
            rate.passed += test.status == "passed"
            rate.total += 1
            rate.mean += test.score
            rate.max_score = max(rate.max_score, test.max_score)
    order = {name: i for i, name in enumerate(rates)}
    for rate in rates.values():
        rate.mean /= rate.total
    return sorted(rates.values(), key=lambda r: (r.rate, order[r.name]))


def function_means(assignment: Assignment, all_results: list[Results]) -> list[dict]:
    """Mean points and maximum per function, in the gradebook's column order."""
    names = columns(assignment, all_results)
    rows = []
    for name in names:
        earned = [function_scores(r, assignment.functions).get(name, 0.0) for r in all_results]
        maxima = [sum(t.max_score for t in r.tests if function_of(t, assignment.functions) == name)
                  for r in all_results]
        top = max(maxima, default=0.0)
        if top or any(earned):
            rows.append({"name": name, "mean": statistics.fmean(earned) if earned else 0.0, "max": top})
    return rows


def errors_of(all_results: list[Results]) -> list[dict]:
    """Submissions whose status is not graded: no submission, a notebook problem, or a grader error."""
    rows = []
    for results in all_results:
        if results.status == GRADED:
            continue
        detail = results.meta.grader_error
        rows.append({"student": results.name, "kind": results.status,
                     "reason": clean_text(results.reason), "detail": clean_text(detail)})
    return rows


def _histogram(scores: list[float], max_score: float) -> str:
    figure = _figure(7, 3.2)
    axes = figure.add_subplot()
    top = max(max_score, max(scores, default=0.0), 1.0)
    bins = int(top) + 1 if top <= 30 and float(top).is_integer() else 20
    edges = [i - 0.5 for i in range(bins + 1)] if bins == int(top) + 1 else None
    axes.hist(scores, bins=edges or bins, range=None if edges else (0, top), color="#4c72b0", edgecolor="white")
    axes.set_xlabel(f"score (out of {fmt(max_score)})")
    axes.set_ylabel("submissions")
    axes.yaxis.get_major_locator().set_params(integer=True)
    return _png(figure)


def _pass_rate_figure(rates: list[RateRow]) -> str:
    shown = rates[:MAX_BARS]
    figure = _figure(8, 0.9 + 0.28 * max(len(shown), 1))
    axes = figure.add_subplot()
    labels = [r.name if len(r.name) <= 48 else r.name[:45] + "..." for r in shown]
    axes.barh(range(len(shown)), [100 * r.rate for r in shown],
              color=["#c44e52" if r.rate < 0.5 else "#dd8452" if r.rate < 0.8 else "#55a868" for r in shown])
    axes.set_yticks(range(len(shown)), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of submissions passing")
    return _png(figure)


def _function_figure(rows: list[dict]) -> str:
    figure = _figure(7, 0.9 + 0.4 * max(len(rows), 1))
    axes = figure.add_subplot()
    names = [r["name"] for r in rows]
    axes.barh(names, [r["max"] for r in rows], color="#e5e5e5", label="max")
    axes.barh(names, [r["mean"] for r in rows], color="#4c72b0", label="mean")
    axes.invert_yaxis()
    axes.set_xlabel("points")
    axes.legend(loc="lower right")
    return _png(figure)


def _time_figure(times: list[tuple[str, float]]) -> str:
    figure = _figure(7, 3.2 if len(times) > 30 else 0.9 + 0.28 * max(len(times), 1))
    axes = figure.add_subplot()
    if len(times) > 30:
        axes.hist([t for _, t in times], bins=20, color="#8172b3", edgecolor="white")
        axes.set_xlabel("seconds per submission")
        axes.set_ylabel("submissions")
    else:
        ordered = sorted(times, key=lambda item: -item[1])
        axes.barh([name for name, _ in ordered], [t for _, t in ordered], color="#8172b3")
        axes.invert_yaxis()
        axes.tick_params(axis="y", labelsize=8)
        axes.set_xlabel("seconds")
    return _png(figure)


MIN_FOR_FIGURES = 2


def render_summary(assignment: Assignment, all_results: list[Results]) -> str:
    """The summary page for these results (a TA's view: every test, hidden ones included)."""
    all_results = sorted(all_results, key=lambda r: (r.name.casefold(), r.student))
    graded = [r for r in all_results if not r.meta.grader_error]
    scores = [r.score for r in graded]
    max_score = max((r.max_score for r in graded), default=0.0)
    rates = pass_rates(graded)
    functions = function_means(assignment, graded)
    times = [(r.name if len(r.name) <= 40 else r.name[:37] + "...", float(r.execution_time or 0.0))
             for r in all_results]
    errors = errors_of(all_results)
    stats = {
        "submissions": len(all_results),
        "graded": len(graded),
        "errors": len(errors),
        "mean": fmt(statistics.fmean(scores)) if scores else "-",
        "median": fmt(statistics.median(scores)) if scores else "-",
        "max_score": fmt(max_score),
        "full": sum(1 for s in scores if max_score and s >= max_score),
        "total_time": f"{sum(t for _, t in times):.1f}",
    }
    students = [{"student": clean_text(r.name), "href": quote(r.student) + "/feedback.html",
                 "score": fmt(r.score) if r.status != GRADER_ERROR else "-",
                 "max_score": fmt(r.max_score) if r.status != GRADER_ERROR else "-",
                 "seconds": f"{float(r.execution_time or 0):.1f}", "status": r.status,
                 "error": r.status != GRADED} for r in all_results]
    figures = dict.fromkeys(("histogram", "time", "rates", "functions"), "")
    if len(graded) >= MIN_FOR_FIGURES:  # a class of one is read from its tables; drawing costs a second
        figures["histogram"] = _histogram(scores, max_score)
        figures["time"] = _time_figure(times)
        if rates:
            figures["rates"] = _pass_rate_figure(rates)
        if functions:
            figures["functions"] = _function_figure(functions)
    return render("summary.html.j2", title=assignment.title, name=assignment.name, stats=stats, rates=rates,
                  functions=functions, errors=errors, students=students, figures=figures, max_bars=MAX_BARS,
                  generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), fmt=fmt)


def write_summary(assignment: Assignment, all_results: list[Results], reports: Path) -> Path:
    path = Path(reports) / "summary.html"
    write_atomic(path, render_summary(assignment, all_results))
    return path
