"""Start and talk to the isolated student process (the grader's side of grader/sandbox/student_main.py).

A StudentSession owns at most one live student process at a time. It runs the notebook's cells
once at start, serves calls with a time limit each, and after a hang or a crash starts a fresh
process (re-running the cells, skipping any cell that hung or killed the process) for the next call.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from grader.config import PROJECT_ROOT, Limits
from grader.errors import GraderError, SandboxError, StudentError
from grader.results import MAX_CELL_TEXT, CellLog, clip
from grader.sandbox import cgroups, wire
from grader.sandbox.cgroups import StudentGroup
from grader.sandbox.confine import UID0_KEPT
from grader.sandbox.wire import Status

STUDENT_MAIN = Path(__file__).with_name("student_main.py")
READY_TIMEOUT = 60.0
MAX_MODEL_BYTES = 256 << 20
MAX_STALE_BYTES = 4 << 20  # frames not awaited, per reply (the grader decodes them; an honest process sends none)
SANDBOX_MODES = ("strict", "best-effort")
DEFAULT_IDENTITY = "nobody"
PIPE_BYTES = 1 << 20  # capacity of the pipes to and from a student process (fs.pipe-max-size)
MAX_TASKS = 256  # processes and threads of one student process (TensorFlow uses a few dozen)
SIMULATE_ENV = "GRADER_SANDBOX_SIMULATE"  # "no-namespaces": as on Docker's default seccomp profile (Gradescope)
AUDIT_HOOK_ENV = "GRADER_AUDIT_HOOK"  # "0": no audit hook (the grader's own tests prove the kernel layers alone)


class ProcessTimeout(Exception):
    """The student process did not answer in time."""


CPU_POLL = 0.1  # seconds between looks at the student's CPU time while it works on a request
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def wall_cap(cpu_limit: float) -> float:
    """The wall-clock cap of a request limited to cpu_limit seconds of CPU time: generous enough that a
    loaded machine cannot change a grade, finite for code that sleeps or blocks."""
    return 3 * cpu_limit + 10


@dataclass(frozen=True)
class Deadline:
    """When a request has run too long: at a time.monotonic() value, or once the student process's CPU
    time reaches cpu (None: no CPU limit)."""
    wall: float
    cpu: float | None = None


class ProcessDied(Exception):
    """The student process exited or was killed; the message says how."""


REPLY_STATUSES = frozenset(v for k, v in vars(Status).items() if not k.startswith("_"))
REPLY_TEXTS = ("status", "error", "type", "message")


def well_formed(reply: dict) -> bool:
    """True if the reply's fields that the grader reads as text are text, its status one the student process
    sends, and its list of forbidden modules a list of text (anything else comes from a student who forged it)."""
    if any(key in reply and type(reply[key]) is not str for key in REPLY_TEXTS):
        return False
    forbidden = reply.get("forbidden", [])
    return reply.get("status", Status.OK) in REPLY_STATUSES and type(forbidden) is list and all(
        type(name) is str for name in forbidden)


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
    try:
        name = signal.Signals(sig).name
    except ValueError:  # a real-time signal has no name
        name = str(sig)
    return reasons.get(sig, f"it was killed by signal {name}")


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
        self.spawned_at = 0.0
        self.output_start = 0  # the size of the output log when this process started
        self._next_id = 0
        self._cpu_read_at = 0.0  # when _await next reads the student's CPU time

    def spawn(self) -> None:
        """Start the process and send it the setup, without waiting for it (wait_ready does)."""
        self.spawned_at = time.monotonic()
        self.output_start = self.output.stat().st_size if self.output.exists() else 0
        request_r, self.request_w = os.pipe()
        self.reply_r, reply_w = os.pipe()
        for end in (self.request_w, self.reply_r):
            with contextlib.suppress(OSError):  # 1 MB pipes: 16 times fewer wake-ups for a big array
                fcntl.fcntl(end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(STUDENT_MAIN), str(request_r), str(reply_w)],
                cwd=self.sandbox, env=student_environment(self.sandbox), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, pass_fds=(request_r, reply_w), start_new_session=True)
        os.close(request_r)
        os.close(reply_w)
        self.group.add(self.proc.pid)  # before the setup: no student code has run yet
        wire.write_frame(self.request_w, [json.dumps(self.setup).encode()])
        os.set_blocking(self.request_w, False)  # the student's code may stop reading: requests wait with a deadline

    def wait_ready(self) -> dict:
        """The ready message of a spawned process (ProcessTimeout, ProcessDied)."""
        return self._receive(0, Deadline(self.spawned_at + READY_TIMEOUT))

    def request(self, message: dict, cpu_limit: float, wall_limit: float) -> dict:
        """Send one request; return its reply, or raise ProcessTimeout once the student process has used
        cpu_limit seconds of CPU time on it or wall_limit seconds have passed; ProcessDied."""
        self._next_id = secrets.randbits(62) + 1  # unguessable: a frame forged in advance never matches
        deadline = self._deadline(cpu_limit, wall_limit)
        try:
            self._send(message | {"id": self._next_id}, deadline)
        except BrokenPipeError:
            raise ProcessDied(describe_exit(self._wait())) from None
        return self._receive(self._next_id, deadline)

    def receive_cell(self, index: int, cpu_limit: float, wall_limit: float) -> dict:
        """The reply the process sends after running cell index (it runs the cells unasked, in order), or
        ProcessTimeout once the cell has used cpu_limit seconds of CPU time or wall_limit seconds from now."""
        return self._receive(wire.cell_reply_id(index), self._deadline(cpu_limit, wall_limit))

    def _deadline(self, cpu_limit: float, wall_limit: float) -> Deadline:
        """The deadline of work starting now: cpu_limit more seconds of CPU time, or wall_limit on the clock."""
        now = time.monotonic()
        self._cpu_read_at = now + CPU_POLL  # the CPU time, just read, is read again in CPU_POLL seconds
        return Deadline(now + wall_limit, self.cpu_seconds() + cpu_limit)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the student process (and the process that started it), 0 if unreadable."""
        if self.proc is None:
            return 0.0
        total = 0
        for pid in {self.proc.pid, self.student_pid()}:
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, ValueError, IndexError):
                continue
        return total / CLOCK_TICKS

    def _receive(self, request_id: int, deadline: Deadline) -> dict:
        """The reply to request_id; stale replies (to earlier requests, or forged) are skipped, up to
        MAX_STALE_BYTES of them."""
        stale = 0
        while True:
            size = wire.frame_size(self._read(wire.FRAME_HEADER, deadline))
            if size > self.max_reply_bytes:
                self.kill()
                raise ProcessDied(f"it sent a reply of {size:,} bytes, over the grader's limit of "
                                  f"{self.max_reply_bytes:,}")
            payload = self._read(size, deadline)  # a timeout here is a timeout, not an unreadable reply
            try:
                reply = wire.loads(payload)
            except Exception as exc:
                self.kill()  # after an unreadable frame the stream cannot be trusted
                raise ProcessDied(f"it sent an unreadable reply ({exc})") from None
            if not isinstance(reply, dict) or type(reply.get("id")) is not int or reply["id"] != request_id:
                stale += size  # stale, forged, or an id that is not even a number: not the reply awaited
                if stale > MAX_STALE_BYTES:
                    self.kill()
                    raise ProcessDied(f"it sent over {MAX_STALE_BYTES:,} bytes of replies to nothing the grader "
                                      "asked")
                continue
            if not well_formed(reply):
                self.kill()
                raise ProcessDied("it sent a malformed reply (a status, error or type that is not text)")
            return reply

    def _send(self, message: dict, deadline: Deadline) -> None:
        """Write a request as the pipe makes room for it, until the deadline: a student process that stopped
        reading (after forging the reply to the last request, say) cannot block the grader."""
        def writev(fd: int, buffers: Sequence) -> int:
            self._await(fd, deadline, write=True)
            try:
                return os.writev(fd, buffers)
            except BlockingIOError:
                return 0
        wire.write_frame(self.request_w, wire.encode(message), writev)

    def _await(self, fd: int, deadline: Deadline, write: bool = False) -> None:
        """Wait until fd can be read (or written); kill the process and raise ProcessTimeout at the deadline."""
        while True:
            now = time.monotonic()
            if now >= deadline.wall or self._cpu_spent(deadline, now):
                self.kill()
                raise ProcessTimeout()
            fds = ([], [fd]) if write else ([fd], [])
            if any(select.select(*fds, [], min(deadline.wall - now, CPU_POLL))[:2]):
                return

    def _cpu_spent(self, deadline: Deadline, now: float) -> bool:
        """True once the student process has used the deadline's CPU time, read at most every CPU_POLL seconds,
        data or not (a thread that trickles frames must not keep the grader from looking)."""
        if deadline.cpu is None or now < self._cpu_read_at:
            return False
        self._cpu_read_at = now + CPU_POLL
        return self.cpu_seconds() >= deadline.cpu

    def _read(self, n: int, deadline: Deadline) -> memoryview:
        """n bytes of the reply pipe, read into one new buffer."""
        buffer = memoryview(bytearray(n))
        got = 0
        while got < n:
            self._await(self.reply_r, deadline)
            count = os.readv(self.reply_r, [buffer[got:]])
            if not count:
                raise ProcessDied(describe_exit(self._wait()))
            got += count
        return buffer

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
        try:  # read afresh every time: a pid remembered from a process that has died could be reused
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
        self.group.kill_and_remove(wait=False)  # what the kernel still holds: cgroups.remove_left()
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
    _pending: StudentProcess | None = None  # spawned, not yet waited for
    _skipped: set[int] = field(default_factory=set)
    _processes: list[StudentProcess] = field(default_factory=list)
    _timeouts: dict[str, int] = field(default_factory=dict)
    _started_at: float = field(default_factory=time.monotonic)
    _models: int = 0

    @property
    def output_path(self) -> Path:
        return self.sandbox.parent / "output.log"

    def read_output(self, start: int, end: int | None = None) -> str:
        """Captured output from byte offset start to end (default: all of it), truncated to the configured size."""
        with open(self.output_path, "rb") as f:
            f.seek(start)
            data = f.read(self.limits.output_chars + 1)
            total = (f.seek(0, os.SEEK_END) if end is None else end) - start
            data = data[:max(0, total)]
        text = data[:self.limits.output_chars].decode(errors="replace")
        return text + (f"\n... [output truncated: {total:,} bytes in all]" if total > self.limits.output_chars else "")

    def _output_size(self) -> int:
        return self.output_path.stat().st_size if self.output_path.exists() else 0

    def spawn(self) -> None:
        """Start the next student process now, so that it boots while the grader goes on; ensure_started
        waits for it."""
        if self._pending is None and not self.unavailable:
            self._pending = self._spawn_process()

    def _spawn_process(self) -> StudentProcess:
        uid, gid = prepare_sandbox(self.sandbox, self.identity)
        root = self.sandbox.parent / f"root-{len(self._processes)}"
        root.mkdir(mode=0o700)
        process = StudentProcess(self.sandbox, self.output_path, {
            "sandbox": str(self.sandbox), "root": str(root), "uid": uid, "gid": gid,
            "project_root": str(PROJECT_ROOT), "cells": self.cells, "skip": sorted(self._skipped),
            "forbidden": list(self.forbidden_modules),
            "memory_mb": self.limits.memory_mb, "cpu_seconds": self.limits.cpu_seconds,
            "disk_mb": self.limits.disk_mb, "namespaces": os.environ.get(SIMULATE_ENV) != "no-namespaces",
            "audit_hook": os.environ.get(AUDIT_HOOK_ENV, "1") != "0"},
            self.limits.reply_mb << 20,
            cgroups.create(MAX_TASKS, (self.limits.memory_mb + self.limits.disk_mb + 512) << 20))
        self._processes.append(process)
        try:
            process.spawn()
        except BrokenPipeError:
            pass  # it died before reading its setup: wait_ready says how
        return process

    def ensure_started(self) -> StudentProcess:
        """Return a live process that has run the notebook's cells, starting one if needed."""
        if self._process is not None and self._process.alive:
            return self._process
        if self._process is not None or self.cell_logs:
            self.restarts += 1
        while True:
            process, self._pending = self._pending or self._spawn_process(), None
            try:
                ready = process.wait_ready()
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
            self.timings["start"] += time.monotonic() - process.spawned_at
            began = time.monotonic()
            finished = self._run_cells(process)
            self.timings["cells"] += time.monotonic() - began
            if finished:
                self._process = process
                return process

    def _run_cells(self, process: StudentProcess) -> bool:
        """Read the process's reply after each cell it runs; False if a cell hung or killed it (then skipped)."""
        budget = self.limits.submission_budget
        mark = process.output_start
        for index in range(len(self.cells)):
            if index in self._skipped:
                continue
            if self.over_budget:
                process.kill()
                raise StudentError(budget_exceeded(budget))
            try:
                reply = process.receive_cell(index, self.limits.cell_timeout,
                                             min(wall_cap(self.limits.cell_timeout), self._budget_left()))
            except ProcessTimeout:
                if self.over_budget:
                    self._skip(index, "timeout", f"stopped when the submission's time budget of {budget:g} s ran "
                               f"out (each cell may take up to {self.limits.cell_timeout:g} s, all cells and calls "
                               f"together at most {budget:g} s)", mark)
                    raise StudentError(budget_exceeded(budget)) from None
                self._skip(index, "timeout", f"did not finish within its limit of {self.limits.cell_timeout:g} s "
                           f"of CPU time ({wall_cap(self.limits.cell_timeout):g} s on the clock); the grader "
                           "skipped it (an infinite loop, or training?)", mark)
                return False
            except ProcessDied as exc:
                process.kill()
                self._skip(index, "died", f"killed the student process ({exc}); the grader skipped it", mark)
                return False
            end = self._output_end(reply.get("output_end"), mark)
            if index not in self.cell_logs:
                status = Status.OK if reply.get("status", Status.OK) == Status.OK else Status.RAISED
                self.cell_logs[index] = CellLog(index + 1, status, clip(reply.get("error", ""), MAX_CELL_TEXT,
                                                                        keep_end=True), self.read_output(mark, end))
            mark = end
        return True

    def _output_end(self, claimed: object, mark: int) -> int:
        """Where a cell's output ends: as the student process says, if that is plausible (it only sorts the
        student's own output between cells), else the log's current end."""
        size = self._output_size()
        return claimed if type(claimed) is int and mark <= claimed <= size else size

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
            reply = process.request(request, timeout, min(wall_cap(timeout), self._budget_left()))
        except ProcessTimeout:
            if self.over_budget:
                raise StudentError(budget_exceeded(self.limits.submission_budget) + f" (`{name}` was stopped)") \
                    from None
            self._timeouts[name] = self._timeouts.get(name, 0) + 1
            raise StudentError(f"`{name}` did not return within its limit of {timeout:g} s of CPU time "
                               f"({wall_cap(timeout):g} s on the clock): an infinite loop, or far too slow; the "
                               "grader stopped it and runs the other tests in a fresh process") from None
        except ProcessDied as exc:
            raise StudentError(f"the student process died while running `{name}`: {exc}. "
                               "The grader runs the other tests in a fresh process") from None
        finally:
            self.timings["calls"] += time.monotonic() - began
        if model:
            reply["model_file"] = f"/proc/{process.student_pid()}/root{request['model_path']}"
        return reply

    def defined(self, names: tuple[str, ...]) -> list[str]:
        """Which of names are callable in the student's namespace once the cells have run (for `grader check`)."""
        if self.unavailable:
            raise StudentError(self.unavailable)
        process = self.ensure_started()
        try:
            reply = process.request({"op": "defined", "names": list(names)}, self.limits.call_timeout,
                                    min(wall_cap(self.limits.call_timeout), self._budget_left()))
        except (ProcessTimeout, ProcessDied) as exc:
            raise StudentError(f"the student process stopped answering: {exc}") from None
        found = reply.get("defined")
        found = {n for n in found if type(n) is str} if type(found) is list else set()  # text only: no array's ==
        return [n for n in names if n in found]

    @property
    def peak_memory_mb(self) -> float:
        """Peak resident memory of the largest student process stopped by the grader."""
        return max((p.peak_mb for p in self._processes), default=0.0)

    def close(self) -> None:
        """Stop the student process (and one spawned but never used)."""
        for process in (self._process, self._pending):
            if process is not None:
                process.kill()
        self._process = self._pending = None


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


def probe_sandbox(mode: str, identity: str = DEFAULT_IDENTITY) -> None:
    """Start one empty student process to check what the machine allows: SandboxError if --sandbox `mode` cannot
    hold here."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="grader-probe-") as tmp:
        sandbox = Path(tmp) / "sandbox"
        sandbox.mkdir()
        session = StudentSession([], sandbox, Limits(), sandbox_mode=mode, identity=identity)
        try:
            session.ensure_started()
        finally:
            session.close()
