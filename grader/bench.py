"""Benchmark: how long a student waits for one notebook, how fast a batch goes, and where the time goes.

    python -m grader bench [--runs 5] [--count 26] [--assignments cnn_layers keras_models cnn_architectures]

It measures, on this machine, with the sandbox on (--sandbox strict):

- latency: one notebook (the solution) graded by a whole `python -m grader grade` process on a one-notebook
  folder, as GitHub Classroom runs it; median and p95 of --runs runs. cnn_layers also through `python -m
  grader gradescope run`, as Gradescope's run_autograder runs it (minus the venv activation); keras_models
  and cnn_architectures cold (an empty retraining cache for every run) and warm (the cache the cold runs
  filled);
- batch: a mix of --count cnn_layers submissions (a third correct, a third with seeded bugs, a third
  hostile: huge output, monkeypatched NumPy, an infinite loop, os._exit, a corrupt notebook) graded by one
  command at --jobs 1 and --jobs 2: wall seconds per notebook;
- phases: the mean seconds per phase of grading (from the results' own timings);
- the wire: seconds per round trip of a small call to the student process, and what starting a student
  process costs with every sandbox layer and without the namespaces and private root;
- peak memory of the grading worker and of the student process.

It prints a table and writes the figures to bench.json, to compare two runs. Nothing here is part of the
test suite, and nothing asserts a time.
"""
from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
from rich.console import Console
from rich.table import Table

from grader.authoring import notebooks
from grader.config import PROJECT_ROOT, Assignment, Limits, load_assignment
from grader.results import Results

LATENCY_ASSIGNMENTS = ("cnn_layers", "keras_models", "cnn_architectures")
PHASES = ("ingest", "start", "cells", "calls", "tests", "train_eval", "results")


def _hostile(assignment: Assignment, master, kind: str):
    notebook = notebooks.solution(master)
    cell = nbformat.v4.new_code_cell
    if kind == "huge_output":
        notebook.cells.append(cell("print('x' * 5_000_000)"))
    elif kind == "monkeypatch":
        notebook.cells.insert(0, cell("import numpy as np\nnp.allclose = lambda *a, **k: True\n"
                                      "np.ndarray.__eq__ = lambda *a: True"))
    elif kind == "hangs":
        name = assignment.functions[-1]
        notebook.cells.append(cell(f"def {name}(*args, **kwargs):\n    while True:\n        pass"))
    elif kind == "exits":
        notebook.cells.append(cell("import os\nos._exit(3)"))
    return notebook


def build_mix(assignment: Assignment, count: int, out: Path) -> None:
    """Write count submissions: correct, buggy and hostile in equal parts."""
    master = notebooks.read(assignment.master)
    files = list(assignment.submission_files)
    mutants = notebooks.load_mutants(assignment)
    hostile = ["huge_output", "monkeypatch", "hangs", "exits", "corrupt"]
    for i in range(count):
        folder = out / f"s{i:03d}"
        kind = i % 3
        if kind == 0 or (kind == 1 and not mutants):
            notebooks.write_submission(folder, assignment, notebooks.solution(master), files)
        elif kind == 1:
            notebooks.write_mutant(folder, assignment, master, mutants[(i // 3) % len(mutants)])
        else:
            variant = hostile[(i // 3) % len(hostile)]
            if variant == "corrupt":
                folder.mkdir(parents=True)
                (folder / assignment.notebook).write_text('{"cells": [')
            else:
                notebooks.write_submission(folder, assignment, _hostile(assignment, master, variant), files)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _stats(seconds: list[float]) -> dict:
    return {"runs": len(seconds), "median_seconds": round(statistics.median(seconds), 3),
            "p95_seconds": round(_percentile(seconds, 0.95), 3), "all_seconds": [round(s, 3) for s in seconds]}


def _phases(results: list[Results]) -> dict[str, float]:
    return {phase: round(statistics.mean(r.meta.timings.get(phase, 0.0) for r in results), 4) for phase in PHASES}


def _peak(results: list[Results]) -> dict[str, float]:
    return {who: round(max((r.meta.peak_rss_mb.get(who, 0.0) for r in results), default=0.0), 1)
            for who in ("grader", "student")}


def _timed(command: list[str], cache: Path) -> float:
    env = {**os.environ, "GRADER_CACHE_DIR": str(cache)}
    began = time.monotonic()
    subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - began


def _grade_command(assignment: Assignment, submissions: Path, reports: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "grader", "grade", assignment.ref, str(submissions), "--reports", str(reports),
            "--jobs", str(jobs), "--quiet", "--force", "--seed", "1", "--sandbox", "strict"]


def latency(assignment: Assignment, runs: int, root: Path, how: str) -> dict:
    """Whole-process seconds to grade one correct notebook; how: grade | gradescope, and cold | warm."""
    folder = root / "one" / "student"
    notebooks.write_submission(folder, assignment, notebooks.solution(notebooks.read(assignment.master)),
                               list(assignment.submission_files))
    tool, cache_state = how.split("-")
    warm_cache = root / "cache-warm"
    seconds, results = [], []
    for run in range(runs):
        cache = root / f"cache-cold-{run}" if cache_state == "cold" else warm_cache
        reports = root / f"reports-{how}-{run}"
        if tool == "gradescope":
            reports.mkdir(parents=True)
            command = [sys.executable, "-m", "grader", "gradescope", "run", str(assignment.folder), "--submission",
                       str(folder), "--results", str(reports / "student" / "results.json")]
        else:
            command = _grade_command(assignment, folder.parent, reports, 1)
        seconds.append(_timed(command, cache))
        results.append(Results.read(reports / "student" / "results.json"))
        if cache_state == "cold" and run == runs - 1 and cache.exists():
            cache.rename(warm_cache)
    return {"assignment": assignment.name, "measure": f"one notebook, {tool}, {cache_state}", **_stats(seconds),
            "score": f"{results[-1].score:g}/{results[-1].max_score:g}", "phases_mean_seconds": _phases(results),
            "peak_rss_mb": _peak(results)}


def batch(assignment: Assignment, submissions: Path, jobs: int, cache: Path) -> dict:
    """Grade the mix once from scratch with `jobs` workers: wall seconds per notebook, phases, memory."""
    reports = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    wall = _timed(_grade_command(assignment, submissions, reports, jobs), cache)
    results = [Results.read(p) for p in sorted(reports.glob("*/results.json"))]
    return {"assignment": assignment.name, "measure": f"batch of {len(results)}, --jobs {jobs}",
            "wall_seconds": round(wall, 2), "seconds_per_notebook": round(wall / len(results), 3),
            "median_seconds": round(statistics.median(r.execution_time for r in results), 3),
            "p95_seconds": round(_percentile([r.execution_time for r in results], 0.95), 3),
            "phases_mean_seconds": _phases(results), "peak_rss_mb": _peak(results)}


def wire_and_sandbox(root: Path, calls: int = 300, starts: int = 5) -> dict:
    """Seconds per round trip of a small call, and student-process start seconds with and without namespaces."""
    import numpy as np

    from grader.sandbox.process import SIMULATE_ENV, StudentSession

    def session(folder: Path) -> StudentSession:
        folder.mkdir(parents=True)
        (folder / "sandbox").mkdir()
        return StudentSession(["def echo(x):\n    return x"], folder / "sandbox", Limits(), sandbox_mode="best-effort")

    def start_seconds(label: str) -> float:
        seconds = []
        for i in range(starts):
            one = session(root / f"start-{label}-{i}")
            began = time.monotonic()
            one.ensure_started()
            seconds.append(time.monotonic() - began)
            one.close()
        return round(statistics.median(seconds), 4)

    figures = {"student_start_all_layers_seconds": start_seconds("all")}
    previous = os.environ.get(SIMULATE_ENV)
    os.environ[SIMULATE_ENV] = "no-namespaces"
    try:
        figures["student_start_without_namespaces_seconds"] = start_seconds("no-ns")
    finally:
        os.environ.pop(SIMULATE_ENV) if previous is None else os.environ.update({SIMULATE_ENV: previous})
    one = session(root / "calls")
    x = np.ones((2, 3, 8, 8))
    one.call("echo", (x,), {}, 5.0)
    began = time.monotonic()
    for _ in range(calls):
        one.call("echo", (x,), {}, 5.0)
    figures["round_trip_ms"] = round(1000 * (time.monotonic() - began) / calls, 3)
    one.close()
    return figures


def _table(figures: dict) -> Table:
    table = Table(title="grader bench (seconds; this machine, --sandbox strict)")
    for column in ("assignment", "measure", "median", "p95", "per notebook", "wall", "peak MB grader/student"):
        table.add_column(column)
    for row in figures["latency"] + figures["batch"]:
        peak = row["peak_rss_mb"]
        table.add_row(row["assignment"], row["measure"], str(row.get("median_seconds", "")),
                      str(row.get("p95_seconds", "")), str(row.get("seconds_per_notebook", "")),
                      str(row.get("wall_seconds", "")), f"{peak['grader']:g} / {peak['student']:g}")
    return table


def _phase_table(figures: dict) -> Table:
    table = Table(title="phases: mean seconds per notebook")
    table.add_column("measure")
    for phase in PHASES:
        table.add_column(phase)
    for row in figures["latency"] + figures["batch"]:
        table.add_row(f"{row['assignment']}: {row['measure']}", *(str(row["phases_mean_seconds"][p]) for p in PHASES))
    return table


def run_bench(runs: int, count: int, out: Path, assignments: tuple[str, ...] = LATENCY_ASSIGNMENTS,
              console: Console | None = None) -> dict:
    """Measure everything this module's docstring lists; print the tables and write the figures to out."""
    console = console or Console()
    root = Path(tempfile.mkdtemp(prefix="bench-"))
    root.chmod(0o711)  # the student identity traverses to its sandbox
    steps: list[tuple[str, Callable[[], dict]]] = []
    for name in assignments:
        assignment = load_assignment(name)
        if assignment.datasets:  # a retraining cache: cold (empty for every run), then warm
            steps += [("latency", functools.partial(latency, assignment, runs, root / name, "grade-cold")),
                      ("latency", functools.partial(latency, assignment, runs, root / name, "grade-warm"))]
        else:
            steps += [("latency", functools.partial(latency, assignment, runs, root / f"{name}-grade", "grade-warm")),
                      ("latency", functools.partial(latency, assignment, runs, root / f"{name}-gs",
                                                    "gradescope-warm"))]
    cnn = load_assignment("cnn_layers")
    build_mix(cnn, count, root / "mix")
    steps += [("batch", functools.partial(batch, cnn, root / "mix", jobs, root / "mix-cache")) for jobs in (1, 2)]
    figures: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "latency": [], "batch": []}
    for kind, step in steps:
        figures[kind].append(step())
        row = figures[kind][-1]
        console.print(f"{row['assignment']}: {row['measure']}: median {row['median_seconds']} s"
                      + (f", {row['seconds_per_notebook']} s per notebook" if kind == "batch" else
                         f", p95 {row['p95_seconds']} s"))
    figures["wire"] = wire_and_sandbox(root / "wire")
    console.print(_table(figures))
    console.print(_phase_table(figures))
    wire = figures["wire"]
    console.print(f"wire: {wire['round_trip_ms']} ms per round trip of a small call; student process start "
                  f"{wire['student_start_all_layers_seconds']} s with every sandbox layer, "
                  f"{wire['student_start_without_namespaces_seconds']} s without the namespaces and private root")
    out.write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"wrote {out}")
    return figures
