"""The `student` object hidden tests call: each attribute is a student function run in the student process."""
from __future__ import annotations

import functools
from pathlib import Path

from grader.errors import StudentError, TestSuiteError
from grader.results import FORBIDDEN, MISSING, NOT_IMPLEMENTED, RAISED
from grader.sandbox.process import StudentSession


class StudentProxy:
    """What hidden tests call: `student.fn(*args)` runs fn in the student process and returns plain data."""

    def __init__(self, session: StudentSession, allowed: tuple[str, ...], timeout: float,
                 static_forbidden: dict[str, list[str]], files: Path, workdir: Path):
        self._session, self._allowed, self._timeout = session, allowed, timeout
        self._static_forbidden, self._workdir = static_forbidden, workdir
        self.files = files

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self.call, name)

    def _request(self, name: str, args: tuple, kwargs: dict, **options) -> dict:
        if name not in self._allowed:
            raise TestSuiteError(f"this test calls `{name}` but its calls marker lists only {self._allowed}")
        if name in self._static_forbidden:
            raise StudentError(forbidden_message(name, self._static_forbidden[name]), FORBIDDEN, name)
        reply = self._session.call(name, args, kwargs, self._timeout, **options)
        status = reply.get("status")
        if reply.get("forbidden"):
            raise StudentError(forbidden_message(name, reply["forbidden"]), FORBIDDEN, name)
        if status == "ok":
            if "value" not in reply and not options.get("model"):  # only a forged reply lacks it
                raise StudentError(f"`{name}` sent back a reply the grader cannot accept (it holds no value)")
            return reply
        if status == "missing":
            raise StudentError(f"`{name}` is not defined in your notebook: check its name, and that the cell "
                               "defining it runs without errors", MISSING, name)
        if status == "raised" and reply.get("type") == "NotImplementedError":
            raise StudentError(f"`{name}` is not implemented yet (it raises NotImplementedError)", NOT_IMPLEMENTED, name)
        if status == "raised" and reply.get("type") == "MemoryError":
            raise StudentError(f"`{name}` ran out of memory (the limit is "
                               f"{self._session.limits.memory_mb} MB)\n{reply.get('error', '')}")
        if status == "raised":
            raise StudentError(f"`{name}` raised an exception:\n{reply.get('error', '')}", RAISED, name)
        if status == "not_callable":
            raise StudentError(f"`{name}` in your notebook is a {reply.get('type')}, not a function")
        if status == "not_model":
            raise StudentError(f"`{name}` must return a keras.Model, but it returned a {reply.get('type')}")
        if status == "unsaveable":
            raise StudentError(f"the model returned by `{name}` could not be saved as a .keras file:\n"
                               f"{reply.get('error', '')}")
        raise StudentError(f"`{name}` returned something the grader cannot accept: {reply.get('message', status)}")

    def call(self, name: str, *args, **kwargs):
        """Call a student function; return its result as plain data or raise StudentError."""
        return self._request(name, args, kwargs)["value"]

    def call_with_inputs(self, name: str, *args, **kwargs):
        """Like call, but also return (args, kwargs) as they were in the student process after the call."""
        reply = self._request(name, args, kwargs, return_inputs=True)
        inputs = reply.get("inputs")
        if not (isinstance(inputs, (list, tuple)) and len(inputs) == 2 and isinstance(inputs[0], (list, tuple))
                and len(inputs[0]) == len(args) and isinstance(inputs[1], dict)):
            raise StudentError(f"`{name}` sent back a reply the grader cannot accept (its inputs are malformed)")
        args_after, kwargs_after = inputs
        return reply["value"], tuple(args_after), kwargs_after

    def model(self, name: str, *args, **kwargs):
        """Build a Keras model in the student process; load its .keras file safely in the grader."""
        from grader.sandbox.model_transfer import receive_model
        reply = self._request(name, args, kwargs, model=True)
        return receive_model(Path(reply["model_file"]), self._workdir, name)

    def block(self, name: str, input_shape, *args, **kwargs):
        """A functional-API block name(x, *args, **kwargs), applied in the student process to
        keras.Input(input_shape), as the Keras model from that input to the block's output."""
        from grader.sandbox.model_transfer import receive_model
        reply = self._request(name, args, kwargs, model=True, block_input=[int(s) for s in input_shape])
        return receive_model(Path(reply["model_file"]), self._workdir, name)


def forbidden_message(name: str, modules) -> str:
    """The message for a function that uses a module the assignment forbids."""
    return (f"`{name}` uses {', '.join(sorted(modules))}; this assignment must be written with NumPy only, "
            "so this function earns no credit")
