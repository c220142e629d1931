"""The one typed results model of a graded submission.

Every report (feedback, JUnit, gradebook, dashboard, platform formats) is rendered from this model.
On disk it is Gradescope's results.json: the Gradescope dictionary is produced only at that edge
(to_json), and read back by from_json, which also reads files written by older versions of the grader.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from grader.config import VISIBILITIES

log = logging.getLogger(__name__)

DIAGNOSIS_MARKER = " Probably: "  # how older versions glued the diagnosis into a test's output
Metric = float | int | bool | str

# What a gradebook row says about a submission (the `status` column).
GRADED, NOTEBOOK_PROBLEM, GRADER_ERROR, NO_SUBMISSION = "graded", "notebook problem", "grader error", "no submission"
STATUSES = (GRADED, NOTEBOOK_PROBLEM, GRADER_ERROR, NO_SUBMISSION)

# Bounds on what one results.json holds (every report is rendered from it, so they bound the reports too).
MAX_RESULTS_BYTES = 2 << 20   # the whole results.json
MAX_CELL_ERRORS = 20          # cells that raised, timed out or died, listed with their error
MAX_CELLS_LISTED = 100        # cells listed at all (the others are counted)
MAX_CELL_TEXT = 4000          # one cell's error
MAX_CELL_OUTPUT = 8000        # one cell's output (the student process already cuts it at [limits] output_chars)
MAX_SKIPPED_LISTED = 20       # statements listed as skipped, per cell (the others are counted)
MAX_SKIPPED_TEXT = 300        # one of them
MAX_TEST_TEXT = 4000          # one test's message (its diagnosis: a quarter of it)
MAX_OUTPUT_TEXT = 20_000      # the text shown to the student (notes and cell errors)
MAX_DETAIL_TEXT = 8000        # a grader error's traceback
MAX_SOURCE_TEXT = 20_000      # one notebook cell's source, as shown in the feedback
MAX_SHOWN_OUTPUT = 2000       # one text output of a notebook cell, as shown in the feedback
MAX_IMAGE_BYTES = 200_000     # one PNG output of a notebook cell (base64), as shown in the feedback


_CLIPPED = re.compile(r"\n?\[\.\.\. truncated: ([\d,]+) characters in all\]\n?")


def clip(text: str, limit: int, keep_end: bool = False) -> str:
    """text cut to at most limit characters, the cut marked; text that fits is returned unchanged.

    Idempotent, and a text cut again still tells its original length. keep_end keeps the last
    characters (a traceback's end)."""
    text = text or ""
    if len(text) <= limit:
        return text
    total = len(text)
    marked = _CLIPPED.search(text[:80] if keep_end else text[-80:])
    if marked:  # cut before: the marker tells the original length
        total = int(marked.group(1).replace(",", ""))
        text = _CLIPPED.sub("", text, count=1) if keep_end else text[:text.rindex("\n[... truncated: ")]
    marker = f"[... truncated: {total:,} characters in all]"
    room = max(0, limit - len(marker) - 1)
    return marker + "\n" + text[len(text) - room:] if keep_end else text[:room] + "\n" + marker


@dataclass
class TestResult:
    """One hidden test's outcome."""
    __test__ = False  # not a pytest test class

    name: str
    score: float
    max_score: float
    passed: bool
    functions: tuple[str, ...]
    category: str
    visibility: str = "visible"
    message: str = ""
    diagnosis: str = ""    # the likely mistake ("Probably: ..."), kept apart from the message
    duration: float = 0.0
    metrics: dict[str, Metric] = field(default_factory=dict)
    grader_error: str = ""
    cause: str = ""        # why the student's code gave no result to check (one of CAUSES), "" otherwise
    culprit: str = ""      # the student function the cause is about (a test may call several)

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    def output_text(self) -> str:
        """The message with its diagnosis, as one text (for platforms that have a single field)."""
        return self.message + (f"\nProbably: {self.diagnosis}" if self.diagnosis else "")

    def to_json(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"message": self.message, "diagnosis": self.diagnosis,
                                 "duration": round(self.duration, 4)}
        if self.metrics:
            extra["metrics"] = self.metrics
        if self.grader_error:
            extra["grader_error"] = self.grader_error
        if self.cause:
            extra["cause"], extra["culprit"] = self.cause, self.culprit
        return {"name": self.name, "score": self.score, "max_score": self.max_score, "status": self.status,
                "output": self.output_text(), "visibility": self.visibility,
                "tags": [*self.functions, self.category], "extra_data": extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestResult:
        extra = data.get("extra_data") or {}
        if "message" in extra:
            message, diagnosis = str(extra["message"]), str(extra.get("diagnosis", ""))
        else:  # written by an older grader: the diagnosis was glued into the output
            head, marker, hint = str(data.get("output") or "").partition(DIAGNOSIS_MARKER)
            message, diagnosis = head.strip(), hint.strip() if marker else ""
        tags = [str(t) for t in data.get("tags") or []]
        visibility = data.get("visibility", "visible")
        return cls(name=str(data["name"]), score=float(data.get("score", 0.0)),
                   max_score=float(data.get("max_score", 0.0)), passed=data.get("status") == "passed",
                   functions=tuple(tags[:-1]), category=tags[-1] if tags else "",
                   visibility=visibility if visibility in VISIBILITIES else "visible",
                   message=message, diagnosis=diagnosis, duration=float(extra.get("duration", 0.0)),
                   metrics=dict(extra.get("metrics") or {}), grader_error=str(extra.get("grader_error", "")),
                   cause=str(extra.get("cause", "")), culprit=str(extra.get("culprit", "")))


# How every report numbers a notebook's cells (CellLog.position, NotebookCell.position), said where it matters.
CELL_NUMBERING = "cells are numbered from the top of the notebook, counting every cell, Markdown cells included"

# Why a call into the student's code gave no result (TestResult.cause; grader.errors.StudentError.kind).
MISSING, NOT_IMPLEMENTED, RAISED, FORBIDDEN = "missing", "not implemented", "raised", "forbidden"
CAUSES = (MISSING, NOT_IMPLEMENTED, RAISED, FORBIDDEN)


@dataclass
class CellLog:
    """What one notebook cell did at start-up.

    number counts the code cells the grader runs; position counts every cell of the notebook from the
    top, Markdown included (the numbering every report shows; 0 in files of older graders)."""
    number: int
    status: str  # ok, raised, timeout, died
    error: str = ""
    output: str = ""
    position: int = 0
    summary: str = ""  # the error's last line, e.g. "SyntaxError: '(' was never closed"
    skipped: list[str] = field(default_factory=list)  # statements the cell mode did not run, each with why

    @property
    def what(self) -> str:
        """What went wrong, in one line: "raised SyntaxError: ...", "did not finish within 30 s; ..."."""
        if self.status == "raised":
            return f"raised {self.summary or 'an error'}"
        return self.error.splitlines()[0] if self.error else self.status


@dataclass
class CellOutput:
    """One output of a notebook cell as the student saved it: plain text, an error, or a PNG (base64).

    Nothing else is kept (no HTML, JavaScript or SVG): the feedback shows the notebook without running it."""
    kind: str  # text, error, image
    text: str = ""


@dataclass
class NotebookCell:
    """One cell of the student's notebook as saved, for the feedback's rendering of the notebook."""
    position: int            # from the top, every cell counted, starting at 1
    kind: str                # code, markdown, raw
    source: str
    execution_count: int | None = None
    outputs: list[CellOutput] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NotebookCell:
        count = data.get("execution_count")
        return cls(position=int(data.get("position", 0)), kind=str(data.get("kind", "code")),
                   source=str(data.get("source", "")), execution_count=count if isinstance(count, int) else None,
                   outputs=[CellOutput(str(o.get("kind", "text")), str(o.get("text", "")))
                            for o in data.get("outputs") or [] if isinstance(o, dict)])


@dataclass
class SubmissionMeta:
    """Who and what was graded, and how: everything about a submission that is not a test."""
    student: str
    assignment: str = ""
    notebook: str | None = None
    seed: int | None = None
    problem: str = ""            # why the notebook could not be graded, for the student
    cells: list[CellLog] = field(default_factory=list)
    isolation: dict[str, str] = field(default_factory=dict)
    restarts: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0     # CPU time of the grader's worker and the student processes (0: not measured)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""        # empty: not reusable, a rerun grades again
    grader_error: str = ""       # the grader's own fault; no score is recorded against the student
    submitter: str = ""
    name: str = ""               # the student's name as submitted (student is the report folder derived from it)
    status: str = ""             # one of STATUSES; empty in files of older graders (then derived)
    submitted_at: str = ""       # ISO 8601 with offset, when known at grading (the last commit of a clone)
    submitted_from: str = ""     # where submitted_at comes from
    truncated: list[str] = field(default_factory=list)  # what was cut to keep the results bounded
    notes: list[str] = field(default_factory=list)      # what ingest left out or changed, for the student
    source: list[NotebookCell] = field(default_factory=list)  # the notebook as saved (feedback.html shows it)
    defined_in: dict[str, int] = field(default_factory=dict)  # graded function -> position of its (last) cell
    uses: dict[str, list[str]] = field(default_factory=dict)  # graded function -> the graded functions it calls

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubmissionMeta:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["cells"] = [CellLog(**{k: c[k] for k in ("number", "status", "error", "output", "position", "summary",
                                                         "skipped") if k in c})
                           for c in data.get("cells") or [] if isinstance(c, dict)]
        values["source"] = [NotebookCell.from_json(c) for c in data.get("source") or [] if isinstance(c, dict)]
        values.setdefault("student", "")
        return cls(**values)


@dataclass
class Override:
    """An instructor's override (REPORTS/overrides.csv) as applied: target is a test, a function or "total"."""
    target: str
    kind: str            # test, function or total
    points: float        # the points given
    autograded: float    # the points the grader had given
    reason: str


@dataclass
class LatePenalty:
    """The late policy applied to a submission ([late] in assignment.toml)."""
    submitted_at: str    # ISO 8601, with its offset
    source: str          # where the time comes from: submission_metadata.json, git commit, submitted_at.csv
    due: str             # ISO 8601, with its offset
    days_late: int       # 0: on time or within the grace period
    fraction: float      # of the score taken off
    points: float        # taken off
    explanation: str     # how the penalty was computed, for the student


@dataclass
class Adjustments:
    """What the instructor's overrides and the late policy changed: the score is then
    autograded -> (overrides) -> before_penalty -> (late penalty) -> Results.score."""
    autograded: float
    before_penalty: float
    overrides: list[Override] = field(default_factory=list)
    late: LatePenalty | None = None

    @property
    def penalty(self) -> float:
        return self.late.points if self.late else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Adjustments:
        late = data.get("late")
        return cls(autograded=float(data["autograded"]), before_penalty=float(data["before_penalty"]),
                   overrides=[Override(**o) for o in data.get("overrides") or []],
                   late=LatePenalty(**late) if isinstance(late, dict) else None)


@dataclass
class Results:
    """A graded submission: score, tests and metadata.

    When adjustments is set (overrides, late policy: grader.adjust), score is the final score and the
    test scores carry the test overrides; results.json as grading writes it has no adjustments."""
    score: float
    max_score: float
    output: str
    tests: list[TestResult]
    meta: SubmissionMeta
    execution_time: float = 0.0
    adjustments: Adjustments | None = None

    @property
    def autograded_score(self) -> float:
        """The grader's score, before any override or late penalty."""
        return self.adjustments.autograded if self.adjustments else self.score

    def function_points(self, functions: tuple[str, ...], other: str = "other") -> dict[str, float]:
        """Points earned per function (a test counts for the first function it calls; the rest under
        `other`), function overrides applied."""
        scores = {name: 0.0 for name in functions}
        for test in self.tests:
            key = test.functions[0] if test.functions and test.functions[0] in scores else other
            scores[key] = scores.get(key, 0.0) + test.score
        for override in self.adjustments.overrides if self.adjustments else []:
            if override.kind == "function":
                scores[override.target] = override.points
        return scores

    @property
    def student(self) -> str:
        """The report folder's name (REPORTS/<student>/)."""
        return self.meta.student

    @property
    def name(self) -> str:
        """The student's name as submitted: what every report shows."""
        return self.meta.name or self.meta.student

    @property
    def status(self) -> str:
        """graded, notebook problem, grader error or no submission."""
        if self.meta.grader_error:
            return GRADER_ERROR
        if self.meta.status in STATUSES:
            return self.meta.status
        return NOTEBOOK_PROBLEM if self.meta.problem else GRADED

    @property
    def reason(self) -> str:
        """Why the status is not graded, in one line ("" when graded)."""
        if self.meta.grader_error:
            lines = self.meta.grader_error.strip().splitlines()
            return "the grader failed: " + (lines[-1] if lines else "unknown error")
        return " ".join(self.meta.problem.split()) if self.status != GRADED else ""

    def to_json(self) -> dict[str, Any]:
        """Gradescope's results.json dictionary."""
        extra = self.meta.to_json()
        if self.adjustments:
            extra["adjustments"] = self.adjustments.to_json()
        return {"score": self.score, "max_score": self.max_score, "output": self.output,
                "execution_time": self.execution_time, "tests": [t.to_json() for t in self.tests],
                "extra_data": extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Results:
        tests = [TestResult.from_json(t) for t in data.get("tests", [])]
        extra = data.get("extra_data") or {}
        adjustments = extra.get("adjustments")
        return cls(score=float(data["score"]), max_score=float(data.get("max_score", sum(t.max_score for t in tests))),
                   output=str(data.get("output", "")), tests=tests,
                   execution_time=float(data.get("execution_time", 0.0)),
                   meta=SubmissionMeta.from_json(extra),
                   adjustments=Adjustments.from_json(adjustments) if isinstance(adjustments, dict) else None)

    def write(self, path: Path) -> None:
        """Write results.json atomically, bounded (see bound())."""
        write_atomic(path, bound(self))

    @classmethod
    def read(cls, path: Path) -> Results:
        return cls.from_json(json.loads(Path(path).read_text()))


RUN_FILE = ".grader-run.json"  # REPORTS/.grader-run.json: the seed, and the last run's record


@dataclass
class RunRecord:
    """The last `grade` (or `merge`) run on a reports folder: how long it took by the wall clock, and what it did.

    The dashboard shows it beside the CPU time summed over the submissions (SubmissionMeta.cpu_seconds)."""
    wall_seconds: float
    graded: int                  # submissions graded by that run
    unchanged: int = 0           # submissions left as they were (their results were current)
    jobs: int = 1
    finished: str = ""           # when it ended, ISO 8601 UTC
    interrupted: bool = False
    shards: int = 1              # a merge: how many shards, and wall_seconds is the longest shard's

    @classmethod
    def read(cls, reports: Path) -> RunRecord | None:
        """The record kept in reports, or None (no run recorded, or an unreadable file)."""
        try:
            data = json.loads((Path(reports) / RUN_FILE).read_text())["last_run"]
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, reports: Path) -> None:
        """Keep this record in reports' run file, beside what the file already holds (the seed)."""
        path = Path(reports) / RUN_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data = data if isinstance(data, dict) else {}
        write_atomic(path, json.dumps(data | {"last_run": asdict(self)}, indent=2) + "\n")


def read_reports(reports: Path) -> list[Results]:
    """Every results.json in reports (REPORTS/<student>/results.json), by folder; unreadable ones are logged."""
    found = []
    for path in sorted(Path(reports).glob("*/results.json")):
        try:
            found.append(Results.read(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s cannot be read (%s); it is left out of the class reports", path, exc)
    return found


def _bound_cells(meta: SubmissionMeta) -> None:
    """Keep the first MAX_CELL_ERRORS failing cells and at most MAX_CELLS_LISTED cells; count the others."""
    kept: list[CellLog] = []
    errors, dropped, dropped_errors = 0, 0, 0
    for cell in meta.cells:
        failing = cell.status != "ok"
        if len(kept) < MAX_CELLS_LISTED and (not failing or errors < MAX_CELL_ERRORS):
            errors += failing
            cell.error = clip(cell.error, MAX_CELL_TEXT, keep_end=True)
            cell.output = clip(cell.output, MAX_CELL_OUTPUT)
            cell.skipped = _bound_skipped(cell.skipped)
            kept.append(cell)
        else:
            dropped += 1
            dropped_errors += failing
    if dropped:
        meta.cells = kept
        meta.truncated.append(f"cells: {dropped:,} cells not listed ({dropped_errors:,} of them failed); "
                              f"at most {MAX_CELLS_LISTED} cells and the first {MAX_CELL_ERRORS} failing cells are kept")


def _bound_source(meta: SubmissionMeta) -> None:
    """Each shown cell's source and text outputs clipped; images over MAX_IMAGE_BYTES left out."""
    meta.notes = [clip(note, MAX_SHOWN_OUTPUT) for note in meta.notes[:MAX_CELLS_LISTED]]
    meta.source = meta.source[:MAX_CELLS_LISTED * 5]
    for cell in meta.source:
        cell.source = clip(cell.source, MAX_SOURCE_TEXT)
        cell.outputs = [CellOutput(o.kind, o.text if o.kind == "image" else clip(o.text, MAX_SHOWN_OUTPUT))
                        for o in cell.outputs[:10] if o.kind != "image" or len(o.text) <= MAX_IMAGE_BYTES]


def _bound_skipped(skipped: list[str]) -> list[str]:
    """The first MAX_SKIPPED_LISTED entries, each clipped, then a count of the others (idempotent)."""
    kept = [clip(str(entry), MAX_SKIPPED_TEXT) for entry in skipped[:MAX_SKIPPED_LISTED]]
    rest = skipped[MAX_SKIPPED_LISTED:]
    if len(rest) == 1 and str(rest[0]).startswith("[... "):
        kept += rest
    elif rest:
        kept.append(f"[... {len(rest):,} more statements skipped]")
    return kept


def bound(results: Results) -> str:
    """results.json's text for these results, every field within its bound and the whole within
    MAX_RESULTS_BYTES; whatever is cut is marked where it was cut and listed in extra_data.truncated."""
    meta = results.meta
    results.output = clip(results.output, MAX_OUTPUT_TEXT)
    meta.grader_error = clip(meta.grader_error, MAX_DETAIL_TEXT, keep_end=True)
    meta.problem = clip(meta.problem, MAX_TEST_TEXT)
    _bound_cells(meta)
    _bound_source(meta)
    for test in results.tests:
        test.message = clip(test.message, MAX_TEST_TEXT)
        test.diagnosis = clip(test.diagnosis, MAX_TEST_TEXT // 4)
        test.grader_error = clip(test.grader_error, MAX_DETAIL_TEXT, keep_end=True)
        test.metrics = {k[:200]: clip(v, 1000) if isinstance(v, str) else v for k, v in list(test.metrics.items())[:100]}
    text = _dump(results)
    steps = _shrink(results)
    while len(text.encode()) > MAX_RESULTS_BYTES and (what := next(steps, None)):
        meta.truncated.append(f"results.json was over {MAX_RESULTS_BYTES:,} bytes: {what}")
        text = _dump(results)
    return text


def _dump(results: Results) -> str:
    return json.dumps(results.to_json(), indent=2) + "\n"


def _shrink(results: Results) -> Iterator[str]:
    """Cut results further, one step per item, most expendable first; each item names what was cut."""
    for cell in results.meta.cells:
        cell.output = ""
    yield "cell outputs dropped"
    for shown in results.meta.source:
        shown.outputs = [o for o in shown.outputs if o.kind != "image"]
    yield "the notebook's images dropped from the feedback"
    for shown in results.meta.source:
        shown.outputs = []
    yield "the notebook's outputs dropped from the feedback"
    for test in results.tests:
        test.message = clip(test.message, 500)
    yield "test messages cut to 500 characters"
    results.meta.cells = results.meta.cells[:10]
    yield "only the first 10 cells kept"
    results.output = clip(results.output, 2000)
    yield "the student's notes cut to 2,000 characters"
    results.meta.source = []
    yield "the notebook dropped from the feedback"
    for test in results.tests:
        test.diagnosis, test.metrics, test.grader_error = "", {}, clip(test.grader_error, 500, keep_end=True)
    yield "test diagnoses and metrics dropped"


def write_atomic(path: Path, text: str) -> None:
    """Write text to path so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
