"""The student's notebook inside feedback.html: rendered with nbconvert, sanitized, annotated.

The notebook is hostile input. What is rendered comes from the results model (the cells as saved,
with only text, error and PNG outputs: no HTML, JavaScript or SVG outputs survive ingest). nbconvert
renders it with templates/nbconvert/feedback_notebook: code and text outputs are escaped, PNGs are
embedded base64, and each Markdown cell's HTML is cleaned with bleach against an allowlist (no
script, style, frame, form or link element, no event handler, no URL but `data:image/png` images and
in-page anchors). The page's Content-Security-Policy forbids scripts and network loads as a second layer.

Each graded function's cell is followed by a note with its points and most likely mistake, and each
cell that failed when the grader ran it by what it raised. Cells are labelled with their position
from the top (every cell counted), the numbering the rest of the feedback uses.
"""
from __future__ import annotations

import contextlib
import functools
import re
import secrets
from pathlib import Path

import bleach
import nbformat
from markupsafe import Markup, escape
from nbconvert import HTMLExporter, TemplateExporter
from nbconvert.filters import Highlight2HTML
from pygments.token import STANDARD_TYPES

from grader.reports.view import TEMPLATES, StudentView, render
from grader.results import Results

TAGS = {"a", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
        "img", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
        "tr", "ul"}
NOTE_TAG = "grader-note"


# Classes a student's Markdown may carry: the code highlighter's, never one the page's own stylesheet styles
# (a student must not be able to draw the grader's notes or score)
PAGE_CLASSES = set(re.findall(r"\.([A-Za-z][\w-]*)", (TEMPLATES / "style.css").read_text()))
STUDENT_CLASSES = (set(STANDARD_TYPES.values()) | {"highlight"}) - PAGE_CLASSES - {""}
MAX_DEPTH = 100  # nesting of a Markdown cell's HTML: the sanitizer's time grows as its square
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)[^>]*?(/?)>")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def _allowed(tag: str, name: str, value: str) -> bool:
    """Attributes kept: the highlighter's classes, in-page links, embedded PNG images and their alt text."""
    if name == "class":
        return all(c in STUDENT_CLASSES for c in value.split())
    if tag == "a" and name == "href":
        return value.startswith("#")
    if tag == "img":
        return name == "alt" or (name == "src" and value.startswith("data:image/png;base64,"))
    return False


def _depth(html: str) -> int:
    """How deeply the tags of html nest (linear: what bleach is given must be shallow)."""
    depth = deepest = 0
    for closing, tag, self_closing in _TAG.findall(html):
        if closing:
            depth = max(0, depth - 1)
        elif not self_closing and tag.lower() not in _VOID:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def sanitize(html: str) -> str:
    """HTML reduced to the allowlist; anything else is shown as text (escaped), never interpreted. An image
    left without an embedded PNG is dropped; markup nested deeper than MAX_DEPTH is shown as text whole."""
    if _depth(html) > MAX_DEPTH:
        return f"<pre>{escape(html)}</pre>"
    clean = bleach.clean(html, tags=TAGS, attributes=_allowed, protocols={"data"}, strip=False, strip_comments=True)
    return re.sub(r'<img(?![^>]*\ssrc="data:image/png;base64,)[^>]*>', "", clean)


def _output(output) -> nbformat.NotebookNode:
    if output.kind == "image" and re.fullmatch(r"[A-Za-z0-9+/]+=*", output.text):
        return nbformat.NotebookNode(output_type="display_data", data={"image/png": output.text}, metadata={})
    return nbformat.NotebookNode(output_type="stream", name="stderr" if output.kind == "error" else "stdout",
                                 text=output.text)


def _cell(kind: str, source: str, **fields) -> nbformat.NotebookNode:
    """A cell built directly (nbformat's new_*_cell validates each one: a tenth of a second per notebook)."""
    return nbformat.NotebookNode(cell_type=kind, source=source, metadata=fields.pop("metadata", {}), **fields)


def _notebook(results: Results, notes: dict[int, list[str]]) -> nbformat.NotebookNode:
    """An nbformat notebook of the saved cells, with a placeholder cell after each annotated one."""
    node = _new_notebook()
    for cell in results.meta.source:
        if cell.kind == "markdown":
            node.cells.append(_cell("markdown", cell.source))
        else:  # code, and raw cells shown as code (never interpreted)
            node.cells.append(_cell("code", cell.source, outputs=[_output(o) for o in cell.outputs],
                                    execution_count=None))
        for placeholder in notes.get(cell.position, []):
            node.cells.append(_cell("markdown", placeholder, metadata={"tags": [NOTE_TAG]}))
    for number, cell in enumerate(node.cells):
        cell.id = f"cell-{number}"
    return node


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter without its final pass, in which it parses the page it rendered again with
    BeautifulSoup to add alt text (feedback_notebook sets it) and JupyterLab's tabindex attributes (not in
    that template): a third of the time of a notebook's render."""

    def from_notebook_node(self, nb, resources=None, **kw):
        """The notebook rendered by the template (whose filters are registered once, below)."""
        return TemplateExporter.from_notebook_node(self, nb, resources, **kw)


# Created when the renderers are imported (grader.batch.preload_renderers), before any student process starts.
EXPORTER = FeedbackExporter(template_name="feedback_notebook",
                            extra_template_basedirs=[str(TEMPLATES / "nbconvert")],
                            exclude_input_prompt=True, exclude_output_prompt=True, anchor_link_text="")


@functools.lru_cache(maxsize=4096)
def markdown_cell(source: str) -> str:
    """A Markdown cell rendered by nbconvert (the cells carry no attachments) and sanitized. Cached: the notebooks
    of a class share the starter's cells, rendered while the first workers grade (warm_up)."""
    return sanitize(EXPORTER.markdown2html({}, source))


EXPORTER.register_filter("markdown_cell", markdown_cell)
EXPORTER.register_filter("highlight_code", Highlight2HTML(parent=EXPORTER))  # named by nbconvert's base template


def _new_notebook() -> nbformat.NotebookNode:
    """An empty v4 notebook (nbformat's new_notebook validates it: its schema compiles in a tenth of a second)."""
    return nbformat.NotebookNode(nbformat=4, nbformat_minor=5, metadata={}, cells=[])


def warm_up(starter: Path) -> None:
    """Render a two-cell notebook once, so that nbconvert's templates are compiled before the first feedback, and
    the starter notebook's Markdown cells, which most students leave as they are (the batch does it while its
    first workers grade)."""
    node = _new_notebook()
    node.cells = [_cell("markdown", "*warm*", id="warm-1"), _cell("code", "pass", id="warm-2", outputs=[],
                                                                   execution_count=None)]
    EXPORTER.from_notebook_node(node)
    with contextlib.suppress(OSError, ValueError):  # no starter (yet): nothing to warm
        for cell in nbformat.read(starter, as_version=4).cells:
            if cell.cell_type == "markdown":
                markdown_cell(cell.source)


def render_notebook(results: Results, view: StudentView) -> Markup:
    """The notebook as safe HTML with its notes, or empty when the results hold no notebook."""
    if not results.meta.source:
        return Markup("")
    nonce = secrets.token_hex(16)  # a placeholder no student cell can contain
    notes: dict[int, list[str]] = {}
    html_notes: dict[str, str] = {}

    def add(position: int, html: str) -> None:
        key = f"GRADERNOTE{nonce}N{len(html_notes)}"
        notes.setdefault(position, []).append(key)
        html_notes[key] = html

    for cell in view.cell_errors:
        add(cell.position, render("notebook_note.html.j2", cell=cell, function=None))
    for function in view.functions:
        position = results.meta.defined_in.get(function.name)
        if position is not None:
            add(position, render("notebook_note.html.j2", cell=None, function=function))
    body, _ = EXPORTER.from_notebook_node(_notebook(results, notes))
    body = re.sub(rf"<p>(GRADERNOTE{nonce}N\d+)</p>", lambda m: html_notes.get(m.group(1), ""), body)
    return Markup(body)
