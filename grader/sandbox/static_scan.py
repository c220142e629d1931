"""Static check, in the grader: which student functions use a forbidden module (e.g. TensorFlow).

A function uses a module if its body names something imported from it, imports it, or calls a
notebook function that does. The student process also watches each call at run time.
"""
from __future__ import annotations

import ast

from grader.ingest.notebook import parse_cell


def _matches(module: str, forbidden: tuple[str, ...]) -> str | None:
    for prefix in forbidden:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return None


def _bindings(tree: ast.AST, forbidden: tuple[str, ...]) -> dict[str, str]:
    """Names bound by imports to a forbidden module (or to its parents, e.g. `import scipy`)."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                hit = _matches(alias.name, forbidden)
                if hit:
                    bound[alias.asname or alias.name.split(".")[0]] = hit
                elif alias.asname is None and any(p.startswith(alias.name + ".") for p in forbidden):
                    bound.setdefault(alias.name.split(".")[0], "")  # `import scipy`: check attribute chains
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                hit = _matches(node.module, forbidden) or _matches(f"{node.module}.{alias.name}", forbidden)
                if hit:
                    bound[alias.asname or alias.name] = hit
    return bound


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


DYNAMIC_IMPORTS = ("__import__", "import_module", "importlib.import_module", "importlib.__import__",
                   "builtins.__import__", "find_spec", "importlib.util.find_spec")
DYNAMIC = "a module imported by a computed name"


def _dynamic_import(node: ast.Call, forbidden: tuple[str, ...]) -> str | None:
    """What a call like importlib.import_module("tensor" + "flow") imports, if it may be forbidden."""
    name = _dotted(node.func)
    if name not in DYNAMIC_IMPORTS or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return _matches(first.value, forbidden)
    return DYNAMIC


def _direct_uses(function: ast.AST, bound: dict[str, str], forbidden: tuple[str, ...]) -> set[str]:
    used = set()
    local_bound = {**bound, **_bindings(function, forbidden)}
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            hit = _dynamic_import(node, forbidden)
            if hit:
                used.add(hit)
        if isinstance(node, (ast.Attribute, ast.Name)):
            name = _dotted(node)
            if name is None:
                continue
            root = name.split(".")[0]
            if local_bound.get(root):
                used.add(local_bound[root])
            elif root in local_bound:
                hit = _matches(name, forbidden)
                if hit:
                    used.add(hit)
    return used


def scan(cells: list[str], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """Map each top-level function that uses a forbidden module to the modules it uses."""
    if not forbidden:
        return {}
    trees = [tree for tree in map(parse_cell, cells) if tree is not None]
    module = ast.Module(body=[node for tree in trees for node in tree.body], type_ignores=[])
    bound = _bindings(ast.Module(body=[n for n in module.body if isinstance(n, (ast.Import, ast.ImportFrom))],
                                 type_ignores=[]), forbidden)
    functions = {node.name: node for node in module.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    uses = {name: _direct_uses(node, bound, forbidden) for name, node in functions.items()}
    calls = {name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in functions}
             for name, node in functions.items()}
    changed = True
    while changed:  # propagate through calls between notebook functions
        changed = False
        for name in functions:
            for callee in calls[name]:
                if not uses[callee] <= uses[name]:
                    uses[name] |= uses[callee]
                    changed = True
    return {name: sorted(modules) for name, modules in uses.items() if modules}
