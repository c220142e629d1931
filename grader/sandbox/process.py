"""Start and talk to the isolated student process (the grader's side of grader/sandbox/student_main.py).

A StudentSession owns at most one live student process at a time. It runs the notebook's cells
once at start, serves calls with a time limit each, and after a hang or a crash starts a fresh
process (re-running the cells, skipping any cell that hung or killed the process) for the next call.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader.config import PROJECT_ROOT, Limits
from grader.errors import GraderError, SandboxError, StudentError
from grader.results import CellLog
from grader.sandbox import cgroups, wire
from grader.sandbox.cgroups import StudentGroup
from grader.sandbox.confine import UID0_KEPT
from grader.sandbox.wire import Status

STUDENT_MAIN = Path(__file__).with_name("student_main.py")
READY_TIMEOUT = 60.0
MAX_MODEL_BYTES = 256 << 20
SANDBOX_MODES = ("strict", "best-effort")
DEFAULT_IDENTITY = "nobody"
MAX_TASKS = 256  # processes and threads of one student process (TensorFlow uses a few dozen)
SIMULATE_ENV = "GRADER_SANDBOX_SIMULATE"  # "no-namespaces": as on Docker's default seccomp profile (Gradescope)
AUDIT_HOOK_ENV = "GRADER_AUDIT_HOOK"  # "0": no audit hook (the grader's own tests prove the kernel layers alone)


class ProcessTimeout(Exception):
    """The student process did not answer in time."""


class ProcessDied(Exception):
    """The student process exited or was killed; the message says how."""


def describe_exit(returncode: int | None) -> str:
    """A student-readable account of how a process ended."""
    if returncode is None:
        return "it stopped answering"
    if returncode >= 0:
        return f"it exited with status {returncode}: does the code call exit(), sys.exit() or os._exit()?"
    sig = -returncode
    reasons: dict[int, str] = {signal.SIGKILL: "killed: it probably ran out of memory",
               signal.SIGXCPU: "killed: it used up its CPU time limit",
               signal.SIGSEGV: "it crashed with a segmentation fault",
               signal.SIGABRT: "it aborted"}
    return reasons.get(sig, f"it was killed by signal {signal.Signals(sig).name}")


def student_environment(sandbox: Path) -> dict[str, str]:
    """A scrubbed environment: nothing of the grader's, one BLAS thread, writable dirs in the sandbox."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(sandbox),
        "TMPDIR": str(sandbox / ".tmp"),
        "MPLCONFIGDIR": str(sandbox / ".tmp"),
        "MPLBACKEND": "Agg",
        "KERAS_HOME": str(sandbox / ".keras"),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "KERAS_BACKEND": "tensorflow",
    }


class StudentProcess:
    """One running student process and its two pipes."""

    def __init__(self, sandbox: Path, output: Path, setup: dict, max_reply_bytes: int, group: StudentGroup):
        self.sandbox, self.output, self.setup = sandbox, output, setup
        self.max_reply_bytes, self.group = max_reply_bytes, group
        self.proc: subprocess.Popen | None = None
        self.peak_mb = 0.0
        self._next_id = 0

    def start(self) -> dict:
        """Spawn the process, send the setup, and wait for its ready message."""
        request_r, self.request_w = os.pipe()
        self.reply_r, reply_w = os.pipe()
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(STUDENT_MAIN), str(request_r), str(reply_w)],
                cwd=self.sandbox, env=student_environment(self.sandbox), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, pass_fds=(request_r, reply_w), start_new_session=True)
        os.close(request_r)
        os.close(reply_w)
        self.group.add(self.proc.pid)  # before the setup: no student code has run yet
        self._send(json.dumps(self.setup).encode())
        return self._receive(0, time.monotonic() + READY_TIMEOUT)

    def request(self, message: dict, timeout: float) -> dict:
        """Send one request; return its reply, or raise ProcessTimeout / ProcessDied."""
        self._next_id = secrets.randbits(62) + 1  # unguessable: a frame forged in advance never matches
        try:
            self._send(wire.dumps(message | {"id": self._next_id}))
        except BrokenPipeError:
            raise ProcessDied(describe_exit(self._wait())) from None
        return self._receive(self._next_id, time.monotonic() + timeout)

    def _send(self, payload: bytes) -> None:
        data = memoryview(wire.frame(payload))
        while data:
            data = data[os.write(self.request_w, data):]

    def _receive(self, request_id: int, deadline: float) -> dict:
        """The reply to request_id; stale replies (to earlier requests, or forged) are skipped."""
        while True:
            size = wire.frame_size(self._read(wire.FRAME_HEADER, deadline))
            if size > self.max_reply_bytes:
                self.kill()
                raise ProcessDied(f"it sent a reply of {size:,} bytes, over the grader's limit of "
                                  f"{self.max_reply_bytes:,}")
            try:
                reply = wire.loads(self._read(size, deadline))
            except Exception as exc:
                self.kill()  # after an unreadable frame the stream cannot be trusted
                raise ProcessDied(f"it sent an unreadable reply ({exc})") from None
            if isinstance(reply, dict) and reply.get("id") == request_id:
                return reply

    def _read(self, n: int, deadline: float) -> bytes:
        chunks, remaining = [], n
        while remaining:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([self.reply_r], [], [], wait)[0]:
                self.kill()
                raise ProcessTimeout()
            chunk = os.read(self.reply_r, min(remaining, 1 << 20))
            if not chunk:
                raise ProcessDied(describe_exit(self._wait()))
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _wait(self) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def student_pid(self) -> int:
        """The pid (in the grader's namespace) of the process running student code: the child of the one
        started, where confinement forked into a new PID namespace, else the one started."""
        if self.proc is None:
            return 0
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as children:
                return int(children.read().split()[0])
        except (OSError, ValueError, IndexError):
            return self.proc.pid

    def peak_memory_mb(self) -> float:
        """Peak resident memory (VmHWM) of the student process (the namespace's PID 1), 0 if unreadable."""
        if self.proc is None:
            return 0.0
        peak = 0.0
        for pid in {self.proc.pid, self.student_pid()}:
            try:
                with open(f"/proc/{pid}/status") as status:
                    line = next(line for line in status if line.startswith("VmHWM:"))
                peak = max(peak, int(line.split()[1]) / 1024)
            except (OSError, StopIteration, ValueError):
                continue
        return peak

    def kill(self) -> None:
        """Kill the process and anything it started; close the pipes."""
        if self.proc is None:
            return
        self.peak_mb = max(self.peak_mb, self.peak_memory_mb())
        student = self.student_pid()
        if student != self.proc.pid:  # the namespace's PID 1 first, so that its parent reaps it before exiting
            with contextlib.suppress(OSError):
                os.kill(student, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.group.kill_and_remove()
        for fd in (self.request_w, self.reply_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class StudentSession:
    """The student process for one submission, restarted as needed."""
    cells: list[str]
    sandbox: Path
    limits: Limits
    forbidden_modules: tuple[str, ...] = ()
    unavailable: str = ""
    sandbox_mode: str = "strict"
    identity: str = DEFAULT_IDENTITY
    cell_logs: dict[int, CellLog] = field(default_factory=dict)
    isolation: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=lambda: {"start": 0.0, "cells": 0.0, "calls": 0.0})
    restarts: int = 0
    _process: StudentProcess | None = None
    _skipped: set[int] = field(default_factory=set)
    _processes: list[StudentProcess] = field(default_factory=list)
    _timeouts: dict[str, int] = field(default_factory=dict)
    _started_at: float = field(default_factory=time.monotonic)
    _models: int = 0

    @property
    def output_path(self) -> Path:
        return self.sandbox.parent / "output.log"

    def read_output(self, start: int) -> str:
        """Captured output from byte offset start, truncated to the configured size."""
        with open(self.output_path, "rb") as f:
            f.seek(start)
            data = f.read(self.limits.output_chars + 1)
            total = f.seek(0, os.SEEK_END) - start
        text = data[:self.limits.output_chars].decode(errors="replace")
        return text + (f"\n... [output truncated: {total:,} bytes in all]" if total > self.limits.output_chars else "")

    def _output_size(self) -> int:
        return self.output_path.stat().st_size if self.output_path.exists() else 0

    def ensure_started(self) -> StudentProcess:
        """Return a live process that has run the notebook's cells, starting one if needed."""
        if self._process is not None and self._process.alive:
            return self._process
        if self._process is not None or self.cell_logs:
            self.restarts += 1
        uid, gid = prepare_sandbox(self.sandbox, self.identity)
        while True:
            began = time.monotonic()
            root = self.sandbox.parent / f"root-{len(self._processes)}"
            root.mkdir(mode=0o700)
            process = StudentProcess(self.sandbox, self.output_path, {
                "sandbox": str(self.sandbox), "root": str(root), "uid": uid, "gid": gid,
                "project_root": str(PROJECT_ROOT), "cells": self.cells,
                "forbidden": list(self.forbidden_modules),
                "memory_mb": self.limits.memory_mb, "cpu_seconds": self.limits.cpu_seconds,
                "disk_mb": self.limits.disk_mb, "namespaces": os.environ.get(SIMULATE_ENV) != "no-namespaces",
                "audit_hook": os.environ.get(AUDIT_HOOK_ENV, "1") != "0"},
                self.limits.reply_mb << 20,
                cgroups.create(MAX_TASKS, (self.limits.memory_mb + self.limits.disk_mb + 512) << 20))
            self._processes.append(process)
            try:
                ready = process.start()
            except (ProcessTimeout, ProcessDied) as exc:
                process.kill()
                if self.cell_logs:  # it started before: what changed since is the student's doing
                    raise StudentError(f"the student process could not restart: {exc}") from None
                raise GraderError(f"the student process could not start: {exc}") from exc
            if ready.get("status") == Status.REFUSED:
                process.kill()
                self.unavailable = f"your notebook could not be graded: {ready.get('message', '')}"
                raise StudentError(self.unavailable)
            try:
                self.isolation = check_isolation(ready.get("isolation", {}) | {"cgroup": process.group.description},
                                                 self.sandbox_mode)
            except SandboxError:
                process.kill()
                raise
            self.timings["start"] += time.monotonic() - began
            began = time.monotonic()
            finished = self._run_cells(process)
            self.timings["cells"] += time.monotonic() - began
            if finished:
                self._process = process
                return process

    def _run_cells(self, process: StudentProcess) -> bool:
        budget = self.limits.submission_budget
        for index in range(len(self.cells)):
            if index in self._skipped:
                continue
            if self.over_budget:
                process.kill()
                raise StudentError(budget_exceeded(budget))
            offset = self._output_size()
            try:
                reply = process.request({"op": "cell", "index": index}, min(self.limits.cell_timeout,
                                                                             self._budget_left()))
            except ProcessTimeout:
                if self.over_budget:
                    self._skip(index, "timeout", f"stopped when the submission's time budget of {budget:g} s ran "
                               f"out (each cell may take up to {self.limits.cell_timeout:g} s, all cells and calls "
                               f"together at most {budget:g} s)", offset)
                    raise StudentError(budget_exceeded(budget)) from None
                self._skip(index, "timeout", f"did not finish within {self.limits.cell_timeout:g} s; "
                           "the grader skipped it (an infinite loop, or training?)", offset)
                return False
            except ProcessDied as exc:
                process.kill()
                self._skip(index, "died", f"killed the student process ({exc}); the grader skipped it", offset)
                return False
            if index not in self.cell_logs:
                self.cell_logs[index] = CellLog(index + 1, reply.get("status", "ok"), str(reply.get("error", "")),
                                                self.read_output(offset))
        return True

    @property
    def over_budget(self) -> bool:
        """True once the submission's time budget is spent."""
        return self._budget_left() <= 0

    def _budget_left(self) -> float:
        """Seconds left of the submission's time budget: no cell or call may run past it."""
        return max(0.0, self._started_at + self.limits.submission_budget - time.monotonic())

    def _skip(self, index: int, status: str, error: str, offset: int) -> None:
        self._skipped.add(index)
        self.cell_logs[index] = CellLog(index + 1, status, error, self.read_output(offset))

    def call(self, name: str, args: tuple, kwargs: dict, timeout: float, *,
             return_inputs: bool = False, model: bool = False, block_input: list[int] | None = None) -> dict:
        """Run name(*args, **kwargs) in the student process; return its reply or raise StudentError.

        With model=True the function's keras.Model is saved where the grader chooses; the reply's
        "model_file" is that path on the grader's side. With block_input (a shape) as well, the function
        is a functional-API block: it is called as name(keras.Input(block_input), *args, **kwargs) and the
        model from that input to the tensor it returns is saved.
        """
        if self.unavailable:
            raise StudentError(self.unavailable)
        if self._timeouts.get(name, 0) >= 2:
            raise StudentError(f"`{name}` timed out twice already; the grader does not call it again")
        if self.over_budget:
            raise StudentError(budget_exceeded(self.limits.submission_budget) + f" (`{name}` was not called)")
        process = self.ensure_started()
        began = time.monotonic()
        request = {"op": "call", "name": name, "args": list(args), "kwargs": kwargs,
                   "return_inputs": return_inputs, "model": model}
        if block_input is not None:
            request["block_input"] = block_input
        if model:
            self._models += 1
            request["model_path"] = str(self.sandbox / f".model-{self._models}.keras")
        try:
            reply = process.request(request, min(timeout, self._budget_left()))
        except ProcessTimeout:
            if self.over_budget:
                raise StudentError(budget_exceeded(self.limits.submission_budget) + f" (`{name}` was stopped)") \
                    from None
            self._timeouts[name] = self._timeouts.get(name, 0) + 1
            raise StudentError(f"`{name}` did not return within {timeout:g} s (an infinite loop, or far too "
                               "slow); the grader stopped it and runs the other tests in a fresh process") from None
        except ProcessDied as exc:
            raise StudentError(f"the student process died while running `{name}`: {exc}. "
                               "The grader runs the other tests in a fresh process") from None
        finally:
            self.timings["calls"] += time.monotonic() - began
        if model:
            reply["model_file"] = f"/proc/{process.student_pid()}/root{request['model_path']}"
        return reply

    @property
    def peak_memory_mb(self) -> float:
        """Peak resident memory of the largest student process stopped by the grader."""
        return max((p.peak_mb for p in self._processes), default=0.0)

    def close(self) -> None:
        """Stop the student process."""
        if self._process is not None:
            self._process.kill()
            self._process = None


def budget_exceeded(budget: float) -> str:
    """The reason a submission that ran out of time is given (status: notebook problem)."""
    return (f"time budget exceeded: grading this submission took more than the {budget:g} s the grader allows "
            "one submission (its cells, calls and restarts, model transfer, evaluation and retraining together); "
            "what had not run by then scores 0")


def prepare_sandbox(sandbox: Path, identity: str) -> tuple[int, int]:
    """Give the sandbox copy to the student's identity (when the grader is root); return its uid and gid."""
    from grader.sandbox.confine import resolve_identity
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    uid, gid = resolve_identity(identity)
    os.chmod(sandbox.parent, 0o711)  # the student may traverse to its sandbox, not list or read beside it
    os.chmod(sandbox, 0o700)  # restored at every start: a student who locked it out cannot fake a grader fault
    for folder, dirs, files in os.walk(sandbox):
        for name in (folder, *(os.path.join(folder, n) for n in dirs + files)):
            os.chown(name, uid, gid, follow_symlinks=False)
    return uid, gid


ESSENTIAL_LAYERS = ("identity", "seccomp", "network")


def missing_layers(report: dict[str, str]) -> list[str]:
    """The essential layers the report shows were not applied: an unprivileged identity or Landlock, the
    seccomp filter, and no network (a network namespace, or the filter, which refuses every socket)."""
    def held(layer: str) -> bool:
        return not report.get(layer, "unavailable").startswith("unavailable")
    missing = [layer for layer in ESSENTIAL_LAYERS if not held(layer)]
    if "identity" in missing and held("landlock") and UID0_KEPT not in report.get("identity", ""):
        missing.remove("identity")
    if "network" in missing and held("seccomp"):
        missing.remove("network")
    return missing


def check_isolation(report: dict[str, str], mode: str) -> dict[str, str]:
    """The report, checked against the sandbox mode: strict raises SandboxError, best-effort marks it weak."""
    missing = missing_layers(report)
    if missing and mode == "strict":
        details = "; ".join(f"{layer}: {report.get(layer, 'unavailable')}" for layer in missing)
        raise SandboxError(f"--sandbox strict: essential sandbox layers are missing on this machine ({details}). "
                           "Fix the machine, or grade with --sandbox best-effort (every result is then marked "
                           "as graded under a weak sandbox)")
    if missing:
        report = report | {"weak": "graded under a weak sandbox: missing " + ", ".join(missing)}
    return report


def probe_sandbox(mode: str, identity: str = DEFAULT_IDENTITY) -> dict[str, str]:
    """Start one empty student process to check what the machine allows; SandboxError if strict fails."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="grader-probe-") as tmp:
        sandbox = Path(tmp) / "sandbox"
        sandbox.mkdir()
        session = StudentSession([], sandbox, Limits(), sandbox_mode=mode, identity=identity)
        try:
            session.ensure_started()
            return session.isolation
        finally:
            session.close()
