""".github/workflows/grade-class.yml, parsed and its steps simulated: the merge fails when a shard failed or
uploaded nothing (never a partial gradebook), the shards share the retraining cache, and each shard clones
only its own students' repositories (a fake `gh` stands for GitHub), falling back to the whole class."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from grader.config import PROJECT_ROOT
from grader.ingest.submissions import discover, report_folder, select_shard
from tests.conftest import TOY
from tests.test_adjust import toy_results, write_class

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "grade-class.yml"
CLASS = [f"student{i:02d}" for i in range(12)] + ["ann-lee", "ann-smith"]


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def named(steps: list[dict], name: str) -> dict:
    [found] = [s for s in steps if s.get("name") == name]
    return found


def resolve(value: str, context: dict[str, str]) -> str:
    """${{ expr }} replaced as Actions would, from a flat context ("inputs.shards": "2", ...)."""
    return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", lambda m: context[m.group(1)], value)


def run_step(step: dict, context: dict[str, str], cwd: Path, extra_env: dict[str, str] | None = None):
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GITHUB_ENV": str(cwd / "github_env"),
           **{k: resolve(str(v), context) for k, v in (step.get("env") or {}).items()}, **(extra_env or {})}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_workflow_parses_with_caches_timeouts_and_a_guarded_merge(workflow):
    jobs = workflow["jobs"]
    assert list(jobs) == ["plan", "warm-cache", "grade", "merge"]
    assert all(job["timeout-minutes"] > 0 for job in jobs.values())
    assert jobs["grade"]["needs"] == ["plan", "warm-cache"] and jobs["merge"]["needs"] == ["plan", "grade"]
    assert jobs["merge"]["if"] == "always()"  # it runs, and fails, when a shard failed
    assert jobs["merge"]["steps"][0]["name"] == "Every shard must have finished"
    # one cache key for the run: saved by warm-cache, restored by every shard, extended by the merge
    def cache_steps(job: str, action: str) -> list[dict]:
        return [s for s in jobs[job]["steps"] if s.get("uses", "").startswith(f"actions/cache/{action}@")]
    [warm_save] = cache_steps("warm-cache", "save")
    [shard_restore] = cache_steps("grade", "restore")
    assert shard_restore["with"]["key"] == warm_save["with"]["key"]
    assert "${{ github.run_id }}" in warm_save["with"]["key"] and "hashFiles('requirements.lock')" in warm_save["with"]["key"]
    assert set(workflow["env"]["CACHE_PATHS"].split()) == {"~/.keras/datasets", "~/.cache/cnn-autograder"}
    [merged] = cache_steps("merge", "save")
    assert merged["with"]["key"] == warm_save["with"]["key"] + "-merged"
    warm = named(jobs["warm-cache"]["steps"], "Retrain the solution's architecture once for every shard")
    assert "grader calibrate" in warm["run"]
    steps = [s.get("name") or s["uses"] for s in jobs["grade"]["steps"]]
    assert steps.index("Download this shard's submissions") < steps.index("Grade shard ${{ matrix.shard }}/${{ inputs.shards }}")


def shard_reports(root: Path, shards: int, missing: int | None = None) -> Path:
    """What download-artifact leaves in shards/: reports-shard-<i>/<student>/results.json, one shard left out."""
    folder = root / "shards"
    for i, student in enumerate(["alice", "bob", "carol", "dave"]):
        shard = i % shards + 1
        if shard != missing:
            results = toy_results(student)
            results.meta.assignment = str(TOY)
            write_class(folder / f"reports-shard-{shard}", results)
    return folder


@pytest.fixture
def merge_job(workflow, tmp_path):
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)  # what `make install` leaves
    return workflow["jobs"]["merge"]["steps"]


def test_the_merge_fails_when_a_shard_failed(merge_job, tmp_path):
    check = named(merge_job, "Every shard must have finished")
    for result in ("failure", "cancelled", "skipped"):
        done = run_step(check, {"needs.grade.result": result}, tmp_path)
        assert done.returncode == 1 and f"a shard did not finish (grade: {result})" in done.stdout
    assert run_step(check, {"needs.grade.result": "success"}, tmp_path).returncode == 0


def test_the_merge_fails_when_a_shard_uploaded_no_reports(merge_job, tmp_path):
    shard_reports(tmp_path, 2, missing=2)
    done = run_step(named(merge_job, "Merge the shards"), {"inputs.shards": "2"}, tmp_path)
    assert done.returncode == 1 and "1 of 2 shards uploaded reports: no partial gradebook" in done.stdout
    assert not (tmp_path / "reports" / "class").exists()


def test_the_merge_of_every_shard_writes_one_gradebook(merge_job, tmp_path):
    shard_reports(tmp_path, 2)
    done = run_step(named(merge_job, "Merge the shards"), {"inputs.shards": "2"}, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = (tmp_path / "reports" / "class" / "gradebook.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["alice", "bob", "carol", "dave"]


FAKE_GH = """#!/usr/bin/env bash
# A stand-in for the gh CLI: records its calls; `gh api` prints the roster (or fails), `gh repo clone`
# makes a repository holding a notebook, `gh classroom clone` makes the whole class as gh-classroom does.
echo "$*" >> "$GH_LOG"
case "$1 $2" in
  "api "*) [ -n "$GH_ROSTER" ] || { echo "HTTP 404: Not Found" >&2; exit 1; }; cat "$GH_ROSTER" ;;
  "repo clone") mkdir -p "$4" && cp "$GH_NOTEBOOK" "$4/toy.ipynb" && git -C "$4" init -q ;;
  "extension install") ;;
  "classroom clone") for login in $(cut -f1 "$GH_CLASS"); do
      d="$7/hw1-submissions/hw1-$login"; mkdir -p "$d" && cp "$GH_NOTEBOOK" "$d/toy.ipynb" && git -C "$d" init -q
    done ;;
  *) echo "unexpected gh $*" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def fake_gh(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    roster = tmp_path / "roster-source.tsv"
    roster.write_text("".join(f"{login}\tcourse-org/hw1-{login}\n" for login in CLASS))
    (tmp_path / "toy.ipynb").write_text((TOY / "toy.ipynb").read_text())
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "GH_LOG": str(tmp_path / "gh.log"),
           "GH_NOTEBOOK": str(tmp_path / "toy.ipynb"), "GH_CLASS": str(roster), "GH_ROSTER": str(roster)}
    return work, env


def download(workflow, work: Path, env: dict, shard: str):
    step = named(workflow["jobs"]["grade"]["steps"], "Download this shard's submissions")
    index, count = shard.split("/")
    context = {"secrets.CLASSROOM_TOKEN": "t", "inputs.classroom_assignment_id": "42", "matrix.shard": index,
               "inputs.shards": count}
    return run_step(step, context, work, env)


def github_env(work: Path) -> dict[str, str]:
    path = work / "github_env"
    return dict(line.split("=", 1) for line in path.read_text().splitlines()) if path.exists() else {}


@pytest.mark.parametrize("shard", ["1/3", "2/3", "3/3"])
def test_each_shard_clones_only_its_own_students(workflow, fake_gh, shard):
    work, env = fake_gh
    done = download(workflow, work, env, shard)
    assert done.returncode == 0, done.stdout + done.stderr
    cloned = sorted(p.name for p in (work / "student-repos").iterdir())
    expected = sorted(login for login in CLASS if report_folder(login) in
                      {s.student for s in select_shard([_sub(n) for n in CLASS], shard)})
    assert cloned == expected and cloned
    assert "classroom clone" not in Path(env["GH_LOG"]).read_text()
    # the grader names each student by login and `--shard` keeps exactly the same students
    found = discover(work / github_env(work)["SUBMISSIONS"], "toy.ipynb")
    assert sorted(s.display_name for s in select_shard(found, shard)) == expected
    assert all(s.repo is not None and s.repo.parent.name == s.display_name for s in found)  # commit times readable


def _sub(name: str):
    from grader.ingest.submissions import Submission
    return Submission(report_folder(name), None, None, name=name)


def test_a_shard_without_students_grades_nothing_and_still_uploads(workflow, fake_gh, tmp_path):
    work, env = fake_gh
    roster = tmp_path / "one.tsv"
    roster.write_text("student00\tcourse-org/hw1-student00\n")
    from grader.ingest.submissions import shard_of
    empty = 1 if shard_of("student00", 2) == 2 else 2
    done = download(workflow, work, env | {"GH_ROSTER": str(roster)}, f"{empty}/2")
    assert done.returncode == 0 and "SUBMISSIONS" not in github_env(work)
    grade = named(workflow["jobs"]["grade"]["steps"], "Grade shard ${{ matrix.shard }}/${{ inputs.shards }}")
    context = {"inputs.assignment": "toy", "matrix.shard": str(empty), "inputs.shards": "2",
               "needs.plan.outputs.seed": "1"}
    done = run_step(grade, context, work)
    assert done.returncode == 0 and (work / "reports" / f"shard-{empty}" / ".empty-shard").is_file()


def test_without_access_to_the_roster_a_shard_clones_the_whole_class(workflow, fake_gh):
    work, env = fake_gh
    done = download(workflow, work, env | {"GH_ROSTER": ""}, "2/3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cloning the whole class" in done.stdout
    assert "classroom clone student-repos -a 42" in Path(env["GH_LOG"]).read_text()
    found = discover(work / github_env(work)["SUBMISSIONS"], "toy.ipynb")
    assert len(found) == len(CLASS)
    # the same students as the per-shard download picks, by the same names
    shard = sorted(s.display_name for s in select_shard(found, "2/3"))
    picked = sorted(s.display_name for s in select_shard([_sub(n) for n in CLASS], "2/3"))
    assert shard == picked


def test_classroom_shard_cli_checks_the_roster(tmp_path):
    from tests.conftest import run_grader
    roster = tmp_path / "r.tsv"
    roster.write_text("alice\tcourse-org/hw1-alice\nbob\tnot a repository\n")
    done = run_grader("classroom", "shard", "--roster", str(roster), "--shard", "1/1", check=False)
    assert done.returncode == 2 and "r.tsv line 2: expected login<TAB>owner/repository" in done.stderr
    roster.write_text("alice\tcourse-org/hw1-alice\n")
    assert run_grader("classroom", "shard", "--roster", str(roster), "--shard", "1/1").stdout == \
        "alice\tcourse-org/hw1-alice\n"
    assert run_grader("classroom", "shard", "--roster", str(roster), "--shard", "3/2", check=False).returncode == 2
