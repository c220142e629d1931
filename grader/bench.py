"""Benchmark: grade a realistic mix of submissions and print where the time goes.

    python -m grader bench [--assignments cnn_layers keras_models] [--count 20] [--jobs 1 2]

For each assignment it builds `count` submissions, a third each correct (the solution), buggy (the
seeded bugs) and hostile (huge output, monkeypatched NumPy, a hanging function, a process that
exits, a corrupt notebook), grades them once per --jobs value from scratch, and prints the median
and p95 seconds per submission, the throughput, the split per phase, peak memory and, where the
tests retrain models, the retraining cache hit rate. Figures go to bench.json too. Nothing here is
part of the test suite.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from grader.authoring import notebooks
from grader.config import PROJECT_ROOT, Assignment, load_assignment
from grader.reports import render_reports
from grader.results import Results

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


def measure(assignment: Assignment, submissions: Path, jobs: int, cache: Path) -> dict:
    """Grade the mix once from scratch with `jobs` workers and summarize the figures."""
    reports = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    env = {**os.environ, "GRADER_CACHE_DIR": str(cache)}
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "grader", "grade", assignment.ref, str(submissions), "--reports",
                    str(reports), "--jobs", str(jobs), "--quiet", "--force", "--seed", "1"],
                   cwd=PROJECT_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - began
    results = [Results.read(p) for p in sorted(reports.glob("*/results.json"))]
    seconds = [r.execution_time for r in results]
    phases = {phase: statistics.mean(r.meta.timings.get(phase, 0.0) for r in results)
              for phase in PHASES}
    began = time.monotonic()
    render_reports(assignment, reports, [r.student for r in results])
    phases["reports"] = (time.monotonic() - began) / len(results)
    cached = [bool(hit) for r in results for t in r.tests
              for key, hit in t.metrics.items() if key.endswith("retrain_cached")]
    memory = [r.meta.peak_rss_mb for r in results]
    return {
        "assignment": assignment.name, "jobs": jobs, "submissions": len(results), "wall_seconds": round(wall, 2),
        "median_seconds": round(statistics.median(seconds), 3), "p95_seconds": round(_percentile(seconds, 0.95), 3),
        "throughput_per_minute": round(60 * len(results) / wall, 2),
        "seconds_per_submission_at_throughput": round(wall / len(results), 3),
        "phases_mean_seconds": {k: round(v, 4) for k, v in phases.items()},
        "peak_rss_mb": {"grader": round(max((m.get("grader", 0) for m in memory), default=0), 1),
                        "student": round(max((m.get("student", 0) for m in memory), default=0), 1)},
        "retrain_cache_hit_rate": round(sum(cached) / len(cached), 3) if cached else None,
    }


def _print(figures: dict) -> None:
    f = figures
    print(f"{f['assignment']} JOBS={f['jobs']}: {f['submissions']} submissions in {f['wall_seconds']} s; "
          f"median {f['median_seconds']} s, p95 {f['p95_seconds']} s per submission; "
          f"{f['throughput_per_minute']} per minute ({f['seconds_per_submission_at_throughput']} s each)")
    print("  phases (mean s): " + ", ".join(f"{k} {v}" for k, v in f["phases_mean_seconds"].items()))
    print(f"  peak memory: grader {f['peak_rss_mb']['grader']} MB, student {f['peak_rss_mb']['student']} MB"
          + (f"; retraining cache hit rate {f['retrain_cache_hit_rate']}" if f["retrain_cache_hit_rate"] is not None
             else ""))


def run_bench(assignments: list[str], count: int, jobs_values: list[int], out: Path) -> list[dict]:
    """Build the mix per assignment, grade it once per worker count, print and write the figures."""
    figures = []
    for name in assignments:
        assignment = load_assignment(name)
        root = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        build_mix(assignment, count, root / "submissions")
        for jobs in jobs_values:
            figures.append(measure(assignment, root / "submissions", jobs, root / "cache"))
            _print(figures[-1])
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return figures
