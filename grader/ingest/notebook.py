"""Ingest: a notebook file becomes a list of plain-Python code cells.

IPython syntax is turned into Python with IPython's own input transformer, then every
magic and shell escape is neutralised: `%%time` and friends keep their body, other magics
and `!shell` commands are dropped and noted. Nothing here executes student code.
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
from grader.ingest.submissions import UnsafeFile, read_regular

BODY_CELL_MAGICS = {"time", "timeit", "capture", "prun"}


@dataclass
class Notebook:
    """The code cells of a submission, as Python, plus what ingest noticed."""
    cells: list[str]
    notes: list[str] = field(default_factory=list)


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
    sources = [cell.get("source", "") for cell in node.get("cells", []) if cell.get("cell_type") == "code"]
    sources = ["".join(s) if isinstance(s, list) else str(s) for s in sources]
    if not any(s.strip() for s in sources):
        raise IngestError(f"{path.name} has no code: the notebook holds no code cells with anything in them")
    notebook = Notebook(cells=[])
    for number, source in enumerate(sources, 1):
        notebook.cells.append(to_python(source, number, notebook.notes))
    return notebook


UNPARSEABLE = (SyntaxError, ValueError, MemoryError, RecursionError)  # what ast raises on hostile source


def parse_cell(source: str) -> ast.Module | None:
    """The cell's syntax tree, or None if it cannot be parsed (the student process then reports why)."""
    try:
        return ast.parse(source)
    except UNPARSEABLE:
        return None


def to_python(source: str, number: int, notes: list[str]) -> str:
    """Translate one cell's IPython source into Python with no magics or shell escapes.

    A cell that is already valid Python skips IPython's transformer (which leaves such a cell as it is)."""
    python, tree = source, parse_cell(source)
    try:
        if tree is None:
            python = _ipython_transformer().transform_cell(source)
            tree = ast.parse(python)
        neutraliser = _Neutraliser(number, notes)
        tree = neutraliser.visit(tree)
        if not neutraliser.changed:
            return python
        ast.fix_missing_locations(tree)
        return ast.unparse(tree)
    except UNPARSEABLE:
        return source  # the student process reports the error for this cell


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
                return ast.parse(to_python(body, self.number, self.notes)).body or ast.Pass()
            self.notes.append(f"cell {self.number}: the %%{name} cell magic is not run by the grader")
            return ast.Pass()
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
    return ast.unparse(ast.Module(body=kept, type_ignores=[]))
