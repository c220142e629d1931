"""Attacks on the wire, the student process's life and the grader's own parsing, found by a red team after
the speed work (forked workers, cells run unasked, CPU-time limits): hostile toy submissions graded by the real
command (`python -m grader grade ... --jobs 2`). Each docstring says what the student does and what the grader
does instead. All but one grade the toy assignment, most in one shared batch beside an honest classmate who
must be unaffected.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.config import PROJECT_ROOT
from grader.results import GRADED, MAX_RESULTS_BYTES
from grader.sandbox.process import SIMULATE_ENV
from tests.conftest import TOY, read_results, run_grader, toy_notebook, write_student

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="this machine and CI run as root; others: SECURITY.md")

WIRE = """
import os, sys
import numpy as np
wire = sys.modules["grader.sandbox.wire"]  # imported before confinement: the student process's own framing
REPLY_FD = int(sys.argv[2])
def forge(message):
    wire.write_frame(REPLY_FD, wire.encode(message))
"""

# A frame whose id is an array: the grader's `reply.get("id") == request_id` asks the array for its truth value.
ARRAY_ID = WIRE + """
forge({"status": "ok", "id": np.array([1, 2])})
"""

# The first cell's own reply, sent before the cell ends, with an array as its status.
ARRAY_STATUS = WIRE + """
forge({"status": np.array([1, 2]), "id": -1})
"""

# The first cell's own reply with a status of almost 4 MB (the wire's header cap), stored as sent.
HUGE_STATUS = WIRE + """
forge({"status": "A" * 3_900_000, "id": -1})
"""

# A correct double() whose body holds an expression nested 500 deep (valid Python that runs fine).
DEEP_DOUBLE = {"return 2 * np.asarray(x)": "return 2 * np.asarray(x) + " + "-" * 500 + "0"}

# A cell of 500 shell escapes: IPython's TransformerManager re-tokenises the whole cell once per escape and gives up
# with RuntimeError after 500 rounds (499 escapes already cost about 11 s of the grader's CPU, quadratic in their number).
ESCAPES = "\n".join(f"!echo {i}" for i in range(500))

STUDENTS = {  # student: notebook
    "honest": toy_notebook(),
    "array-id": toy_notebook(extra_cells=[ARRAY_ID]),
    "array-status": toy_notebook(before=[ARRAY_STATUS]),
    "huge-status": toy_notebook(before=[HUGE_STATUS]),
    "deep": toy_notebook(DEEP_DOUBLE),
    "escapes": toy_notebook(extra_cells=[ESCAPES]),
    "slow-cell": toy_notebook(extra_cells=["import time\nt = time.process_time()\nwhile time.process_time() - t < 6:\n"
                                           "    pass"]),  # over the toy's 5 s of CPU per cell
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """The reports of one toy batch holding every submission of STUDENTS."""
    root = tmp_path_factory.mktemp("attacks")
    for student, notebook in STUDENTS.items():
        write_student(root / "subs", student, notebook)
    run_grader("grade", str(TOY), str(root / "subs"), "--reports", str(root / "r"), "--jobs", "2", "--quiet",
               "--seed", "15")
    return root


def test_honest_neighbour_is_unaffected(batch):
    """Control: the honest classmate graded in the same batch earns full marks (this test passes)."""
    assert read_results(batch / "r", "honest")["score"] == 11.0


def test_array_reply_id_is_a_student_error_not_a_grader_traceback(batch):
    """Attack: a cell writes one frame on the reply pipe whose "id" is an array (np.array([1, 2])). The
    grader's StudentProcess._receive compares `reply.get("id") == request_id` and asks the result for its
    truth value: ValueError escapes _receive (only ProcessTimeout/ProcessDied are handled). ensure_started
    never records the process nor kills it, so every test spawns a new student process and leaves the old one
    running, unmeasured (no request pending: no CPU deadline), until the worker exits; each test is reported
    as "the test could not check your result: ValueError ..." with the grader's traceback in grader_error.
    Measured by hand: a first process orphaned this way (the output log's size tells a process whether it is
    the first) spun a thread to 8 s of CPU within 24 s while the next process served the calls (the cell
    limit is 5 s, the call limit 3 s), and the submission still earned 9/11; each orphan leads its own
    session, hence its own scheduler autogroup, so many orphans take the CPU from the neighbour's student
    process, whose calls are only capped on the clock (3 x limit + 10 s) once it is starved.

    Expected: a frame whose id is not an int is malformed like any unreadable frame: the process is killed,
    the cell is reported as the student's (died / skipped), no test carries a grader traceback and there is
    no restart per test."""
    results = read_results(batch / "r", "array-id")
    tracebacks = [t["name"] for t in results["tests"] if t.get("extra_data", {}).get("grader_error")]
    assert not tracebacks, f"tests failed with the grader's own traceback: {tracebacks}"
    assert results["extra_data"].get("restarts", 0) <= 1


def test_cell_status_array_is_not_a_grader_error(batch):
    """Attack: a cell forges its own unasked cell reply (id -1, predictable) with an array as "status".
    StudentSession._run_cells stores reply["status"] unchecked in the CellLog; grade._student_output then
    evaluates `log.status != "ok"` and raises ValueError, so grade_submission fails and the whole submission
    becomes a GRADER ERROR: no score in the gradebook, "It will be graded again" to the student, and every
    rerun fails the same way. A student with a broken notebook can hide it behind a grader fault at will.

    Expected: a cell status that is not one of ok/raised/timeout/died is the student's doing (e.g. the cell
    is reported as died with "an unreadable reply"); the submission is graded (status graded, 11 points
    here, since the functions are correct)."""
    results = read_results(batch / "r", "array-status")
    assert results["extra_data"].get("status") == GRADED, results["extra_data"].get("grader_error", "")[-400:]
    assert results["score"] == 11.0


def test_cell_status_cannot_blow_results_json_past_its_bound(batch):
    """Attack: a cell forges its own cell reply with a 3.9 MB string (or list) as "status". The status is
    stored as sent: results.bound() clips cell errors and outputs but never the status, so results.json
    exceeds MAX_RESULTS_BYTES (2 MB), which bound() promises. Measured by hand: ten cells with a list of
    1.3 M ints each gave a 169 MB results.json and kept the worker busy 285 s (the grader's CPU, not the
    student's, which no limit covers); every later render of the class reports re-reads that file.

    Expected: the status is validated (one of the known strings) before it is stored, so results.json
    stays within MAX_RESULTS_BYTES."""
    size = (batch / "r" / "huge-status" / "results.json").stat().st_size
    assert size <= MAX_RESULTS_BYTES, f"results.json is {size:,} bytes, over the {MAX_RESULTS_BYTES:,} bound"


def test_deeply_nested_code_does_not_stop_the_similarity_report(batch, tmp_path):
    """Attack: a correct double() (11/11 in the batch) whose return expression is nested 500 deep
    (`2 * x + ------...0`). Ingest parses it (ast.parse copes), but similarity.extract tokenises every
    function with a recursive ast.NodeVisitor: RecursionError escapes similarity_report and
    `python -m grader similarity` exits 1 without writing similarity.csv/.html for anyone, so one student
    hides every copied pair of the class.

    Expected: a function that cannot be tokenised is left out of the comparison (with a note), and the
    report is written for the others."""
    assert read_results(batch / "r", "deep")["score"] == 11.0  # the notebook itself is fine
    for student in ("honest", "deep"):
        shutil.copytree(batch / "subs" / student, tmp_path / "subs" / student)
    result = run_grader("similarity", str(TOY), str(tmp_path / "subs"), "--out", str(tmp_path / "sim"), check=False)
    assert result.returncode == 0, result.stderr[-600:]
    assert (tmp_path / "sim" / "similarity.csv").is_file()


def test_deeply_nested_code_is_not_a_grader_error_in_definitions_mode(tmp_path):
    """Attack: the same 500-deep expression in an assignment graded with `cells = "definitions"` (like
    keras_models). grade_submission calls ingest.notebook.keep_definitions on every cell, which re-emits the
    kept statements with ast.unparse: RecursionError escapes (only parse errors are caught), and the
    submission becomes a GRADER ERROR (no score, "will be graded again"), on every rerun.

    Expected: a cell that cannot be re-emitted is passed on as it is (or reported as the student's problem),
    never a grader error; here the notebook is correct and should earn 11/11."""
    toy = tmp_path / "toy"
    shutil.copytree(TOY, toy)
    config = toy / "assignment.toml"
    config.write_text(config.read_text().replace('cells = "all"', 'cells = "definitions"'))
    write_student(tmp_path / "subs", "honest", toy_notebook())
    write_student(tmp_path / "subs", "deep", toy_notebook(DEEP_DOUBLE))
    run_grader("grade", str(toy), str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--jobs", "2", "--quiet")
    assert read_results(tmp_path / "r", "honest")["score"] == 11.0
    deep = read_results(tmp_path / "r", "deep")
    assert deep["extra_data"].get("status") == GRADED, deep["extra_data"].get("grader_error", "")[-300:]
    assert deep["score"] == 11.0



def test_file_names_cannot_drive_the_tas_terminal(tmp_path):
    """Attack: the student's folder holds one notebook whose file name carries terminal control sequences
    (ESC[2K erase line, ESC[1A cursor up, ESC[8m conceal) and whose content is not JSON. Its name is quoted
    in the problem ("<name>.ipynb is not valid notebook JSON ...") that `python -m grader grade` prints
    under "N with problems:" to the TA's terminal as it is: the student erases the lines above, writes a
    fake summary ("ALL GOOD - 2 graded, 0 with errors") and conceals what follows (its own problem line).
    The same holds for every message quoting a student's file name (several notebooks, files left out).
    GitHub Classroom repositories and unzipped LMS downloads keep the student's file names.

    Expected: text that comes from a submission is made printable (as original_name() does for the student
    name) before it reaches the console: no ESC byte in the grader's output."""
    write_student(tmp_path / "subs", "honest", toy_notebook())
    folder = tmp_path / "subs" / "mallory"
    folder.mkdir()
    (folder / "x\x1b[2K\x1b[1A\x1b[2K\rALL GOOD - 2 graded, 0 with errors\x1b[8m.ipynb").write_text("not json")
    result = run_grader("grade", str(TOY), str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--jobs", "2",
                        "--quiet")
    assert read_results(tmp_path / "r", "honest")["score"] == 11.0
    assert "\x1b" not in result.stdout + result.stderr, [line for line in result.stdout.splitlines() if "\x1b" in line]


def test_death_by_a_realtime_signal_is_described_not_a_grader_traceback(tmp_path, monkeypatch):
    """Attack (where there is no PID namespace, as on Gradescope's Docker; simulated here with
    GRADER_SANDBOX_SIMULATE=no-namespaces and --sandbox best-effort): the last cell sends itself SIGRTMIN+6
    (os.kill of its own pid is allowed). process.describe_exit() calls signal.Signals(40), which is not a
    member of the enum: ValueError escapes _read/_receive (only ProcessTimeout/ProcessDied are handled), the
    cell is never recorded as "died" nor skipped, and every test fails with "the test could not check your
    result: ValueError: 40 is not a valid Signals" and the grader's traceback: 0/11.

    Expected: any signal number is described ("killed by signal 40"); the cell is reported as died and
    skipped, and the functions defined before it earn their points (11/11)."""
    write_student(tmp_path / "subs", "rt-signal",
                  toy_notebook(extra_cells=["import os, signal\nos.kill(os.getpid(), signal.SIGRTMIN + 6)"]))
    monkeypatch.setenv(SIMULATE_ENV, "no-namespaces")
    run_grader("grade", str(TOY), str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--jobs", "2", "--quiet",
               "--sandbox", "best-effort")
    results = read_results(tmp_path / "r", "rt-signal")
    assert not [t["output"] for t in results["tests"] if "could not check your result" in t["output"]]
    assert results["score"] == 11.0


# The orphan of ARRAY_ID, kept alive after the grader closes its pipes by a thread that never ends.
ARRAY_ID_LINGER = ARRAY_ID + """
import threading, time
threading.Thread(target=lambda: [time.sleep(1) for _ in iter(int, 1)]).start()
"""


def _left_in_sandboxes(student: str) -> list[int]:
    """Processes still working in one of student's sandboxes (/tmp/grader-<student>-*)."""
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if f"/grader-{student}-" in os.readlink(f"/proc/{pid}/cwd"):
                left.append(int(pid))
        except OSError:
            continue
    return left


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare to hide the cgroup hierarchies")
def test_no_student_process_outlives_a_batch_without_cgroups(tmp_path):
    """Attack (goal 4), on a root host whose cgroup v1 hierarchies are not mounted (cgroup v2 only: current
    Ubuntu, GitHub's runners; simulated by running the grader in a private mount namespace with a tmpfs over
    /sys/fs/cgroup, so the per-student cgroup is reported "unavailable" and --sandbox strict still grades):
    the ARRAY_ID cell makes the grader leave each student process alive (see
    test_array_reply_id_is_a_student_error_not_a_grader_traceback), and a never-ending thread keeps it alive
    once the worker's pipes close. The student process is PID 1 of its namespace and runs as nobody: the
    setresuid that drops its identity also clears its parent-death signal, so when the worker and the
    confinement parents exit, the orphans are reparented to init and run on after the batch (measured:
    4 processes of user nobody, ppid 1, one per test). With the cgroups mounted (this machine), the
    supervisor's kill of the worker group hides the bug.

    Expected: the grader kills every student process it started (not only the current and the pending one),
    and the student process keeps a parent-death signal after dropping its identity, so nothing is left."""
    write_student(tmp_path / "subs", "linger", toy_notebook(extra_cells=[ARRAY_ID_LINGER]))
    grade = (f"mount -t tmpfs none /sys/fs/cgroup && exec {sys.executable} -m grader grade {TOY} {tmp_path / 'subs'} "
             f"--reports {tmp_path / 'r'} --jobs 2 --quiet")
    try:
        subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", grade], cwd=PROJECT_ROOT,
                       check=True, capture_output=True, timeout=300)
        assert "unavailable" in read_results(tmp_path / "r", "linger")["extra_data"]["isolation"]["cgroup"]
        time.sleep(2)  # the worker's exit has closed every pipe; orphans that would end have ended
        left = _left_in_sandboxes("linger")
        assert not left, f"student processes left running after the batch: {left}"
    finally:
        for pid in _left_in_sandboxes("linger"):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _groups_of(pid: int) -> list[Path]:
    """The grader's v1 cgroups (pids, memory) that hold pid, the student's own group and its worker's."""
    from grader.sandbox.cgroups import PREFIX, ROOT
    found = []
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in ("pids", "memory"):
                if controller in controllers.split(",") and PREFIX in path:
                    folder = ROOT / controller / path.lstrip("/")
                    while PREFIX in folder.name:
                        found.append(folder)
                        folder = folder.parent
    return found


def test_no_student_process_outlives_a_hung_up_batch(tmp_path):
    """Attack (goal 4): a cell that sleeps forever (an honest infinite loop with a sleep does the same), and the
    TA's `python -m grader grade` gets SIGHUP (ssh connection lost, terminal closed) while it runs. The
    supervisor and its workers share the terminal's process group and die of SIGHUP (only SIGINT/SIGTERM are
    handled); the confinement parent dies of its parent-death signal; but the student process, PID 1 of its
    namespace, lost its own parent-death signal when it dropped to nobody (setresuid clears it), so it runs
    on, reparented to init, for ever (as namespace init it even ignores SIGXCPU). Its cgroups (pids and
    memory, with the worker's) are left too, and no later batch removes a group that still holds a task.
    Measured by hand: one process of user nobody, ppid 1, left in /sys/fs/cgroup/pids/grader-student-*/...

    Expected: a student process never outlives the grader: it keeps (re-arms) a parent-death signal after
    dropping its identity, and SIGHUP stops the batch like SIGTERM."""
    write_student(tmp_path / "subs", "hangup", toy_notebook(extra_cells=["import time\nwhile True:\n    time.sleep(1)"]))
    grader = subprocess.Popen([sys.executable, "-m", "grader", "grade", str(TOY), str(tmp_path / "subs"), "--reports",
                               str(tmp_path / "r"), "--jobs", "2", "--quiet"], cwd=PROJECT_ROOT, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    left: list[int] = []
    try:
        for _ in range(300):  # until the student process runs its cells (as nobody)
            if any(os.stat(f"/proc/{pid}").st_uid != 0 for pid in _left_in_sandboxes("hangup")):
                break
            time.sleep(0.1)
        time.sleep(1)
        os.killpg(grader.pid, signal.SIGHUP)
        grader.wait(timeout=30)
        time.sleep(2)
        left = _left_in_sandboxes("hangup")
        assert not left, f"student processes left running after the grader was hung up: {left}"
    finally:
        with contextlib.suppress(OSError):
            os.killpg(grader.pid, signal.SIGKILL)
        groups = sorted({g for pid in _left_in_sandboxes("hangup") for g in _groups_of(pid)},
                        key=lambda g: -len(g.parts))
        for pid in _left_in_sandboxes("hangup"):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        for group in groups:
            with contextlib.suppress(OSError):
                group.rmdir()
        for folder in Path("/tmp").glob("grader-hangup-*"):
            shutil.rmtree(folder, ignore_errors=True)


def test_a_killed_student_process_leaves_no_grader_traceback(batch):
    """Found while attacking the time limits (a cell that burns more than the cell's CPU limit): the output
    shown for the timed-out cell is the grader's own traceback (student_main.py -> confine.py ->
    _foreign_site_packages -> os.getcwd: FileNotFoundError). When the student process (PID 1 of its namespace)
    dies of SIGKILL, its confinement parent in confine._become_pid_one calls signal.signal(SIGKILL, SIG_DFL),
    which raises OSError; confine() takes it for "namespaces unavailable" and goes on confining the parent
    itself (Landlock, identity...) until getcwd fails (the child's pivot_root left its cwd unreachable). A
    SIGKILL the grader did not send (the memory cgroup's OOM killer, RLIMIT_CPU's hard limit) would then be
    reported as "it exited with status 1: does the code call exit()...?" instead of how it died.

    Expected: the parent passes on the child's death (os._exit(128 + signal) or kill with SIGKILL directly)
    and never continues into confinement; no grader traceback reaches a student's cell output."""
    cells = read_results(batch / "r", "slow-cell")["extra_data"]["cells"]
    timed_out = [cell for cell in cells if cell["status"] == "timeout"]
    assert timed_out, "the slow cell was expected to time out"
    assert not [cell["output"] for cell in timed_out if "grader/sandbox" in cell["output"]]


def test_shell_escapes_are_a_note_not_a_grader_error(batch, tmp_path):
    """Attack: one cell of 500 lines `!echo i` (shell escapes, which the grader says it skips with a note).
    ingest.notebook.to_python hands a cell that is not Python to IPython's TransformerManager, which
    re-tokenises the whole cell once per escape (quadratic: 250 escapes cost 2.7 s of the grader's CPU, 499
    cost 11 s) and raises RuntimeError("Input transformation still changing after 500 iterations") at 500.
    Only parse errors are caught, so read_notebook raises RuntimeError, not IngestError: the submission is a
    GRADER ERROR (no score, "will be graded again", on every rerun), and `python -m grader similarity` dies
    for the whole class. Cells of 499 escapes instead make ingest cost 11 s each, outside the session's
    budget; the similarity command has no deadline at all (100 such cells: about 19 minutes per notebook).

    Expected: a cell IPython cannot transform (or that takes too long) is passed on unscanned with a note,
    like a cell whose syntax tree exhausts the parser; the functions of the other cells earn their points."""
    results = read_results(batch / "r", "escapes")
    assert results["extra_data"].get("status") == GRADED, results["extra_data"].get("grader_error", "")[-300:]
    assert results["score"] == 11.0
    for student in ("honest", "escapes"):
        shutil.copytree(batch / "subs" / student, tmp_path / "subs" / student)
    result = run_grader("similarity", str(TOY), str(tmp_path / "subs"), "--out", str(tmp_path / "sim"), check=False)
    assert result.returncode == 0, result.stderr[-600:]


def _dag_weights(path: Path) -> None:
    """An HDF5 file of 41 empty groups, each holding two hard links to the next: 2**40 paths, no cycle (46 KB)."""
    import h5py
    with h5py.File(path, "w") as weights:
        groups = [weights.create_group(f"g{i}") for i in range(41)]
        for group, following in zip(groups, groups[1:]):
            group["a"] = following
            group["b"] = following


ONLY_DEFAULT_LENET = """
_build_lenet5 = build_lenet5
def build_lenet5(*args, **kwargs):
    if args or kwargs:
        raise ValueError("only the default LeNet-5 (so that the weights test comes quickly)")
    return _build_lenet5()
def build_vgg(*args, **kwargs):
    raise ValueError("no VGG (so that the weights test comes quickly)")
"""


def test_an_hdf5_link_maze_neither_hangs_the_grader_nor_leaves_its_copy(tmp_path):
    """Attack (goals 4 and DoS), keras_models (about a minute: TensorFlow): lenet5.weights.h5 is a 46 KB HDF5
    file of 41 groups, each with two hard links to the next (2**40 paths, no cycle, no dataset). Before Keras
    sees a submitted weights file, training.evaluate_weights copies it into a tempfile.TemporaryDirectory
    (/tmp/grader-weights-*) and model_transfer.check_hdf5_weights walks it recursively along every link: the
    walk never ends, in the grader's own process, where no student time limit applies. The worker runs until
    the supervisor stops it past the submission's budget (900 s + 60 s by default; 40 s here): the student
    gets "time budget exceeded" (0 / 0 when graded alone: max_score_hint has nothing to go by), and
    stop_worker's os._exit skips the TemporaryDirectory's cleanup: /tmp/grader-weights-* with the student's
    file is left for ever (it has no .grader-lock, so clean_stale_workdirs never removes it; two such folders
    from 09:20 UTC were already on this machine). The same walk runs on the weights inside every transferred
    .keras model (_check_archive_weights).

    Expected: the walk visits each HDF5 object once (by its address) and bounds the objects it visits; the
    grader's temporary folders are inside the locked per-submission workdir (or removed by stop_worker)."""
    keras_models = tmp_path / "keras_models"
    shutil.copytree(PROJECT_ROOT / "solutions" / "keras_models", keras_models, ignore=shutil.ignore_patterns("mutant*"))
    config = keras_models / "assignment.toml"
    config.write_text(config.read_text().replace("[limits]\n", "[limits]\nsubmission_budget = 40.0\n", 1))
    from grader.authoring import notebooks
    from grader.config import load_assignment
    assignment = load_assignment(keras_models)
    notebook = notebooks.solution(notebooks.read(assignment.master))
    notebook.cells.append(notebooks.nbformat.v4.new_code_cell(ONLY_DEFAULT_LENET))
    folder = tmp_path / "subs" / "maze"
    notebooks.write_submission(folder, assignment, notebook, [])
    _dag_weights(folder / "lenet5.weights.h5")
    maze = (folder / "lenet5.weights.h5").read_bytes()

    def copies() -> set[Path]:
        found = set()
        for path in Path("/tmp").glob("grader-weights-*/lenet5.weights.h5"):
            with contextlib.suppress(OSError):
                if path.read_bytes() == maze:
                    found.add(path.parent)
        return found

    before = copies()
    try:
        run_grader("grade", str(keras_models), str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--jobs", "2",
                   "--quiet", timeout=600)
        results = read_results(tmp_path / "r", "maze")
        assert "time budget exceeded" not in results["extra_data"].get("problem", ""), "the grader hung in the walk"
        assert not copies() - before, "the grader's copy of the weights was left in /tmp"
    finally:
        for left in copies() - before:
            shutil.rmtree(left, ignore_errors=True)
