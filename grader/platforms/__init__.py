"""Packaging for the platforms courses use: Gradescope (gradescope.py) and GitHub Classroom (classroom.py).

Both grade one submission with the same batch code a TA runs (grader.batch), then render what the
platform reads from the results model.
"""
from __future__ import annotations

import logging
import re
import tempfile
import traceback
from functools import cache
from pathlib import Path

import jinja2

from grader.config import PROJECT_ROOT, Assignment
from grader.errors import ConfigError
from grader.ingest.submissions import (
    SKIP_PARTS,
    Submission,
    UnsafeFile,
    from_folder,
    left_out,
    read_regular,
    safe_name,
    scan,
)
from grader.results import Results

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
BUNDLE_EXCLUDE = {"__pycache__", ".ipynb_checkpoints", ".git", ".pytest_cache"}
PYTHON_VERSION = "3.11"  # the one Python of every workflow (Classroom template, grade-class.yml), as in pyproject


@cache
def environment() -> jinja2.Environment:
    """Templates for files that contain `{{ }}` and `${{ }}` themselves: [= var =] and [% block %]."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                              variable_start_string="[=", variable_end_string="=]",
                              block_start_string="[%", block_end_string="%]",
                              comment_start_string="[#", comment_end_string="#]",
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def source_path(assignment: Assignment) -> str:
    """Where the assignment folder sits inside the grader's source tree (and inside the bundles)."""
    try:
        rel = assignment.folder.relative_to(PROJECT_ROOT)
        if rel.parts and rel.parts[0] in ("solutions", "tests"):  # folders hidden from student code
            return rel.as_posix()
    except ValueError:
        pass
    return f"solutions/{assignment.name}"


def source_files(assignment: Assignment) -> list[tuple[str, Path]]:
    """(path inside a bundle, file) for the grader package, the assignment, requirements.lock, pyproject."""
    files = [(p.relative_to(PROJECT_ROOT).as_posix(), p) for p in sorted((PROJECT_ROOT / "grader").rglob("*"))
             if p.is_file() and not BUNDLE_EXCLUDE & set(p.parts) and p.suffix != ".pyc"]
    target = source_path(assignment)
    files += [(f"{target}/{p.relative_to(assignment.folder).as_posix()}", p)
              for p in sorted(assignment.folder.rglob("*"))
              if p.is_file() and not BUNDLE_EXCLUDE & set(p.relative_to(assignment.folder).parts)]
    files += [(name, PROJECT_ROOT / name) for name in ("requirements.lock", "pyproject.toml")]
    return files


def copy_submission(folder: Path, root: Path, student: str, notebook_name: str,
                    exclude: set[str] | frozenset[str] = frozenset()) -> Submission:
    """Copy one student's submission folder to root/<student>/ and return it as a Submission there.

    The folder is walked without following links (skipping .git, .github and the given names);
    only regular files under the size limits are copied, each opened with open_regular. Whatever
    is left out (links, FIFOs, devices, sockets, oversized files) becomes a note of the submission.
    """
    folder, target = Path(folder), root / student
    target.mkdir(parents=True)
    original = from_folder(folder, student, notebook_name, skip=SKIP_PARTS | set(exclude))
    if original.notebook is None:
        return Submission(student, None, target, original.problem, original.notes)
    notes, base = list(original.notes), original.notebook.parent
    for rel in scan(base, SKIP_PARTS | set(exclude), first=original.notebook.name).files:
        destination = target / base.relative_to(folder) / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            destination.write_bytes(read_regular(base, rel))
        except UnsafeFile as exc:
            notes.append(left_out(rel, str(exc)))
    notebook = target / original.notebook.relative_to(folder)
    return Submission(student, notebook, notebook.parent, notes=tuple(notes))


def grade_folder(assignment: Assignment, folder: Path, student: str, reports: Path,
                 exclude: set[str] | frozenset[str] = frozenset(), seed: int | None = None) -> Results:
    """Grade one submission folder into reports/<student>/results.json and return its results.

    Uses the TA's batch code (isolated student process, one worker); if even that fails, the
    results say the grader failed, so the platform always gets a well-formed answer. Links in the
    folder are never followed (see copy_submission).
    """
    from grader.batch import BatchOptions, grade_batch, grader_failure
    student = safe_name(student)
    with tempfile.TemporaryDirectory(prefix="grader-submission-") as tmp:
        root = Path(tmp) / "submissions"
        root.mkdir()
        try:
            submission = copy_submission(Path(folder), root, student, assignment.notebook, exclude)
            grade_batch(assignment, root, BatchOptions(reports=reports, jobs=1, force=True, seed=seed,
                                                       progress=False), [submission])
        except Exception:
            log.exception("grading %s failed in the grader; recording a grader failure instead", student)
            grader_failure(Submission(student, None, None), traceback.format_exc()).write(
                reports / student / "results.json")
    return Results.read(reports / student / "results.json")


def check_repo(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", value):
        raise ConfigError(f"not an owner/name GitHub repository: {value!r}")
    return value


def check_ref(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", value) or ".." in value:
        raise ConfigError(f"not a branch or tag name: {value!r}")
    return value
