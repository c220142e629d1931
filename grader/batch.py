"""Grade a folder of submissions in parallel workers, resumably, so that no submission can break the batch.

Each submission is graded by a worker process of its own (a trusted grader process), which starts
that submission's student process; at most --jobs workers run at once. The supervisor (this module,
in the grader's main process) charges whatever happens to a worker to the one submission it grades:

- a worker that dies is retried, at most MAX_ATTEMPTS times in all, each retry logged (logger
  `grader.batch`); then that submission alone gets a grader-error result;
- a worker still busy past the submission's time budget ([limits] submission_budget) plus a grace
  period is stopped (SIGTERM, then SIGKILL) and the student gets a clear "time budget exceeded" result;
- SIGINT, SIGTERM or SIGHUP stops every worker (each kills its student processes and removes its temporary
  copy) and grade_batch raises BatchInterrupted; every finished results.json stays.

The grader's processes share the session and process group they were started in; every student
process leads a session of its own (start_new_session), so none shares the grader's.

A submission whose notebook, files, grader, tests and seed are unchanged since its results.json was
written is skipped. results.json files are written atomically as each submission finishes, so a
batch killed half-way loses nothing finished.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import random
import shutil
import signal
import statistics
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from grader.config import PROJECT_ROOT, Assignment, load_assignment, tree_digest
from grader.errors import GraderError, SandboxError
from grader.ingest.submissions import Submission, discover, printable
from grader.ingest.workdir import clean_stale_workdirs, stop_worker
from grader.progress import batch_progress
from grader.results import (
    GRADED,
    GRADER_ERROR,
    NOTEBOOK_PROBLEM,
    RUN_FILE,
    Results,
    SubmissionMeta,
    read_reports,
    write_atomic,
)
from grader.sandbox import cgroups
from grader.sandbox.cgroups import StudentGroup

WORKER_TASKS = 4096  # a grading worker's processes and threads, its student processes' included
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
MAX_ATTEMPTS = 2       # a worker that dies: the submission is graded at most this many times in all
PRELOAD_NICENESS = 10  # one submission: the supervisor's priority below its worker's while it preloads the renderers
SANDBOX_REFUSED = 3    # a worker's exit status: its student process could not be confined as --sandbox asks
TERM_GRACE = 3.0       # seconds a worker has to clean up after SIGTERM before SIGKILL
POLL = 0.1             # seconds between the supervisor's looks at deadlines and signals
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}  # what stops a batch (every finished result kept)
MAX_PROBLEMS_SHOWN = 10

log = logging.getLogger("grader.batch")


@dataclass
class BatchOptions:
    """How to grade a batch."""
    reports: Path
    jobs: int
    force: bool = False
    seed: int | None = None
    data_dir: str | None = None
    progress: bool = True
    sandbox: str = "strict"


class BatchInterrupted(Exception):
    """SIGINT or SIGTERM stopped the batch; every finished result is on disk."""

    def __init__(self, summaries: list[dict], left: int, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.summaries, self.left, self.signum = summaries, left, signum

    @property
    def line(self) -> str:
        return (f"interrupted: {len(self.summaries)} graded, {self.left} left; "
                "run the same command again to continue")


def budget_grace(budget: float) -> float:
    """How long past its budget a worker may run before it is stopped: time to start, write its results."""
    return min(60.0, max(5.0, 0.1 * budget))


def run_seed(reports: Path, seed: int | None) -> int:
    """The batch's seed: the given one, else the one this reports folder used before, else a new one."""
    path = reports / RUN_FILE
    if seed is None and path.is_file():
        return int(json.loads(path.read_text())["seed"])
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    write_atomic(path, json.dumps({"seed": seed}) + "\n")
    return seed


def fingerprint(submission: Submission, grader_digest: str, assignment_digest: str, seed: int) -> str:
    """Content hash deciding whether a finished result is still valid."""
    parts = [submission.digest() if submission.notebook else submission.problem, grader_digest,
             assignment_digest, str(seed)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def is_current(path: Path, print_: str) -> bool:
    """True if results.json exists, parses, and carries this fingerprint."""
    try:
        return bool(json.loads(path.read_text())["extra_data"]["fingerprint"] == print_)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _init_worker() -> None:
    if hasattr(ctypes, "CDLL") and os.uname().sysname == "Linux":
        libc = ctypes.CDLL(None)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no other process may read this process's memory
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor handles ^C and hang-ups for the whole batch
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop_worker)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the supervisor


def worker_context() -> multiprocessing.context.BaseContext:
    """Workers fork from this process, which has imported the grading code and the hidden tests (preload):
    a worker starts in milliseconds, each from the same untouched state, and nothing of the grader is
    imported after a student process has run. The supervisor runs no other Python thread (no live refresh
    thread in the progress bar), so forking is safe."""
    if threading.active_count() > 1:
        raise GraderError("grading workers fork from the supervisor, which must run no other thread")
    return multiprocessing.get_context("fork")


@functools.cache  # once per process and assignment
def preload_renderers(starter: Path) -> None:
    """Import what renders and merges reports, and render the starter's Markdown, while the first workers grade
    (the supervisor waits for them anyway), so that nothing is read after the batch and the workers forked later
    share it."""
    import grader.adjust
    import grader.merge
    import grader.reports.feedback
    import grader.reports.gradebook
    import grader.reports.junit
    import grader.reports.notebook
    import grader.reports.summary
    import grader.reports.view
    grader.reports.notebook.warm_up(starter)
    grader.reports.view.compile_templates()


def grade_to_file(assignment_folder: str, submission: Submission, out: str, seed: int, data_dir: str | None,
                  sandbox_mode: str, print_: str) -> dict:
    """Grade one submission and write its results.json atomically; a grader exception becomes a grader error."""
    from grader.grade import grade_submission  # imported by the worker of a lone submission, as its tests boot
    assignment = load_assignment(assignment_folder)
    try:
        results = grade_submission(assignment, submission, seed=seed, data_dir=data_dir,
                                   sandbox_mode=sandbox_mode)
        results.meta.fingerprint = print_
    except SandboxError:
        raise  # nobody can be graded here: the batch stops
    except Exception:
        results = grader_failure(submission, traceback.format_exc())
    results.write(Path(out))
    cgroups.remove_left()
    return summary_of(results)


def _worker_main(assignment_folder: str, submission: Submission, out: str, seed: int, data_dir: str | None,
                 sandbox_mode: str, print_: str) -> None:
    """A worker process: grade one submission into its results.json, then exit 0 (SANDBOX_REFUSED if its student
    process could not be confined as sandbox_mode asks)."""
    _init_worker()
    try:
        grade_to_file(assignment_folder, submission, out, seed, data_dir, sandbox_mode, print_)
    except SandboxError:
        sys.exit(SANDBOX_REFUSED)


def grader_failure(submission: Submission, detail: str) -> Results:
    """Results for a submission the grader itself failed on (no fingerprint: a rerun retries it)."""
    return Results(score=0.0, max_score=0.0, tests=[],
                   output="The grader failed on this submission; your instructor has been told. "
                          "It will be graded again.",
                   meta=SubmissionMeta(student=submission.student, name=submission.display_name,
                                       status=GRADER_ERROR, grader_error=detail[-4000:]))


def budget_failure(submission: Submission, budget: float, max_score: float, print_: str) -> Results:
    """Results for a submission whose worker was stopped past its time budget (kept: a rerun would do the same)."""
    from grader.sandbox.process import budget_exceeded
    problem = budget_exceeded(budget)
    return Results(score=0.0, max_score=max_score, tests=[],
                   output=f"Score: 0 / {max_score:g}\nYour submission could not be graded: {problem}",
                   meta=SubmissionMeta(student=submission.student, name=submission.display_name,
                                       status=NOTEBOOK_PROBLEM, problem=problem, fingerprint=print_,
                                       notebook=str(submission.notebook) if submission.notebook else None))


def summary_of(results: Results) -> dict:
    """The few things the batch summary needs."""
    return {"student": results.student, "name": results.name, "score": results.score,
            "max_score": results.max_score, "seconds": results.execution_time, "status": results.status,
            "reason": results.reason, "error": results.meta.problem
            or ("grader error" if results.meta.grader_error else "")}


def remove_superseded(reports: Path, submissions: list[Submission]) -> list[str]:
    """Remove report folders that an older grader named differently for a notebook graded now under another
    folder (e.g. student-2 before report_folder): each notebook has one row. Returns the folders removed."""
    folder_of = {str(s.notebook): s.student for s in submissions if s.notebook}
    removed = []
    for path in sorted(reports.glob("*/results.json")):
        try:
            notebook = json.loads(path.read_text())["extra_data"].get("notebook")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if notebook in folder_of and folder_of[notebook] != path.parent.name:
            log.warning("%s holds the results of %s, now graded into %s/: removing the old folder",
                        path.parent, notebook, folder_of[notebook])
            shutil.rmtree(path.parent, ignore_errors=True)
            removed.append(path.parent.name)
    return removed


def grade_batch(assignment: Assignment, submissions_dir: Path, options: BatchOptions,
                submissions: list[Submission] | None = None) -> list[dict]:
    """Grade every submission not already graded; write results.json files; return their summaries.

    Raises BatchInterrupted (with the summaries of what is finished) on SIGINT or SIGTERM.
    """
    reports = options.reports
    reports.mkdir(parents=True, exist_ok=True)
    submissions = discover(submissions_dir, assignment.notebook) if submissions is None else submissions
    for stale in clean_stale_workdirs():
        log.info("removed %s, left by a grader that died", stale)
    remove_superseded(reports, submissions)
    seed = run_seed(reports, options.seed)
    grader_digest, assignment_digest = tree_digest(PROJECT_ROOT / "grader"), assignment.digest()
    todo, done = [], []
    for sub in submissions:
        out = reports / sub.student / "results.json"
        print_ = fingerprint(sub, grader_digest, assignment_digest, seed)
        if not options.force and is_current(out, print_):
            done.append(summary_of(Results.read(out)) | {"skipped": True})
        else:
            todo.append((sub, str(out), print_))
    supervisor = Supervisor(assignment, options, seed, max_score_hint(done, reports))
    with batch_progress(options.progress) as progress, _signals_stop(supervisor):
        if len(todo) > 1:  # one submission: its worker imports the grader and the tests while its student boots
            from grader.grade import grade_submission  # noqa: F401  (what every worker forked from here runs)
            from grader.testing.plugin import preload_hidden_tests
            preload_hidden_tests(assignment)
        bar = progress.add_task("", total=len(submissions), completed=len(done))

        def finished(summary: dict) -> None:
            done.append(summary)
            progress.update(bar, advance=1, description=printable(summary["name"]),
                            problem=summary["status"] != GRADED, refresh=True)

        niced: list[int] = []

        def first_workers_started() -> None:
            if len(todo) == 1:  # the worker and its student process, which someone waits for, take the cores first
                with contextlib.suppress(OSError):
                    niced.append(os.nice(PRELOAD_NICENESS))
            preload_renderers(assignment.starter)

        try:
            supervisor.run(todo, finished, first_workers_started)
        except _Stopped as stop:
            raise BatchInterrupted(done, len(submissions) - len(done), stop.signum) from None
        finally:
            if niced:
                with contextlib.suppress(OSError):  # back to the caller's priority, where allowed (root)
                    os.nice(-PRELOAD_NICENESS)
    return done


def max_score_hint(summaries: list[dict], reports: Path) -> Callable[[], float]:
    """The assignment's maximum score as the results already written show it (for results with no tests)."""
    def hint() -> float:
        best = max((s["max_score"] for s in summaries), default=0.0)
        if not best:
            best = max((r.max_score for r in read_reports(reports) if r.status == GRADED), default=0.0)
        return float(best)
    return hint


class _Stopped(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_stop(supervisor: Supervisor) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP (a closed terminal or ssh session) ask the supervisor to stop (a second one: to
    stop without waiting); restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame) -> None:
        supervisor.stop_signal = supervisor.stop_signal or signum

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class _Job:
    submission: Submission
    out: str
    print_: str
    attempt: int
    process: multiprocessing.process.BaseProcess
    deadline: float
    group: StudentGroup
    over_budget: bool = False
    kill_at: float = 0.0
    started_ns: int = field(default_factory=time.time_ns)

    def wrote_results(self) -> bool:
        """True if this worker wrote its results.json (current, and written since it started)."""
        out = Path(self.out)
        try:
            return is_current(out, self.print_) and out.stat().st_mtime_ns >= self.started_ns
        except OSError:
            return False


@dataclass
class Supervisor:
    """Runs one worker process per submission, at most options.jobs at once, and answers for each."""
    assignment: Assignment
    options: BatchOptions
    seed: int
    max_score: Callable[[], float]
    stop_signal: int = 0
    running: dict[int, _Job] = field(default_factory=dict)  # by the worker's sentinel

    def run(self, todo: list[tuple[Submission, str, str]], finished: Callable[[dict], None],
            first_started: Callable[[], None]) -> None:
        """Grade todo, calling first_started() once the first workers run (what the supervisor does while they
        grade) and finished(summary) as each submission is done; _Stopped on a signal."""
        context = worker_context()
        queue = deque((sub, out, print_, 1) for sub, out, print_ in todo)
        budget = self.assignment.limits.submission_budget
        try:
            self._fill(context, queue, budget)
            first_started()
            while queue or self.running:
                self._fill(context, queue, budget)
                if not self.stop_signal:
                    multiprocessing.connection.wait(list(self.running), timeout=POLL)
                for sentinel, job in list(self.running.items()):
                    if job.process.exitcode is None:
                        continue
                    del self.running[sentinel]
                    job.process.join()
                    job.group.kill_and_remove()
                    summary = self._ended(job, queue)
                    job.process.close()
                    if summary is not None:
                        finished(summary)
                if self.stop_signal:
                    raise _Stopped(self.stop_signal)
                self._enforce_deadlines()
        finally:
            self._stop_all(finished)

    def _fill(self, context, queue: deque[tuple[Submission, str, str, int]], budget: float) -> None:
        """Start workers for queued submissions up to --jobs at once (none once a stop was asked)."""
        while queue and len(self.running) < max(1, self.options.jobs) and not self.stop_signal:
            self._start(context, *queue.popleft(), budget)

    def _start(self, context, sub: Submission, out: str, print_: str, attempt: int, budget: float) -> None:
        process = context.Process(target=_worker_main, name=f"grader-worker {sub.student}", daemon=False,
                                  args=(str(self.assignment.folder), sub, out, self.seed, self.options.data_dir,
                                        self.options.sandbox, print_))
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:  # the worker starts with ^C blocked until it ignores it (the supervisor stops workers itself)
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        log.info("grading %s (attempt %d, worker %d)", sub.display_name, attempt, process.pid)
        group = cgroups.create(WORKER_TASKS, self.assignment.limits.worker_memory_mb << 20)
        if process.pid:
            with contextlib.suppress(OSError):
                group.add(process.pid)  # the worker, its retraining and its student processes: one memory cap
        self.running[process.sentinel] = _Job(sub, out, print_, attempt, process,
                                              time.monotonic() + budget + budget_grace(budget), group)

    def _ended(self, job: _Job, queue: deque) -> dict | None:
        """The summary of a job whose worker exited, or None when it is queued again."""
        sub, code = job.submission, job.process.exitcode
        if code == SANDBOX_REFUSED:
            raise sandbox_refusal(self.options.sandbox)
        if code == 0:  # it wrote its results.json (even if it finished just as it was being stopped)
            try:
                return summary_of(Results.read(Path(job.out)))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                how = f"exited without a readable results.json ({exc})"
        else:
            how = describe_worker_exit(code)
        _clean_after_dead_worker(job)
        if job.over_budget:
            log.warning("%s: the worker was stopped past the time budget (%g s)", sub.display_name,
                        self.assignment.limits.submission_budget)
            results = budget_failure(sub, self.assignment.limits.submission_budget, self.max_score(), job.print_)
        elif job.attempt < MAX_ATTEMPTS:
            log.warning("%s: the grading worker %s; grading it again (attempt %d of %d)", sub.display_name, how,
                        job.attempt + 1, MAX_ATTEMPTS)
            queue.append((sub, job.out, job.print_, job.attempt + 1))
            return None
        else:
            log.error("%s: the grading worker %s on each of %d attempts; recorded as a grader error",
                      sub.display_name, how, MAX_ATTEMPTS)
            results = grader_failure(sub, f"the grading worker process {how} on each of {MAX_ATTEMPTS} attempts")
        results.write(Path(job.out))
        return summary_of(results)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for job in self.running.values():
            if not job.over_budget and now > job.deadline:
                job.over_budget, job.kill_at = True, now + TERM_GRACE
                _signal(job.process.pid, signal.SIGTERM)
            elif job.over_budget and now > job.kill_at:
                _kill_worker(job.process.pid)

    def _stop_all(self, finished: Callable[[dict], None]) -> None:
        """Stop every running worker: SIGTERM (it kills its student processes and removes its copy), then
        SIGKILL after TERM_GRACE; then remove what dead workers left. A worker that had written its results
        counts as finished."""
        jobs = list(self.running.values())
        self.running.clear()
        for job in jobs:
            _signal(job.process.pid, signal.SIGTERM)
        until = time.monotonic() + TERM_GRACE
        for job in jobs:
            job.process.join(max(0.0, until - time.monotonic()))
            if job.process.exitcode is None:
                _kill_worker(job.process.pid)
                job.process.join()
        for job in jobs:
            job.group.kill_and_remove()
            _clean_after_dead_worker(job)
            if job.wrote_results():  # it finished as it was stopped
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    finished(summary_of(Results.read(Path(job.out))))


def sandbox_refusal(mode: str) -> SandboxError:
    """Why a worker's student process could not be confined as --sandbox `mode` asks, said by a probe process."""
    from grader.sandbox.process import probe_sandbox
    try:
        probe_sandbox(mode)
    except SandboxError as exc:
        return exc
    finally:
        cgroups.remove_left()
    return SandboxError(f"a student process could not be confined as --sandbox {mode} asks (a second one could): "
                        "check the machine, and grade again")


def _signal(pid: int | None, sig: int) -> None:
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
    return found


def _kill_worker(pid: int | None) -> None:
    """SIGKILL a worker and its student processes (each the leader of its own process group)."""
    if not pid:
        return
    for child in _children(pid):
        with contextlib.suppress(OSError):
            os.killpg(child, signal.SIGKILL)
        _signal(child, signal.SIGKILL)
    _signal(pid, signal.SIGKILL)


def _clean_after_dead_worker(job: _Job) -> None:
    """Remove what a worker that did not finish left: its temporary copy, a half-written results file."""
    for stale in clean_stale_workdirs():
        log.info("removed %s, left by a worker that was stopped", stale)
    out = Path(job.out)
    for partial in out.parent.glob(f".{out.name}.*.tmp"):
        partial.unlink(missing_ok=True)


def describe_worker_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def summary_line(summaries: list[dict], seconds: float) -> str:
    """One line: how many were graded, skipped, failed; scores; time."""
    graded = [s for s in summaries if not s.get("skipped")]
    errors = [s for s in summaries if s["error"]]
    scores = [s["score"] for s in summaries if s.get("status") != GRADER_ERROR]
    best = max((s["max_score"] for s in summaries), default=0)
    median = statistics.median(scores) if scores else 0
    return (f"{len(summaries)} submissions: {len(graded)} graded, {len(summaries) - len(graded)} unchanged "
            f"(skipped), {len(errors)} with errors; median score {median:g}/{best:g}; {seconds:.1f} s")


def problem_lines(summaries: list[dict], limit: int = MAX_PROBLEMS_SHOWN) -> list[str]:
    """The students whose status is not graded (the first `limit`), each with the reason."""
    problems = sorted((s for s in summaries if s.get("status", GRADED) != GRADED),
                      key=lambda s: (s["name"].casefold(), s["student"]))
    if not problems:
        return []
    lines = [f"{len(problems)} with problems:"]
    for s in problems[:limit]:
        reason = printable(s["reason"] if len(s["reason"]) <= 160 else s["reason"][:157] + "...")
        lines.append(f"  {printable(s['name'])} ({s['status']}): {reason}")
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more: see summary.html")
    return lines
