"""Exceptions shared by the grader's modules."""


class StudentError(AssertionError):
    """A call into the student's code failed; the message is written for the student."""


class IngestError(Exception):
    """A submission that cannot be read as a notebook; the message is written for the student."""


class GraderError(Exception):
    """A fault of the grader's own setup (e.g. a missing dataset): no student is scored for it."""
