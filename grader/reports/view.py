"""What the renderers share: the student's view of the results model, formatting, and the one
Jinja environment every page (feedback, summary, similarity) is rendered with.

The student's view applies the assignment's visibility policy: a hidden test (visibility other than
"visible") shows only its name and pass/fail, unless assignment.toml sets
`[visibility] hidden_output = true`. The results hold no expected values, so none can leak.

It is built summary first: the score, a table per function, and "what to fix first" (each function that
lost points with its most likely mistake, once); then each function's failed cases grouped by mistake,
passing tests counted; the cells that failed, linked to the functions they left undefined. A notebook
that could not be graded at all is one message.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from grader.config import Assignment
from grader.results import CELL_NUMBERING, MISSING, NOT_IMPLEMENTED, Adjustments, Results, TestResult

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
class FailureGroup:
    """Failed cases of one function explained by one mistake (or sharing one message, when no mistake is known)."""
    diagnosis: str
    message: str                 # the message every case shares; "" when each case has its own
    cases: list[CaseView] = field(default_factory=list)

    @property
    def lost(self) -> float:
        return sum(c.max_score - c.score for c in self.cases)


@dataclass
class FunctionView:
    """The tests of one student function."""
    name: str
    tests: list[CaseView] = field(default_factory=list)
    score: float = 0.0
    max_score: float = 0.0
    groups: list[FailureGroup] = field(default_factory=list)   # failed cases with details, grouped
    calls_wrong: list[str] = field(default_factory=list)       # graded functions it calls that lose points
    advice: str = ""                                           # its most likely mistake, in one line
    fix_first: str = ""                                        # or: the wrong function it calls, to fix first

    @property
    def failed(self) -> list[CaseView]:
        return [t for t in self.tests if not t.passed]

    @property
    def passed_count(self) -> int:
        return sum(t.passed for t in self.tests)

    @property
    def hidden_failed(self) -> list[CaseView]:
        return [t for t in self.tests if not t.passed and not t.details]

    @property
    def lost_points(self) -> bool:
        return self.score < self.max_score - 1e-9


@dataclass
class CellErrorView:
    """A cell that failed when the grader ran the notebook, and the graded functions it left undefined."""
    position: int
    what: str          # "raised SyntaxError: '(' was never closed", "did not finish within 30 s ..."
    error: str         # the traceback
    broke: list[str] = field(default_factory=list)


@dataclass
class StudentView:
    """The feedback a student reads: total, what to fix first, a table per function, grouped failures."""
    title: str
    student: str
    score: float
    max_score: float
    notes: str
    functions: list[FunctionView]
    grader_failed: bool
    hidden_note: bool
    adjustments: Adjustments | None = None  # the instructor's overrides and the late penalty (adjustments.*.j2)
    problem: str = ""              # why the notebook could not be graded at all: the one message shown
    fix_first: list[FunctionView] = field(default_factory=list)
    cell_errors: list[CellErrorView] = field(default_factory=list)
    numbering: str = CELL_NUMBERING

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


def _failure_groups(cases: list[CaseView]) -> list[FailureGroup]:
    """Failed cases with details, grouped by diagnosis; those without one grouped by identical message.
    Groups that cost the most points come first."""
    groups: dict[tuple[str, str], FailureGroup] = {}
    for case in cases:
        if case.passed or not case.details:
            continue
        key = (case.diagnosis, "") if case.diagnosis else ("", case.message)
        groups.setdefault(key, FailureGroup(case.diagnosis, "" if case.diagnosis else case.message)).cases.append(case)
    for group in groups.values():
        if group.diagnosis and len({c.message for c in group.cases}) == 1:
            group.message = group.cases[0].message
    return sorted(groups.values(), key=lambda g: -g.lost)


def _advice(function: FunctionView, causes: dict[str, str]) -> str:
    """The function's most likely mistake, in one line."""
    if function.calls_wrong:
        return ""  # the templates say which function to fix first
    with_diagnosis = [g for g in function.groups if g.diagnosis]
    if with_diagnosis:
        return with_diagnosis[0].diagnosis
    if function.name in causes:
        return causes[function.name]
    if function.groups:
        top = function.groups[0]
        return top.message.splitlines()[0] if top.message else "wrong results: see the failed cases below."
    return "hidden tests failed (their details are not shown)."


def _in_fixing_order(functions: list[FunctionView]) -> list[FunctionView]:
    """The functions that lost points, each after the graded functions it calls that lose points too."""
    by_name = {f.name: f for f in functions if f.lost_points}
    ordered: list[FunctionView] = []

    def visit(function: FunctionView, path: tuple[str, ...]) -> None:
        for name in function.calls_wrong:
            if name in by_name and name not in path:
                visit(by_name[name], path + (function.name,))
        if function not in ordered:
            ordered.append(function)
    for function in by_name.values():
        visit(function, ())
    return ordered


def _cell_errors(results: Results, functions: list[FunctionView]) -> list[CellErrorView]:
    lost = {f.name for f in functions if f.lost_points}
    views = []
    for log in results.meta.cells:
        if log.status == "ok":
            continue
        position = log.position or log.number
        broke = [name for name, where in results.meta.defined_in.items() if where == position and name in lost]
        views.append(CellErrorView(position, clean_text(log.what), clean_text(log.error), broke))
    return views


def _causes(assignment: Assignment, results: Results) -> dict[str, str]:
    """Per graded function, the message of a call that gave no result at all (not defined, not implemented),
    from the tests whose messages the student may see."""
    causes: dict[str, str] = {}
    for test in results.tests:
        if test.cause in (MISSING, NOT_IMPLEMENTED) and test.culprit and (assignment.hidden_output or not is_hidden(test)):
            causes.setdefault(test.culprit, clean_text(test.message))
    return causes


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
    functions = [g for g in groups.values() if g.tests]
    lost = {f.name for f in functions if f.lost_points}
    causes = _causes(assignment, results)
    for function in functions:
        function.groups = _failure_groups(function.tests)
        function.calls_wrong = [g for g in results.meta.uses.get(function.name, []) if g in lost]
        function.advice = clean_text(_advice(function, causes)) if function.lost_points else ""
        function.fix_first = function.calls_wrong[0] if function.lost_points and function.calls_wrong else ""
    meta = results.meta
    blocked = bool(meta.problem) and not any(t.passed for t in results.tests)
    notes = "\n".join(meta.notes + [f"[... cut to keep this report bounded: {what}]" for what in meta.truncated])
    if meta.problem and not blocked:
        notes = f"{meta.problem}\n{notes}"
    return StudentView(
        title=assignment.title, student=results.name, score=results.score, max_score=results.max_score,
        notes=clean_text(notes.strip()), functions=functions,
        grader_failed=bool(results.meta.grader_error),
        hidden_note=any(is_hidden(t) for t in results.tests) and not assignment.hidden_output,
        problem=clean_text(meta.problem) if blocked else "", fix_first=[] if blocked else _in_fixing_order(functions),
        cell_errors=[] if blocked else _cell_errors(results, functions), adjustments=results.adjustments)


def md_escape(text: str) -> str:
    """Text safe inside a Markdown paragraph or table cell (no HTML, no table breaks); its `code` spans are
    kept (a code span shows its content literally)."""
    parts = re.split(r"(`[^`]+`)", " ".join(str(text).split()))
    text = "".join(part.replace("|", "\\|") if i % 2 else _md_plain(part) for i, part in enumerate(parts))
    text = re.sub(r"^([#+-])", r"\\\1", text)  # no heading or list marker
    return re.sub(r"^(\d+)([.)])", r"\1\\\2", text)


AUTOLINK = re.compile(r"(?i)(\b[a-z][a-z0-9+-]*)(://)|(\bwww)(\.)")  # what GitHub-flavoured Markdown links by itself


def _md_plain(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"([\\`*|])", r"\\\1", text)
    text = re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)  # intraword _ is literal in GFM
    text = re.sub(r"\[(?=[^\]]*\]\()", r"\\[", text)  # no [text](link)
    text = re.sub(r"\](?=\()", "&#93;", text)  # not even the end of one
    # nor a bare URL, which GitHub would link by itself: a zero-width space breaks it
    return AUTOLINK.sub(lambda m: (m.group(1) or m.group(3)) + "&#8203;" + (m.group(2) or m.group(4)), text)


def md_code(text: str) -> str:
    """A fenced code block whose fence no backtick run in the text can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def code_spans(text: str) -> Markup:
    """Text escaped for HTML, its `code` spans shown as <code>."""
    return Markup(re.sub(r"`([^`\n]+)`", r"<code>\1</code>", str(escape(text))))


@cache
def environment(kind: str) -> jinja2.Environment:
    """The template environment: 'html' (autoescaped) or 'md'."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=kind == "html",
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(fmt=fmt, md=md_escape, md_code=md_code, code_spans=code_spans)
    return env


def _template(name: str) -> jinja2.Template:
    return environment("html" if name.endswith(".html.j2") else "md").get_template(name)


def render(template: str, **context) -> str:
    """Render one of templates/: *.html.j2 autoescaped, anything else (Markdown) not."""
    return _template(template).render(**context)


def compile_templates() -> None:
    """Compile every template of templates/ now (jinja2 keeps them), not at the first report."""
    for path in sorted(TEMPLATES.glob("*.j2")):
        _template(path.name)
