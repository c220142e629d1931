"""Every assignment proves its own tests: the solution scores full marks, the untouched starter
scores 0, each seeded bug (mutants.toml) fails exactly the tests it lists, and no others, and each valid
variant (variants.toml) passes every test it is not exempt from."""
from __future__ import annotations

import fnmatch
import json

import pytest

from grader.authoring.notebooks import load_mutants, load_variants, starter_is_current, write_samples
from grader.config import SOLUTIONS_DIR, load_assignment
from tests.conftest import run_grader

ASSIGNMENTS = sorted(p.parent.name for p in SOLUTIONS_DIR.glob("*/assignment.toml"))


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(request, tmp_path_factory):
    assignment = load_assignment(request.param)
    root = tmp_path_factory.mktemp(assignment.name)
    write_samples(assignment, root / "submissions")
    run_grader("grade", assignment.name, str(root / "submissions"), "--reports", str(root / "reports"),
               "--jobs", "2", "--quiet")
    results = {p.parent.name: json.loads(p.read_text()) for p in (root / "reports").glob("*/results.json")}
    return assignment, results


def test_committed_starters_are_generated_from_the_masters():
    stale = [name for name in ASSIGNMENTS if not starter_is_current(load_assignment(name))]
    assert not stale, f"run `make assignments`: out of date for {stale}"


def test_solution_scores_full_marks(graded):
    _, results = graded
    solution = results["solution"]
    failed = {t["name"]: t["output"] for t in solution["tests"] if t["status"] != "passed"}
    assert not failed and solution["score"] == solution["max_score"] > 0


def test_untouched_starter_scores_zero(graded):
    _, results = graded
    starter = results["starter"]
    assert starter["score"] == 0 and starter["max_score"] > 0
    assert all(t["status"] == "failed" and t["output"] for t in starter["tests"])


def test_every_seeded_bug_loses_exactly_its_tests(graded):
    assignment, results = graded
    mutants = load_mutants(assignment)
    assert mutants, "an assignment needs seeded bugs"
    problems = []
    for mutant in mutants:
        tests = results[f"mutant-{mutant.name}"]["tests"]
        expected = {t["name"] for t in tests if any(fnmatch.fnmatchcase(t["name"], p) for p in mutant.fails)}
        failed = {t["name"] for t in tests if t["status"] == "failed"}
        if not expected:
            problems.append(f"{mutant.name}: its fails patterns match no test")
        if failed != expected:
            problems.append(f"{mutant.name}: also failed {sorted(failed - expected)}, "
                            f"but passed {sorted(expected - failed)}")
        missing = [t["name"] for t in tests if t["name"] in failed and mutant.diagnosis not in t["output"]]
        if missing:
            problems.append(f"{mutant.name}: no diagnosis {mutant.diagnosis!r} in {missing}")
        wrong_function = [t["name"] for t in tests if t["name"] in failed and mutant.function not in t["tags"]]
        if wrong_function:
            problems.append(f"{mutant.name}: failed tests of other functions {wrong_function}")
    assert not problems, "\n".join(problems)


def test_every_valid_variant_passes(graded):
    assignment, results = graded
    problems = []
    for variant in load_variants(assignment):
        tests = results[f"variant-{variant.name}"]["tests"]
        exempt = {t["name"] for t in tests if any(fnmatch.fnmatchcase(t["name"], p) for p in variant.exempt)}
        failed = {t["name"]: t["output"] for t in tests if t["status"] != "passed" and t["name"] not in exempt}
        unmatched = [p for p in variant.exempt if not any(fnmatch.fnmatchcase(t["name"], p) for t in tests)]
        if failed or unmatched:
            problems.append(f"{variant.name}: failed {failed}; exempt patterns matching no test {unmatched}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_starter_states_where_it_is_graded(name):
    """The starter's first cell states the grading environment as it is: Python and NumPy versions, and the
    config's CPU-time limits per cell and per call."""
    import sys

    import nbformat
    import numpy

    assignment = load_assignment(name)
    intro = nbformat.read(assignment.starter, as_version=4).cells[0].source
    assert "**Where your notebook is graded.**" in intro
    assert f"Python {sys.version_info.major}.{sys.version_info.minor} with NumPy {numpy.__version__.split('.')[0]}" in intro
    assert f"A cell may use {assignment.limits.cell_timeout:g} s of CPU time" in intro
    assert f"{assignment.limits.call_timeout:g} s (CPU time" in intro
