"""Reports rendered from the results model after `python -m grader grade`: gradebook.csv, feedback.md/.html,
junit.xml, summary.html. Each is checked for form (CSV shape and totals, strict and offline HTML,
the JUnit structure CI reporters parse, Gradescope's results.json schema) and for what it shows
(hidden tests: name and pass/fail only). summary.html and one feedback.html are rendered in
headless Chromium.
"""
from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import html
import json
import logging
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from grader.authoring import notebooks
from grader.batch import grader_failure
from grader.config import VISIBILITIES, load_assignment
from grader.ingest.submissions import Submission
from grader.reports import junit, notebook, render_reports
from grader.reports.feedback import render_feedback_html, render_feedback_md
from grader.reports.junit import render_junit
from grader.reports.summary import render_summary
from grader.results import Results, SubmissionMeta
from tests.conftest import TOY, run_grader, toy_notebook, write_student

DOUBLE = "    return 2 * np.asarray(x)\n"
ROW_SUMS = "    return x.sum(axis=1)\n"
HOSTILE = "<script>alert(1)</script> | *bold* `tick` [link](http://evil.example/x.png)"
HIDDEN_MESSAGE = "row_sums has the right shape but wrong values"

# student -> expected score
CLASS = {"alice": 11.0, "bob": 9.0, "carol": 7.0, "dave": 0.0, "erin": 0.0, "mallory": 7.0}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A small class graded through the CLI, as a TA would: every report is written."""
    submissions = tmp_path_factory.mktemp("submissions")
    reports = tmp_path_factory.mktemp("reports")
    write_student(submissions, "alice", toy_notebook())
    write_student(submissions, "bob", toy_notebook({ROW_SUMS: "    return x.sum(axis=1) + 1\n"}))
    write_student(submissions, "carol", toy_notebook({DOUBLE: "    return 3 * np.asarray(x)\n"}))
    write_student(submissions, "dave", notebooks.starter(notebooks.read(TOY / "toy.ipynb")))
    write_student(submissions, "erin", raw="")
    write_student(submissions, "mallory", toy_notebook({DOUBLE: f"    raise ValueError({HOSTILE!r})\n"}))
    result = run_grader("grade", str(TOY), str(submissions), "--reports", str(reports), "--jobs", "2", "--quiet")
    return reports, result


def results_of(reports: Path, student: str) -> Results:
    return Results.read(reports / student / "results.json")


# ---------------------------------------------------------------- where everything is written

def test_every_report_is_written_and_named(graded):
    reports, result = graded
    for student in CLASS:
        for name in ("results.json", "feedback.md", "feedback.html", "junit.xml"):
            assert (reports / student / name).is_file(), (student, name)
    assert (reports / "gradebook.csv").is_file() and (reports / "summary.html").is_file()
    out = result.stdout
    for where in (f"{reports}/<student>/results.json", f"{reports}/<student>/feedback.md, feedback.html",
                  f"{reports}/<student>/junit.xml", str(reports / "gradebook.csv"), str(reports / "summary.html")):
        assert where in out, out


def test_scores_are_what_each_submission_earned(graded):
    reports, _ = graded
    assert {s: results_of(reports, s).score for s in CLASS} == CLASS


def test_a_student_whose_reports_fail_is_logged_and_the_others_rendered(graded, tmp_path, caplog, monkeypatch):
    reports, _ = graded
    for student in ("alice", "bob"):
        shutil.copytree(reports / student, tmp_path / student)
    real_write_junit = junit.write_junit

    def write_junit(assignment, results, folder):
        if results.student == "bob":
            raise RuntimeError("the renderer broke")
        return real_write_junit(assignment, results, folder)

    monkeypatch.setattr(junit, "write_junit", write_junit)
    with caplog.at_level(logging.ERROR, logger="grader"):
        written = render_reports(load_assignment(TOY), tmp_path, ["alice", "bob"])
    assert written["render errors"] == "bob"
    [record] = [r for r in caplog.records if r.name == "grader.reports"]
    assert "bob" in record.getMessage() and "the renderer broke" in caplog.text
    rows = list(csv.DictReader((tmp_path / "gradebook.csv").open()))
    assert [r["student"] for r in rows] == ["alice", "bob"] and (tmp_path / "summary.html").is_file()


# ---------------------------------------------------------------- gradebook.csv

def test_gradebook_csv_rows_columns_and_totals(graded):
    reports, _ = graded
    toy = load_assignment(TOY)
    with open(reports / "gradebook.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert header == ["student", *toy.functions, "raw_score", "late_penalty", "total", "max_score", "status",
                      "days_late", "overrides"]
    assert len(body) == len(CLASS) and all(len(row) == len(header) for row in body)
    assert [row[0] for row in body] == sorted(CLASS)
    for row in body:
        results = results_of(reports, row[0])
        *functions, raw, penalty, total, max_score = [float(v) for v in row[1:-3]]
        assert raw == total == results.score and penalty == 0 and max_score == results.max_score
        assert sum(functions) == pytest.approx(total)
        assert row[-3:] == ["notebook problem" if row[0] == "erin" else "graded", "", ""]


# ---------------------------------------------------------------- HTML: strict and offline

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
ALLOWED = {"html", "head", "body", "meta", "title", "style", "main", "section", "h1", "h2", "p", "span", "b",
           "code", "pre", "table", "thead", "tbody", "tr", "th", "td", "figure", "figcaption", "img", "a", "div",
           "details", "summary", "br", "script", "label", "input", "select", "option", "button", "svg", "rect", "text",
           "line", "ol", "ul", "li"} | notebook.TAGS  # the student's notebook, sanitized


class StrictHTML(HTMLParser):
    """Fails on anything a strict HTML check would flag in these pages, and on anything not offline."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.ids, self.seen, self.doctype = [], [], set(), [], ""
        self.images = []

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.seen.append(tag)
        attrs = dict(attrs)
        if tag not in ALLOWED:
            self.problems.append(f"unexpected element <{tag}>")
        if tag not in VOID:
            self.stack.append(tag)
        if "id" in attrs:
            if attrs["id"] in self.ids:
                self.problems.append(f"duplicate id {attrs['id']}")
            self.ids.add(attrs["id"])
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            value = (attrs.get(name) or "").strip().lower()
            if value.startswith(("http:", "https:", "//", "ftp:", "ws:", "wss:")):
                self.problems.append(f"<{tag} {name}={value[:60]}> loads from the network")
        if tag == "img":
            if not (attrs.get("src") or "").startswith("data:image/png;base64,"):
                self.problems.append("an image that is not an embedded PNG")
            if not attrs.get("alt"):
                self.problems.append("an image without alt text")
            self.images.append(attrs["src"])
        if "style" in attrs and "url(" in attrs["style"]:
            self.problems.append("an inline style loading a URL")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            self.problems.append(f"end tag for void element </{tag}>")
        elif not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "style" and ("url(" in data or "@import" in data):
            self.problems.append("a stylesheet loading a URL")


def script_problems(text: str) -> list[str]:
    """An inline script is allowed only by its hash in the page's CSP (never 'unsafe-inline'), and never loads a file."""
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', text)
    policy = html.unescape(csp.group(1)) if csp else ""
    script_src = next((d for d in policy.split(";") if d.strip().startswith("script-src")), "")
    problems = ["script-src allows 'unsafe-inline' or 'unsafe-eval'"] if "unsafe" in script_src else []
    if len(re.findall(r"<script", text, re.I)) != len(re.findall(r"<script>", text)):
        problems.append("a script with attributes (src?)")
    for body in re.findall(r"<script>(.*?)</script>", text, re.S):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        if f"'sha256-{digest}'" not in script_src:
            problems.append("an inline script whose hash is not in the CSP's script-src")
    return problems


def check_html(text: str) -> StrictHTML:
    parser = StrictHTML()
    parser.feed(text)
    parser.close()
    problems = list(parser.problems)
    if parser.doctype.lower() != "doctype html":
        problems.append(f"doctype is {parser.doctype!r}")
    if parser.stack:
        problems.append(f"unclosed elements: {parser.stack}")
    for tag in ("html", "head", "body", "title", "main"):
        if parser.seen.count(tag) != 1:
            problems.append(f"{parser.seen.count(tag)} <{tag}> elements")
    if not re.search(r'<html lang="[a-z]+">', text) or '<meta charset="utf-8">' not in text:
        problems.append("no lang or charset")
    if "Content-Security-Policy" not in text or "default-src 'none'" not in text:
        problems.append("no Content-Security-Policy forbidding network loads")
    if re.search(r"<link|<iframe|<object|<embed|@import", text, re.I):
        problems.append("a link, frame, object or import")
    problems += script_problems(text)
    for src in parser.images:
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            problems.append("an embedded image that is not a PNG")
    assert not problems, problems
    return parser


@pytest.mark.parametrize("student", list(CLASS))
def test_feedback_html_is_valid_and_offline(graded, student):
    check_html((graded[0] / student / "feedback.html").read_text())


def test_summary_html_is_valid_offline_and_has_every_section(graded):
    reports, _ = graded
    text = (reports / "summary.html").read_text()
    parser = check_html(text)
    assert parser.images == [] and "<script>" in text  # charts are SVG and CSS; sort and filter are the script
    sections = ["counts", "distribution", "students", "pass-rates", "tests", "problems"]
    assert [text.index(f'id="{s}"') for s in sections] == sorted(text.index(f'id="{s}"') for s in sections)
    # every test, most failed first, collapsed
    table = text[text.index('id="tests"'):text.index('id="problems"')]
    assert '<details id="every-test">' in table
    rates = [int(r) for r in re.findall(r'<td class="num">(\d+)%</td>', table)]
    assert rates and rates == sorted(rates)
    # the submissions not graded and why
    problems = text[text.index('id="problems"'):]
    assert "erin" in problems and "is empty" in problems
    students = text[text.index('id="students"'):text.index('id="pass-rates"')]
    for student in CLASS:
        results = results_of(reports, student)
        seconds = f"{results.execution_time:.1f}"
        assert re.search(rf'<td><a href="{student}/feedback.html">{student}</a></td>.*?<td class="num" '
                         rf'data-sort="{results.score}">{results.score:g}</td>.*?<td class="num" data-sort="[\d.]+">'
                         rf"{seconds}</td>", students, re.S), student


def test_summary_lists_grader_errors_from_extra_data():
    toy = load_assignment(TOY)
    ok = Results(score=1.0, max_score=1.0, output="", tests=[], execution_time=2.5, meta=SubmissionMeta("ok"))
    broken = grader_failure(Submission("broken", None, None), "Traceback ...\nRuntimeError: the pool died")
    text = render_summary(toy, [ok, broken])
    check_html(text)
    errors = text[text.index('id="problems"'):]
    assert "broken" in errors and "grader error" in errors and "RuntimeError: the pool died" in errors


# ---------------------------------------------------------------- what a student sees

def test_feedback_shows_total_tables_messages_and_diagnosis(graded):
    reports, _ = graded
    md = (reports / "carol" / "feedback.md").read_text()
    assert "**Score: 7 / 11**" in md
    assert "| `double` | 0 / 4 | ❌ 0 of 2 |" in md and "| `relu` | 3 / 3 | ✅ 1 of 1 |" in md
    assert "## `double`: 0 / 4" in md and "## `relu`" not in md  # passing functions: only their row
    assert "double is wrong for shape" in md
    toy = load_assignment(TOY)
    results = results_of(reports, "carol")
    results.tests[0].message = "conv2d_forward is wrong for x (2, 5, 5, 3)."
    results.tests[0].diagnosis = "the kernel is not flipped."
    md, html = render_feedback_md(toy, results), render_feedback_html(toy, results)
    assert "*Probably:* the kernel is not flipped." in md
    assert "Probably: the kernel is not flipped." in html


def test_hidden_tests_show_only_name_and_pass_fail(graded):
    reports, _ = graded
    results = results_of(reports, "bob")
    hidden = [t for t in results.tests if t.visibility != "visible"]
    assert hidden and HIDDEN_MESSAGE in hidden[0].message  # the TA's results.json keeps it
    for name in ("feedback.md", "feedback.html", "junit.xml"):
        text = (reports / "bob" / name).read_text()
        assert hidden[0].name in text and HIDDEN_MESSAGE not in text, name
    toy = load_assignment(TOY)
    assert "Hidden tests failed (details are not shown): test_row_sums_partial" in render_feedback_md(toy, results)


def test_hidden_output_is_configurable_per_assignment(graded, tmp_path):
    shutil.copytree(TOY, tmp_path / "toy")
    config = tmp_path / "toy" / "assignment.toml"
    config.write_text(config.read_text() + "\n[visibility]\nhidden_output = true\n")
    shown = load_assignment(tmp_path / "toy")
    assert shown.hidden_output and not load_assignment(TOY).hidden_output
    results = results_of(graded[0], "bob")
    assert HIDDEN_MESSAGE in render_feedback_md(shown, results)
    assert HIDDEN_MESSAGE in render_feedback_html(shown, results)
    assert HIDDEN_MESSAGE not in render_feedback_md(dataclasses.replace(shown, hidden_output=False), results)


def test_student_text_is_escaped(graded):
    reports, _ = graded
    results = results_of(reports, "mallory")
    assert any("<script>" in t.message for t in results.tests)
    html = (reports / "mallory" / "feedback.html").read_text()
    check_html(html)
    assert "&lt;script&gt;" in html
    md = (reports / "mallory" / "feedback.md").read_text()
    outside_code = re.sub(r"^( *)(`{3,})text\n.*?^\1\2$", "", md, flags=re.S | re.M)
    assert outside_code.count("```") == 0, outside_code
    assert "<script" not in outside_code and "](http" not in outside_code
    for line in md.splitlines():
        if line.startswith("| test_double"):
            assert line.count(" | ") == 2, line  # a | in a message cannot add a table column


# ---------------------------------------------------------------- JUnit, as dorny/test-reporter and mikepenz read it

def _number(value) -> float:
    assert value is not None and re.fullmatch(r"\d+(\.\d+)?", value), value
    return float(value)


@pytest.mark.parametrize("student", list(CLASS))
def test_junit_has_the_structure_the_reporters_parse(graded, student):
    reports, _ = graded
    results = results_of(reports, student)
    root = ET.parse(reports / student / "junit.xml").getroot()
    # dorny/test-reporter java-junit: <testsuites time> > <testsuite name time> > <testcase name classname time>,
    # a failure is a <failure> child (its message attribute and text are shown)
    assert root.tag == "testsuites"
    _number(root.get("time"))
    suites = root.findall("testsuite")
    assert suites and all(s.get("name", "").strip() for s in suites)
    cases = []
    for suite in suites:
        _number(suite.get("time"))
        children = suite.findall("testcase")
        assert int(suite.get("tests")) == len(children)
        assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in children)
        assert int(suite.get("errors")) == sum(c.find("error") is not None for c in children)
        assert int(suite.get("skipped")) == 0
        for case in children:
            assert case.get("name", "").strip() and case.get("classname")
            _number(case.get("time"))
            # mikepenz/action-junit-report: file (and line) for the annotation, message or text of the failure
            assert case.get("file") == "toy.ipynb" and int(case.get("line")) >= 1
            for bad in (case.find("failure"), case.find("error")):
                if bad is not None:
                    assert (bad.get("message") or (bad.text or "")).strip()
        cases += children
    assert int(root.get("tests")) == len(cases)
    assert int(root.get("failures")) == sum(c.find("failure") is not None for c in cases)
    graded_cases = [c for c in cases if c.find("error") is None]
    assert [c.get("name") for c in graded_cases] == [t.name for t in results.tests]
    failed = {c.get("name") for c in graded_cases if c.find("failure") is not None}
    assert failed == {t.name for t in results.tests if t.status != "passed"}


def test_junit_of_a_grader_failure_is_one_error():
    toy = load_assignment(TOY)
    root = ET.fromstring(render_junit(toy, grader_failure(Submission("x", None, None), "boom")))
    assert root.get("errors") == "1" and len(root.iter("error").__next__().get("message")) > 0


# ---------------------------------------------------------------- Gradescope's results.json schema

NUMBER = (int, float)
TOP = {"score": NUMBER, "max_score": NUMBER, "execution_time": NUMBER, "output": str, "output_format": str,
       "test_output_format": str, "test_name_format": str, "visibility": str, "stdout_visibility": str,
       "extra_data": dict, "tests": list, "leaderboard": list}
TEST = {"score": NUMBER, "max_score": NUMBER, "status": str, "name": str, "name_format": str, "number": str,
        "output": str, "output_format": str, "tags": list, "visibility": str, "extra_data": dict}
FORMATS = ("text", "html", "simple_format", "md", "ansi")


def gradescope_schema_problems(data) -> list[str]:
    """Where data departs from Gradescope's results.json specification (plus our max_score)."""
    problems = []

    def check(obj, spec, where, required):
        if not isinstance(obj, dict):
            return problems.append(f"{where} is not an object")
        for key in required:
            if key not in obj:
                problems.append(f"{where} has no {key}")
        for key, value in obj.items():
            if key not in spec:
                problems.append(f"{where} has unknown key {key}")
            elif not isinstance(value, spec[key]) or isinstance(value, bool):
                problems.append(f"{where}.{key} is {type(value).__name__}")

    check(data, TOP, "results", ("score", "tests"))
    if problems:
        return problems
    for key in ("visibility", "stdout_visibility"):
        if key in data and data[key] not in VISIBILITIES:
            problems.append(f"results.{key} is {data[key]}")
    for key in ("output_format", "test_output_format"):
        if key in data and data[key] not in FORMATS:
            problems.append(f"results.{key} is {data[key]}")
    for i, test in enumerate(data["tests"]):
        where = f"tests[{i}]"
        check(test, TEST, where, ("name", "score", "max_score", "status", "output", "visibility"))
        if not isinstance(test, dict):
            continue
        if test.get("status") not in ("passed", "failed"):
            problems.append(f"{where}.status is {test.get('status')}")
        if test.get("visibility") not in VISIBILITIES:
            problems.append(f"{where}.visibility is {test.get('visibility')}")
        if not all(isinstance(tag, str) for tag in test.get("tags", [])):
            problems.append(f"{where}.tags are not strings")
        if isinstance(test.get("score"), NUMBER) and isinstance(test.get("max_score"), NUMBER) \
                and not 0 <= test["score"] <= test["max_score"] + 1e-9:
            problems.append(f"{where}.score is outside 0..max_score")
    adjusted = (data.get("extra_data") or {}).get("adjustments")  # Gradescope's score may override the tests' sum
    if adjusted:
        late = adjusted.get("late") or {"points": 0}
        if abs(adjusted["before_penalty"] - late["points"] - data["score"]) > 1e-6:
            problems.append("score is not the adjusted score minus the late penalty")
    elif data["tests"] and abs(sum(t.get("score", 0) for t in data["tests"]) - data["score"]) > 1e-6:
        problems.append("score is not the sum of the tests' scores")
    return problems


@pytest.mark.parametrize("student", list(CLASS))
def test_results_json_matches_the_gradescope_schema(graded, student):
    data = json.loads((graded[0] / student / "results.json").read_text())
    assert gradescope_schema_problems(data) == []


def test_the_schema_check_catches_departures():
    assert gradescope_schema_problems({"score": 1, "tests": [{"name": "a", "score": 2, "max_score": 1,
                                                               "status": "ok", "output": "", "visibility": "x"}]})
    assert gradescope_schema_problems({"tests": []}) == ["results has no score"]


# ---------------------------------------------------------------- headless Chromium

def chromium() -> str:
    """Chromium's path; a skip only outside CI (in CI a missing browser is a failure)."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed (CI installs Debian's chromium package in .ci/run)")
    pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")


def test_missing_chromium_skips_only_outside_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os.path, "exists", lambda path: False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        chromium()


def screenshot(browser: str, page: Path, tmp_path: Path) -> tuple[Path, str]:
    png = tmp_path / f"{page.stem}.png"
    profile = tmp_path / "profile"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--window-size=1200,1600", f"--screenshot={png}", "--enable-logging=stderr", "--v=0",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert result.returncode == 0 and png.is_file(), result.stderr[-3000:]
    return png, result.stderr


@pytest.mark.parametrize("page", ["summary.html", "bob/feedback.html"])
def test_pages_render_in_headless_chromium(graded, page, tmp_path):
    import numpy as np
    from matplotlib import image
    browser = chromium()
    png, log = screenshot(browser, graded[0] / page, tmp_path)
    console = [line for line in log.splitlines() if re.search(r"CONSOLE[(:]\d", line)]
    assert console == [], console  # no console errors (a blocked network load would be one)
    pixels = image.imread(png)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    rgb = (pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    colours = np.unique(rgb, axis=0)
    not_white = np.mean(np.any(rgb < 245, axis=1))
    assert len(colours) > 20 and not_white > 0.01, (len(colours), not_white)
