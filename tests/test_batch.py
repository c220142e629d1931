"""A batch no submission can break, and class records a TA can trust (grader/batch.py and what it writes).

Every batch here grades the toy assignment (about a second per submission), so each test takes seconds.
Trouble in the grader's own process (a worker that dies, an evaluation that never ends) is simulated with
a hidden test that reads a marker file in the submission: a student's code cannot reach the worker.
"""
from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from grader.config import PROJECT_ROOT
from grader.ingest.submissions import MAX_FOLDER_CHARS, RESERVED_NAMES, discover, report_folder
from grader.ingest.workdir import WORKDIR_LOCK, clean_stale_workdirs
from grader.results import MAX_RESULTS_BYTES
from tests.conftest import TOY, read_results, run_grader, toy_notebook, write_student

FULL = 11.0
HEADER = ["student", "double", "relu", "row_sums", "raw_score", "late_penalty", "total", "max_score", "status", "days_late",
          "overrides"]

TROUBLE_TEST = '''
import os, signal, time
from pathlib import Path

import numpy as np
import pytest


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("double")
def test_grader_side_trouble(student):
    """Trouble in the grader's own process for a submission holding a TROUBLE file: `die` kills the
    worker every time, `flaky <counter>` on the first attempt only, `slow` never finishes evaluating."""
    marker = student.files / "TROUBLE"
    if marker.is_file():
        kind, _, counter = marker.read_text().partition(" ")
        if kind == "slow":
            time.sleep(600)
        if counter:
            with open(counter, "a") as f:
                f.write("x")
        if kind == "die" or len(Path(counter).read_text()) == 1:
            os.kill(os.getpid(), signal.SIGKILL)
    assert np.allclose(student.double(np.ones(2)), 2.0)
'''


def toy_with(tmp_path: Path, budget: float | None = None, trouble: bool = False) -> Path:
    """A copy of the toy assignment, with a submission budget and/or the TROUBLE hidden test."""
    assignment = tmp_path / "toy"
    shutil.copytree(TOY, assignment)
    if budget is not None:
        config = assignment / "assignment.toml"
        config.write_text(config.read_text().replace("[limits]\n", f"[limits]\nsubmission_budget = {budget}\n"))
    if trouble:
        (assignment / "tests" / "test_trouble.py").write_text(TROUBLE_TEST)
    return assignment


def gradebook(reports: Path) -> list[dict[str, str]]:
    with open(reports / "gradebook.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows


def grade(assignment: Path, submissions: Path, reports: Path, *extra: str, check: bool = True):
    return run_grader("grade", str(assignment), str(submissions), "--reports", str(reports), "--quiet", *extra,
                      check=check)


def leftovers(prefix: str) -> list[str]:
    return [p.name for p in Path("/tmp").glob(f"grader-{prefix}*")]


STATEFUL_TEST = '''
import pytest

SEEN = []  # module state: every submission's tests must start from an untouched copy of it


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("double")
def test_starts_from_untouched_state(student):
    SEEN.append(float(student.double(1.0)))
    assert SEEN == [2.0], f"the tests saw another submission's state: {SEEN}"
'''


@pytest.mark.parametrize("order", [("a-correct", "b-buggy"), ("a-buggy", "b-correct")])
def test_no_submission_sees_state_left_by_another(tmp_path, order):
    """The hidden tests are imported once, before the workers start; each submission still starts from the
    same untouched state, whichever submission was graded before it."""
    assignment = toy_with(tmp_path)
    (assignment / "tests" / "test_stateful.py").write_text(STATEFUL_TEST)
    subs, reports = tmp_path / "subs", tmp_path / "reports"
    for name in order:
        buggy = toy_notebook({"return 2 * np.asarray(x)": "return 3 * np.asarray(x)"})
        write_student(subs, name, buggy if name.endswith("buggy") else toy_notebook())
    grade(assignment, subs, reports, "--jobs", "1")
    correct = read_results(reports, next(n for n in order if n.endswith("correct")))
    buggy = read_results(reports, next(n for n in order if n.endswith("buggy")))
    assert correct["score"] == FULL + 1, correct["tests"]
    failed = {t["name"] for t in buggy["tests"] if t["status"] == "failed"}
    assert failed == {"test_double_values[vector]", "test_double_values[matrix]", "test_starts_from_untouched_state"}


# ---------------------------------------------------------------- containment, retries, statuses

def test_a_dying_worker_is_charged_to_its_submission_alone(tmp_path):
    """One submission whose worker always dies, one whose worker dies once, a corrupt notebook and a folder
    without a notebook, among honest students: only the dying one is a grader error, with an empty total."""
    assignment = toy_with(tmp_path, trouble=True)
    subs, reports = tmp_path / "subs", tmp_path / "reports"
    honest = ["alice", "bob", "carol", "dave"]
    for name in honest:
        write_student(subs, name, toy_notebook())
    write_student(subs, "victim", toy_notebook())
    (subs / "victim" / "TROUBLE").write_text(f"die {tmp_path / 'victim.count'}")
    write_student(subs, "flaky", toy_notebook())
    (subs / "flaky" / "TROUBLE").write_text(f"flaky {tmp_path / 'flaky.count'}")
    write_student(subs, "corrupt", raw='{"cells": [')
    (subs / "nothing").mkdir()
    (subs / "nothing" / "essay.pdf").write_bytes(b"%PDF-1.4")

    result = grade(assignment, subs, reports, "--jobs", "2")

    assert (tmp_path / "victim.count").read_text() == "xx", "retried once, then given up: bounded"
    assert (tmp_path / "flaky.count").read_text() == "xx", "died once, graded on the retry"
    rows = {row["student"]: row for row in gradebook(reports)}
    assert list(gradebook(reports)[0]) == HEADER
    for name in [*honest, "flaky"]:
        assert rows[name]["total"] == "12" and rows[name]["status"] == "graded", rows[name]
    assert rows["victim"] == {**dict.fromkeys(HEADER, ""), "student": "victim", "status": "grader error"}
    assert rows["corrupt"]["status"] == "notebook problem" and rows["corrupt"]["total"] == "0"
    assert rows["nothing"]["status"] == "no submission" and rows["nothing"]["total"] == "0"
    victim = read_results(reports, "victim")
    assert "killed by SIGKILL on each of 2 attempts" in victim["extra_data"]["grader_error"]
    assert not victim["extra_data"]["fingerprint"]  # a rerun grades it again
    assert "essay.pdf" in read_results(reports, "nothing")["extra_data"]["problem"]

    # the retries are logged (logger grader.batch), and the terminal names each student with a problem
    assert re.search(r"WARNING grader\.batch: flaky: the grading worker was killed by SIGKILL; grading it again "
                     r"\(attempt 2 of 2\)", result.stderr), result.stderr
    assert "ERROR grader.batch: victim:" in result.stderr
    problems = result.stdout[result.stdout.index("3 with problems:"):].splitlines()[1:4]
    assert problems[0].startswith("  corrupt (notebook problem): ") and "not valid notebook JSON" in problems[0]
    assert problems[1].startswith("  nothing (no submission): no notebook (.ipynb) was found")
    assert problems[2].startswith("  victim (grader error): the grader failed: the grading worker process was killed")

    summary = (reports / "summary.html").read_text()
    errors = summary[summary.index('id="problems"'):]
    for name, status in (("victim", "grader error"), ("corrupt", "notebook problem"), ("nothing", "no submission")):
        assert re.search(rf"<td><a href=\"{name}/feedback.html\">{name}</a></td><td>{status}</td>", errors), name


def test_the_problem_list_shows_the_first_ten():
    from grader.batch import problem_lines
    summaries = [{"student": f"s{i:02d}", "name": f"s{i:02d}", "status": "notebook problem", "reason": "empty",
                  "score": 0, "max_score": 11, "error": "empty"} for i in range(13)]
    lines = problem_lines(summaries + [{"student": "ok", "name": "ok", "status": "graded", "reason": ""}])
    assert lines[0] == "13 with problems:" and len(lines) == 12
    assert lines[1] == "  s00 (notebook problem): empty" and lines[-1] == "  ... and 3 more: see summary.html"


# ---------------------------------------------------------------- one deadline per submission

def test_the_submission_budget_bounds_cells_and_the_graders_own_work(tmp_path):
    """Budget 4 s. Five cells of 1.5 s each (each well within cell_timeout, 7.5 s in all) are stopped at the
    budget; an evaluation in the grader's process that never ends has its worker stopped at budget + grace.
    Both students get a clear 'time budget exceeded'; the honest one is graded in full."""
    from grader.batch import budget_grace
    assignment = toy_with(tmp_path, budget=4, trouble=True)
    subs, reports = tmp_path / "subs", tmp_path / "reports"
    tag = uuid.uuid4().hex[:8]
    write_student(subs, "honest", toy_notebook())
    write_student(subs, f"cells{tag}", toy_notebook(before=["import time\ntime.sleep(1.5)"] * 5))
    write_student(subs, f"slow{tag}", toy_notebook())
    (subs / f"slow{tag}" / "TROUBLE").write_text("slow")
    began = time.monotonic()
    result = grade(assignment, subs, reports, "--jobs", "3")
    wall = time.monotonic() - began
    assert wall < 4 + budget_grace(4) + 10, wall

    honest = read_results(reports, "honest")
    assert honest["score"] == 12 and honest["extra_data"]["status"] == "graded"

    cells = read_results(reports, f"cells{tag}")
    assert cells["extra_data"]["status"] == "notebook problem"
    assert cells["extra_data"]["problem"].startswith("time budget exceeded: grading this submission took more than "
                                                     "the 4 s")
    assert cells["execution_time"] < 4 + 2, "stopped while the cells ran, not after them"
    stopped = [c for c in cells["extra_data"]["cells"] if c["status"] == "timeout"]
    assert stopped and "time budget of 4 s ran out" in stopped[0]["error"]
    assert all("time budget" in t["output"] for t in cells["tests"]), [t["output"] for t in cells["tests"]]

    slow = read_results(reports, f"slow{tag}")
    assert slow["extra_data"]["status"] == "notebook problem" and slow["score"] == 0 and slow["max_score"] == 12
    assert "time budget exceeded" in slow["output"] and slow["extra_data"]["fingerprint"]
    rows = {row["student"]: row for row in gradebook(reports)}
    assert rows[f"slow{tag}"]["status"] == "notebook problem" and rows[f"slow{tag}"]["total"] == "0"
    assert f"slow{tag} (notebook problem): time budget exceeded" in result.stdout
    assert "stopped past the time budget" in result.stderr
    assert not leftovers(f"cells{tag}") and not leftovers(f"slow{tag}"), "temporary copies are removed"


# ---------------------------------------------------------------- bounded reports

def test_a_notebook_of_5000_failing_cells_gives_bounded_reports(tmp_path):
    """5,000 cells that each print 1,000 characters and raise a 300-character error, and a function whose
    error message is 1 MB: every report stays small and says what it left out."""
    cells = [f"print('p' * 1000)\nraise ValueError('cell {i} fails ' + 'e' * 300)" for i in range(5000)]
    notebook = toy_notebook({"    return 2 * np.asarray(x)\n": "    raise ValueError('m' * 1_000_000)\n"},
                            extra_cells=cells)
    subs, reports = tmp_path / "subs", tmp_path / "reports"
    write_student(subs, "many", notebook)
    grade(TOY, subs, reports)

    sizes = {p.name: p.stat().st_size for p in (reports / "many").iterdir()}
    assert set(sizes) == {"results.json", "feedback.md", "feedback.html", "junit.xml"}
    assert sizes["results.json"] <= MAX_RESULTS_BYTES
    assert sum(sizes.values()) < 1_000_000, sizes  # about 0.5 MB in all (73 MB before the bounds)
    assert (reports / "summary.html").stat().st_size < 500_000

    results = read_results(reports, "many")
    meta = results["extra_data"]
    assert results["score"] == FULL - 4  # the cells failing does not stop the functions defined before them
    assert len(meta["cells"]) <= 100 and sum(c["status"] != "ok" for c in meta["cells"]) == 20
    # 5,001 failing cells: the notebook's own self-check of double fails too
    assert any("4,981 cells not listed (4,981 of them failed)" in note for note in meta["truncated"]), meta["truncated"]
    assert "[... 4,981 more cells failed (cells" in results["output"]
    failed = [t for t in results["tests"] if t["status"] == "failed"]
    assert failed and all(len(t["output"]) <= 5100 for t in failed)  # a 1 MB error message
    feedback = (reports / "many" / "feedback.md").read_text()
    assert "4,981 cells not listed (4,981 of them failed)" in feedback
    print(f"5,000 failing cells: {sizes} bytes, summary.html {(reports / 'summary.html').stat().st_size}")


def test_results_over_the_size_cap_are_cut_in_marked_steps():
    from grader.results import CellLog, Results, SubmissionMeta, TestResult, bound
    tests = [TestResult(f"t{i}", 0.0, 1.0, False, ("double",), "value", message="m" * 3900) for i in range(700)]
    tests[0].message = "m" * 1_000_000
    cells = [CellLog(i + 1, "ok", "", "o" * 7000) for i in range(100)]
    results = Results(0.0, 700.0, "x" * 30_000, tests, SubmissionMeta("big", cells=cells))
    text = bound(results)
    assert len(text.encode()) <= MAX_RESULTS_BYTES
    data = json.loads(text)
    assert data["output"].endswith("[... truncated: 30,000 characters in all]")
    assert data["tests"][0]["output"].endswith("[... truncated: 1,000,000 characters in all]")
    steps = data["extra_data"]["truncated"]
    assert steps[0] == f"results.json was over {MAX_RESULTS_BYTES:,} bytes: cell outputs dropped", steps
    assert bound(Results.from_json(data)) == text  # bounding is idempotent


# ---------------------------------------------------------------- names

def test_report_folder_names_are_safe_stable_unique_and_capped():
    names = ["alice", "José", "Jose", "JOSÉ", "a b", "a_b", "a?b", "李雷", "gradebook.csv", "Summary.HTML",
             ".grader-run.json", "overrides.csv", "-dash", "x" * 240, "x" * 241, "Zoë", "Zoe\u0308", "nul", "..", "."]
    folders = {name: report_folder(name) for name in names}
    assert folders["alice"] == "alice" and folders["Jose"] == "Jose" and folders["a_b"] == "a_b"
    assert folders["Zoë"] == folders["Zoe\u0308"], "the same name in NFC and NFD (a Mac) is one student"
    distinct = {n for n in names if n != "Zoe\u0308"}
    assert len({folders[n] for n in distinct}) == len(distinct), folders
    for name, folder in folders.items():
        assert folder == report_folder(name), "a function of the name alone"
        assert folder.isascii() and len(folder) <= MAX_FOLDER_CHARS and re.fullmatch(r"[A-Za-z0-9][\w.@+-]*", folder)
        assert folder.lower() not in RESERVED_NAMES
    assert re.fullmatch(r"Jose-[0-9a-f]{8}", folders["José"]) and folders["李雷"].startswith("student-")
    assert re.fullmatch(r"x{55}-[0-9a-f]{8}", folders["x" * 240])


def test_the_same_name_twice_gets_two_stable_folders(tmp_path):
    write_student(tmp_path, "alice", toy_notebook())
    (tmp_path / "alice.ipynb").write_text((tmp_path / "alice" / "toy.ipynb").read_text())
    found = {s.display_name: s for s in discover(tmp_path, "toy.ipynb")}
    assert sorted(found) == ["alice", "alice (alice.ipynb)"]
    assert found["alice"].student == "alice" and found["alice"].folder == tmp_path / "alice"
    assert found["alice (alice.ipynb)"].student == report_folder("alice (alice.ipynb)")


def test_a_folder_named_by_an_older_grader_is_replaced_not_duplicated(tmp_path):
    """Before report_folder, José was graded into REPORTS/Jos_ (or student-2): that folder goes, one row stays."""
    from grader.batch import remove_superseded
    from grader.results import Results, SubmissionMeta
    write_student(tmp_path / "subs", "José", toy_notebook())
    (jose,) = discover(tmp_path / "subs", "toy.ipynb")
    reports = tmp_path / "reports"
    old = Results(11.0, 11.0, "", [], SubmissionMeta("Jos_", notebook=str(jose.notebook)))
    old.write(reports / "Jos_" / "results.json")
    other = Results(5.0, 11.0, "", [], SubmissionMeta("bob", notebook=str(tmp_path / "elsewhere.ipynb")))
    other.write(reports / "bob" / "results.json")
    assert remove_superseded(reports, [jose]) == ["Jos_"]
    assert not (reports / "Jos_").exists() and (reports / "bob" / "results.json").is_file()


def test_names_keep_their_folder_and_row_whoever_joins_the_class(tmp_path):
    """Unicode, reserved, very long and colliding names: graded, shown as submitted, and in a second run with
    more classmates (whose names would have collided before) each keeps its folder, results and row."""
    subs, reports = tmp_path / "subs", tmp_path / "reports"
    first = ["José", "Jose", "a b", "a_b", "李雷", "gradebook.csv", "summary.html", ".grader-run.json", "L" * 240]
    for name in first:
        write_student(subs, name, toy_notebook())
    (subs / ("n" * 240 + ".ipynb")).write_text((subs / "Jose" / "toy.ipynb").read_text())  # a bare notebook
    grade(TOY, subs, reports, "--jobs", "2")
    first = [*first, "n" * 240]
    before = {row["student"]: row for row in gradebook(reports)}
    assert sorted(before) == sorted(first) and all(r["total"] == "11" for r in before.values())
    folders = {read_results(reports, p.parent.name)["extra_data"]["name"]: p.parent.name
               for p in reports.glob("*/results.json")}
    assert sorted(folders) == sorted(first)
    assert {folders[n] for n in ("gradebook.csv", "summary.html", ".grader-run.json")}.isdisjoint(
        {"gradebook.csv", "summary.html", ".grader-run.json"})
    assert (reports / "gradebook.csv").is_file() and (reports / "summary.html").is_file()
    stamps = {name: (reports / folder / "results.json").stat().st_mtime_ns for name, folder in folders.items()}
    summary = (reports / "summary.html").read_text()
    assert "José" in summary and "李雷" in summary
    assert "feedback for 李雷" in (reports / folders["李雷"] / "feedback.md").read_text()

    for name in ["Josè", "Jos\u00e9e", "a?b", "a  b", "李", "Gradebook.csv"]:  # Unicode and near-collisions
        write_student(subs, name, toy_notebook())
    second = grade(TOY, subs, reports, "--jobs", "2")
    assert "6 graded, 10 unchanged" in second.stdout
    after = {row["student"]: row for row in gradebook(reports)}
    assert len(after) == 16 and all(after[name] == row for name, row in before.items())
    for name, folder in folders.items():
        assert read_results(reports, folder)["extra_data"]["name"] == name
        assert (reports / folder / "results.json").stat().st_mtime_ns == stamps[name], f"{name} was regraded"

    again = grade(TOY, subs, reports, "--student", "José", "--force")  # typed as a TA would, NFC
    assert "1 submissions: 1 graded, 0 unchanged" in again.stdout
    assert (reports / folders["José"] / "results.json").stat().st_mtime_ns != stamps["José"]
    assert (reports / folders["Jose"] / "results.json").stat().st_mtime_ns == stamps["Jose"]


# ---------------------------------------------------------------- interrupting

def _proc(pid: int) -> dict | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return {"pid": pid, "state": fields[0], "ppid": int(fields[1]), "pgrp": int(fields[2]), "sid": int(fields[3]),
            "start": int(fields[19]), "cmd": cmdline}


def descendants(root: int) -> list[dict]:
    procs = [p for p in (_proc(int(d)) for d in os.listdir("/proc") if d.isdigit()) if p]
    children: dict[int, list[dict]] = {}
    for p in procs:
        children.setdefault(p["ppid"], []).append(p)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child["pid"])
    return found


def alive(proc: dict) -> bool:
    now = _proc(proc["pid"])
    return now is not None and now["start"] == proc["start"] and now["state"] != "Z"


@pytest.mark.parametrize("how", ["SIGINT to the process group (^C)", "SIGTERM to the grader"])
def test_an_interrupted_batch_stops_everything_keeps_what_is_finished_and_resumes(tmp_path, how):
    tag = uuid.uuid4().hex[:8]
    students = [f"s{tag}{i}" for i in range(6)]
    subs, reports = tmp_path / "subs", tmp_path / "reports"
    for name in students:
        write_student(subs, name, toy_notebook(before=["import time\ntime.sleep(1.0)"]))
    batch = subprocess.Popen([sys.executable, "-m", "grader", "grade", str(TOY), str(subs), "--reports", str(reports),
                              "--jobs", "2", "--quiet"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and batch.poll() is None:
        running = descendants(batch.pid)
        students_running = [p for p in running if "student_main.py" in p["cmd"]]
        if len(list(reports.glob("*/results.json"))) >= 2 and students_running:
            break
        time.sleep(0.05)
    assert batch.poll() is None, "the batch should still be running"

    # the grader's processes share its session and group; no student process does
    workers = [p for p in running if p["ppid"] == batch.pid and "student_main.py" not in p["cmd"]]
    assert workers and all(w["sid"] == batch.pid and w["pgrp"] == batch.pid for w in workers)
    assert all(s["sid"] != batch.pid and s["pgrp"] != batch.pid for s in students_running)

    sent = time.monotonic()
    if how.startswith("SIGINT"):
        os.killpg(batch.pid, signal.SIGINT)
    else:
        os.kill(batch.pid, signal.SIGTERM)
    stdout, stderr = batch.communicate(timeout=30)
    seconds = time.monotonic() - sent
    print(f"{how}: the grader returned {seconds:.2f} s after the signal")
    assert batch.returncode == 130, (stdout, stderr)
    assert seconds < 8, seconds
    assert "Traceback" not in stderr, stderr
    finished = sorted(p.parent.name for p in reports.glob("*/results.json"))
    assert stdout.splitlines() == [f"interrupted: {len(finished)} graded, {len(students) - len(finished)} left; "
                                   "run the same command again to continue"]
    assert 2 <= len(finished) < len(students)
    assert sorted(row["student"] for row in gradebook(reports)) == finished
    assert (reports / "summary.html").is_file() and all((reports / s / "feedback.html").is_file() for s in finished)
    time.sleep(1.0)
    assert not [p for p in running if alive(p)], "every worker and student process is stopped"
    assert not leftovers(f"s{tag}"), "temporary copies are removed"
    for path in reports.glob("*/results.json"):
        json.loads(path.read_text())

    if how.startswith("SIGINT"):
        rerun = grade(TOY, subs, reports, "--jobs", "2")
        assert f"{len(students) - len(finished)} graded, {len(finished)} unchanged" in rerun.stdout
        assert [row["total"] for row in gradebook(reports)] == ["11"] * len(students)


def _write_results(out: Path, student: str, print_: str) -> None:
    from grader.results import NOTEBOOK_PROBLEM, Results, SubmissionMeta
    Results(score=0.0, max_score=1.0, tests=[], output="x", meta=SubmissionMeta(
        student=student, name=student, status=NOTEBOOK_PROBLEM, problem="x", fingerprint=print_)).write(out)


def _write_results_then_wait(out: Path, student: str, print_: str) -> None:
    _write_results(out, student, print_)
    time.sleep(60)  # still running when the batch is stopped


def test_a_worker_stopped_after_writing_its_results_counts_as_graded(tmp_path):
    """The race a loaded machine shows: a stop signal arrives after a worker wrote its results.json but before the
    supervisor saw it exit. The result is complete (written atomically, with its fingerprint), so the
    interrupted batch counts it, as the rerun will; a results.json older than its worker does not count."""
    import multiprocessing

    from grader.batch import BatchOptions, Supervisor, _Job
    from grader.config import load_assignment
    from grader.ingest.submissions import Submission
    from grader.sandbox import cgroups

    supervisor = Supervisor(load_assignment(str(TOY)), BatchOptions(reports=tmp_path, jobs=2), 1, lambda: 1.0)
    context = multiprocessing.get_context("fork")
    _write_results(tmp_path / "bob" / "results.json", "bob", "p")  # from an earlier run, same fingerprint
    time.sleep(0.05)
    for name, target in (("ann", _write_results_then_wait), ("bob", time.sleep)):
        out = tmp_path / name / "results.json"
        process = context.Process(target=target, args=(out, name, "p") if name == "ann" else (60,))
        job = _Job(Submission(name, None, None), str(out), "p", 1, process, time.monotonic() + 60,
                   cgroups.create(64, 1 << 30))
        process.start()
        supervisor.running[process.sentinel] = job
    deadline = time.monotonic() + 30
    while not (tmp_path / "ann" / "results.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    finished: list[dict] = []
    supervisor._stop_all(finished.append)
    assert [s["student"] for s in finished] == ["ann"]


# ---------------------------------------------------------------- no submissions

def test_an_empty_or_pdf_only_folder_is_a_clear_error(tmp_path):
    empty, pdfs = tmp_path / "empty", tmp_path / "pdfs"
    empty.mkdir()
    pdfs.mkdir()
    for name in ("alice.pdf", "bob.pdf", "notes.txt"):
        (pdfs / name).write_bytes(b"%PDF")
    for folder, message in ((empty, " (it is empty)"), (pdfs, ": not a notebook: alice.pdf, bob.pdf, notes.txt")):
        result = grade(TOY, folder, tmp_path / "reports", check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip() == (f"error: no submissions found in {folder}: it holds no notebook (.ipynb) "
                                         f"and no student folder{message}")
    assert not (tmp_path / "reports").exists()


def test_files_that_are_not_notebooks_are_listed_beside_real_submissions(tmp_path, caplog):
    write_student(tmp_path, "alice", toy_notebook())
    (tmp_path / "roster.csv").write_text("alice\n")
    with caplog.at_level("WARNING", logger="grader.ingest"):
        (alice,) = discover(tmp_path, "toy.ipynb")
    assert alice.student == "alice" and "not a notebook: roster.csv" in caplog.text


# ---------------------------------------------------------------- regrading part of a class

def test_regrading_one_student_leaves_the_other_rows_intact(tmp_path):
    subs, reports = tmp_path / "subs", tmp_path / "reports"
    for name in ("alice", "bob", "carol"):
        write_student(subs, name, toy_notebook())
    grade(TOY, subs, reports, "--jobs", "2")
    before = gradebook(reports)
    stamps = {s: (reports / s / "results.json").stat().st_mtime_ns for s in ("alice", "bob", "carol")}

    write_student(subs, "bob", toy_notebook({"    return x.sum(axis=1)\n": "    return x.sum(axis=0)\n"}))
    write_student(subs, "carol", toy_notebook({"    return np.maximum(x, 0)\n": "    return np.abs(x)\n"}))
    result = grade(TOY, subs, reports, "--student", "bob")  # carol changed too, but only bob is asked for
    assert "1 submissions: 1 graded, 0 unchanged" in result.stdout
    after = {row["student"]: row for row in gradebook(reports)}
    assert sorted(after) == ["alice", "bob", "carol"], "the other students' rows are still there"
    assert after["alice"] == before[0] and after["carol"] == before[2]
    assert after["bob"]["total"] == "7"
    assert (reports / "carol" / "results.json").stat().st_mtime_ns == stamps["carol"]
    assert "carol" in (reports / "summary.html").read_text()

    forced = grade(TOY, subs, reports, "--student", "alice", "--force")  # --force: alice only
    assert "1 submissions: 1 graded, 0 unchanged" in forced.stdout
    assert (reports / "alice" / "results.json").stat().st_mtime_ns != stamps["alice"]
    assert (reports / "carol" / "results.json").stat().st_mtime_ns == stamps["carol"]

    unknown = grade(TOY, subs, reports, "--student", "bobby", check=False)
    assert unknown.returncode == 2 and "no submission for --student bobby (did you mean bob?)" in unknown.stderr


# ---------------------------------------------------------------- temporary copies

def test_stale_temporary_copies_are_removed_but_not_live_ones(tmp_path):
    stale, live, foreign = tmp_path / "grader-dead-1", tmp_path / "grader-live-1", tmp_path / "grader-foreign-1"
    for folder in (stale, live, foreign):
        (folder / "sandbox").mkdir(parents=True)
        (folder / "sandbox" / "toy.ipynb").write_text("{}")
    (stale / WORKDIR_LOCK).write_text("12345\n")  # its grader died: nobody holds the lock
    (live / WORKDIR_LOCK).write_text(f"{os.getpid()}\n")
    fd = os.open(live / WORKDIR_LOCK, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a live grader holds it
    try:
        assert clean_stale_workdirs(tmp_path) == [stale]
    finally:
        os.close(fd)
    assert not stale.exists() and live.is_dir() and foreign.is_dir()  # foreign: no lock, not ours to judge
    assert clean_stale_workdirs(tmp_path) == [live]
