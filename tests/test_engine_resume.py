"""A batch killed with SIGKILL half-way loses nothing it finished and regrades nothing finished."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from grader.config import PROJECT_ROOT
from tests.conftest import TOY, run_grader, toy_notebook, write_student

STUDENTS = [f"student{i:02d}" for i in range(10)]


def finished(reports) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in reports.glob("*/results.json")}


def test_killed_batch_resumes_without_regrading(tmp_path):
    submissions, reports = tmp_path / "submissions", tmp_path / "reports"
    for student in STUDENTS:
        write_student(submissions, student, toy_notebook(before=["import time\ntime.sleep(1.0)"]))
    batch = subprocess.Popen([sys.executable, "-m", "grader", "grade", str(TOY), str(submissions),
                              "--reports", str(reports), "--jobs", "2", "--quiet"],
                             cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while len(finished(reports)) < 3 and time.monotonic() < deadline and batch.poll() is None:
        time.sleep(0.05)
    os.killpg(batch.pid, signal.SIGKILL)
    batch.wait()
    before = finished(reports)
    assert 3 <= len(before) < len(STUDENTS), "the batch should have been killed half-way"
    for path in reports.glob("*/results.json"):
        json.loads(path.read_text())  # every file written is whole

    result = run_grader("grade", str(TOY), str(submissions), "--reports", str(reports), "--jobs", "2", "--quiet")
    after = finished(reports)
    assert sorted(after) == STUDENTS
    assert all(after[s] == before[s] for s in before), "finished results must not be regraded"
    assert f"{len(STUDENTS) - len(before)} graded, {len(before)} unchanged" in result.stdout
    scores = [json.loads((reports / s / "results.json").read_text())["score"] for s in STUDENTS]
    assert scores == [11.0] * len(STUDENTS)


def test_force_and_changed_notebooks_are_regraded(tmp_path):
    submissions, reports = tmp_path / "submissions", tmp_path / "reports"
    for student in ("alice", "bob"):
        write_student(submissions, student, toy_notebook())
    run_grader("grade", str(TOY), str(submissions), "--reports", str(reports), "--quiet")
    write_student(submissions, "bob", toy_notebook({"    return x.sum(axis=1)\n": "    return x.sum(axis=0)\n"}))
    second = run_grader("grade", str(TOY), str(submissions), "--reports", str(reports), "--quiet")
    assert "1 graded, 1 unchanged" in second.stdout
    assert json.loads((reports / "bob" / "results.json").read_text())["score"] == 7.0
    forced = run_grader("grade", str(TOY), str(submissions), "--reports", str(reports), "--quiet", "--force")
    assert "2 graded, 0 unchanged" in forced.stdout
