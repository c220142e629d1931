"""`python -m grader diff REPORTS_A REPORTS_B`: the students whose score or status changed between two runs,
which tests changed, and the same as CSV."""
from __future__ import annotations

import csv

from grader.diff import diff_reports
from grader.results import NOTEBOOK_PROBLEM
from tests.conftest import run_grader
from tests.test_adjust import toy_results, write_class


def test_diff_lists_changed_added_and_removed_students_and_their_tests(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    same = toy_results("alice")
    write_class(a, same, toy_results("bob", rows=2), toy_results("carol"), toy_results("dave"),
                toy_results("erin", relu=0))
    fixed = toy_results("bob")  # the hidden test was fixed: bob's partial credit became a pass
    broken = toy_results("carol", double=(2, 0))
    broken.meta.status, broken.meta.problem = NOTEBOOK_PROBLEM, "time budget exceeded"
    renamed = toy_results("erin", relu=0)
    renamed.tests[0].name = "test_double_values[vec]"  # same score, a test renamed by the upgrade
    write_class(b, same, fixed, broken, toy_results("frank"), renamed)

    changes = {c.student: c for c in diff_reports(a, b)}
    assert sorted(changes) == ["bob", "carol", "dave", "erin", "frank"]
    assert changes["bob"].change == "changed" and changes["bob"].delta == 2
    assert [t.describe() for t in changes["bob"].tests] == ["test_row_sums_partial: failed 2/4 -> passed 4/4"]
    assert changes["carol"].row()[2:4] == ["graded", "notebook problem"]
    assert [t.name for t in changes["carol"].tests] == ["test_double_values[matrix]"]
    assert (changes["dave"].change, changes["frank"].change) == ("removed", "added")
    assert [t.describe() for t in changes["erin"].tests] == ["test_double_values[vec]: absent -> passed 2/2",
                                                             "test_double_values[vector]: passed 2/2 -> absent"]

    result = run_grader("diff", str(a), str(b))
    lines = result.stdout.splitlines()
    assert "bob: 9 -> 11 (+2); 1 test changed" in lines
    assert "carol: graded -> notebook problem, 11 -> 9 (-2); 1 test changed" in lines
    assert "dave: removed (graded, 11)" in lines and "frank: added (graded, 11)" in lines
    assert lines[-1] == f"5 students changed from {a} to {b}: {b / 'diff.csv'}"
    with open(b / "diff.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"bob", "carol", "dave", "erin", "frank"}
    assert rows["bob"]["score_a"] == "9" and rows["bob"]["score_b"] == "11" and rows["bob"]["delta"] == "+2"
    assert rows["bob"]["tests_changed"] == "test_row_sums_partial: failed 2/4 -> passed 4/4"
    assert rows["dave"]["status_b"] == "" and rows["frank"]["score_a"] == ""


def test_identical_runs_have_no_diff_and_a_missing_folder_is_a_usage_error(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_class(a, toy_results("alice"))
    write_class(b, toy_results("alice"))
    assert diff_reports(a, b) == []
    out = tmp_path / "d.csv"
    result = run_grader("diff", str(a), str(b), "--out", str(out))
    assert result.stdout.splitlines()[-1].startswith("0 students changed")
    assert out.read_text() == "student,change,status_a,status_b,score_a,score_b,delta,tests_changed\n"
    missing = run_grader("diff", str(a), str(tmp_path / "nope"), check=False)
    assert missing.returncode == 2 and "reports folder not found" in missing.stderr

