"""What a notebook defines and where, which function calls which, and its cells as saved.

Static: the student's source is parsed, never run. Cells are numbered by their position in the
notebook, counting every cell from 1, Markdown included (the numbering every report uses).
"""
from __future__ import annotations

import ast
import base64
import binascii
import re
from dataclasses import dataclass, field

from grader.results import CellOutput, NotebookCell

_DEFINED_AT_TOP = re.compile(r"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)|^([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)", re.M)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Outline:
    """defined_in: top-level name -> position of the last cell that binds it; uses: top-level function ->
    the names its body reads."""
    defined_in: dict[str, int] = field(default_factory=dict)
    uses: dict[str, set[str]] = field(default_factory=dict)
    stubs: set[str] = field(default_factory=set)  # functions whose body only raises NotImplementedError

    def graded_uses(self, functions: tuple[str, ...]) -> dict[str, list[str]]:
        """Each graded function -> the other graded functions it calls, directly or through helpers
        defined in the notebook, in the assignment's order."""
        found: dict[str, list[str]] = {}
        for name in functions:
            seen: set[str] = set()
            todo = [name]
            while todo:
                current = todo.pop()
                for used in self.uses.get(current, set()) - seen:
                    seen.add(used)
                    if used not in functions:
                        todo.append(used)
            calls = [f for f in functions if f in seen and f != name]
            if calls:
                found[name] = calls
        return found


def _bound_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*"]
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _is_stub(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    body = function.body[1:] if ast.get_docstring(function) is not None else function.body
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def outline(cells: list[str], positions: list[int]) -> Outline:
    """The outline of a notebook's code cells (Python, as ingest made them) at these positions."""
    found = Outline()
    for source, position in zip(cells, positions):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            for match in _DEFINED_AT_TOP.finditer(source):  # the cell cannot run; what it meant to define
                found.defined_in[match.group(1) or match.group(2)] = position
            continue
        for stmt in tree.body:
            for name in _bound_names(stmt):
                found.defined_in[name] = position
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.uses[stmt.name] = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)
                                         and isinstance(n.ctx, ast.Load)}
                (found.stubs.add if _is_stub(stmt) else found.stubs.discard)(stmt.name)
    return found


def self_checks(cells: list[str], positions: list[int]) -> list[int]:
    """The positions of the cells that check something themselves: an `assert` outside any def or class."""
    found = []
    for source, position in zip(cells, positions):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        todo: list[ast.AST] = list(tree.body)
        while todo:
            node = todo.pop()
            if isinstance(node, ast.Assert):
                found.append(position)
                break
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                todo.extend(ast.iter_child_nodes(node))
    return found


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _png(value) -> str:
    """The base64 text of a PNG output, or "" if it is not one."""
    text = re.sub(r"\s+", "", _text(value))
    try:
        return text if base64.b64decode(text, validate=True).startswith(PNG_MAGIC) else ""
    except (binascii.Error, ValueError):
        return ""


def _outputs(cell) -> list[CellOutput]:
    """The outputs worth showing: text, errors and PNG images only (never HTML, JavaScript or SVG)."""
    shown = []
    for output in cell.get("outputs") or []:
        kind = output.get("output_type")
        data = output.get("data") or {}
        if kind == "stream":
            shown.append(CellOutput("text", _text(output.get("text"))))
        elif kind == "error":
            trace = _ANSI.sub("", "\n".join(_text(line) for line in output.get("traceback") or []))
            shown.append(CellOutput("error", trace or f"{output.get('ename', '')}: {output.get('evalue', '')}"))
        elif kind in ("execute_result", "display_data"):
            png = _png(data.get("image/png")) if "image/png" in data else ""
            if png:
                shown.append(CellOutput("image", png))
            elif "text/plain" in data:
                shown.append(CellOutput("text", _text(data["text/plain"])))
    return shown


def shown_cells(node) -> list[NotebookCell]:
    """Every cell of an nbformat notebook as saved, for the feedback's rendering of the notebook."""
    cells = []
    for position, cell in enumerate(node.get("cells", []), 1):
        kind = str(cell.get("cell_type", "code"))
        count = cell.get("execution_count") if kind == "code" else None
        cells.append(NotebookCell(position=position, kind=kind, source=_text(cell.get("source")),
                                  execution_count=count if isinstance(count, int) else None,
                                  outputs=_outputs(cell) if kind == "code" else []))
    return cells
