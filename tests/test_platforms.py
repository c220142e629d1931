"""Platform packages: Gradescope's autograder.zip run in a Gradescope-shaped folder, and the GitHub
Classroom template, whose workflow is parsed and whose steps are simulated on a student repository
(once correct, once buggy), decoding the result exactly as autograding-grading-reporter does.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from grader.authoring import notebooks
from grader.config import PROJECT_ROOT, SOLUTIONS_DIR, load_assignment
from grader.platforms import PYTHON_VERSION, classroom, gradescope
from grader.results import Results
from tests.conftest import TOY, toy_notebook
from tests.test_reports import gradescope_schema_problems

ROW_SUMS = "    return x.sum(axis=1) + 1\n"
BUGGY = toy_notebook({"    return x.sum(axis=1)\n": ROW_SUMS})  # fails the hidden test, keeps half its points
HIDDEN_MESSAGE = "row_sums has the right shape but wrong values"


@pytest.fixture(scope="module")
def toy():
    return load_assignment(TOY)


# ---------------------------------------------------------------- Gradescope

def test_autograder_zip_holds_what_gradescope_runs(toy, tmp_path):
    path = gradescope.build(toy, tmp_path / "autograder.zip")
    with zipfile.ZipFile(path) as bundle:
        names = set(bundle.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in bundle.infolist()}
        setup = bundle.read("setup.sh").decode()
        run = bundle.read("run_autograder").decode()
    assert {"setup.sh", "run_autograder", "requirements.lock", "pyproject.toml", "grader/__init__.py",
            "grader/platforms/gradescope.py", "grader/reports/templates/feedback.html.j2",
            "tests/fixtures/toy/assignment.toml", "tests/fixtures/toy/tests/test_toy.py",
            "tests/fixtures/toy/toy.ipynb"} <= names
    grader_files = {p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "grader").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts}
    assert grader_files <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    for script in (setup, run):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert "-m venv" in setup and "requirements.lock" in setup
    assert "/autograder/submission" in run.replace("$ROOT", "/autograder") and "results/results.json" in run


@pytest.mark.parametrize("name", sorted(p.parent.name for p in SOLUTIONS_DIR.glob("*/assignment.toml")))
def test_every_assignment_builds_its_zip_and_template(name, tmp_path):
    assignment = load_assignment(name)
    with zipfile.ZipFile(gradescope.build(assignment, tmp_path / "autograder.zip")) as bundle:
        names = set(bundle.namelist())
    folder = f"solutions/{name}/"
    assert {folder + "assignment.toml", folder + assignment.notebook} <= names
    assert any(n.startswith(folder + "tests/test_") for n in names)
    assert {folder + f for f in assignment.submission_files} <= names  # what the solution sample submits
    out = tmp_path / "template"
    classroom.template(assignment, out, grader_repo="course-org/cnn-autograder", grader_ref="main")
    assert (out / assignment.notebook).read_text() == assignment.starter.read_text()
    readme = (out / "README.md").read_text()
    assert all(f"`{fn}`" in readme for fn in assignment.functions)
    assert all(f"`{f}`" in readme for f in assignment.submission_files)


def layered_venv(venv: Path) -> None:
    """A fresh venv that also sees the project venv's packages (a .pth file) and their data files (nbconvert's
    templates, under share/jupyter): setup.sh's `pip install -r requirements.lock` then finds every pin
    satisfied instead of installing TensorFlow for minutes."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    site = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_relative_to(sys.prefix))
    [own] = venv.glob("lib/python3*/site-packages")
    (own / "project-venv.pth").write_text(f"{site}\n")
    (venv / "share").mkdir(exist_ok=True)
    (venv / "share" / "jupyter").symlink_to(Path(sys.prefix) / "share" / "jupyter")


def timed(command: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    began = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    return result, time.monotonic() - began


def test_setup_and_run_autograder_in_a_fake_autograder_root(toy, tmp_path):
    """The zip as Gradescope uses it, in a temporary folder standing for /autograder: setup.sh (a fresh venv
    layered on the project's packages, see layered_venv), then run_autograder with no path but the root set.
    Each step's time is printed (pytest -s)."""
    root = tmp_path / "autograder"  # what Gradescope's /autograder holds
    with zipfile.ZipFile(gradescope.build(toy, tmp_path / "autograder.zip")) as bundle:
        bundle.extractall(root / "source")
    for name in ("setup.sh", "run_autograder"):
        (root / "source" / name).chmod(0o755)
    layered_venv(root / "source" / ".venv")
    python_dir = str(Path(getattr(sys, "_base_executable", sys.executable)).parent)
    env = {"PATH": f"{python_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    setup, setup_seconds = timed(["bash", str(root / "source" / "setup.sh")], cwd=tmp_path, env=env, timeout=900)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "autograder for toy is set up" in setup.stdout
    shutil.copyfile(root / "source" / "run_autograder", root / "run_autograder")  # as Gradescope's image build does
    (root / "submission").mkdir()
    (root / "submission" / "toy.ipynb").write_text(notebooks.dumps(BUGGY))
    (root / "submission_metadata.json").write_text(json.dumps({"users": [{"email": "bob@example.edu"}],
                                                               "created_at": "2026-03-01T12:00:00.123456-05:00"}))
    run, run_seconds = timed(["bash", str(root / "run_autograder")], cwd=root, env=env | {"AUTOGRADER_ROOT": str(root)},
                             timeout=300)
    print(f"\nsetup.sh {setup_seconds:.1f} s, run_autograder {run_seconds:.1f} s")
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads((root / "results" / "results.json").read_text())
    assert gradescope_schema_problems(data) == []
    assert data["score"] == 9 and data["max_score"] == 11
    assert data["extra_data"]["submitter"] == "bob@example.edu"
    assert data["extra_data"]["submitted_at"] == "2026-03-01T12:00:00.123456-05:00"
    assert data["extra_data"]["assignment"].startswith(str(root / "source"))  # the bundled copy was graded with
    hidden = [t for t in data["tests"] if t["visibility"] != "visible"]
    assert hidden and all(HIDDEN_MESSAGE not in t["output"] and t["status"] == "failed" for t in hidden)
    assert data["output_format"] == "md" and data["stdout_visibility"] == "hidden"
    # the visible total leaves out the hidden test (4 points, 2 of them earned): nothing about it leaks
    assert "**Visible tests: 7 / 7.** Tests worth 4 more points are hidden until after the due date" in data["output"]
    assert "| `row_sums` | hidden tests |" in data["output"] and " 9 " not in data["output"]
    assert "Score: 9 / 11" in run.stdout  # the log (hidden from students) shows the whole feedback


def test_gradescope_late_policy_uses_the_submission_metadata(tmp_path):
    from tests.test_adjust import LATE, toy_with
    late_toy = load_assignment(toy_with(tmp_path, LATE))
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "toy.ipynb").write_text(notebooks.dumps(BUGGY))
    (tmp_path / "meta.json").write_text(json.dumps({"created_at": "2026-03-03T01:00:00-05:00", "users": [{"email": "b@x.edu"}]}))
    out = tmp_path / "results.json"
    assert gradescope.run(str(late_toy.folder), tmp_path / "submission", out, tmp_path / "meta.json") == 0
    data = json.loads(out.read_text())
    assert gradescope_schema_problems(data) == []
    late = data["extra_data"]["adjustments"]["late"]
    assert (late["days_late"], late["points"], late["source"]) == (2, 1.8, "submission_metadata.json")
    assert data["score"] == pytest.approx(7.2) and sum(t["score"] for t in data["tests"]) == 9
    assert "**Late policy:** Submitted 2026-03-03 01:00 UTC-05:00 (submission_metadata.json)" in data["output"]


def test_gradescope_tests_follow_the_assignment_function_order(toy):
    from tests.test_adjust import toy_results
    results = toy_results("bob")
    results.tests.reverse()  # as pytest may collect them: row_sums, relu, double
    data = gradescope.gradescope_json(toy, results)
    assert [t["tags"][0] for t in data["tests"]] == ["double", "double", "relu", "row_sums"]
    assert [t["name"] for t in data["tests"]][:2] == ["test_double_values[matrix]", "test_double_values[vector]"]
    assert "**Visible tests: 7 / 7.**" in data["output"]


# ---------------------------------------------------------------- GitHub Classroom: the template

@pytest.fixture(scope="module")
def template(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("template") / "toy-template"
    classroom.template(toy, out, grader_repo="course-org/cnn-autograder", grader_ref="v1.2")
    return out


def workflow_steps(template: Path) -> tuple[dict, list[dict]]:
    workflow = yaml.safe_load((template / ".github" / "workflows" / "classroom.yml").read_text())
    return workflow, workflow["jobs"]["run-autograding-tests"]["steps"]


def step(steps: list[dict], uses: str = "", name: str = "") -> dict:
    found = [s for s in steps if (uses and s.get("uses", "").startswith(uses)) or (name and s.get("name") == name)]
    assert len(found) == 1, (uses, name, steps)
    return found[0]


def test_template_holds_the_starter_readme_and_workflow(template):
    files = sorted(p.relative_to(template).as_posix() for p in template.rglob("*") if p.is_file())
    assert files == [".github/workflows/classroom.yml", ".gitignore", "README.md", "toy.ipynb"]
    starter = notebooks.read(template / "toy.ipynb")
    code = "\n".join(c.source for c in starter.cells if c.cell_type == "code")
    assert "raise NotImplementedError" in code and "BEGIN SOLUTION" not in code and "np.maximum" not in code
    readme = (template / "README.md").read_text()
    assert "toy.ipynb" in readme and "`double`, `relu` and `row_sums`" in readme
    assert "Autograding Tests" in readme and "hidden" in readme and "instructors grade every" in readme


def test_workflow_parses_and_names_its_steps(template):
    workflow, steps = workflow_steps(template)
    assert workflow["name"] == "Autograding Tests"
    assert list(workflow["jobs"]) == ["run-autograding-tests"]
    assert set(workflow["on"]) >= {"push", "workflow_dispatch"}
    assert workflow["permissions"]["checks"] == "write"
    names = [s["name"] for s in steps]
    assert names == ["Checkout code", "Set up Python", "Fetch the grader", "Cache the grader's packages",
                     "Install the grader", "Grade the notebook", "Collect the score", "Autograding Reporter",
                     "Feedback summary", "Upload the JUnit report"]
    fetch = step(steps, name="Fetch the grader")
    assert "${{ secrets.GRADER_TOKEN }}" in fetch["env"].values()
    assert "${{ secrets.GRADER_BUNDLE_URL }}" in fetch["env"].values()
    assert "course-org/cnn-autograder" in fetch["run"] and '--branch "v1.2"' in fetch["run"]
    install = step(steps, name="Install the grader")
    assert "requirements.lock" in install["run"] and install["if"] == "steps.packages.outputs.cache-hit != 'true'"
    # pip's cache and the venv, keyed by the lock file's hash and the one Python version
    cache = step(steps, name="Cache the grader's packages")
    assert cache["uses"].startswith("actions/cache@") and cache["id"] == "packages"
    assert set(cache["with"]["path"].split()) == {"~/.cache/pip", "~/autograder/venv"}
    assert "${{ steps.grader.outputs.lock }}" in cache["with"]["key"] and f"py{PYTHON_VERSION}-" in cache["with"]["key"]
    assert step(steps, name="Set up Python")["with"]["python-version"] == PYTHON_VERSION
    # only a push that changes what is graded runs it; every job and long step has a time limit
    assert workflow["on"]["push"] == {"paths": ["toy.ipynb"]}
    assert workflow["jobs"]["run-autograding-tests"]["timeout-minutes"] > 0
    assert all(step(steps, name=n)["timeout-minutes"] > 0 for n in ("Fetch the grader", "Install the grader"))
    assert not any(s.get("uses", "").startswith("actions/cache@") and "datasets" in s["name"] for s in steps)
    grade = step(steps, uses="classroom-resources/autograding-command-grader@")
    command = grade["with"]["command"]
    # the action passes the command only PATH, HOME and a few fixed variables: nothing else may be needed
    assert set(re.findall(r"\$\{?([A-Za-z_]\w*)", command)) <= {"HOME"} and "${{" not in command
    assert "grader classroom grade" in command and "tests/fixtures/toy" in command
    reporter = step(steps, uses="classroom-resources/autograding-grading-reporter@")
    runner = reporter["with"]["runners"]
    assert re.fullmatch(r"[a-zA-Z0-9]+", runner)
    assert reporter["env"] == {f"{runner.upper()}_RESULTS": f"${{{{ steps.{runner}.outputs.result }}}}"}
    assert step(steps, name="Collect the score")["id"] == runner
    summary = step(steps, name="Feedback summary")
    assert summary["if"] == "always()" and "$GITHUB_STEP_SUMMARY" in summary["run"]
    assert names.index("Feedback summary") > names.index("Grade the notebook")
    upload = step(steps, uses="actions/upload-artifact@")
    assert upload["if"] == "always()" and upload["with"]["path"].endswith("junit.xml")


def test_keras_template_caches_the_datasets_and_the_retraining_cache(tmp_path):
    classroom.template(load_assignment("keras_models"), tmp_path / "t", grader_repo="o/r")
    workflow, steps = workflow_steps(tmp_path / "t")
    assert workflow["on"]["push"]["paths"] == ["keras_models.ipynb", "lenet5.weights.h5", "vgg.weights.h5"]
    data = step(steps, name="Cache the datasets and the retraining cache")
    assert data["uses"].startswith("actions/cache@")
    assert set(data["with"]["path"].split()) == {"~/.keras/datasets", "~/.cache/cnn-autograder"}
    assert data["with"]["key"].endswith("-${{ github.sha }}")  # saved after every run, the newest restored
    names = [s["name"] for s in steps]
    assert names.index("Cache the datasets and the retraining cache") < names.index("Grade the notebook")


def test_fetch_step_gets_the_bundle_and_keys_the_cache_by_the_lock_file(toy, template, tmp_path):
    """The step's own script, with GRADER_BUNDLE_URL a file:// URL of the zip `make gradescope` builds."""
    bundle = gradescope.build(toy, tmp_path / "autograder.zip")
    fetch = step(workflow_steps(template)[1], name="Fetch the grader")
    home, output, runner_temp = tmp_path / "home", tmp_path / "github_output", tmp_path / "runner_temp"
    home.mkdir()
    runner_temp.mkdir()
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), "RUNNER_TEMP": str(runner_temp),
           "GITHUB_OUTPUT": str(output), "GRADER_BUNDLE_URL": bundle.as_uri(), "GRADER_TOKEN": ""}
    subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", fetch["run"]], cwd=tmp_path, env=env,
                   check=True, timeout=60)
    lock = (home / "autograder" / "src" / "requirements.lock").read_bytes()
    assert read_github_output(output) == {"lock": hashlib.sha256(lock).hexdigest()[:16]}
    assert (home / "autograder" / "src" / "grader" / "cli.py").is_file()


def test_one_python_version_everywhere():
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["mypy"]["python_version"] == PYTHON_VERSION
    assert pyproject["project"]["requires-python"] == f">={PYTHON_VERSION}"
    workflow = yaml.safe_load((PROJECT_ROOT / ".github" / "workflows" / "grade-class.yml").read_text())
    versions = {s["with"]["python-version"] for job in workflow["jobs"].values() for s in job["steps"]
                if s.get("uses", "").startswith("actions/setup-python@")}
    assert versions == {PYTHON_VERSION}


# ---------------------------------------------------------------- GitHub Classroom: the workflow, simulated

def reporter_reads(runners: str, env: dict) -> dict:
    """What autograding-grading-reporter does with its input and environment (src/main.js,
    src/notify-classroom.js): split runners on whitespace and commas, base64-decode and parse
    `<RUNNER>_RESULTS`, add up the tests' `score` and the `max_score` of runners that have one."""
    runner_results = []
    for runner in filter(None, re.split(r"[\s,]", runners)):
        encoded = env[f"{runner.strip().upper()}_RESULTS"]
        runner_results.append((runner, json.loads(base64.b64decode(encoded).decode("utf-8"))))
    total = maximum = 0
    for _, results in runner_results:
        if not results.get("max_score"):
            continue
        maximum += results["max_score"]
        for test in results["tests"]:
            total += test["score"]
    js = lambda x: f"{x:g}" if float(x).is_integer() else repr(x)  # noqa: E731 -- how JS prints a number
    failed = (any(r["status"] == "fail" for _, r in runner_results)
              or any(r["status"] == "error" for _, r in runner_results))
    return {"runners": runner_results, "total": total, "max": maximum,
            "notice": f"Points {js(total)}/{js(maximum)}" if maximum else None, "failed": failed}


def expression(value: str, outputs: dict) -> str:
    """Resolve ${{ steps.<id>.outputs.<name> }} as Actions does."""
    return re.sub(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}",
                  lambda m: outputs.get(m.group(1), {}).get(m.group(2), ""), value)


def read_github_output(path: Path) -> dict:
    values, lines = {}, path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        if "<<" in lines[i] and "=" not in lines[i].split("<<")[0]:
            name, delimiter = lines[i].split("<<", 1)
            end = lines.index(delimiter, i + 1)
            values[name] = "\n".join(lines[i + 1:end])
            i = end
        elif "=" in lines[i]:
            name, value = lines[i].split("=", 1)
            values[name] = value
        i += 1
    return values


def simulate(template: Path, notebook, tmp_path: Path) -> dict:
    """Run the workflow's steps on a student repository made from the template."""
    repo = tmp_path / "toy-alice"
    shutil.copytree(template, repo)
    (repo / "toy.ipynb").write_text(notebooks.dumps(notebook))
    home = tmp_path / "home"  # what "Install the grader" leaves: $HOME/autograder/{src,venv}
    (home / "autograder").mkdir(parents=True)
    (home / "autograder" / "src").symlink_to(PROJECT_ROOT)
    (home / "autograder" / "venv").symlink_to(Path(sys.executable).parent.parent)
    summary, runner_temp = tmp_path / "step_summary.md", tmp_path / "runner_temp"
    runner_temp.mkdir()
    outputs, seen = {}, {}
    _, steps = workflow_steps(template)
    for i, s in enumerate(steps):
        uses = s.get("uses", "")
        if uses.startswith(("actions/checkout@", "actions/setup-python@", "actions/cache@")) or s["name"] in (
                "Fetch the grader", "Install the grader"):
            continue  # done above (test_fetch_step_... runs the fetch step itself)
        if uses.startswith("classroom-resources/autograding-command-grader@"):
            env = {"PATH": os.environ["PATH"], "FORCE_COLOR": "true", "DOTNET_CLI_HOME": "/tmp",
                   "DOTNET_NOLOGO": "true", "HOME": str(home)}  # all the action passes on
            seen["grade"] = subprocess.run(["/bin/sh", "-c", s["with"]["command"]], cwd=repo, env=env,
                                           capture_output=True, text=True, timeout=60 * float(s["with"]["timeout"]))
        elif uses.startswith("classroom-resources/autograding-grading-reporter@"):
            env = {k: expression(v, outputs) for k, v in s["env"].items()}
            seen["reporter"] = reporter_reads(s["with"]["runners"], env)
        elif uses.startswith("actions/upload-artifact@"):
            seen["artifact"] = repo / s["with"]["path"]
        elif "run" in s:
            github_output = tmp_path / f"github_output_{i}"
            env = {"PATH": os.environ["PATH"], "HOME": str(home), "GITHUB_OUTPUT": str(github_output),
                   "GITHUB_STEP_SUMMARY": str(summary), "RUNNER_TEMP": str(runner_temp),
                   "GITHUB_WORKSPACE": str(repo)}
            subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", s["run"]], cwd=repo, env=env,
                           check=True, timeout=60)
            if "id" in s:
                outputs[s["id"]] = read_github_output(github_output)
        else:
            raise AssertionError(f"unexpected step {s}")
    seen["summary"] = summary.read_text()
    seen["repo"] = repo
    return seen


@pytest.mark.parametrize("notebook, points, status", [(toy_notebook(), 11, "pass"), (BUGGY, 9, "fail")],
                         ids=["correct", "buggy"])
def test_workflow_grades_a_student_repository(template, tmp_path, notebook, points, status):
    seen = simulate(template, notebook, tmp_path)
    grade = seen["grade"]
    assert grade.returncode == 0, grade.stdout + grade.stderr
    assert f"**Score: {points} / 11**" in grade.stdout  # the feedback is printed in the log
    reporter = seen["reporter"]
    assert reporter["total"] == points and reporter["max"] == 11 and reporter["notice"] == f"Points {points}/11"
    (_, payload), = reporter["runners"]
    assert payload["status"] == status and reporter["failed"] == (status != "pass")
    results = Results.read(seen["repo"] / ".autograder" / "results.json")
    assert [t["score"] for t in payload["tests"]] == [t.score for t in results.tests]
    assert results.score == points
    assert all(t["status"] in ("pass", "fail") and t["line_no"] == 0 for t in payload["tests"])
    assert HIDDEN_MESSAGE not in json.dumps(payload)
    assert f"**Score: {points} / 11**" in seen["summary"]
    assert seen["artifact"].is_file() and seen["artifact"].read_text().startswith("<?xml")


def test_workflow_reports_an_error_when_the_grader_never_ran(template, tmp_path):
    _, steps = workflow_steps(template)
    collect = step(steps, name="Collect the score")
    github_output = tmp_path / "out"
    env = {"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(github_output), "RUNNER_TEMP": str(tmp_path)}
    subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", collect["run"]], cwd=tmp_path,
                   env=env, check=True)
    read = reporter_reads(collect["id"], {f"{collect['id'].upper()}_RESULTS": read_github_output(github_output)["result"]})
    (_, payload), = read["runners"]
    assert payload["status"] == "error" and read["failed"] and read["notice"] is None


def test_payload_scores_sum_exactly_to_the_grader_score(toy):
    tests = [{"name": f"t{i}", "score": s, "max_score": 1.0, "status": "failed", "output": "", "visibility": "visible",
              "tags": ["double", "value"]} for i, s in enumerate([0.1, 0.2, 0.3, 1 / 3, 0.7])]
    results = Results.from_json({"score": round(sum(t["score"] for t in tests), 6), "max_score": 5.0, "output": "",
                                 "tests": tests, "extra_data": {"student": "x"}})
    payload = json.loads(base64.b64decode(classroom.reporter_b64(toy, results)))
    total = 0
    for test in payload["tests"]:
        total += test["score"]
    assert total == results.score and payload["max_score"] == 5.0


def test_make_targets_exist():
    for target, module in (("gradescope", "grader gradescope build"),
                           ("classroom-template", "grader classroom template")):
        result = subprocess.run(["make", "-n", target, f"ASSIGNMENT={TOY}"], cwd=PROJECT_ROOT, capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 0 and module in result.stdout, result.stdout + result.stderr
