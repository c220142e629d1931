"""junit.xml: one graded submission as JUnit XML, in the shape CI test reporters read.

dorny/test-reporter (java-junit) and mikepenz/action-junit-report read: <testsuites time=...>
holding <testsuite name tests failures errors skipped time>, each holding <testcase name classname
time [file line]>, a failed case holding <failure message=...>text</failure>. One suite per student
function (classname = assignment.function); a submission the grader could not run is one <error>.

The file is student-facing (the Classroom workflow uploads it), so hidden tests follow the same
policy as the feedback: name and pass/fail only.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from grader.config import Assignment
from grader.reports.view import HIDDEN_FAILED, OTHER, case_view, clean_text, fmt, function_of, student_view
from grader.results import Results, write_atomic


def _seconds(test) -> str:
    return f"{test.duration:.3f}"


def render_junit(assignment: Assignment, results: Results) -> str:
    view = student_view(assignment, results)
    failures = sum(t.status != "passed" for t in results.tests)
    root = ET.Element("testsuites", name=clean_text(f"{assignment.name}: {results.name}"), tests=str(len(results.tests)),
                      failures=str(failures), errors="0", skipped="0", time=f"{results.execution_time:.3f}")
    groups: dict[str, list] = {f.name: [] for f in view.functions}
    for test in results.tests:
        groups.setdefault(function_of(test, assignment.functions), []).append(test)
    for name, tests in groups.items():
        suite_name = f"{assignment.name}.{name if name != OTHER else 'other'}"
        failed = sum(t.status != "passed" for t in tests)
        suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(tests)), failures=str(failed),
                              errors="0", skipped="0",
                              time=f"{sum(float(_seconds(t)) for t in tests):.3f}")
        properties = ET.SubElement(suite, "properties")
        for key, value in (("student", results.name), ("score", fmt(sum(t.score for t in tests))),
                           ("max_score", fmt(sum(t.max_score for t in tests)))):
            ET.SubElement(properties, "property", name=key, value=clean_text(value))
        for test in tests:
            case = case_view(assignment, test)
            element = ET.SubElement(suite, "testcase", name=clean_text(test.name), classname=suite_name,
                                    time=_seconds(test), file=assignment.notebook, line="1")
            if case.passed:
                continue
            if case.details:
                message = case.message or "failed"
                text = message + (f"\nProbably: {case.diagnosis}" if case.diagnosis else "")
            else:
                message = text = HIDDEN_FAILED
            failure = ET.SubElement(element, "failure", message=message.splitlines()[0][:500],
                                    type="AssertionError")
            failure.text = f"{text}\n(score {fmt(test.score)} / {fmt(test.max_score)})" if case.details else text
    if results.meta.grader_error or not results.tests:
        suite = ET.SubElement(root, "testsuite", name=f"{assignment.name}.grader", tests="1", failures="0",
                              errors="1", skipped="0", time="0.000")
        grading = ET.SubElement(suite, "testcase", name="grading", classname=f"{assignment.name}.grader",
                                time="0.000", file=assignment.notebook, line="1")
        note = clean_text(results.output or "the grader did not produce test results")
        error = ET.SubElement(grading, "error", message=note.splitlines()[0][:500] if note else "error",
                              type="GraderError")
        error.text = note
        root.set("errors", "1")
        root.set("tests", str(len(results.tests) + 1))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(assignment: Assignment, results: Results, folder: Path) -> Path:
    path = Path(folder) / "junit.xml"
    write_atomic(path, render_junit(assignment, results))
    return path
