"""Run an assignment's hidden pytest tests against one student session, in the grader's process.

The GradingPlugin parses and validates every test's markers in one place (parse_markers), keeps
each item's Outcome in item.stash, and records what happened; grader.testing.fixtures gives the
tests their fixtures.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from grader.config import CATEGORIES, Assignment
from grader.errors import GraderError, SandboxError, StudentError, TestSuiteError
from grader.results import Metric
from grader.sandbox.process import StudentSession
from grader.testing import fixtures
from grader.testing.checks import Mismatch
from grader.testing.fixtures import OUTCOME_KEY, PLUGIN_KEY

MARKERS = {
    "points(n)": "points each collected item of this test is worth",
    "category(name)": f"one of: {', '.join(CATEGORIES)}",
    "calls(*names)": "the student functions this test calls; the first is the one it grades",
    "hidden": "students see the name and pass/fail only",
    "call_timeout(seconds)": "per-call time limit for this test",
}


@dataclass(frozen=True)
class Markers:
    """A test's validated markers."""
    points: float
    category: str
    calls: tuple[str, ...]
    hidden: bool
    call_timeout: float | None


@dataclass
class Outcome:
    """What happened to one collected test item."""
    name: str
    markers: Markers
    passed: bool = False
    message: str = ""
    diagnosis: str = ""
    credit: float = 0.0
    duration: float = 0.0
    grader_error: str = ""
    metrics: dict[str, Metric] = field(default_factory=dict)
    cause: str = ""  # StudentError.kind: why the student's code gave no result
    culprit: str = ""  # StudentError.function: the student function the cause is about


def parse_markers(item: pytest.Item, functions: tuple[str, ...]) -> Markers:
    """The item's markers, validated; TestSuiteError says what is missing or wrong."""
    def args(name: str) -> tuple[Any, ...] | None:
        mark = item.get_closest_marker(name)
        return None if mark is None else mark.args
    points, category, calls, timeout = args("points"), args("category"), args("calls"), args("call_timeout")
    where = f"{item.nodeid}: "
    if not points or isinstance(points[0], bool) or not isinstance(points[0], (int, float)) or points[0] < 0:
        raise TestSuiteError(where + "needs @pytest.mark.points(n)")
    if not category or category[0] not in CATEGORIES:
        raise TestSuiteError(where + f"needs @pytest.mark.category(one of {CATEGORIES})")
    if not calls or not all(isinstance(c, str) for c in calls):
        raise TestSuiteError(where + "needs @pytest.mark.calls('student_function', ...)")
    if functions and not set(calls) <= set(functions):
        raise TestSuiteError(where + f"calls {calls}, not all in the assignment's functions")
    if timeout is not None and (not timeout or not isinstance(timeout[0], (int, float)) or timeout[0] <= 0):
        raise TestSuiteError(where + "call_timeout needs a positive number of seconds")
    return Markers(float(points[0]), category[0], tuple(calls), args("hidden") is not None,
                   float(timeout[0]) if timeout else None)


def register_markers(config: pytest.Config) -> None:
    """Declare the grading markers (the runs use --strict-markers)."""
    for marker, text in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")


class GradingPlugin:
    """pytest plugin: fixtures for hidden tests, marker checks, and outcome recording."""

    def __init__(self, assignment: Assignment, session: StudentSession, *, files: Path, workdir: Path,
                 seed: int, data_dir: str | None, static_forbidden: dict[str, list[str]]):
        self.assignment, self.session = assignment, session
        self.files, self.workdir, self.seed, self.data_dir = files, workdir, seed, data_dir
        self.static_forbidden = static_forbidden
        self.outcomes: list[Outcome] = []
        self.usage_errors: list[str] = []
        self.setup_errors: list[str] = []
        self.refused: SandboxError | None = None  # the sandbox could not be applied as asked: nobody is graded

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[PLUGIN_KEY] = self
        config.option.tbstyle = "no"  # messages come from the exceptions; tracebacks would only cost time
        register_markers(config)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            try:
                markers = parse_markers(item, self.assignment.functions)
            except TestSuiteError as exc:
                self.usage_errors.append(str(exc))
                continue
            outcome = Outcome(item.name, markers)
            item.stash[OUTCOME_KEY] = outcome
            self.outcomes.append(outcome)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        outcome = item.stash.get(OUTCOME_KEY, None)
        if outcome is None:
            return report
        outcome.duration += report.duration
        if report.when == "call" and report.passed:
            outcome.passed = not outcome.message
        elif report.failed or report.skipped:
            outcome.passed = False
            if not outcome.message:
                self._record_failure(call.excinfo, report, outcome)
        return report

    def _record_failure(self, excinfo: pytest.ExceptionInfo[BaseException] | None, report: pytest.TestReport,
                        outcome: Outcome) -> None:
        if excinfo is None:
            outcome.message = "failed"
            return
        exc = excinfo.value
        if report.skipped:
            outcome.message = f"skipped, so no points: {getattr(exc, 'msg', exc)}"
        elif isinstance(exc, Mismatch):
            outcome.message, outcome.diagnosis = exc.message, exc.diagnosis
        elif isinstance(exc, AssertionError):
            if isinstance(exc, StudentError):
                outcome.cause, outcome.culprit = exc.kind, exc.function
            last = excinfo.traceback[-1]
            outcome.message = str(exc).strip() or f"a check failed ({Path(last.path).name}:{last.lineno + 1})"
        else:
            if isinstance(exc, SandboxError):
                self.refused = self.refused or exc
            if isinstance(exc, GraderError):
                self.setup_errors.append(f"{outcome.name}: {type(exc).__name__}: {exc}")
            outcome.grader_error = "".join(traceback.format_exception(exc, limit=-4))
            outcome.message = f"the test could not check your result: {type(exc).__name__}: {exc}"


# pytest's plugins that grading does not use; each one costs time on every one of a submission's tests
UNUSED_PYTEST_PLUGINS = ("cacheprovider", "terminal", "logging", "warnings", "faulthandler", "doctest", "junitxml",
                         "pastebin", "unittest", "stepwise", "threadexception", "unraisableexception")


def _pytest_args(tests_dir: Path) -> list[str]:
    unused = [arg for name in UNUSED_PYTEST_PLUGINS for arg in ("-p", f"no:{name}")]
    return [str(tests_dir), "--rootdir", str(tests_dir), "-o", "addopts=", "--disable-plugin-autoload",
            "--assert=plain", "--strict-markers", "--capture=no", *unused]


def preload_hidden_tests(assignment: Assignment) -> None:
    """Import the hidden test modules and the reference once, in a process that forks the grading workers:
    each worker's pytest session then finds them imported, and starts from the same untouched copy.

    TestSuiteError if the tests cannot be collected."""
    from grader.testing.reference import load_reference
    load_reference(assignment.master)
    code = pytest.main([*_pytest_args(assignment.tests_dir), "--collect-only"], plugins=[_Collector(), fixtures])
    if code != pytest.ExitCode.OK:
        raise TestSuiteError(f"the hidden tests in {assignment.tests_dir} could not be collected (pytest exit code "
                             f"{code}): check them with `pytest --collect-only` on that folder")


class _Collector:
    def pytest_configure(self, config: pytest.Config) -> None:
        register_markers(config)


def run_hidden_tests(plugin: GradingPlugin) -> list[Outcome]:
    """Run the assignment's tests with the plugin; return outcomes in collection order.

    TestSuiteError: the tests cannot run or lack markers. GraderError: the grader's own setup failed.
    SandboxError: the student process could not be confined as the sandbox mode asks.
    """
    tests_dir = plugin.assignment.tests_dir
    began = time.monotonic()
    code = pytest.main(_pytest_args(tests_dir), plugins=[plugin, fixtures])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise TestSuiteError(f"the hidden tests in {tests_dir} could not run (pytest exit code {code}): "
                             "check them with `pytest --collect-only` on that folder")
    if plugin.refused:
        raise plugin.refused
    if plugin.setup_errors:
        raise GraderError("the grader could not run its tests (not the student's fault):\n"
                          + "\n".join(plugin.setup_errors))
    if plugin.usage_errors:
        raise TestSuiteError("hidden tests are missing markers:\n" + "\n".join(plugin.usage_errors))
    if not plugin.outcomes:
        raise TestSuiteError(f"no hidden tests were collected from {tests_dir}")
    plugin.session.timings["tests"] = time.monotonic() - began
    return plugin.outcomes
