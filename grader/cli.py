"""Command line: python -m grader {grade,generate,samples} ..."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from grader.assignment import SOLUTIONS_DIR, load_assignment


def _grade(args) -> int:
    from grader.batch import BatchOptions, grade_batch, summary_line
    from grader.reports import render_reports
    from grader.submissions import discover, select_shard
    assignment = load_assignment(args.assignment)
    reports = Path(args.reports or f"reports/{assignment.name}")
    submissions = discover(Path(args.submissions), assignment.notebook)
    if args.shard:
        submissions = select_shard(submissions, args.shard)
    began = time.monotonic()
    summaries = grade_batch(assignment, Path(args.submissions), BatchOptions(
        reports=reports, jobs=args.jobs, force=args.force, seed=args.seed, data_dir=args.data_dir,
        progress=not args.quiet), submissions)
    written = render_reports(assignment, reports, [s.student for s in submissions])
    print(summary_line(summaries, time.monotonic() - began))
    for report, where in written.items():
        print(f"{report + ':':<11}{where}")
    return 1 if "render errors" in written else 0


def _generate(args) -> int:
    from grader.notebooks import generate_starter, starter_is_current
    names = args.assignments or sorted(p.parent.name for p in SOLUTIONS_DIR.glob("*/assignment.toml"))
    stale = []
    for name in names:
        assignment = load_assignment(name)
        if args.check:
            if not starter_is_current(assignment):
                stale.append(str(assignment.starter))
        else:
            print(f"wrote {generate_starter(assignment)}")
    if stale:
        print("out of date (run `make assignments`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


def _samples(args) -> int:
    from grader.notebooks import write_samples
    written = write_samples(load_assignment(args.assignment), Path(args.out))
    print(f"wrote {len(written)} sample submissions to {args.out}")
    return 0


def _calibrate(args) -> int:
    import tempfile

    from grader.batch import BatchOptions, grade_batch
    from grader.notebooks import read, solution, write_submission
    from grader.results import Results
    assignment = load_assignment(args.assignment)
    root = Path(tempfile.mkdtemp(prefix="grader-calibrate-"))
    write_submission(root / "submissions" / "solution", assignment, solution(read(assignment.master)),
                     list(assignment.config.get("submission_files", [])))
    grade_batch(assignment, root / "submissions", BatchOptions(reports=root / "reports", jobs=1, seed=args.seed,
                                                               data_dir=args.data_dir, progress=False))
    results = Results.read(root / "reports" / "solution" / "results.json")
    measured = {k: v for t in results.tests for k, v in t.extra_data.get("metrics", {}).items()}
    print(f"solution: {results.score:g}/{results.max_score:g}")
    print(f"{'threshold':<26}{'current':>10}{'solution':>10}{'proposed':>10}")
    for name, current in assignment.thresholds.items():
        if isinstance(measured.get(name), (int, float)):
            proposed = max(0.0, int((measured[name] - args.margin) * 100) / 100)
            print(f"{name:<26}{current:>10g}{measured[name]:>10.4f}{proposed:>10.2f}")
        else:
            print(f"{name:<26}{current:>10g}{'-':>10}{'-':>10}")
    print("proposed = the solution's figure minus the margin, rounded down; edit [thresholds] in "
          f"{assignment.folder / 'assignment.toml'} to adopt them")
    return 0


def _merge(args) -> int:
    from grader.merge import merge_reports
    from grader.reports import render_reports
    out = Path(args.out)
    assignment, students = merge_reports([Path(p) for p in args.reports], out)
    written = render_reports(assignment, out, students)
    print(f"merged {len(students)} students from {len(args.reports)} shards")
    for report, where in written.items():
        print(f"{report + ':':<11}{where}")
    return 1 if "render errors" in written else 0


def _similarity(args) -> int:
    from grader.similarity import similarity_report
    out = Path(args.out)
    pairs = similarity_report(load_assignment(args.assignment), Path(args.submissions), out, args.threshold)
    print(f"{len(pairs)} pairs at or above {args.threshold:g}: {out / 'similarity.html'}, {out / 'similarity.csv'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m grader", description="Autograder for the CNN course.")
    commands = parser.add_subparsers(dest="command", required=True)

    grade = commands.add_parser("grade", help="grade a folder of submissions",
                                description="Grade every submission in SUBMISSIONS: a folder per student, "
                                "bare <student>.ipynb files, or `gh classroom clone student-repos` folders.")
    grade.add_argument("assignment", help="assignment name (a folder of solutions/) or path to an assignment folder")
    grade.add_argument("submissions", help="folder of submissions")
    grade.add_argument("--reports", help="output folder (default: reports/<assignment>)")
    grade.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel workers (default: cores)")
    grade.add_argument("--force", action="store_true", help="regrade even unchanged submissions")
    grade.add_argument("--seed", type=int, help="seed for randomized test cases (default: kept per reports folder)")
    grade.add_argument("--data-dir", help="folder holding the datasets (before $GRADER_DATA_DIR)")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.add_argument("--shard", help="grade only shard i/N of the submissions (e.g. 2/4), for parallel machines")
    grade.set_defaults(run=_grade)

    generate = commands.add_parser("generate", help="write the starter notebooks in assignments/ from the masters")
    generate.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    generate.add_argument("--check", action="store_true", help="only check that the starters are up to date")
    generate.set_defaults(run=_generate)

    samples = commands.add_parser("samples", help="write sample submissions: solution, starter, seeded bugs")
    samples.add_argument("assignment")
    samples.add_argument("out")
    samples.set_defaults(run=_samples)

    calibrate = commands.add_parser("calibrate", help="grade the solution and propose thresholds with a margin")
    calibrate.add_argument("assignment")
    calibrate.add_argument("--margin", type=float, default=0.02, help="how far below the solution (default 0.02)")
    calibrate.add_argument("--seed", type=int, default=0)
    calibrate.add_argument("--data-dir", help="folder holding the datasets (before $GRADER_DATA_DIR)")
    calibrate.set_defaults(run=_calibrate)

    merge = commands.add_parser("merge", help="merge the reports of shards into one gradebook")
    merge.add_argument("reports", nargs="+", help="the shards' reports folders")
    merge.add_argument("--out", required=True, help="the merged reports folder")
    merge.set_defaults(run=_merge)

    similarity = commands.add_parser("similarity", help="find pairs of students with suspiciously alike code")
    similarity.add_argument("assignment")
    similarity.add_argument("submissions")
    similarity.add_argument("--out", default="reports/similarity", help="output folder")
    similarity.add_argument("--threshold", type=float, default=0.8, help="flag pairs at or above this (0..1)")
    similarity.set_defaults(run=_similarity)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m grader`."""
    args = build_parser().parse_args(argv)
    return args.run(args)
