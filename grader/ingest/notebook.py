"""Ingest: a notebook file becomes a list of plain-Python code cells.

IPython syntax is turned into Python with IPython's own input transformer, then every
magic and shell escape is neutralised: `%%time` and friends keep their body, other magics
and `!shell` commands are dropped and noted. Every statement the student wrote keeps its line,
so a traceback points at the student's own line. Nothing here executes student code.

The notebook's outline (grader.ingest.outline) and the cells as saved (for the feedback) are read here too.
"""
from __future__ import annotations

import ast
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.errors import IngestError
from grader.ingest.outline import Outline, outline, shown_cells
from grader.ingest.submissions import UnsafeFile, read_regular
from grader.results import NotebookCell

BODY_CELL_MAGICS = {"time", "timeit", "capture", "prun"}


@dataclass
class Notebook:
    """The code cells of a submission, as Python, plus what ingest noticed.

    positions[i] is the position of code cell i in the notebook, counting every cell from 1 (Markdown
    included): the numbering the reports use."""
    cells: list[str]
    notes: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    shown: list[NotebookCell] = field(default_factory=list)
    outline: Outline = field(default_factory=Outline)


@functools.cache
def _ipython_transformer():
    """IPython's input transformer, imported only for a cell that is not plain Python."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager()


def read_notebook(path: Path) -> Notebook:
    """Read any nbformat version; raise IngestError with a student-readable reason.

    The file is opened without following a link and must be a regular file under the size limit
    (see grader.ingest.submissions.open_regular): a notebook that is a link to another notebook
    (the master solution, a classmate's) is refused, and a FIFO never blocks.
    """
    path = Path(path)
    try:
        raw = read_regular(path.parent, path.name).decode("utf-8")
    except UnsafeFile as exc:
        raise IngestError(f"{path.name} cannot be graded: {exc}")
    except UnicodeDecodeError:
        raise IngestError(f"{path.name} is not a text file; submit the .ipynb saved by Jupyter")
    if not raw.strip():
        raise IngestError(f"{path.name} is empty (0 bytes of notebook); save the notebook and submit it again")
    try:
        node = nbformat.reads(raw, as_version=4)
    except (json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
        raise IngestError(f"{path.name} is not valid notebook JSON (is it corrupted or truncated?): {exc}")
    except Exception as exc:  # nbformat raises several kinds for malformed structure
        raise IngestError(f"{path.name} could not be read as a Jupyter notebook: {exc}")
    code = [(position, cell) for position, cell in enumerate(node.get("cells", []), 1)
            if cell.get("cell_type") == "code"]
    sources = [cell.get("source", "") for _, cell in code]
    sources = ["".join(s) if isinstance(s, list) else str(s) for s in sources]
    if not any(s.strip() for s in sources):
        raise IngestError(f"{path.name} has no code: the notebook holds no code cells with anything in them")
    notebook = Notebook(cells=[], positions=[position for position, _ in code], shown=shown_cells(node))
    for position, source in zip(notebook.positions, sources):
        notebook.cells.append(to_python(source, position, notebook.notes))
    notebook.outline = outline(notebook.cells, notebook.positions)
    return notebook


UNPARSEABLE = (SyntaxError, ValueError, MemoryError, RecursionError)  # what ast raises on hostile source


def parse_cell(source: str) -> ast.Module | None:
    """The cell's syntax tree, or None if it cannot be parsed (the student process then reports why)."""
    try:
        return ast.parse(source)
    except UNPARSEABLE:
        return None


def to_python(source: str, number: int, notes: list[str]) -> str:
    """Translate one cell's IPython source into Python with no magics or shell escapes (number: the
    cell's position, for the notes). Every statement keeps its line, so tracebacks show the student's lines.

    A cell that is already valid Python skips IPython's transformer (which leaves such a cell as it is)."""
    magic, _, body = source.partition("\n")
    if re.fullmatch(r"%%(" + "|".join(BODY_CELL_MAGICS) + r")\b.*", magic.strip()):
        source = "# " + magic + "\n" + body  # the body keeps its lines
    python, tree = source, parse_cell(source)
    try:
        if tree is None:
            python = _ipython_transformer().transform_cell(source)
            python = "\n" * (_blank_lead(source) - _blank_lead(python)) + python  # IPython drops leading blanks
            tree = ast.parse(python)
        neutraliser = _Neutraliser(number, notes)
        tree = neutraliser.visit(tree)
        if not neutraliser.changed:
            return python
        ast.fix_missing_locations(tree)
        return keeping_lines(tree.body, python)
    except UNPARSEABLE:
        return source  # the student process reports the error for this cell


def _blank_lead(text: str) -> int:
    """How many blank lines text starts with."""
    lines = text.splitlines()
    return next((i for i, line in enumerate(lines) if line.strip()), len(lines))


COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While, ast.With,
            ast.AsyncWith, ast.Try, ast.TryStar, ast.Match)


def _first_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", None) or []
    return min([stmt.lineno] + [d.lineno for d in decorators])


def _original_text(stmt: ast.stmt, source: str, lines: list[str]) -> str:
    """The statement as written in source (decorators included)."""
    first = _first_line(stmt)
    head = lines[first - 1:stmt.lineno - 1] if first < stmt.lineno else []
    return "".join(head) + (ast.get_source_segment(source, stmt) or ast.unparse(stmt))


def keeping_lines(body: list[ast.stmt], source: str) -> str:
    """Python for these top-level statements (parsed from source, some perhaps changed or dropped) in which
    every statement starts on the line it has in source: a statement left as it was keeps its text, so
    every line inside it keeps its number too; a changed one is unparsed at its line."""
    lines = source.splitlines(keepends=True)
    original = {(s.lineno, s.col_offset): ast.dump(s) for s in ast.parse(source).body}
    out: list[str] = []
    for stmt in body:
        same = original.get((stmt.lineno, stmt.col_offset)) == ast.dump(stmt)
        chunk = (_original_text(stmt, source, lines) if same else ast.unparse(stmt)).splitlines() or [""]
        target = _first_line(stmt) - 1
        if len(out) <= target:
            out += [""] * (target - len(out)) + chunk
        elif len(out) == target + 1 and not isinstance(stmt, COMPOUND) and out[-1].strip():
            out[-1] += "; " + chunk[0]  # statements that shared a line (a = 1; b = 2) share it again
            out += chunk[1:]
        else:
            out += chunk
    return "\n".join(out) + "\n"


def _ipython_method(node: ast.AST) -> str | None:
    """'system' for get_ipython().system(...), else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Call)
            and isinstance(node.func.value.func, ast.Name) and node.func.value.func.id == "get_ipython"):
        return node.func.attr
    return None


def _literal_args(node: ast.Call) -> list:
    return [a.value if isinstance(a, ast.Constant) else "" for a in node.args]


class _Neutraliser(ast.NodeTransformer):
    def __init__(self, number: int, notes: list[str]):
        self.number, self.notes = number, notes
        self.changed = False

    def visit_Expr(self, node: ast.Expr):
        method = _ipython_method(node.value)
        if method == "run_cell_magic":
            assert isinstance(node.value, ast.Call)  # _ipython_method found a call
            name, _line, body = (_literal_args(node.value) + ["", "", ""])[:3]
            self.changed = True
            if name in BODY_CELL_MAGICS:
                statements = ast.parse(to_python(body, self.number, self.notes)).body
                for statement in statements:  # the body starts on the line after the magic
                    ast.increment_lineno(statement, node.lineno)
                return statements or ast.copy_location(ast.Pass(), node)
            self.notes.append(f"cell {self.number}: the %%{name} cell magic is not run by the grader")
            return ast.copy_location(ast.Pass(), node)
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call):
        method = _ipython_method(node)
        if method is None:
            return self.generic_visit(node)
        self.changed = True
        args = " ".join(str(a) for a in _literal_args(node))
        script = RUN_SCRIPT.fullmatch(args) if method == "run_line_magic" else None
        if script:
            return _run_script(script["path"])
        if method == "run_line_magic" and args.startswith("run "):
            self.notes.append(f"cell {self.number}: `%{args}` skipped: the grader runs `%run file.py` only for a "
                              ".py file submitted beside the notebook, with no arguments")
        elif method in ("system", "getoutput"):
            self.notes.append(f"cell {self.number}: shell command skipped (the grader never runs `!{args}`)")
        elif method != "run_line_magic" or not args.startswith(("matplotlib", "pinfo", "load_ext")):
            self.notes.append(f"cell {self.number}: magic skipped ({method} {args})")
        return ast.Constant(value=None)


RUN_SCRIPT = re.compile(r"run (-i )?(?P<path>[\w\-][\w.\-/]*\.py)")  # %run of a file submitted with the notebook


def _run_script(path: str) -> ast.expr:
    """%run path.py, as the grader runs it: the file's code in the notebook's namespace (as %run -i)."""
    code = f"exec(compile(open({path!r}, encoding='utf-8').read(), {path!r}, 'exec'), globals())"
    return ast.parse(code, mode="eval").body


DEFINITION_NODES = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _is_simple_value(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return isinstance(node, (ast.Name, ast.Attribute))


def _binds_names(node: ast.Assign | ast.AnnAssign) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return all(isinstance(t, ast.Name) or (isinstance(t, ast.Tuple) and all(isinstance(e, ast.Name) for e in t.elts))
               for t in targets)


def keep_definitions(source: str) -> str:
    """Keep only imports, def/class and assignments of literals or names to plain names, from one cell."""
    tree = parse_cell(source)
    if tree is None:
        return source
    kept: list[ast.stmt] = [node for node in tree.body if isinstance(node, DEFINITION_NODES)
            or (isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
                and _binds_names(node) and _is_simple_value(node.value))]
    return keeping_lines(kept, source)
