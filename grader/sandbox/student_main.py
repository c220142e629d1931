"""Entry point of the isolated student process (run as a script, never imported by the grader).

It confines itself (grader.sandbox.confine), installs the audit hook (grader.sandbox.audit), runs the
notebook's cells in order (a reply after each), then serves requests from the grader over two pipes: call
a student function with data, build a Keras model and save it as a .keras file, or say which functions are
defined (`grader check`). Replies are data only (grader.sandbox.wire).
Nothing in this process can reach the hidden tests, the expected values or the grader's memory.
"""
import json
import os
import sys
import traceback
import types

REQUEST_FD, REPLY_FD = int(sys.argv[1]), int(sys.argv[2])


def _read_exact(n: int) -> bytearray:
    data = bytearray(n)
    view, got = memoryview(data), 0
    while got < n:
        count = os.readv(REQUEST_FD, [view[got:]])
        if not count:
            raise EOFError("the grader closed the pipe")
        got += count
    return data


def _read_frame() -> bytearray:
    return _read_exact(int.from_bytes(_read_exact(8), "big"))  # the framing of grader.sandbox.wire.write_frame


# What NumPy 2 removed without saying what replaces it (NumPy's own message names the others)
NUMPY2_REPLACEMENTS = {
    "product": "np.prod", "cumproduct": "np.cumprod", "alltrue": "np.all", "sometrue": "np.any",
    "int0": "np.intp", "uint0": "np.uintp", "bool8": "np.bool_", "in1d": "np.isin", "trapz": "np.trapezoid",
    "msort": "np.sort(a, axis=0)", "asscalar": "a.item()", "alen": "len(a)", "rank": "np.ndim",
    "ptp": "np.ptp(a) (the method is gone)", "itemset": "a[index] = value", "newbyteorder": "a.view(a.dtype.newbyteorder())",
}


def environment_hint(exc: BaseException) -> str:
    """A line that explains an error the grading environment causes (NumPy 2, a module that is not there)."""
    if isinstance(exc, AttributeError) and exc.name in NUMPY2_REPLACEMENTS:
        owner = getattr(exc.obj, "__name__", type(exc.obj).__module__)
        if str(owner).split(".")[0] == "numpy":
            return (f"Hint: the grader runs NumPy 2, which removed `{exc.name}`: "
                    f"use {NUMPY2_REPLACEMENTS[exc.name]} instead.")
    if isinstance(exc, ModuleNotFoundError) and exc.name:  # a forbidden module's stub says so itself
        return (f"Hint: `{exc.name}` is not installed where the grader runs your notebook; the notebook's first "
                "cell lists what is.")
    return ""


def _block_model(block, input_shape):
    """A function building the keras.Model from keras.Input(input_shape) to what block returns on it."""
    def build(*args, **kwargs):
        import keras
        inputs = keras.Input(shape=tuple(input_shape))
        return keras.Model(inputs, block(inputs, *args, **kwargs))
    return build


def _student_traceback(exc: BaseException, limit: int = 3000) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell")]
    lines = [f"  {f.filename[1:-1]}, line {f.lineno}, in {f.name}\n    {f.line or ''}".rstrip() for f in frames]
    try:
        summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        hint = environment_hint(exc)
    except BaseException:
        summary, hint = type(exc).__name__, ""
    text = "\n".join(lines[-8:] + [summary] + ([hint] if hint else []))
    return text[-limit:]


class _ForbiddenWatch:
    """Records which forbidden modules the student's code enters during one call."""

    def __init__(self, prefixes: tuple[str, ...]):
        self.prefixes = prefixes
        self.dotted = tuple(p + "." for p in prefixes)
        self.hits: set[str] = set()

    def __call__(self, frame, event, arg):
        if event == "call":
            name = frame.f_globals.get("__name__") or ""
            if name in self.prefixes or name.startswith(self.dotted):
                self.hits.add(name)

    def used(self, modules) -> list[str]:
        """The forbidden prefixes matched by the entered or given module names."""
        names = self.hits | set(modules)
        return sorted(p for p in self.prefixes if any(n == p or n.startswith(p + ".") for n in names))


class Server:
    """Serves the grader's requests against the student's namespace."""

    def __init__(self, setup: dict, wire):
        self.wire = wire
        self.sandbox = setup["sandbox"]
        self.cells: list[str] = setup["cells"]
        self.forbidden = tuple(setup["forbidden"])
        self.module = types.ModuleType("__main__")
        self.module.__dict__["__builtins__"] = __builtins__
        sys.modules["__main__"] = self.module
        self._writev, self._encode, self._write_frame = os.writev, wire.encode, wire.write_frame

    def reply(self, message: dict, request_id: int = 0) -> None:
        try:
            parts = self._encode(message | {"id": request_id})
        except Exception as exc:
            parts = self._encode({"status": "bad_value", "message": str(exc)[:500], "id": request_id})
        self._flush_output()
        self._write_frame(REPLY_FD, parts, self._writev)

    @staticmethod
    def _flush_output() -> None:
        for stream in (sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                pass

    def run_cell(self, index: int) -> dict:
        source = self.cells[index]
        filename = f"<cell {index + 1}>"
        import linecache
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            exec(compile(source, filename, "exec"), self.module.__dict__)
        except BaseException as exc:
            return {"status": "raised", "error": _student_traceback(exc)}
        return {"status": "ok"}

    def run_cells(self, skip: set[int]) -> None:
        """Run every cell in order, except those the grader skips, and reply after each (unasked: the grader
        reads the replies as it needs them, so the cells run while it prepares its tests)."""
        for index in range(len(self.cells)):
            if index not in skip:
                result = self.run_cell(index)
                self._flush_output()
                try:
                    result["output_end"] = os.fstat(1).st_size  # where this cell's output ends in the log
                except OSError:
                    pass
                self.reply(result, self.wire.cell_reply_id(index))

    def call(self, request: dict) -> dict:
        function = self.module.__dict__.get(request["name"])
        if function is None:
            return {"status": "missing"}
        if not callable(function):
            return {"status": "not_callable", "type": type(function).__name__}
        args, kwargs = request["args"], request["kwargs"]
        if request.get("model") and request.get("block_input") is not None:
            function = _block_model(function, request["block_input"])
        watch = _ForbiddenWatch(self.forbidden) if self.forbidden else None
        before = set(sys.modules)
        if watch:
            sys.setprofile(watch)
        try:
            value = function(*args, **kwargs)
        except BaseException as exc:
            return {"status": "raised", "type": type(exc).__name__, "error": _student_traceback(exc),
                    "forbidden": self._forbidden_used(watch, before)}
        finally:
            sys.setprofile(None)
        reply = {"status": "ok", "forbidden": self._forbidden_used(watch, before)}
        if request.get("model"):
            return reply | self._save_model(request["model_path"], value)
        reply["value"] = value
        if request.get("return_inputs"):
            reply["inputs"] = [args, kwargs]
        return reply

    @staticmethod
    def _forbidden_used(watch, before: set) -> list[str]:
        return watch.used(set(sys.modules) - before) if watch else []

    def _save_model(self, path: str, value) -> dict:
        """Save the model where the grader asked; the grader reads only that path."""
        import keras
        if not isinstance(value, keras.Model):
            return {"status": "not_model", "type": type(value).__module__ + "." + type(value).__qualname__}
        try:
            value.save(path)
        except BaseException as exc:
            return {"status": "unsaveable", "error": _student_traceback(exc)}
        return {}

    def serve(self) -> None:
        while True:
            try:
                request = self.wire.loads(_read_frame())
            except EOFError:
                return
            op, request_id = request.get("op"), request.get("id", 0)
            if op == "call":
                self.reply(self.call(request), request_id)
            elif op == "defined":
                names = [n for n in request.get("names", []) if isinstance(n, str)]
                self.reply({"status": "ok", "defined": [n for n in names if callable(self.module.__dict__.get(n))]},
                           request_id)
            else:
                self.reply({"status": "error", "error": f"unknown op {op!r}"}, request_id)


def _confine(setup: dict) -> dict:
    """Apply every layer, seccomp last; return the report of what holds."""
    from grader.sandbox import confine, syscalls
    confine.die_with_parent()
    plan = confine.Plan(sandbox=setup["sandbox"], root=setup["root"], uid=setup["uid"], gid=setup["gid"],
                        hide_modules=tuple(setup["forbidden"]), disk_mb=setup["disk_mb"],
                        namespaces=setup["namespaces"])
    report = confine.confine(plan)
    confine.set_limits(setup["memory_mb"], setup["cpu_seconds"])
    report["limits"] = f"{setup['memory_mb']} MB address space, {setup['cpu_seconds']} s CPU"
    try:
        syscalls.install(private_root="filesystem" in report)
        report["seccomp"] = "filter loaded: no new processes, exec, ptrace, foreign signals, mounts or sockets"
    except OSError as exc:
        report["seccomp"] = f"unavailable ({exc})"
    return report


def main() -> None:
    try:
        setup = json.loads(_read_frame())
    except EOFError:
        return
    project_root = setup["project_root"]
    sys.path.insert(0, project_root)
    import numpy  # noqa: F401  (imported before confinement: it loads C symbols through ctypes)

    from grader.sandbox import audit, wire
    from grader.sandbox.confine import SandboxRefused
    try:
        report = _confine(setup)
    except SandboxRefused as exc:
        wire.write_frame(REPLY_FD, wire.encode({"status": wire.Status.REFUSED, "message": str(exc), "id": 0}))
        return
    sys.path.remove(project_root)
    sys.path.insert(0, setup["sandbox"])
    if setup.get("audit_hook", True):
        audit.install(setup["sandbox"])
    server = Server(setup, wire)
    server.reply({"status": "ready", "isolation": report})
    server.run_cells(set(setup["skip"]))
    server.serve()


if __name__ == "__main__":
    main()
