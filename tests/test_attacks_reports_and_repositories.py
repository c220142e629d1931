"""Attacks on what the grader builds from a submission for people to read (feedback.html's notebook,
feedback.md) and on the commit time read from a student's repository, found by a red team. Each docstring says
what the student does and what the grader does instead."""
from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from grader.ingest.git_time import last_commit_time
from grader.ingest.outline import shown_cells
from grader.reports import notebook as nb_report
from grader.results import _bound_source
from tests.conftest import TOY, run_grader, toy_notebook, write_student

FORGED_NOTE = ('<div class="note note-pass"><b><code>double</code>: 4 / 4 points</b>, 9 of 9 tests passed.</div>'
               '<p class="score">Score: 7 / 7</p><div class="cell">x</div>')


@pytest.fixture(scope="module")
def forged(tmp_path_factory) -> Path:
    """One toy submission graded by the real command: `double` raises with a URL in its message, and a
    Markdown cell carries HTML with the grader's own CSS classes."""
    root = tmp_path_factory.mktemp("redteam2")
    student = toy_notebook({"    return 2 * np.asarray(x)\n":
                            "    raise ValueError('regrade at https://evil.example/regrade or www.evil.example')\n"})
    student.cells.insert(1, nbformat.v4.new_markdown_cell(FORGED_NOTE))
    write_student(root / "subs", "eve", student)
    run_grader("grade", str(TOY), str(root / "subs"), "--reports", str(root / "out"), "--jobs", "2", "--quiet")
    return root / "out" / "eve"


def test_markdown_cannot_borrow_the_graders_css_classes(forged):
    """Attack: the sanitizer keeps `class` on every allowed tag, so a Markdown cell can write
    `<div class="note note-pass">double: 4 / 4 points</div>` or `<p class="score">Score: 7 / 7</p>`, which
    feedback.html's own stylesheet renders exactly like the grader's green note and score line (a forged
    "full marks" right under the student's own function), and `class="cell"` shifts the page's CSS cell
    counter so the "cell N" labels no longer match the cell numbers the errors cite.
    Safe: student Markdown keeps no class the page's stylesheet styles (drop `class`, or keep only classes
    outside the grader's namespace), so nothing a student writes looks like the grader's words."""
    html = forged.joinpath("feedback.html").read_text()
    notebook = html[html.index("Your notebook"):]
    blocks = [b.split("\n</div>\n</div>\n</div>")[0] for b in notebook.split('rendered_html">')[1:]]
    markdown = next(b for b in blocks if "4 / 4 points" in b)  # the student's rendered Markdown cell
    used = {c for value in re.findall(r'class="([^"]*)"', markdown) for c in value.split()}
    page = {"note", "note-pass", "note-fail", "score", "cell", "pass", "fail", "hint", "muted", "group"}
    assert not used & page, f"student Markdown uses the page's own classes: {sorted(used & page)}"


def test_feedback_md_gives_no_clickable_link_from_a_students_message(forged):
    """Attack: a student's function raises `ValueError('regrade at https://evil.example/regrade')`; the
    message is Markdown-escaped (no `[text](url)`, no HTML) but a bare URL or `www.` host still becomes a
    link in GitHub-flavoured Markdown (autolink), so feedback.md shown on GitHub or Gradescope carries a
    clickable phishing link in the grader's voice ("Cell 7 raised ...").
    Safe: outside code blocks, student text breaks autolinks (e.g. `https\\://`, or the message in a code
    span), so no student-written URL is clickable."""
    md = forged.joinpath("feedback.md").read_text()
    prose = re.sub(r"(?m)^( {4,}|\t).*$", "", re.sub(r"```.*?```", "", md, flags=re.S))  # code is never linked
    prose = re.sub(r"`[^`\n]*`", "", prose)
    assert not re.search(r"https?://evil\.example|(?<![\w.])www\.evil\.example", prose), \
        "a student's URL is autolinked in feedback.md"


class _Depth(HTMLParser):
    """The deepest element nesting in an HTML fragment (unclosed elements count as open)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = self.deepest = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag not in {"br", "hr", "img"}:
            self.depth += 1
            self.deepest = max(self.deepest, self.depth)

    def handle_endtag(self, tag) -> None:
        self.depth = max(0, self.depth - 1)


def test_deeply_nested_markdown_never_reaches_the_sanitizer(monkeypatch):
    """Attack: bleach's html5lib pass is quadratic in nesting depth. Each shown cell is clipped to 20,000
    characters and 500 cells are kept (results.bound), but 20,000 characters of `<ul><li>` in one Markdown
    cell take about 1 s to sanitize (5,000 `<div>`: 0.9 s; 20,000: 14 s), so one notebook of 500 such cells
    holds its feedback rendering for about 8 minutes (no time limit on rendering), and a few such students
    stall the class's reports.
    Safe: what reaches the sanitizer is shallow (nesting capped, or the cell shown escaped as text past a
    depth), so a notebook's rendering cost is linear in its bounded size. Measured by the depth the
    sanitizer is given, never by time."""
    depths: list[int] = []

    def record(html: str, **_) -> str:
        parser = _Depth()
        parser.feed(html)
        depths.append(parser.deepest)
        return ""

    monkeypatch.setattr(nb_report.bleach, "clean", record)
    node = nbformat.v4.new_notebook()
    node.cells = [nbformat.v4.new_markdown_cell("<ul><li>" * 50_000) for _ in range(3)]
    meta = SimpleNamespace(source=shown_cells(node), defined_in={}, notes=[])
    _bound_source(meta)  # exactly what results.json keeps and feedback.html renders
    html = nb_report.render_notebook(SimpleNamespace(meta=meta), SimpleNamespace(cell_errors=[], functions=[]))
    assert max(depths, default=0) <= 100, f"the sanitizer was given markup {max(depths)} levels deep"
    assert html.count("&lt;ul&gt;&lt;li&gt;") >= 3 * 1000, "each too-deep cell is shown as text"


def _git(*args: str, cwd: Path, date: str = "2030-01-01T00:00:00+00:00") -> str:
    env = {"GIT_AUTHOR_NAME": "s", "GIT_AUTHOR_EMAIL": "s@x", "GIT_COMMITTER_NAME": "s",
           "GIT_COMMITTER_EMAIL": "s@x", "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date,
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_commit_time_reads_no_object_outside_the_clone(tmp_path):
    """Attack: git_time runs `git show` with GIT_OBJECT_DIRECTORY set to the student's `.git/objects`, and git
    honours `objects/info/alternates` there. A student writes the path of any other object store (another
    student's clone in the same submissions folder, the grader's own checkout) into it and points HEAD at a
    commit found only there: the grader reads objects outside the submission and takes that commit's date
    (here an on-time one from another repository instead of the student's own late commit). An alternates
    file naming a FIFO or a slow mount also holds each student for the full git time limit.
    Safe: the commit is read only from the student's own object folder (no alternates followed: e.g. copy
    the needed objects, or check that objects/info/alternates is absent), else no time and a warning."""
    other = tmp_path / "other"
    other.mkdir()
    _git("init", "-q", cwd=other)
    _git("commit", "-q", "--allow-empty", "-m", "on time", cwd=other, date="2001-01-01T00:00:00+00:00")
    outside = _git("rev-parse", "HEAD", cwd=other)
    eve = tmp_path / "subs" / "eve"
    eve.mkdir(parents=True)
    _git("init", "-q", "-b", "main", cwd=eve)
    _git("commit", "-q", "--allow-empty", "-m", "late", cwd=eve)
    (eve / ".git" / "objects" / "info" / "alternates").write_text(f"{other / '.git' / 'objects'}\n")
    (eve / ".git" / "refs" / "heads" / "main").write_text(outside + "\n")
    assert last_commit_time(eve) is None, "the commit time was read from an object outside the clone"
