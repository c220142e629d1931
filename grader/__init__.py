"""Autograder for a convolutional-neural-network course taught with Keras."""
from grader.errors import StudentError

__all__ = ["StudentError"]
