"""Run an assignment's hidden pytest tests against one student session, in the grader's process.

The GradingPlugin checks every test's markers and records each test's outcome; grader.fixtures
gives the tests their fixtures.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from grader import fixtures
from grader.fixtures import PLUGIN_KEY
from grader.assignment import CATEGORIES, Assignment
from grader.errors import GraderError
from grader.student_process import StudentSession

MARKERS = {
    "points(n)": "points each collected item of this test is worth",
    "category(name)": f"one of: {', '.join(CATEGORIES)}",
    "calls(*names)": "the student functions this test calls; the first is the one it grades",
    "hidden": "students see the name and pass/fail only",
    "call_timeout(seconds)": "per-call time limit for this test",
}


@dataclass
class Outcome:
    """What happened to one collected test item."""
    name: str
    points: float
    category: str
    calls: tuple[str, ...]
    hidden: bool
    passed: bool = False
    message: str = ""
    credit: float = 0.0
    duration: float = 0.0
    grader_error: str = ""
    metrics: dict = field(default_factory=dict)


class GradingPlugin:
    """pytest plugin: fixtures for hidden tests, marker checks, and outcome recording."""

    def __init__(self, assignment: Assignment, session: StudentSession, *, files: Path, workdir: Path,
                 seed: int, data_dir: str | None, static_forbidden: dict[str, list[str]]):
        self.assignment, self.session = assignment, session
        self.files, self.workdir, self.seed, self.data_dir = files, workdir, seed, data_dir
        self.static_forbidden = static_forbidden
        self.outcomes: dict[str, Outcome] = {}
        self.usage_errors: list[str] = []
        self.setup_errors: list[str] = []

    def pytest_configure(self, config):
        config.stash[PLUGIN_KEY] = self
        config.option.tbstyle = "no"  # messages come from the exceptions; tracebacks would only cost time
        for marker, text in MARKERS.items():
            config.addinivalue_line("markers", f"{marker}: {text}")

    def pytest_collection_modifyitems(self, session, config, items):
        for item in items:
            outcome = self._outcome_for(item)
            if outcome is not None:
                self.outcomes[item.nodeid] = outcome

    def _outcome_for(self, item) -> Outcome | None:
        def marker_args(name):
            mark = item.get_closest_marker(name)
            return None if mark is None else mark.args
        points, category, calls = marker_args("points"), marker_args("category"), marker_args("calls")
        where = f"{item.nodeid}: "
        if not points or not isinstance(points[0], (int, float)) or points[0] < 0:
            self.usage_errors.append(where + "needs @pytest.mark.points(n)")
        elif not category or category[0] not in CATEGORIES:
            self.usage_errors.append(where + f"needs @pytest.mark.category(one of {CATEGORIES})")
        elif not calls:
            self.usage_errors.append(where + "needs @pytest.mark.calls('student_function', ...)")
        elif self.assignment.functions and not set(calls) <= set(self.assignment.functions):
            self.usage_errors.append(where + f"calls {calls}, not all in the assignment's functions")
        else:
            return Outcome(item.name, float(points[0]), category[0], tuple(calls), marker_args("hidden") is not None)
        return None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = (yield).get_result()
        outcome = self.outcomes.get(item.nodeid)
        if outcome is None:
            return
        outcome.duration += report.duration
        if report.when == "call" and report.passed:
            outcome.passed = not outcome.message
        elif report.failed or report.skipped:
            outcome.passed = False
            outcome.message = outcome.message or self._message(call.excinfo, report, outcome)

    def _message(self, excinfo, report, outcome: Outcome) -> str:
        if excinfo is None:
            return "failed"
        exc = excinfo.value
        if report.skipped:
            return f"skipped, so no points: {getattr(exc, 'msg', exc)}"
        if isinstance(exc, GraderError):
            self.setup_errors.append(f"{outcome.name}: {type(exc).__name__}: {exc}")
        if isinstance(exc, AssertionError):
            text = str(exc).strip()
            return text or f"a check failed ({excinfo.traceback[-1].path.name}:{excinfo.traceback[-1].lineno + 1})"
        outcome.grader_error = "".join(traceback.format_exception(exc, limit=-4))
        return f"the test could not check your result: {type(exc).__name__}: {exc}"



def run_hidden_tests(plugin: GradingPlugin) -> list[Outcome]:
    """Run the assignment's tests with the plugin; return outcomes in collection order."""
    tests_dir = plugin.assignment.tests_dir
    began = time.monotonic()
    code = pytest.main([str(tests_dir), "--rootdir", str(tests_dir), "-o", "addopts=", "-p", "no:cacheprovider",
                 "--assert=plain", "--strict-markers", "-p", "no:terminal"],
                       plugins=[plugin, fixtures])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise RuntimeError(f"the hidden tests in {tests_dir} could not run (pytest exit code {code}): "
                           "check them with `pytest --collect-only` on that folder")
    if plugin.setup_errors:
        raise RuntimeError("the grader could not run its tests (not the student's fault):\n"
                           + "\n".join(plugin.setup_errors))
    if plugin.usage_errors:
        raise RuntimeError("hidden tests are missing markers:\n" + "\n".join(plugin.usage_errors))
    if not plugin.outcomes:
        raise RuntimeError(f"no hidden tests were collected from {tests_dir}")
    plugin.session.timings["tests"] = time.monotonic() - began
    return list(plugin.outcomes.values())
