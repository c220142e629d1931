"""The similarity report flags renamed copies, not independent solutions, and never the starter."""
from __future__ import annotations

import ast
import csv

import pytest

from grader.authoring import notebooks
from grader.config import load_assignment
from tests.conftest import run_grader

LOOP_STYLE = {
    "conv2d_forward": '''
def conv2d_forward(x, w, b, stride=1, padding=0, dilation=1):
    if padding == "valid":
        padding = 0
    images, rows, cols, depth = x.shape
    kr, kc, _, filters = w.shape
    padded = zero_pad(x, padding)
    out_rows = (padded.shape[1] - kr) // stride + 1
    out_cols = (padded.shape[2] - kc) // stride + 1
    result = np.zeros((images, out_rows, out_cols, filters))
    for n in range(images):
        for i in range(out_rows):
            for j in range(out_cols):
                patch = padded[n, i * stride:i * stride + kr, j * stride:j * stride + kc, :]
                for f in range(filters):
                    result[n, i, j, f] = np.sum(patch * w[:, :, :, f]) + b[f]
    return result
''',
    "maxpool2d_forward": '''
def maxpool2d_forward(x, pool_size=2, stride=None, padding="valid"):
    if stride is None:
        stride = pool_size
    count, height, width, channels = x.shape
    new_h = (height - pool_size) // stride + 1
    new_w = (width - pool_size) // stride + 1
    pooled = np.empty((count, new_h, new_w, channels))
    for n in range(count):
        for r in range(new_h):
            for c in range(new_w):
                for ch in range(channels):
                    top, left = r * stride, c * stride
                    pooled[n, r, c, ch] = x[n, top:top + pool_size, left:left + pool_size, ch].max()
    return pooled
''',
    "softmax": '''
def softmax(z):
    result = np.empty(z.shape)
    for row in range(z.shape[0]):
        biggest = max(z[row])
        exps = [np.exp(value - biggest) for value in z[row]]
        total = sum(exps)
        for col in range(z.shape[1]):
            result[row, col] = exps[col] / total
    return result
''',
}


class _Renamer(ast.NodeTransformer):
    """Renames every local name and argument, and nudges every number: a disguised copy."""

    KEEP = {"np", "range", "len", "max", "min", "isinstance", "str", "int", "tuple", "float", "sum", "abs", "zip"}

    def visit_Name(self, node):
        if node.id not in self.KEEP and not node.id[0].isupper():
            node.id = f"v_{node.id}"
        return node

    def visit_arg(self, node):
        node.arg = f"v_{node.arg}"
        return node

    def visit_Constant(self, node):
        if isinstance(node.value, int) and not isinstance(node.value, bool) and node.value > 1:
            node.value += 0
        return node


def disguise(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.args.defaults = [ast.Constant(value=d.value) if isinstance(d, ast.Constant) else d
                                  for d in node.args.defaults]
    return ast.unparse(_Renamer().visit(tree))


def replace_function(notebook, name: str, source: str):
    for cell in notebook.cells:
        if cell.cell_type == "code" and f"def {name}(" in cell.source:
            cell.source = source
            return
    raise AssertionError(f"no cell defines {name}")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    assignment = load_assignment("cnn_layers")
    master = notebooks.read(assignment.master)
    root = tmp_path_factory.mktemp("similarity")
    subs = root / "subs"
    solution = notebooks.solution(master)
    notebooks.write_submission(subs / "original", assignment, solution, [])
    copy = notebooks.solution(master)
    for cell in copy.cells:
        if cell.cell_type == "code" and "def " in cell.source:
            cell.source = disguise(cell.source)
    notebooks.write_submission(subs / "renamed_copy", assignment, copy, [])
    loops = notebooks.starter(master)
    for name, source in LOOP_STYLE.items():
        replace_function(loops, name, source)
    notebooks.write_submission(subs / "loop_style", assignment, loops, [])
    notebooks.write_submission(subs / "untouched1", assignment, notebooks.starter(master), [])
    notebooks.write_submission(subs / "untouched2", assignment, notebooks.starter(master), [])
    run_grader("similarity", "cnn_layers", str(subs), "--out", str(root / "out"))
    with open(root / "out" / "similarity.csv") as f:
        rows = list(csv.DictReader(f))
    return {frozenset((r["student_a"], r["student_b"])): float(r["similarity"]) for r in rows}, root / "out"


def test_a_renamed_copy_is_flagged(report):
    pairs, out = report
    assert pairs.get(frozenset(("original", "renamed_copy")), 0) > 0.95
    html = (out / "similarity.html").read_text()
    assert "Cluster 1: 2 students, 1 pair" in html and "original and renamed_copy" in html
    assert '<a href="pairs/pair-001.html">view</a>' in html
    page = (out / "pairs" / "pair-001.html").read_text()
    assert "original and renamed_copy" in page and "conv2d_forward" in page and "default-src 'none'" in page


def test_independent_solutions_in_another_style_are_not_flagged(report):
    pairs, _ = report
    assert frozenset(("original", "loop_style")) not in pairs
    assert frozenset(("renamed_copy", "loop_style")) not in pairs


def test_the_untouched_starter_never_counts(report):
    pairs, _ = report
    assert not [pair for pair in pairs if pair & {"untouched1", "untouched2"}]
    assert len(pairs) == 1


def test_the_report_stays_bounded_for_a_class_of_400(tmp_path):
    """200 identical notebooks and 50 groups of 4: an index of 51 clusters, every pair in the CSV, and at most
    MAX_PAIR_PAGES side-by-side pages, each cut to MAX_SOURCE_LINES lines per function."""
    from grader.reports import similarity
    assignment = load_assignment("cnn_layers")
    long_source = "\n".join(f"    x{i} = {i}" for i in range(1000))
    code = {}
    for i in range(400):
        group = 0 if i < 200 else 1 + (i - 200) // 4
        tokens = [f"T{group}_{j % 40}" for j in range(60)]
        code[f"s{i:03d}"] = {"conv2d_forward": similarity.FunctionCode(f"def conv2d_forward(x):\n{long_source}", tokens)}
    pairs = similarity.write_report(assignment, code, tmp_path, 0.8)
    assert len(pairs) == 200 * 199 // 2 + 50 * 6
    with open(tmp_path / "similarity.csv") as f:
        assert len(list(csv.DictReader(f))) == len(pairs)
    index = (tmp_path / "similarity.html").read_text()
    assert "in 51 clusters" in index and "Cluster 1: 200 students, 19900 pairs" in index
    assert index.count("<section id=\"cluster-") == 51 and "s199" in index
    pages = sorted((tmp_path / "pairs").glob("pair-*.html"))
    assert len(pages) == similarity.MAX_PAIR_PAGES
    assert index.count('<a href="pairs/pair-') == len(pages)
    assert "more&nbsp;lines&nbsp;not&nbsp;shown" in pages[0].read_text()
    sizes = {"index": len(index.encode()), "pages": sum(p.stat().st_size for p in pages)}
    print(f"similarity report for 400 students: {sizes}")
    assert sizes["index"] < 500_000 and max(p.stat().st_size for p in pages) < 200_000
    assert sizes["index"] + sizes["pages"] < 5_000_000
    # a second run replaces the pages of the first
    similarity.write_report(assignment, dict(list(code.items())[:3]), tmp_path, 0.8)
    assert len(list((tmp_path / "pairs").glob("pair-*.html"))) == similarity.PAGES_PER_CLUSTER == 3
