"""The one typed results model of a graded submission.

Every report (feedback, JUnit, gradebook, dashboard, platform formats) is rendered from this model.
On disk it is Gradescope's results.json: the Gradescope dictionary is produced only at that edge
(to_json), and read back by from_json, which also reads files written by older versions of the grader.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from grader.config import VISIBILITIES

DIAGNOSIS_MARKER = " Probably: "  # how older versions glued the diagnosis into a test's output
Metric = float | int | bool | str


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
                   metrics=dict(extra.get("metrics") or {}), grader_error=str(extra.get("grader_error", "")))


@dataclass
class CellLog:
    """What one notebook cell did at start-up."""
    number: int
    status: str  # ok, raised, timeout, died
    error: str = ""
    output: str = ""


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
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""        # empty: not reusable, a rerun grades again
    grader_error: str = ""       # the grader's own fault; no score is recorded against the student
    submitter: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubmissionMeta:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["cells"] = [CellLog(**{k: c[k] for k in ("number", "status", "error", "output") if k in c})
                           for c in data.get("cells") or [] if isinstance(c, dict)]
        values.setdefault("student", "")
        return cls(**values)


@dataclass
class Results:
    """A graded submission: score, tests and metadata."""
    score: float
    max_score: float
    output: str
    tests: list[TestResult]
    meta: SubmissionMeta
    execution_time: float = 0.0

    @property
    def student(self) -> str:
        return self.meta.student

    def to_json(self) -> dict[str, Any]:
        """Gradescope's results.json dictionary."""
        return {"score": self.score, "max_score": self.max_score, "output": self.output,
                "execution_time": self.execution_time, "tests": [t.to_json() for t in self.tests],
                "extra_data": self.meta.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Results:
        tests = [TestResult.from_json(t) for t in data.get("tests", [])]
        return cls(score=float(data["score"]), max_score=float(data.get("max_score", sum(t.max_score for t in tests))),
                   output=str(data.get("output", "")), tests=tests,
                   execution_time=float(data.get("execution_time", 0.0)),
                   meta=SubmissionMeta.from_json(data.get("extra_data") or {}))

    def write(self, path: Path) -> None:
        """Write results.json atomically."""
        write_atomic(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> Results:
        return cls.from_json(json.loads(Path(path).read_text()))


def read_all(reports: Path, students: list[str]) -> list[Results]:
    """The results of every student that has a results.json under reports, in the given order."""
    return [Results.read(reports / s / "results.json") for s in students if (reports / s / "results.json").is_file()]


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
