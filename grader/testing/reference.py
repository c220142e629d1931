"""The reference implementation: the master notebook's definitions, loaded in the grader's process."""
from __future__ import annotations

import types
from functools import lru_cache
from pathlib import Path

import nbformat

from grader.ingest.notebook import keep_definitions


def load_reference(master: Path) -> types.ModuleType:
    """A module holding the master notebook's imports, functions, classes and literal constants."""
    master = Path(master)
    return _load(master, master.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _load(master: Path, mtime: int) -> types.ModuleType:
    notebook = nbformat.read(master, as_version=4)
    module = types.ModuleType(f"reference_{master.stem}")
    module.__file__ = str(master)
    for number, cell in enumerate(notebook.cells, 1):
        if cell.cell_type == "code":
            code = compile(keep_definitions(cell.source), f"{master.name} cell {number}", "exec")
            exec(code, module.__dict__)
    return module
