"""Grade a folder of submissions in parallel workers, resumably.

Each worker is a grader process (trusted); each submission's code runs in its own student
process started by that worker. A submission whose notebook, files, grader, tests and seed are
unchanged since its results.json was written is skipped. results.json files are written
atomically as each submission finishes, so a batch killed half-way loses nothing finished.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing
import os
import random
import signal
import statistics
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from grader.config import PROJECT_ROOT, Assignment, load_assignment, tree_digest
from grader.ingest.submissions import Submission, discover
from grader.results import Results, SubmissionMeta, write_atomic
from grader.sandbox.process import probe_sandbox

RUN_FILE = ".grader-run.json"
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4


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
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import grader.grade  # noqa: F401  (every module a worker uses is imported before any student process runs)


def preload_renderers() -> None:
    """Import what renders and merges reports before any student process starts, so nothing is read later."""
    import grader.merge
    import grader.reports.feedback
    import grader.reports.gradebook
    import grader.reports.junit
    import grader.reports.summary  # noqa: F401


def grade_to_file(assignment_folder: str, submission: Submission, out: str, seed: int, data_dir: str | None,
                  sandbox_mode: str, print_: str) -> dict:
    """Worker task: grade one submission and write its results.json atomically."""
    from grader.grade import grade_submission
    assignment = load_assignment(assignment_folder)
    try:
        results = grade_submission(assignment, submission, seed=seed, data_dir=data_dir,
                                   sandbox_mode=sandbox_mode)
        results.meta.fingerprint = print_
    except Exception:
        results = grader_failure(submission, traceback.format_exc())
    results.write(Path(out))
    return summary_of(results)


def grader_failure(submission: Submission, detail: str) -> Results:
    """Results for a submission the grader itself failed on (no fingerprint: a rerun retries it)."""
    return Results(score=0.0, max_score=0.0, tests=[],
                   output="The grader failed on this submission; your instructor has been told. "
                          "It will be graded again.",
                   meta=SubmissionMeta(student=submission.student, grader_error=detail[-4000:]))


def summary_of(results: Results) -> dict:
    """The few numbers the batch summary needs."""
    return {"student": results.student, "score": results.score, "max_score": results.max_score,
            "seconds": results.execution_time, "error": results.meta.problem
            or ("grader error" if results.meta.grader_error else "")}


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), disable=not enabled)


def grade_batch(assignment: Assignment, submissions_dir: Path, options: BatchOptions,
                submissions: list[Submission] | None = None) -> list[dict]:
    """Grade every submission not already graded; write results.json files; return their summaries."""
    reports = options.reports
    reports.mkdir(parents=True, exist_ok=True)
    submissions = discover(submissions_dir, assignment.notebook) if submissions is None else submissions
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
    if todo:
        preload_renderers()
        probe_sandbox(options.sandbox)  # SandboxError before anyone is graded if --sandbox strict cannot hold
    with _progress(options.progress) as progress:
        bar = progress.add_task("", total=len(submissions), completed=len(done))
        for summary in _run_pool(assignment, todo, options, seed):
            done.append(summary)
            progress.update(bar, advance=1, description=summary["student"])
    return done


def _run_pool(assignment: Assignment, todo: list, options: BatchOptions, seed: int):
    """Yield each finished summary; after a worker crash, retry its submissions once in a fresh pool."""
    attempts: dict[str, int] = {}
    pending = list(todo)
    context = multiprocessing.get_context("spawn")
    while pending:
        with ProcessPoolExecutor(max_workers=max(1, min(options.jobs, len(pending))), mp_context=context,
                                 initializer=_init_worker) as pool:
            futures = {pool.submit(grade_to_file, str(assignment.folder), sub, out, seed, options.data_dir,
                                   options.sandbox, print_): (sub, out, print_) for sub, out, print_ in pending}
            pending = []
            while futures:
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    sub, out, print_ = futures.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        attempts[sub.student] = attempts.get(sub.student, 0) + 1
                        if attempts[sub.student] < 2:
                            pending.append((sub, out, print_))
                        else:
                            results = grader_failure(sub, "the grading worker process died twice")
                            results.write(Path(out))
                            yield summary_of(results)


def summary_line(summaries: list[dict], seconds: float) -> str:
    """One line: how many were graded, skipped, failed; scores; time."""
    graded = [s for s in summaries if not s.get("skipped")]
    errors = [s for s in summaries if s["error"]]
    scores = [s["score"] for s in summaries]
    best = max((s["max_score"] for s in summaries), default=0)
    median = statistics.median(scores) if scores else 0
    return (f"{len(summaries)} submissions: {len(graded)} graded, {len(summaries) - len(graded)} unchanged "
            f"(skipped), {len(errors)} with errors; median score {median:g}/{best:g}; {seconds:.1f} s")

