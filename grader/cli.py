"""The one command line: `python -m grader <command>` (or `grader <command>` once installed).

Every subcommand lives here. Library code raises typed errors (grader.errors); only this module
turns them into exit codes and one-line messages.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

from grader.config import SOLUTIONS_DIR, load_assignment
from grader.errors import GraderUsageError

log = logging.getLogger("grader")

EXIT_USAGE = 2


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless it has none or its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False) or "(default:" in text:
            return text
        return super()._get_help_string(action) or text
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports ^C


def _print_written(written: dict[str, str]) -> None:
    for report, where in written.items():
        print(f"{report + ':':<11}{where}")


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM outside the batch itself (which stops its workers first): as ^C


def _record_run(reports: Path, summaries: list[dict], seconds: float, jobs: int, interrupted: bool = False) -> None:
    """Keep the run's wall time and counts in REPORTS (the dashboard shows them)."""
    from datetime import UTC, datetime

    from grader.results import RunRecord
    graded = sum(1 for s in summaries if not s.get("skipped"))
    RunRecord(wall_seconds=round(seconds, 2), graded=graded, unchanged=len(summaries) - graded, jobs=jobs,
              finished=datetime.now(UTC).isoformat(timespec="seconds"), interrupted=interrupted).write(reports)


def _grade(args: argparse.Namespace) -> int:
    from grader.batch import BatchInterrupted, BatchOptions, grade_batch, problem_lines, summary_line
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    from grader.adjust import check_course_files
    from grader.ingest.submissions import discover, select_shard, select_students
    from grader.reports import render_reports
    assignment = load_assignment(args.assignment)
    reports = Path(args.reports or f"reports/{assignment.name}")
    check_course_files(reports)  # a malformed overrides.csv row stops the run before it grades
    submissions = discover(Path(args.submissions), assignment.notebook)
    if args.shard:
        submissions = select_shard(submissions, args.shard)
    if args.student:
        submissions = select_students(submissions, args.student)
    if not args.quiet:
        print(f"grading {len(submissions)} submissions of {assignment.name} from {args.submissions} into {reports} "
              f"({args.jobs} worker{'' if args.jobs == 1 else 's'})", flush=True)
    began = time.monotonic()
    try:
        summaries = grade_batch(assignment, Path(args.submissions), BatchOptions(
            reports=reports, jobs=args.jobs, force=args.force, seed=args.seed, data_dir=args.data_dir,
            progress=not args.quiet, sandbox=args.sandbox), submissions)
    except BatchInterrupted as stop:
        _record_run(reports, stop.summaries, time.monotonic() - began, args.jobs, interrupted=True)
        render_reports(assignment, reports, [s["student"] for s in stop.summaries if not s.get("skipped")])
        print(stop.line)
        return EXIT_INTERRUPTED
    _record_run(reports, summaries, time.monotonic() - began, args.jobs)
    written = render_reports(assignment, reports, [s.student for s in submissions])
    print(summary_line(summaries, time.monotonic() - began))
    for line in problem_lines(summaries):
        print(line)
    _print_written(written)
    return 1 if "render errors" in written else 0


def _check(args: argparse.Namespace) -> int:
    from grader.check import check_notebook, render_check
    notebook = Path(args.notebook)
    if not notebook.is_file():
        raise GraderUsageError(f"{notebook} is not a notebook file")
    assignment = load_assignment(args.assignment) if args.assignment else _assignment_of(notebook)
    report = check_notebook(assignment, notebook, sandbox_mode=args.sandbox)
    print(render_check(report), end="")
    return 0 if report.ok else 1


def _assignment_of(notebook: Path):
    """The assignment whose notebook has this file name."""
    found = [a for a in (load_assignment(p.parent.name) for p in sorted(SOLUTIONS_DIR.glob("*/assignment.toml")))
             if a.notebook == notebook.name]
    if len(found) != 1:
        names = sorted(p.parent.name for p in SOLUTIONS_DIR.glob("*/assignment.toml"))
        raise GraderUsageError(f"no assignment has a notebook named {notebook.name}: give it with --assignment "
                               f"(one of {', '.join(names)})")
    return found[0]


def _generate(args: argparse.Namespace) -> int:
    from grader.authoring.notebooks import generate_starter, starter_is_current
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


def _samples(args: argparse.Namespace) -> int:
    from grader.authoring.notebooks import write_samples
    written = write_samples(load_assignment(args.assignment), Path(args.out))
    print(f"wrote {len(written)} sample submissions to {args.out}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    import fnmatch
    import tempfile

    from grader.authoring.notebooks import load_variants, write_samples
    from grader.batch import BatchOptions, grade_batch
    from grader.results import Results
    assignment = load_assignment(args.assignment)
    root = Path(tempfile.mkdtemp(prefix="grader-calibrate-"))
    write_samples(assignment, root / "submissions")
    grade_batch(assignment, root / "submissions", BatchOptions(reports=root / "reports", jobs=1, seed=args.seed,
                                                               data_dir=args.data_dir, progress=False))
    exempt = {f"variant-{v.name}": v.exempt for v in load_variants(assignment)}
    figures: dict[str, dict[str, float]] = {}  # sample -> metric -> figure (tests a variant is exempt from left out)
    for path in sorted((root / "reports").glob("*/results.json")):
        results = Results.read(path)
        if path.parent.name == "solution":
            print(f"solution: {results.score:g}/{results.max_score:g}")
        skip = exempt.get(path.parent.name, [])
        figures[path.parent.name] = {k: v for t in results.tests if not any(fnmatch.fnmatchcase(t.name, p) for p in skip)
                                     for k, v in t.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for name, current in assignment.thresholds.items():
        valid = {s: f[name] for s, f in figures.items() if name in f and (s == "solution" or s.startswith("variant-"))}
        if not valid:
            print(f"{name}: current {current:g}; no figure measured")
            continue
        weakest = min(valid, key=valid.__getitem__)
        proposed = max(0.0, int((valid[weakest] - args.margin) * 100) / 100)
        print(f"{name}: current {current:g}; weakest valid {weakest} {valid[weakest]:.4f}; proposed {proposed:.2f}")
        for sample in sorted(s for s, f in figures.items() if name in f):
            figure = figures[sample][name]
            print(f"    {sample:<44}{figure:.4f}{'  (below the current threshold)' if figure < current else ''}")
    print("proposed = the weakest valid sample's figure (the solution and the variants of variants.toml) minus the "
          f"margin, rounded down; edit [thresholds] in {assignment.folder / 'assignment.toml'} to adopt them")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from grader.adjust import check_course_files
    from grader.merge import merge_reports
    from grader.reports import render_reports
    out = Path(args.out)
    check_course_files(out)
    assignment, students = merge_reports([Path(p) for p in args.reports], out)
    written = render_reports(assignment, out, students)
    print(f"merged {len(students)} students from {len(args.reports)} shards")
    _print_written(written)
    return 1 if "render errors" in written else 0


def _diff(args: argparse.Namespace) -> int:
    from grader.diff import describe, diff_reports, write_diff
    changes = diff_reports(Path(args.reports_a), Path(args.reports_b))
    out = write_diff(changes, Path(args.out or Path(args.reports_b) / "diff.csv"))
    for change in changes:
        print(describe(change))
    print(f"{len(changes)} student{'s' if len(changes) != 1 else ''} changed from {args.reports_a} to "
          f"{args.reports_b}: {out}")
    return 0


def _similarity(args: argparse.Namespace) -> int:
    from grader.reports.similarity import similarity_report
    out = Path(args.out)
    pairs = similarity_report(load_assignment(args.assignment), Path(args.submissions), out, args.threshold)
    print(f"{len(pairs)} pairs at or above {args.threshold:g}: {out / 'similarity.html'}, {out / 'similarity.csv'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from grader.bench import LATENCY_ASSIGNMENTS, run_bench
    run_bench(args.runs, args.count, Path(args.out), tuple(args.assignments or LATENCY_ASSIGNMENTS))
    return 0


def _solution_weights(args: argparse.Namespace) -> int:
    from grader.course.training import train_solution_weights
    train_solution_weights(load_assignment(args.assignment), args.data_dir)
    return 0


def _gradescope(args: argparse.Namespace) -> int:
    from grader.platforms import gradescope
    if args.action == "build":
        assignment = load_assignment(args.assignment)
        out = gradescope.build(assignment, Path(args.out or f"build/gradescope/{assignment.name}/autograder.zip"))
        print(f"wrote {out}: upload it as the autograder of a Gradescope programming assignment")
        return 0
    if not args.submission or not args.results:
        raise GraderUsageError("gradescope run needs --submission and --results")
    return gradescope.run(args.assignment, Path(args.submission), Path(args.results),
                          Path(args.metadata) if args.metadata else None,
                          Path(args.reports) if args.reports else None)


def _classroom(args: argparse.Namespace) -> int:
    from grader.platforms import classroom
    if args.action == "template":
        assignment = load_assignment(args.assignment)
        out = Path(args.out or f"build/classroom/{assignment.name}")
        classroom.template(assignment, out, args.grader_repo, args.grader_ref)
        print(f"wrote the GitHub Classroom template repository for {assignment.name} to {out}")
        if not args.grader_repo and not classroom.default_grader_repo():
            log.warning("no GRADER_REPO given and no GitHub remote found; the workflow installs the grader "
                        "from YOUR-ORG/cnn-autograder: rerun with GRADER_REPO=owner/name")
        return 0
    if args.action == "shard":
        if not args.roster or not args.shard:
            raise GraderUsageError("classroom shard needs --roster and --shard")
        for login, repository in classroom.shard_roster(Path(args.roster), args.shard):
            print(f"{login}\t{repository}")
        return 0
    classroom.grade(args.assignment, Path(args.repo), Path(args.out or classroom.OUT), args.student)
    return 0


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="folder holding the datasets, looked at before $GRADER_DATA_DIR, "
                        "the Keras cache and a download")


def _add_grade_parser(commands: argparse._SubParsersAction) -> None:
    grade = commands.add_parser(
        "grade", help="grade a folder of submissions", formatter_class=DefaultsFormatter,
        description="Grade every submission in SUBMISSIONS: a folder per student, bare <student>.ipynb files, "
                    "or `gh classroom clone student-repos` folders. Finished results are kept: rerunning the "
                    "same command grades only what changed.")
    grade.add_argument("assignment", help="assignment name (a folder of solutions/) or path to an assignment folder")
    grade.add_argument("submissions", help="folder of submissions")
    grade.add_argument("--reports", help="output folder (default: reports/<assignment>)")
    grade.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel workers")
    grade.add_argument("--force", action="store_true", help="regrade even unchanged submissions (with --student: "
                       "only those students)")
    grade.add_argument("--student", action="append", metavar="NAME",
                       help="grade only this student (the name as submitted, or the report folder); repeatable. "
                            "The gradebook and dashboard are still rendered from every result in REPORTS")
    grade.add_argument("--seed", type=int, help="seed for randomized test cases (default: kept per reports folder)")
    _add_data_dir(grade)
    grade.add_argument("--quiet", action="store_true", help="no progress display (a bar on a terminal, "
                       "a line per tenth of the class in a log)")
    grade.add_argument("--shard", help="grade only shard i/N of the submissions (e.g. 2/4), for parallel machines")
    grade.add_argument("--sandbox", choices=("strict", "best-effort"), default="strict",
                       help="strict refuses to grade where an essential sandbox layer cannot be applied; "
                            "best-effort grades anyway and marks every result as graded under a weak sandbox")
    grade.set_defaults(run=_grade)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m grader", description="Autograder for the CNN course.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the grader does behind your back")
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = DefaultsFormatter
    _add_grade_parser(commands)

    check = commands.add_parser(
        "check", help="run a notebook as the grader will, without the hidden tests (for students, before submitting)",
        formatter_class=defaults,
        description="Run NOTEBOOK exactly as the grader runs it (same sandbox, cell mode and limits) without the "
                    "hidden tests; say which graded functions are defined, which cells failed or were skipped "
                    "and why, how the notebook's self-checks fared, and which files would be submitted. "
                    "Exit status 1 when something needs fixing.")
    check.add_argument("notebook", help="the notebook to check (the files beside it are submitted with it)")
    check.add_argument("--assignment", help="assignment name or folder (default: the one whose notebook has "
                       "NOTEBOOK's file name)")
    check.add_argument("--sandbox", choices=("strict", "best-effort"), default="strict",
                       help="as for grade")
    check.set_defaults(run=_check)

    generate = commands.add_parser("generate", help="write the starter notebooks in assignments/ from the masters",
                                   formatter_class=defaults)
    generate.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    generate.add_argument("--check", action="store_true", help="only check that the starters are up to date")
    generate.set_defaults(run=_generate)

    samples = commands.add_parser("samples", help="write sample submissions: solution, starter, seeded bugs, valid variants",
                                  formatter_class=defaults)
    samples.add_argument("assignment", help="assignment name or folder")
    samples.add_argument("out", help="folder to write (replaced)")
    samples.set_defaults(run=_samples)

    calibrate = commands.add_parser("calibrate", help="grade the samples (solution, valid variants, seeded bugs) and "
                                    "propose thresholds below every valid one", formatter_class=defaults)
    calibrate.add_argument("assignment", help="assignment name or folder")
    calibrate.add_argument("--margin", type=float, default=0.02, help="how far below the weakest valid sample")
    calibrate.add_argument("--seed", type=int, default=0, help="seed for randomized test cases")
    _add_data_dir(calibrate)
    calibrate.set_defaults(run=_calibrate)

    merge = commands.add_parser("merge", help="merge the reports of shards into one gradebook",
                                formatter_class=defaults)
    merge.add_argument("reports", nargs="+", help="the shards' reports folders")
    merge.add_argument("--out", required=True, help="the merged reports folder")
    merge.set_defaults(run=_merge)

    diff = commands.add_parser("diff", help="which students' scores, statuses and tests changed between two runs",
                               formatter_class=defaults)
    diff.add_argument("reports_a", help="the earlier reports folder")
    diff.add_argument("reports_b", help="the later reports folder")
    diff.add_argument("--out", help="CSV to write (default: REPORTS_B/diff.csv)")
    diff.set_defaults(run=_diff)

    similarity = commands.add_parser("similarity", help="find pairs of students with suspiciously alike code",
                                     formatter_class=defaults)
    similarity.add_argument("assignment", help="assignment name or folder")
    similarity.add_argument("submissions", help="folder of submissions")
    similarity.add_argument("--out", default="reports/similarity", help="output folder")
    similarity.add_argument("--threshold", type=float, default=0.8, help="flag pairs at or above this (0..1)")
    similarity.set_defaults(run=_similarity)

    bench = commands.add_parser("bench", help="time one notebook (whole process) and a batch; write bench.json",
                                formatter_class=defaults)
    bench.add_argument("--runs", type=int, default=5, help="whole-process runs per latency figure")
    bench.add_argument("--count", type=int, default=26, help="cnn_layers submissions in the batch mix")
    bench.add_argument("--assignments", nargs="+", metavar="ASSIGNMENT",
                       help="assignments whose one-notebook latency is measured (default: all three)")
    bench.add_argument("--out", default="bench.json", help="where to write the figures")
    bench.set_defaults(run=_bench)

    weights = commands.add_parser("solution-weights", help="execute a master notebook to retrain its solution "
                                  "weights", formatter_class=defaults)
    weights.add_argument("assignment", help="assignment name or folder")
    _add_data_dir(weights)
    weights.set_defaults(run=_solution_weights)

    gradescope = commands.add_parser("gradescope", help="build the Gradescope autograder.zip, or grade one "
                                     "submission as run_autograder does", formatter_class=defaults)
    gradescope.add_argument("action", choices=("build", "run"), help="build the zip, or run (inside Gradescope)")
    gradescope.add_argument("assignment", help="assignment name or folder")
    gradescope.add_argument("--out", help="zip to write (build; default: build/gradescope/<name>/autograder.zip)")
    gradescope.add_argument("--submission", help="the submission folder (run)")
    gradescope.add_argument("--results", help="results.json to write (run)")
    gradescope.add_argument("--metadata", help="submission_metadata.json, if any (run)")
    gradescope.add_argument("--reports", help="keep the full reports here (run; default: a temporary folder)")
    gradescope.set_defaults(run=_gradescope)

    classroom = commands.add_parser("classroom", help="write the GitHub Classroom template repository, or grade "
                                    "a student's repository as its workflow does", formatter_class=defaults)
    classroom.add_argument("action", choices=("template", "grade", "shard"),
                           help="write the template, grade (in Actions), or list the roster's students of one shard")
    classroom.add_argument("assignment", nargs="?", default="", help="assignment name or folder (template, grade)")
    classroom.add_argument("--out", help="template: folder to write (default: build/classroom/<name>); "
                           "grade: output folder (default: .autograder)")
    classroom.add_argument("--grader-repo", default="", help="template: owner/name of the repository holding the "
                           "grader (default: this repository's GitHub remote)")
    classroom.add_argument("--grader-ref", default="main", help="template: branch or tag of the grader to install")
    classroom.add_argument("--repo", default=".", help="grade: the student's repository")
    classroom.add_argument("--student", help="grade: student name (default: the repository folder's name)")
    classroom.add_argument("--roster", help="shard: login<TAB>owner/repository per line (the accepted assignments)")
    classroom.add_argument("--shard", help="shard: i/N, as `grade --shard`")
    classroom.set_defaults(run=_classroom)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m grader`: run one subcommand; typed errors become one line and exit code 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except GraderUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a second ^C while the reports of an interrupted batch were being written
        print("interrupted; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED


def run() -> NoReturn:
    """`python -m grader` and the `grader` script: main(), then exit at once. Every report is written and closed
    by then; the interpreter's teardown (a tenth of a second of a one-notebook run) is skipped."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
