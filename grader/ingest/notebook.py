"""Ingest: a notebook file becomes a list of plain-Python code cells.

IPython syntax is turned into Python with IPython's own input transformer, then every
magic and shell escape is neutralised: `%%time` and friends keep their body, other magics
and `!shell` commands are dropped and noted. Every statement the student wrote keeps its line,
so a traceback points at the student's own line. Nothing here executes student code.

The notebook's outline (grader.ingest.outline) and the cells as saved (for the feedback) are read here too.

`skip_training` is the "definitions" cell mode: every top-level statement runs except those that
load a dataset, train, evaluate or predict, or save or load model files, and those that use a
variable only such a statement creates; each skipped statement is listed with its reason.
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


MAX_ESCAPED_LINES = 50  # IPython's transformer re-reads the whole cell for each: its cost grows as their square


def _escaped_lines(source: str) -> int:
    """Lines that start a magic, a shell command or a help request (what IPython's transformer rewrites)."""
    return sum(1 for line in source.splitlines() if line.lstrip()[:1] in ("%", "!", "?") or line.rstrip()[-1:] == "?")


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
    if tree is None and _escaped_lines(source) > MAX_ESCAPED_LINES:
        notes.append(f"cell {number}: more than {MAX_ESCAPED_LINES} lines of magics or shell commands; the grader "
                     "does not translate this cell's IPython syntax, so it runs as plain Python")
        return source
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
    except UNPARSEABLE + (RuntimeError,):  # RuntimeError: IPython's transformer gave up on the cell
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


# ---------------------------------------------------------------------------------------------
# the "definitions" cell mode: every statement runs, except what trains and what depends on it

TRAINING_CALLS = {
    **dict.fromkeys(("load_data", "image_dataset_from_directory", "text_dataset_from_directory",
                     "audio_dataset_from_directory", "timeseries_dataset_from_array", "get_file"),
                    "loads a dataset"),
    **dict.fromkeys(("fit", "fit_generator", "train_on_batch"), "trains a model"),
    **dict.fromkeys(("evaluate", "evaluate_generator", "test_on_batch", "predict", "predict_generator",
                     "predict_on_batch"), "evaluates a model"),
    **dict.fromkeys(("save", "save_weights", "load_weights", "load_model", "save_model"),
                    "saves or loads a model file"),
}
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_RECURSED = (ast.If, ast.Try, ast.With, ast.AsyncWith) + ((ast.TryStar,) if hasattr(ast, "TryStar") else ())


@dataclass
class Skipped:
    """A statement the "definitions" mode does not run."""
    cell: int       # code cell, counted from 1
    line: int       # line in the cell
    statement: str  # its first line
    reason: str

    def text(self) -> str:
        return f"line {self.line}: `{self.statement}` {self.reason}"


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _walk_outside_scopes(node: ast.AST):
    """node and its descendants, without entering the bodies of nested functions, classes and lambdas
    (iteratively: a hostile cell may nest deeper than Python's recursion limit)."""
    todo = [node]
    while todo:
        current = todo.pop()
        yield current
        todo.extend(child for child in ast.iter_child_nodes(current) if not isinstance(child, _SCOPES))


def _trainers(trees: list[ast.Module | None]) -> dict[str, str]:
    """Function and method names defined in the notebook whose bodies train (directly or through each other),
    each with what it does ("loads a dataset", ...). Linear in the size of the notebook."""
    callers: dict[str, set[str]] = {}  # callee -> the notebook's functions that call it
    for tree in trees:
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in TRAINING_CALLS:
                for call in ast.walk(node):
                    if isinstance(call, ast.Call) and (callee := _called_name(call)) and callee != node.name:
                        callers.setdefault(callee, set()).add(node.name)
    trainers: dict[str, str] = {}
    todo = [(name, what) for name, what in TRAINING_CALLS.items()]
    while todo:
        callee, what = todo.pop()
        for caller in callers.pop(callee, ()):
            if caller not in trainers:
                trainers[caller] = what
                todo.append((caller, what))
    return trainers


def _stored(node: ast.AST) -> set[str]:
    """Names a statement binds (outside nested scopes), and the name of a def or class."""
    names = {n.id for n in _walk_outside_scopes(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for n in _walk_outside_scopes(node):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in n.names}
        elif isinstance(n, ast.ExceptHandler) and n.name:
            names.add(n.name)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names.add(node.name)
    return names


def _loaded(node: ast.AST) -> set[str]:
    """Names a statement reads when it runs (nested function and class bodies excluded)."""
    names = {n.id for n in _walk_outside_scopes(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        names.add(node.target.id)
    return names


class _Planner:
    """Walks the cells in order, deciding statement by statement; remembers what skipped statements created."""

    def __init__(self, trainers: dict[str, str]):
        self.trainers = trainers
        self.unset: dict[str, Skipped] = {}  # variable -> the skipped statement that would have created it

    def reason(self, node: ast.stmt) -> str | None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
            return None  # definitions always run
        for sub in _walk_outside_scopes(node):
            if isinstance(sub, ast.Call) and (name := _called_name(sub)):
                if name in TRAINING_CALLS:
                    return f"{TRAINING_CALLS[name]} (`{name}`)"
                if name in self.trainers:
                    return f"calls `{name}`, which {self.trainers[name]}"
        missing = sorted(_loaded(node) & self.unset.keys())
        if missing:
            first = self.unset[missing[0]]
            return (f"uses `{missing[0]}`, which is not created during grading (cell {first.cell}, line "
                    f"{first.line} was skipped)")
        return None

    def body(self, statements: list[ast.stmt], cell: int, lines: list[str], skipped: list[Skipped]) -> list[ast.stmt]:
        """The statements that run; the others are recorded in skipped."""
        dropped = []
        for node in statements:
            if isinstance(node, _RECURSED):
                head = node.test if isinstance(node, ast.If) else getattr(node, "items", [])
                why = self.reason(ast.Expr(ast.Tuple(elts=head if isinstance(head, list) else [head], ctx=ast.Load())))
                if why is None:  # the block's statements are decided one by one
                    for item in getattr(node, "items", []):
                        for name in _stored(item):
                            self.unset.pop(name, None)
                    for field_name in ("body", "orelse", "finalbody"):
                        dropped += self.body(getattr(node, field_name, None) or [], cell, lines, skipped)
                    for handler in getattr(node, "handlers", []):
                        dropped += self.body(handler.body, cell, lines, skipped)
                    continue
            else:
                why = self.reason(node)
            if why is None:
                for name in _stored(node):
                    self.unset.pop(name, None)
            else:
                dropped.append(self.skip(node, why, cell, lines, skipped))
        return dropped

    def skip(self, node: ast.stmt, why: str, cell: int, lines: list[str], skipped: list[Skipped]) -> ast.stmt:
        line = lines[node.lineno - 1] if node.lineno <= len(lines) else ""
        end = _column(line, node.end_col_offset or 0) if node.end_lineno == node.lineno else len(line)
        first = line[_column(line, node.col_offset):end].strip()
        entry = Skipped(cell, node.lineno, first if len(first) <= 80 else first[:77] + "...", why)
        skipped.append(entry)
        for name in _stored(node):
            self.unset.setdefault(name, entry)
        return node


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")  # lines as Python numbers them (not str.splitlines)


def _lines(source: str) -> list[str]:
    """The source's lines, without their ends, numbered as the syntax tree numbers them."""
    return [line.rstrip("\r\n") for line in _LINE.findall(source)]


def _column(line: str, offset: int) -> int:
    """The character index of a syntax tree's column offset (counted in UTF-8 bytes)."""
    return len(line.encode()[:offset].decode(errors="ignore"))


def _blank(lines: list[str], dropped: list[ast.stmt]) -> str:
    """The cell with each dropped statement replaced by `pass` on its first line and blank lines after, so that
    every line keeps its number; "" if the statements do not own their lines (`a = 1; fit()`)."""
    out = list(lines)
    for node in dropped:
        start, end = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        head = lines[start][:_column(lines[start], node.col_offset)]
        if head.strip() or lines[end][_column(lines[end], node.end_col_offset or 0):].strip()[:1] not in ("", "#"):
            return ""
        out[start] = head + "pass"
        for i in range(start + 1, end + 1):
            out[i] = ""
    return "\n".join(out) + "\n"


@dataclass
class Plan:
    """What the "definitions" mode runs: the cells, what was skipped in each, and the variables it leaves unset."""
    cells: list[str]
    skipped: list[list[Skipped]]
    unset: dict[str, Skipped]  # variable -> the skipped statement that would have created it


def skip_training(cells: list[str]) -> Plan:
    """The "definitions" cell mode: each cell without its statements that load a dataset, train, evaluate,
    predict, or save or load model files, nor those that use a variable only such statements create.

    Everything else runs: imports (also in try/except), def and class, constants computed by calls,
    if blocks, self-checks. A function defined in the notebook that trains makes its calls skipped too.
    Line numbers are kept.
    """
    trees = [parse_cell(source) for source in cells]
    planner = _Planner(_trainers(trees))
    plan = Plan(cells=[], skipped=[], unset=planner.unset)
    for number, (source, tree) in enumerate(zip(cells, trees), 1):
        skipped: list[Skipped] = []
        if tree is not None:  # else the student process reports the syntax error
            lines = _lines(source)
            dropped = planner.body(tree.body, number, lines, skipped)
            if dropped:
                source = _without(lines, tree, dropped, number, skipped)
        plan.cells.append(source)
        plan.skipped.append(skipped)
    return plan


def _without(lines: list[str], tree: ast.Module, dropped: list[ast.stmt], number: int,
             skipped: list[Skipped]) -> str:
    """The cell without its dropped statements: line numbers kept where the statements own their lines,
    else rewritten from the syntax tree; a cell too deep to rewrite does not run at all (and says so)."""
    kept = _blank(lines, dropped)
    if kept and parse_cell(kept) is not None:
        return kept
    try:
        return ast.unparse(_Dropper({id(n) for n in dropped}).visit(tree))
    except (RecursionError, MemoryError):
        skipped.append(Skipped(number, 1, "(the whole cell)", "could not be taken apart statement by statement"))
        return "pass"


class _Dropper(ast.NodeTransformer):
    """Replaces the given statements by `pass` (the fallback when line numbers cannot be kept)."""

    def __init__(self, gone: set[int]):
        self.gone = gone

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if id(node) in self.gone:
            return ast.copy_location(ast.Pass(), node)
        return super().generic_visit(node)
