"""What the renderers share: the student's view of the results model, formatting, and the one
Jinja environment every page (feedback, summary, similarity) is rendered with.

The student's view applies the assignment's visibility policy: a hidden test (visibility other than
"visible") shows only its name and pass/fail, unless assignment.toml sets
`[visibility] hidden_output = true`. The results hold no expected values, so none can leak.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2

from grader.config import Assignment
from grader.results import Adjustments, Results, TestResult

TEMPLATES = Path(__file__).parent / "templates"
OTHER = "other"
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def is_hidden(test: TestResult) -> bool:
    return test.visibility != "visible"


def clean_text(text: str) -> str:
    """Text without the control characters XML and HTML cannot carry."""
    return _NOT_XML.sub("\ufffd", text or "")


def fmt(x: float) -> str:
    """A score for people: 3, 2.5, 0.333."""
    return f"{x:.3g}" if abs(x - round(x)) > 1e-9 and abs(x) < 100 else f"{x:g}"


@dataclass
class CaseView:
    """One test as a student may see it."""
    name: str
    passed: bool
    hidden: bool
    details: bool          # False: only the name and pass/fail may be shown
    score: float
    max_score: float
    message: str = ""
    diagnosis: str = ""

    @property
    def points(self) -> str:
        return f"{fmt(self.score)} / {fmt(self.max_score)}" if self.details else ""


@dataclass
class FunctionView:
    """The tests of one student function."""
    name: str
    tests: list[CaseView] = field(default_factory=list)
    score: float = 0.0
    max_score: float = 0.0

    @property
    def failed(self) -> list[CaseView]:
        return [t for t in self.tests if not t.passed]


@dataclass
class StudentView:
    """The feedback a student reads: total, notes, one table per function."""
    title: str
    student: str
    score: float
    max_score: float
    notes: str
    functions: list[FunctionView]
    grader_failed: bool
    hidden_note: bool
    adjustments: Adjustments | None = None  # the instructor's overrides and the late penalty (adjustments.*.j2)

    @property
    def percent(self) -> str:
        return f"{100 * self.score / self.max_score:.0f}%" if self.max_score else ""


def case_view(assignment: Assignment, test: TestResult) -> CaseView:
    hidden = is_hidden(test)
    details = not hidden or assignment.hidden_output
    passed = test.status == "passed"
    message, diagnosis = (test.message, test.diagnosis) if details and not passed else ("", "")
    return CaseView(name=test.name, passed=passed, hidden=hidden, details=details,
                    score=test.score, max_score=test.max_score,
                    message=clean_text(message), diagnosis=clean_text(diagnosis))


HIDDEN_FAILED = "hidden test failed (details are not shown)"


def student_results(assignment: Assignment, results: Results) -> Results:
    """A copy of the results as a student may read them: hidden tests' messages withheld."""
    copy = Results.from_json(results.to_json())
    if not assignment.hidden_output:
        for test in copy.tests:
            if is_hidden(test) and not test.passed:
                test.message, test.diagnosis = HIDDEN_FAILED, ""
    return copy


def function_of(test: TestResult, functions: tuple[str, ...]) -> str:
    """The function a test grades (the first it calls), as the gradebook counts it."""
    return test.functions[0] if test.functions and test.functions[0] in functions else OTHER


def student_view(assignment: Assignment, results: Results) -> StudentView:
    groups = {name: FunctionView(name) for name in assignment.functions}
    for test in results.tests:
        group = groups.setdefault(function_of(test, assignment.functions), FunctionView(OTHER))
        group.tests.append(case_view(assignment, test))
        group.score += test.score
        group.max_score += test.max_score
    if results.adjustments:  # function overrides replace the sum of their tests
        for name, points in results.function_points(assignment.functions, OTHER).items():
            if name in groups:
                groups[name].score = points
    lines = (results.output or "").splitlines()
    if lines and lines[0].startswith("Score:"):
        lines = lines[1:]
    return StudentView(
        title=assignment.title, student=results.name, score=results.score, max_score=results.max_score,
        notes=clean_text("\n".join(lines).strip()), functions=[g for g in groups.values() if g.tests],
        grader_failed=bool(results.meta.grader_error),
        hidden_note=any(is_hidden(t) for t in results.tests) and not assignment.hidden_output,
        adjustments=results.adjustments)


def md_escape(text: str) -> str:
    """Text safe inside a Markdown paragraph or table cell (no HTML, no table breaks)."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"([\\`*|])", r"\\\1", text)
    text = re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)  # intraword _ is literal in GFM
    text = re.sub(r"\[(?=[^\]]*\]\()", r"\\[", text)  # no [text](link)
    text = re.sub(r"^([#+-])", r"\\\1", text.lstrip())  # no heading or list marker
    text = re.sub(r"^(\d+)([.)])", r"\1\\\2", text)
    return " ".join(text.split())


def md_code(text: str) -> str:
    """A fenced code block whose fence no backtick run in the text can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


@cache
def environment(kind: str) -> jinja2.Environment:
    """The template environment: 'html' (autoescaped) or 'md'."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=kind == "html",
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(fmt=fmt, md=md_escape, md_code=md_code)
    return env


def render(template: str, **context) -> str:
    """Render one of templates/: *.html.j2 autoescaped, anything else (Markdown) not."""
    kind = "html" if template.endswith(".html.j2") else "md"
    return environment(kind).get_template(template).render(**context)
