"""Similarity report: which pairs of students wrote suspiciously alike code, function by function.

Each student function is reduced to a sequence of normalized AST tokens: node types, operators and
attribute names are kept, while the student's own names and every literal are abstracted, so renaming
variables or changing constants does not hide a copy. Statements that come from the starter notebook
are dropped, and so is the docstring. Pairs are scored by the Jaccard similarity of their token
5-grams, weighted by function length.

Every pair at or above the threshold goes to similarity.csv. similarity.html is an index of clusters (students
connected by such pairs), each with its size and strongest pairs; the side-by-side views of the strongest pairs
are separate pages (pairs/pair-NNN.html), at most MAX_PAIR_PAGES of them, so the report stays small for a
class of 400 where every notebook looks alike.
"""
from __future__ import annotations

import ast
import csv
import difflib
import html
import io
import itertools
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from grader.authoring.notebooks import read, starter
from grader.config import Assignment
from grader.errors import IngestError
from grader.ingest.notebook import parse_cell, read_notebook
from grader.ingest.submissions import discover
from grader.reports.view import render
from grader.results import write_atomic

NGRAM = 5
MIN_TOKENS = 25  # shorter functions (relu, flatten) look alike in every correct solution
PAIRS_PER_CLUSTER = 5     # strongest pairs listed per cluster in the index
PAGES_PER_CLUSTER = 3     # of which at most this many get a side-by-side page...
MAX_PAIR_PAGES = 60       # ...and at most this many pages in all
MAX_MEMBERS_LISTED = 400  # names listed per cluster
MAX_SOURCE_LINES = 200    # lines of one function shown side by side
PAIRS_DIR = "pairs"
log = logging.getLogger(__name__)


@dataclass
class FunctionCode:
    """One student's version of one function: its source and normalized tokens."""
    source: str
    tokens: list[str]

    @cached_property
    def grams(self) -> frozenset[tuple[str, ...]]:
        return frozenset(tuple(self.tokens[i:i + NGRAM]) for i in range(len(self.tokens) - NGRAM + 1))


class _Tokens(ast.NodeVisitor):
    def __init__(self):
        self.tokens: list[str] = []

    def generic_visit(self, node):
        if isinstance(node, ast.Name):
            self.tokens.append("ID")
        elif isinstance(node, ast.arg):
            self.tokens.append("ARG")
        elif isinstance(node, ast.Constant):
            self.tokens.append("LIT")
        elif isinstance(node, ast.Attribute):
            self.tokens.append(f".{node.attr}")
        elif not isinstance(node, (ast.Load, ast.Store, ast.Del, ast.expr_context)):
            self.tokens.append(type(node).__name__)
        super().generic_visit(node)


def _statements(function: ast.FunctionDef) -> list[ast.stmt]:
    body = list(function.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body


def tokens_of(statements: list[ast.stmt]) -> list[str]:
    """Normalized tokens of a list of statements."""
    visitor = _Tokens()
    for statement in statements:
        visitor.visit(statement)
    return visitor.tokens


def _functions(cells: list[str]) -> dict[str, ast.FunctionDef]:
    found = {}
    for tree in map(parse_cell, cells):
        for node in tree.body if tree is not None else []:
            if isinstance(node, ast.FunctionDef):
                found[node.name] = node
    return found


def extract(cells: list[str], names: tuple[str, ...], starter_code: dict[str, set[str]]) -> dict[str, FunctionCode]:
    """The student's functions, minus the statements the starter already had."""
    result = {}
    for name, node in _functions(cells).items():
        if name not in names:
            continue
        try:
            own = [s for s in _statements(node) if ast.dump(s) not in starter_code.get(name, set())]
            tokens = tokens_of(own)
            source = ast.unparse(node)
        except RecursionError:  # nested deeper than Python's recursion limit: not compared, said in the log
            log.warning("`%s` is nested too deeply to compare; it is left out of the similarity report", name)
            continue
        if len(tokens) >= MIN_TOKENS:
            result[name] = FunctionCode(source, tokens)
    return result


def starter_statements(assignment: Assignment) -> dict[str, set[str]]:
    """Per function, the AST dumps of the statements the starter notebook gives every student."""
    cells = [c.source for c in starter(read(assignment.master)).cells if c.cell_type == "code"]
    return {name: {ast.dump(s) for s in _statements(node)} for name, node in _functions(cells).items()}


@dataclass
class Pair:
    """Two students and how alike their functions are."""
    a: str
    b: str
    score: float
    functions: dict[str, float]


def compare(a: dict[str, FunctionCode], b: dict[str, FunctionCode]) -> tuple[float, dict[str, float]]:
    """Length-weighted Jaccard similarity over the functions both students wrote."""
    per_function, weighted, weight = {}, 0.0, 0
    for name in sorted(set(a) & set(b)):
        ga, gb = a[name].grams, b[name].grams
        similarity = len(ga & gb) / len(ga | gb) if ga | gb else 0.0
        size = len(a[name].tokens) + len(b[name].tokens)
        per_function[name] = similarity
        weighted += similarity * size
        weight += size
    return (weighted / weight if weight else 0.0), per_function


def find_pairs(code: dict[str, dict[str, FunctionCode]], threshold: float) -> list[Pair]:
    """Every pair of students whose overall similarity is at least threshold, most similar first."""
    pairs = []
    for a, b in itertools.combinations(sorted(code), 2):
        score, functions = compare(code[a], code[b])
        if score >= threshold:
            pairs.append(Pair(a, b, score, functions))
    return sorted(pairs, key=lambda p: -p.score)


def render_csv(pairs: list[Pair]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student_a", "student_b", "similarity", "functions"])
    for pair in pairs:
        writer.writerow([pair.a, pair.b, f"{pair.score:.3f}",
                         "; ".join(f"{n}={s:.2f}" for n, s in sorted(pair.functions.items(), key=lambda i: -i[1]))])
    return buffer.getvalue()


@dataclass
class Cluster:
    """Students connected by pairs at or above the threshold (a connected group of the pair graph)."""
    members: list[str]
    pairs: list[Pair]                     # every pair inside, most similar first
    pages: dict[int, str] = field(default_factory=dict)  # index in pairs -> its side-by-side page

    @property
    def strongest(self) -> list[Pair]:
        return self.pairs[:PAIRS_PER_CLUSTER]


def clusters_of(pairs: list[Pair]) -> list[Cluster]:
    """The connected groups of students the pairs form, largest first (then the most similar)."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for pair in pairs:
        parent[root(pair.a)] = root(pair.b)
    groups: dict[str, Cluster] = {}
    for pair in pairs:  # most similar first, so each cluster's pairs are too
        groups.setdefault(root(pair.a), Cluster([], [])).pairs.append(pair)
    for name in sorted(parent):
        groups[root(name)].members.append(name)
    return sorted(groups.values(), key=lambda c: (-len(c.members), -c.pairs[0].score, c.members[0]))


def plan_pages(clusters: list[Cluster]) -> list[tuple[Cluster, int]]:
    """Which pairs get a side-by-side page: each cluster's strongest first, at most MAX_PAIR_PAGES in all."""
    chosen: list[tuple[Cluster, int]] = []
    for rank in range(PAGES_PER_CLUSTER):
        for cluster in clusters:
            if rank < min(len(cluster.pairs), PAIRS_PER_CLUSTER) and len(chosen) < MAX_PAIR_PAGES:
                chosen.append((cluster, rank))
    return chosen


def _lines(source: str) -> list[str]:
    lines = source.splitlines()
    if len(lines) > MAX_SOURCE_LINES:
        lines = lines[:MAX_SOURCE_LINES] + [f"# [... {len(lines) - MAX_SOURCE_LINES} more lines not shown]"]
    return lines


def render_pair(assignment: Assignment, pair: Pair, code: dict[str, dict[str, FunctionCode]], threshold: float) -> str:
    """The side-by-side page of one pair: the functions at or above half the threshold."""
    differ = difflib.HtmlDiff(wrapcolumn=70)
    functions = [{"name": name, "similarity": similarity,
                  "table": differ.make_table(_lines(code[pair.a][name].source), _lines(code[pair.b][name].source),
                                             html.escape(pair.a), html.escape(pair.b))}
                 for name, similarity in sorted(pair.functions.items(), key=lambda i: -i[1])
                 if similarity >= threshold / 2]
    return render("similarity_pair.html.j2", assignment=assignment, pair=pair, functions=functions)


def write_html(assignment: Assignment, pairs: list[Pair], code: dict[str, dict[str, FunctionCode]],
               threshold: float, out: Path) -> list[Cluster]:
    """Write similarity.html (the index of clusters) and the pair pages under out/pairs/; return the clusters."""
    clusters = clusters_of(pairs)
    folder = out / PAIRS_DIR
    for old in folder.glob("pair-*.html"):  # pages of an earlier run
        old.unlink()
    for number, (cluster, rank) in enumerate(plan_pages(clusters), 1):
        name = f"pair-{number:03d}.html"
        write_atomic(folder / name, render_pair(assignment, cluster.pairs[rank], code, threshold))
        cluster.pages[rank] = f"{PAIRS_DIR}/{name}"
    write_atomic(out / "similarity.html", render(
        "similarity.html.j2", assignment=assignment, clusters=clusters, pairs=len(pairs), threshold=threshold,
        students=len(code), max_members=MAX_MEMBERS_LISTED, max_pages=MAX_PAIR_PAGES,
        pages=sum(len(c.pages) for c in clusters)))
    return clusters


def write_report(assignment: Assignment, code: dict[str, dict[str, FunctionCode]], out: Path,
                 threshold: float) -> list[Pair]:
    """Compare every pair of students; write similarity.csv (every flagged pair) and the HTML; return the pairs."""
    pairs = find_pairs(code, threshold)
    write_atomic(out / "similarity.csv", render_csv(pairs))
    write_html(assignment, pairs, code, threshold, out)
    return pairs


def similarity_report(assignment: Assignment, submissions: Path, out: Path, threshold: float) -> list[Pair]:
    """Write similarity.csv and similarity.html for a folder of submissions; return the flagged pairs."""
    starter_code = starter_statements(assignment)
    code = {}
    for submission in discover(submissions, assignment.notebook):
        if submission.notebook is None:
            log.info("similarity: %s left out (no notebook: %s)", submission.student, submission.problem)
            continue
        try:
            cells = read_notebook(submission.notebook).cells
        except IngestError as exc:
            log.info("similarity: %s left out (unreadable notebook: %s)", submission.student, exc)
            continue
        code[submission.display_name] = extract(cells, assignment.functions, starter_code)
    return write_report(assignment, code, out, threshold)
