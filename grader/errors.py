"""The grader's exception taxonomy. Library code raises these; only grader.cli turns them into exit codes."""


class GraderUsageError(Exception):
    """Base of the errors a user of the grader (instructor, TA, CI) must fix; the CLI prints the message."""


class ConfigError(GraderUsageError):
    """An assignment.toml (or another input of the grader's own) is missing or invalid."""


class TestSuiteError(GraderUsageError):
    """An assignment's hidden tests cannot run: collection failed, markers are missing or wrong."""

    __test__ = False  # not a pytest test class


class SubmissionsError(GraderUsageError):
    """The submissions to grade cannot be found or selected (no folder, no notebook, bad --shard)."""


class SandboxError(GraderUsageError):
    """The sandbox cannot be applied as strictly as asked (e.g. --sandbox strict on a machine without a layer)."""


class StudentError(AssertionError):
    """A call into the student's code failed; the message is written for the student.

    kind says why, when the reports group by it (grader.results.CAUSES): "missing", "not implemented",
    "raised", "forbidden"; empty otherwise. function is the student function it is about."""

    def __init__(self, message: str = "", kind: str = "", function: str = ""):
        super().__init__(message)
        self.kind, self.function = kind, function


class ModelRefused(StudentError):
    """A model a rule refuses whatever its arguments (own model or layer classes, Lambda); said once per function."""


class IngestError(Exception):
    """A submission that cannot be read as a notebook; the message is written for the student."""


class GraderError(Exception):
    """A fault of the grader's own setup (e.g. a missing dataset): no student is scored for it."""


class CourseFileError(GraderUsageError):
    """A file the course staff writes beside the reports (overrides.csv, submitted_at.csv) has a malformed
    row; the message names the file and the line."""
