"""Overrides (REPORTS/overrides.csv), the late policy ([late] in assignment.toml) and the submission times
they use (submitted_at.csv, the last commit of a `gh classroom clone` folder, read without trusting it):
what they do to the results model, the gradebook and the feedback, that regrading keeps them, and that a
malformed row is an error naming its line.
"""
from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from grader.adjust import SubmissionTime, adjust, adjust_all, late_penalty, read_overrides, read_submitted_at
from grader.config import load_assignment
from grader.errors import ConfigError, CourseFileError
from grader.ingest.git_time import last_commit_time
from grader.reports import render_reports
from grader.reports.feedback import render_feedback_html, render_feedback_md
from grader.results import GRADER_ERROR, Results, SubmissionMeta, TestResult
from tests.conftest import TOY, run_grader, toy_notebook, write_student

EST = dt.timezone(dt.timedelta(hours=-5))
DUE = dt.datetime(2026, 3, 1, 23, 59, tzinfo=EST)
LATE = """
[late]
due = 2026-03-01T23:59:00-05:00
grace_minutes = 15
per_day = 0.1
maximum = 0.3
"""


def toy_with(tmp_path: Path, extra: str) -> Path:
    """A copy of the toy assignment with extra text appended to its assignment.toml."""
    folder = tmp_path / "toy"
    shutil.copytree(TOY, folder, ignore=shutil.ignore_patterns("__pycache__"))
    with open(folder / "assignment.toml", "a") as f:
        f.write(extra)
    return folder


def toy_results(student: str = "alice", double=(2, 2), relu=3.0, rows=4.0, status="graded", submitted_at="") -> Results:
    """Results of the toy assignment as grading writes them (double vector/matrix, relu, hidden row_sums)."""
    tests = [TestResult("test_double_values[vector]", double[0], 2, double[0] == 2, ("double",), "value"),
             TestResult("test_double_values[matrix]", double[1], 2, double[1] == 2, ("double",), "value"),
             TestResult("test_relu_values_and_inputs", relu, 3, relu == 3, ("relu",), "value"),
             TestResult("test_row_sums_partial", rows, 4, rows == 4, ("row_sums",), "value", "after_due_date")]
    score = sum(t.score for t in tests)
    meta = SubmissionMeta(student=student, name=student, status=status, submitted_at=submitted_at,
                          submitted_from="last git commit" if submitted_at else "",
                          grader_error="boom" if status == GRADER_ERROR else "")
    return Results(score=score, max_score=11, output=f"Score: {score:g} / 11", tests=tests, meta=meta)


def write_class(reports: Path, *results: Results) -> None:
    for r in results:
        r.write(reports / r.student / "results.json")


def gradebook(reports: Path) -> dict[str, dict[str, str]]:
    with open(reports / "gradebook.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


# ---------------------------------------------------------------- overrides

def test_overrides_of_a_test_a_function_and_the_total(toy, tmp_path):
    (tmp_path / "overrides.csv").write_text(
        "student,target,points,reason\n"
        "bob,test_relu_values_and_inputs,3,the test's tolerance was too tight\n"
        "carol,double,4,regraded by hand\n"
        "dave,total,10,oral exam\n")
    write_class(tmp_path, toy_results("alice"), toy_results("bob", relu=0), toy_results("carol", double=(0, 0)),
                toy_results("dave", double=(0, 2), relu=0, rows=2))
    written = render_reports(toy, tmp_path, ["alice", "bob", "carol", "dave"])
    assert "render errors" not in written
    book = gradebook(tmp_path)
    assert (book["alice"]["raw_score"], book["alice"]["total"], book["alice"]["overrides"]) == ("11", "11", "")
    assert (book["bob"]["raw_score"], book["bob"]["relu"], book["bob"]["total"]) == ("8", "3", "11")
    assert book["bob"]["overrides"] == "test_relu_values_and_inputs: 0 -> 3 (the test's tolerance was too tight)"
    assert (book["carol"]["raw_score"], book["carol"]["double"], book["carol"]["total"]) == ("7", "4", "11")
    assert (book["dave"]["raw_score"], book["dave"]["total"], book["dave"]["late_penalty"]) == ("4", "10", "0")
    # results.json stays as grading wrote it: the override lives only in overrides.csv
    assert Results.read(tmp_path / "bob" / "results.json").score == 8
    feedback = (tmp_path / "bob" / "feedback.md").read_text()
    assert "**Score: 11 / 11**" in feedback
    assert "adjusted by your instructor: the test's tolerance was too tight" in feedback
    assert "3 points instead of 0" in feedback and "`relu`: 3 / 3" in feedback
    assert "adjusted by your instructor" in (tmp_path / "carol" / "feedback.md").read_text()
    assert "`double`: 4 / 4" in (tmp_path / "carol" / "feedback.md").read_text()
    html = (tmp_path / "dave" / "feedback.html").read_text()
    assert "oral exam" in html and "Score: 10 / 11" in html


def test_the_model_carries_the_adjustments_through_results_json(toy):
    [row] = [r for r in [*read_overrides_text("bob,total,9.5,bonus for the write-up\n")]]
    adjusted = adjust(toy, toy_results("bob", relu=0), [row], None)
    assert adjusted.score == 9.5 and adjusted.autograded_score == 8
    again = Results.from_json(adjusted.to_json())
    assert again.adjustments == adjusted.adjustments and again.score == 9.5
    assert adjusted.to_json()["extra_data"]["adjustments"]["overrides"][0]["reason"] == "bonus for the write-up"


def read_overrides_text(text: str, tmp: Path | None = None):
    import tempfile
    folder = Path(tmp or tempfile.mkdtemp())
    (folder / "overrides.csv").write_text(text)
    return read_overrides(folder / "overrides.csv")


@pytest.mark.parametrize("text, line, says", [
    ("student,target,points,reason\nbob,total,abc,x\n", 2, "points must be a number"),
    ("bob,total,-1,x\n", 1, "points must be a number of at least 0"),
    ("bob,total,nan,x\n", 1, "points must be a number"),
    ("student,target,points,reason\n\n# a comment\nbob,total,3\n", 4, "3 columns, expected 4"),
    ("bob,total,3,\n", 1, "reason must not be empty"),
    ("bob,total,3,a\nbob,total,4,b\n", 2, "already overridden on line 1"),
])
def test_a_malformed_row_is_an_error_naming_its_line(text, line, says, tmp_path):
    with pytest.raises(CourseFileError, match=rf"overrides.csv line {line}: .*{says}"):
        read_overrides_text(text, tmp_path)


@pytest.mark.parametrize("row, says", [
    ("bob,test_relu_value_and_inputs,3,x", r"line 2: .* is no test or function of bob .*did you mean test_relu_values"),
    ("bob,relu,4,x", "line 2: 4 points is more than the 3 relu is worth"),
    ("bob,total,12,x", "line 2: 12 points is more than the 11 total is worth"),
    ("bobby,total,1,x", r"line 2: no student 'bobby' in .*did you mean bob"),
])
def test_an_override_that_matches_nothing_is_an_error_naming_its_line(toy, tmp_path, row, says):
    (tmp_path / "overrides.csv").write_text(f"student,target,points,reason\n{row}\n")
    write_class(tmp_path, toy_results("bob"))
    with pytest.raises(CourseFileError, match=says):
        adjust_all(toy, tmp_path, [toy_results("bob")])


def test_the_cli_prints_one_line_and_exits_2_on_a_malformed_row(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "overrides.csv").write_text("student,target,points,reason\nbob,total,ten,x\n")
    (tmp_path / "subs").mkdir()
    result = run_grader("grade", str(TOY), str(tmp_path / "subs"), "--reports", str(reports), check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: overrides.csv line 2: points must be a number of at least 0, not 'ten'"]


def test_a_grader_error_is_never_adjusted(toy, caplog):
    failed = toy_results("bob", status=GRADER_ERROR)
    [row] = read_overrides_text("bob,total,5,x\n")
    assert adjust(toy, failed, [row], None) is failed
    assert adjust_all(toy, Path("/nonexistent"), [failed]) == [failed]


# ---------------------------------------------------------------- late policy

@pytest.mark.parametrize("submitted, days, fraction, says", [
    (DUE - dt.timedelta(hours=1), 0, 0.0, "on time, no penalty"),
    (DUE + dt.timedelta(minutes=10), 0, 0.0, "10 minutes late, within the 15-minute grace period"),
    (DUE + dt.timedelta(minutes=16), 1, 0.1, "16 minutes late, counted as 1 day; 10% per day = 10% of 9 points "
                                             "= 0.9 points off"),
    (DUE + dt.timedelta(days=1, hours=2), 2, 0.2, "1 day 2 hours late, counted as 2 days"),
    (DUE + dt.timedelta(days=9), 9, 0.3, "10% per day, capped at 30% = 30% of 9 points = 2.7 points off"),
])
def test_late_penalty_per_day_grace_and_maximum(tmp_path, submitted, days, fraction, says):
    policy = load_assignment(toy_with(tmp_path, LATE)).late
    assert policy is not None and policy.due == DUE
    penalty = late_penalty(policy, SubmissionTime(submitted, "submitted_at.csv"), 9.0)
    assert (penalty.days_late, penalty.fraction, penalty.points) == (days, fraction, round(9 * fraction, 6))
    assert says in penalty.explanation and "(submitted_at.csv)" in penalty.explanation


def test_late_penalty_table_in_a_named_time_zone(tmp_path):
    policy = load_assignment(toy_with(tmp_path, '[late]\ndue = "2026-03-01T23:59:00"\n'
                                                'timezone = "America/New_York"\ntable = [0.1, 0.25, 0.5]\n')).late
    assert policy is not None and policy.due.utcoffset() == dt.timedelta(hours=-5)
    utc = dt.UTC
    at = SubmissionTime(dt.datetime(2026, 3, 3, 6, 0, tzinfo=utc), "submission_metadata.json")  # 1 day 1 h late
    penalty = late_penalty(policy, at, 8.0)
    assert (penalty.days_late, penalty.points) == (2, 2.0) and "25% for day 2" in penalty.explanation
    assert "2026-03-03 01:00 EST" in penalty.explanation  # shown in the due date's zone
    week = late_penalty(policy, SubmissionTime(policy.due + dt.timedelta(days=7), "x"), 8.0)
    assert week.points == 4.0 and "50% from day 3 on" in week.explanation


@pytest.mark.parametrize("late, says", [
    ('[late]\ndue = "2026-03-01T23:59:00"\nper_day = 0.1\n', "with a UTC offset"),
    ('[late]\ndue = 2026-03-01T23:59:00-05:00\n', "needs a penalty"),
    ('[late]\ndue = 2026-03-01T23:59:00-05:00\nper_day = 10\n', "late.per_day must be a fraction"),
    ('[late]\ndue = 2026-03-01T23:59:00-05:00\ntable = [0.5, 0.2]\n', "never decreases"),
    ('[late]\ndue = 2026-03-01T23:59:00-05:00\ntable = [0.1]\nper_day = 0.1\n', "one penalty rule"),
    ('[late]\ndue = "2026-03-01T23:59"\ntimezone = "Mars/Olympus"\nper_day = 0.1\n', "IANA time zone"),
    ('[late]\ndue = 2026-03-01T23:59:00-05:00\nper_day = 0.1\npenalty = 2\n', r"unknown key\(s\) in \[late\]: penalty"),
])
def test_a_wrong_late_policy_is_a_config_error(tmp_path, late, says):
    with pytest.raises(ConfigError, match=says):
        load_assignment(toy_with(tmp_path, late))


def test_submitted_at_csv_rows_are_checked(tmp_path):
    path = tmp_path / "submitted_at.csv"
    path.write_text("student,submitted_at\nbob,2026-03-02T10:00:00-05:00\n")
    assert read_submitted_at(path)["bob"].at == DUE + dt.timedelta(hours=10, minutes=1)
    path.write_text("student,submitted_at\nbob,2026-03-02 10:00\n")
    with pytest.raises(CourseFileError, match=r"submitted_at.csv line 2: .*with an offset"):
        read_submitted_at(path)


def test_late_penalty_in_gradebook_and_feedback_after_overrides(tmp_path):
    toy = load_assignment(toy_with(tmp_path, LATE))
    reports = tmp_path / "reports"
    late_commit = (DUE + dt.timedelta(days=1, hours=1)).isoformat()
    write_class(reports, toy_results("alice", submitted_at=(DUE - dt.timedelta(days=1)).isoformat()),
                toy_results("bob", relu=0, submitted_at=late_commit), toy_results("carol"))
    (reports / "overrides.csv").write_text("student,target,points,reason\nbob,relu,3,regraded by hand\n")
    # the TA's time for carol (e.g. from the push log) wins over anything recorded at grading
    (reports / "submitted_at.csv").write_text(f"student,submitted_at\ncarol,{DUE + dt.timedelta(hours=3)}\n")
    render_reports(toy, reports, ["alice", "bob", "carol"])
    book = gradebook(reports)
    assert [book["alice"][k] for k in ("raw_score", "late_penalty", "total", "days_late")] == ["11", "0", "11", "0"]
    # 8 autograded, 11 after the override, 2 days late at 10 % a day: 2.2 off
    assert [book["bob"][k] for k in ("raw_score", "late_penalty", "total", "days_late")] == ["8", "2.2", "8.8", "2"]
    assert [book["carol"][k] for k in ("late_penalty", "total", "days_late")] == ["1.1", "9.9", "1"]
    feedback = (reports / "bob" / "feedback.md").read_text()
    assert "**Score: 8.8 / 11**" in feedback and "adjusted by your instructor: regraded by hand" in feedback
    assert "**Late policy:** Submitted 2026-03-03 00:59 UTC-05:00 (last git commit)" in feedback
    assert "20% of 11 points = 2.2 points off" in feedback and "Score before the penalty: 11" in feedback
    assert "(submitted_at.csv)" in (reports / "carol" / "feedback.md").read_text()
    html = render_feedback_html(toy, adjust_all(toy, reports, [Results.read(reports / "bob" / "results.json")])[0])
    assert "Late policy:" in html and "2.2 points off" in html


def test_no_submission_time_means_no_penalty_and_a_warning(tmp_path, caplog):
    toy = load_assignment(toy_with(tmp_path, LATE))
    adjusted = adjust(toy, toy_results("bob"), [], None)
    assert adjusted.score == 11 and adjusted.adjustments and adjusted.adjustments.late is None
    assert "no submission time known" in caplog.text
    assert "Late policy" not in render_feedback_md(toy, adjusted)


# ---------------------------------------------------------------- commit times of hostile repositories

def git(repo: Path, *args: str, date: str = "2026-03-02T09:10:00-05:00") -> None:
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "-c", "user.name=s", "-c", "user.email=s@example.edu", *args], cwd=repo, env=env,
                   check=True, capture_output=True)


def test_commit_time_is_read_without_running_anything_of_the_repository(tmp_path):
    repo = tmp_path / "assignment-bob"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "commit", "-q", "--allow-empty", "-m", "first", date="2026-02-01T10:00:00+00:00")
    git(repo, "commit", "-q", "--allow-empty", "-m", "last")
    assert last_commit_time(repo) == dt.datetime(2026, 3, 2, 9, 10, tzinfo=EST)
    git(repo, "pack-refs", "--all")  # the branch now lives in packed-refs only
    assert last_commit_time(repo) == dt.datetime(2026, 3, 2, 9, 10, tzinfo=EST)
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.sh"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\n")
    evil.chmod(0o755)
    with open(repo / ".git" / "config", "a") as f:
        f.write(f"[core]\n\tpager = {evil}\n\tfsmonitor = {evil}\n\thooksPath = {tmp_path}\n"
                f"[log]\n\tshowSignature = true\n[gpg]\n\tprogram = {evil}\n")
    for hook in ("post-checkout", "reference-transaction", "post-index-change"):
        shutil.copy(evil, repo / ".git" / "hooks" / hook)
    assert last_commit_time(repo) == dt.datetime(2026, 3, 2, 9, 10, tzinfo=EST)
    assert not marker.exists()


def test_a_repository_whose_head_is_a_link_or_garbage_has_no_time(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    head = repo / ".git" / "HEAD"
    head.write_text("ref: refs/heads/../../../../etc/passwd\n")
    assert last_commit_time(repo) is None
    head.unlink()
    head.symlink_to(tmp_path / "elsewhere")
    assert last_commit_time(repo) is None
    assert last_commit_time(tmp_path / "no-repo") is None


# ---------------------------------------------------------------- end to end: grade, override, regrade

def test_regrading_never_loses_an_override_and_clones_carry_their_commit_time(tmp_path):
    assignment = toy_with(tmp_path, LATE)
    submissions, reports = tmp_path / "student-repos", tmp_path / "reports"
    bob = submissions / "hw1-bob"
    write_student(submissions, "hw1-bob", toy_notebook({"    return x.sum(axis=1)\n": "    return x.sum(axis=1) + 1\n"}))
    write_student(submissions, "hw1-alice", toy_notebook())
    for repo, date in ((bob, (DUE + dt.timedelta(hours=5)).isoformat()), (submissions / "hw1-alice", "2026-02-20T12:00:00Z")):
        git(repo, "init", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "submit", date=date)
    run_grader("grade", str(assignment), str(submissions), "--reports", str(reports), "--jobs", "2", "--quiet")
    assert Results.read(reports / "bob" / "results.json").meta.submitted_at == "2026-03-02T04:59:00-05:00"
    book = gradebook(reports)
    assert [book["bob"][k] for k in ("raw_score", "late_penalty", "total")] == ["9", "0.9", "8.1"]
    assert book["alice"]["total"] == "11" and book["alice"]["days_late"] == "0"
    (reports / "overrides.csv").write_text("student,target,points,reason\n"
                                           "bob,test_row_sums_partial,4,the hidden test had a bug\n")
    again = run_grader("grade", str(assignment), str(submissions), "--reports", str(reports), "--force", "--student",
                       "bob", "--quiet")
    assert f"1 override(s) from {reports}/overrides.csv, 1 late penalty(ies)" in again.stdout
    book = gradebook(reports)
    assert [book["bob"][k] for k in ("raw_score", "late_penalty", "total")] == ["9", "1.1", "9.9"]
    assert "the hidden test had a bug" in (reports / "bob" / "feedback.md").read_text()
