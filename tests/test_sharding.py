"""Shards partition the submissions exactly, and merging them equals one run's gradebook."""
from __future__ import annotations

import yaml

from grader.config import PROJECT_ROOT
from grader.ingest.submissions import Submission, select_shard
from tests.conftest import TOY, run_grader, toy_notebook, write_student


def test_shards_partition_the_students_exactly():
    subs = [Submission(f"student-{i}", None, None) for i in range(500)]
    for count in (1, 2, 3, 7):
        shards = [select_shard(subs, f"{i}/{count}") for i in range(1, count + 1)]
        names = [s.student for shard in shards for s in shard]
        assert sorted(names) == sorted(s.student for s in subs)  # none lost, none twice
        if count > 1:
            assert all(len(shard) > 500 / count / 2 for shard in shards)
    assert select_shard(subs, "2/3") == select_shard(list(reversed(subs)), "2/3")[::-1]


def test_merged_shards_equal_a_single_run(tmp_path):
    subs = tmp_path / "subs"
    for i in range(6):
        bug = {} if i % 2 else {"    return np.maximum(x, 0)\n": "    return np.abs(x)\n"}
        write_student(subs, f"s{i}", toy_notebook(bug))
    common = ["--quiet", "--seed", "7", "--jobs", "2"]
    run_grader("grade", str(TOY), str(subs), "--reports", str(tmp_path / "single"), *common)
    shards = []
    for i in (1, 2, 3):
        shards.append(str(tmp_path / f"shard{i}"))
        run_grader("grade", str(TOY), str(subs), "--reports", shards[-1], "--shard", f"{i}/3", *common)
    run_grader("merge", *shards, "--out", str(tmp_path / "merged"))
    single = (tmp_path / "single" / "gradebook.csv").read_text()
    assert (tmp_path / "merged" / "gradebook.csv").read_text() == single
    assert len(single.splitlines()) == 7
    assert "s0" in (tmp_path / "merged" / "summary.html").read_text()


def test_merge_refuses_a_student_graded_twice(tmp_path):
    subs = tmp_path / "subs"
    write_student(subs, "alice", toy_notebook())
    for name in ("a", "b"):
        run_grader("grade", str(TOY), str(subs), "--reports", str(tmp_path / name), "--quiet")
    result = run_grader("merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m"), check=False)
    assert result.returncode != 0 and "graded in both" in result.stderr


def test_class_grading_workflow_runs_shards_then_merges():
    workflow = yaml.safe_load((PROJECT_ROOT / ".github" / "workflows" / "grade-class.yml").read_text())
    jobs = workflow["jobs"]
    assert jobs["grade"]["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.plan.outputs.shards) }}"
    grade_steps = " ".join(str(step) for step in jobs["grade"]["steps"])
    assert "gh classroom clone student-repos" in grade_steps and "SHARD=" in grade_steps
    assert "upload-artifact" in grade_steps
    assert jobs["merge"]["needs"] == ["plan", "grade"]
    assert any("grader merge" in str(step.get("run", "")) for step in jobs["merge"]["steps"])
