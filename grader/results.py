"""The one results model of a graded submission, stored as Gradescope's results.json.

Every report (gradebook, feedback, platform formats) is rendered from this model.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


@dataclass
class TestResult:
    """One hidden test's outcome."""
    name: str
    score: float
    max_score: float
    status: str  # "passed" or "failed"
    output: str
    visibility: str
    tags: list[str]
    extra_data: dict = field(default_factory=dict)

    @property
    def functions(self) -> list[str]:
        """Student functions this test calls (its tags minus the category)."""
        return self.tags[:-1]

    @property
    def category(self) -> str:
        return self.tags[-1]


@dataclass
class Results:
    """A graded submission, in Gradescope's schema (score, tests[], output, extra_data)."""
    score: float
    max_score: float
    output: str
    tests: list[TestResult]
    execution_time: float = 0.0
    extra_data: dict = field(default_factory=dict)

    @property
    def student(self) -> str:
        return self.extra_data.get("student", "")

    def to_json(self) -> dict:
        data = asdict(self)
        for test in data["tests"]:
            if not test["extra_data"]:
                del test["extra_data"]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Results":
        tests = [TestResult(**{k: t.get(k, {} if k == "extra_data" else None) for k in TestResult.__annotations__})
                 for t in data.get("tests", [])]
        return cls(score=data["score"], max_score=data.get("max_score", sum(t.max_score for t in tests)),
                   output=data.get("output", ""), tests=tests, execution_time=data.get("execution_time", 0.0),
                   extra_data=data.get("extra_data", {}))

    def write(self, path: Path) -> None:
        """Write results.json atomically."""
        write_atomic(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> "Results":
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
