"""What a TA sees in a terminal or a CI log: the Makefile refuses a misspelled variable and says what it grades;
the progress display is one plain line per tenth of the class when the output is not a terminal."""
from __future__ import annotations

import io
import re
import subprocess

from grader.config import PROJECT_ROOT
from grader.progress import LineProgress, NoProgress, batch_progress
from tests.conftest import TOY, run_grader, toy_notebook, write_student


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)


def test_a_misspelled_make_variable_is_refused():
    result = make("grade", "SUBMISSION=somewhere")
    assert result.returncode != 0 and "grader grade" not in result.stdout
    assert "unknown variable SUBMISSION;" in result.stderr and "SUBMISSIONS" in result.stderr
    assert make("bench", "COUNT=3", "JOBZ=2").returncode != 0


def test_make_grade_says_what_it_grades():
    given = make("grade", "SUBMISSIONS=somewhere", "JOBS=2")
    assert given.returncode == 0 and "grader grade cnn_layers somewhere --reports reports/cnn_layers --jobs 2" \
        in given.stdout
    samples = make("grade", "ASSIGNMENT=keras_models")
    assert samples.returncode == 0
    assert "no SUBMISSIONS=dir given: grading the bundled sample submissions of keras_models" in samples.stdout


def test_progress_is_lines_in_a_log_and_a_bar_on_a_terminal():
    log = io.StringIO()
    assert isinstance(batch_progress(True, log), LineProgress)
    assert type(batch_progress(False, log)) is NoProgress  # disabled: --quiet
    with batch_progress(True, log) as progress:
        task = progress.add_task("", total=40)
        for i in range(40):
            progress.update(task, advance=1, description=f"s{i}", problem=i % 10 == 0)
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("grading: 4/40 (10%), 1 not graded; ")
    assert lines[-1].startswith("grading: 40/40 (100%), 4 not graded; ") and "left" not in lines[-1]
    resumed = io.StringIO()
    with LineProgress(resumed) as progress:
        task = progress.add_task("", total=40, completed=35)
        for _ in range(5):
            progress.update(task)
    lines = resumed.getvalue().splitlines()
    assert lines[0] == "grading: 35/40 unchanged since the last run, 5 to grade" and len(lines) == 6


def test_a_batch_without_a_terminal_logs_plain_lines(tmp_path):
    for name in ("a", "b", "c"):
        write_student(tmp_path / "subs", name, toy_notebook())
    result = run_grader("grade", str(TOY), str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--jobs", "2")
    lines = result.stdout.splitlines()
    assert lines[0] == f"grading 3 submissions of toy from {tmp_path / 'subs'} into {tmp_path / 'r'} (2 workers)"
    progress = [line for line in lines if line.startswith("grading: ")]
    assert [p.split(" (")[0] for p in progress] == ["grading: 1/3", "grading: 2/3", "grading: 3/3"]
    assert not re.search(r"\x1b\[|\r", result.stdout)  # no escape sequences, no redrawn lines
