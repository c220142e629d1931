"""Attacks on the wire after it was made zero-copy (arrays sent with writev, read into one buffer per frame and
decoded as views of it), by a student who writes their own frames (the reply pipe's fd is in sys.argv, the
grader's framing module in sys.modules), monkeypatches their own process and returns arrays of any dtype, layout
or aliasing. Most run one hostile function through the grader's StudentSession (the code that serves the hidden
tests' `student` fixture) with the audit hook off (it is no boundary); the frame-level ones feed wire.loads
directly. Each docstring says what the student does and what the grader does instead.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import struct
import tracemalloc

import numpy as np
import pytest

from grader.config import Limits
from grader.errors import StudentError
from grader.results import GRADED, MAX_RESULTS_BYTES
from grader.sandbox import wire
from grader.sandbox.process import AUDIT_HOOK_ENV, StudentSession
from tests.conftest import TOY, read_results, run_grader, toy_notebook, write_student

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="this machine and CI run as root; others: SECURITY.md")

CALL_LIMIT = 1.0  # seconds of CPU time per call (13 s on the clock)

FUNCTIONS = """
import numpy as np
def aliases(x):
    a = np.asarray(x, dtype=np.float64) * 2
    return a, a, a[::2], a.T, a.view(np.int64), {"again": a}, [a[1:], a[:-1]]
def itself(x):
    return x  # the value and the input sent back are one object in the student process
def odd_sizes():
    return (np.arange(3, dtype=np.int8), np.arange(5.0), np.ones(3, dtype=np.longdouble), np.arange(4, dtype=">i4"),
            np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.arange(6.0)[::-2])
"""

FORGER = """
import json, struct, sys, threading, time
import numpy as np
wire = sys.modules["grader.sandbox.wire"]
REPLY_FD = int(sys.argv[2])
def request_id():
    return sys._getframe(2).f_locals["request"]["id"]  # the Server.call frame that called the student's function
def forge_frame(header, blobs):
    text = json.dumps(header).encode()
    parts = [struct.pack("!Q", len(text)), text, struct.pack("!Q", len(blobs))]
    for blob in blobs:
        parts += [struct.pack("!Q", len(blob)), blob]
    wire.write_frame(REPLY_FD, parts)
def empty_but_huge():
    array = {"__ndarray__": 0, "dtype": "<f8", "shape": [0, 2**62], "scalar": False}
    forge_frame({"__dict__": [["status", "ok"], ["id", request_id()], ["value", array]]}, [b""])
    time.sleep(60)
def trickle(stop):
    while not stop.is_set():  # a stale frame every 50 ms: the grader always has data to read
        wire.write_frame(REPLY_FD, wire.encode({"status": "ok", "id": 0}))
        time.sleep(0.05)
STALE_TEXT = json.dumps({"__dict__": [["id", 0], ["junk", [{"__float__": "1"}] * 200_000]]}).encode()
STALE = [struct.pack("!Q", len(STALE_TEXT)), STALE_TEXT, struct.pack("!Q", 0)]  # built once: 3.6 MB of header
def flood(x):
    while True:
        wire.write_frame(REPLY_FD, STALE)
def slow_double(x, seconds):
    stop = threading.Event()
    threading.Thread(target=trickle, args=(stop,), daemon=True).start()
    began = time.process_time()
    while time.process_time() - began < seconds:
        pass
    stop.set()
    return 2 * x
"""

# The last cell shrinks the request pipe to one page, forges its own cell reply (its id, -(index + 1), is
# predictable) and sleeps without reading: the grader's next request larger than a page cannot be written.
STOP_READING = """
import fcntl, os, sys, time
wire = sys.modules["grader.sandbox.wire"]
REQUEST_FD, REPLY_FD = int(sys.argv[1]), int(sys.argv[2])
def double(x):
    return 2 * x
if os.fstat(1).st_size == 0:  # the first process only (the output log is empty): a fresh one serves honestly
    print("I stop reading", flush=True)
    fcntl.fcntl(REQUEST_FD, fcntl.F_SETPIPE_SZ, 4096)
    index = sys._getframe(1).f_locals["index"]  # this cell's index, from student_main's run_cell
    wire.write_frame(REPLY_FD, wire.encode({"status": "ok", "id": wire.cell_reply_id(index)}))
    while True:
        time.sleep(1)
"""


@contextlib.contextmanager
def session_of(tmp_path, *cells: str):
    """A student session running cells (the audit hook off), closed on leaving."""
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(AUDIT_HOOK_ENV, "0")
        session = StudentSession(list(cells), sandbox, Limits(call_timeout=CALL_LIMIT, cell_timeout=5.0))
        try:
            yield session
        finally:
            session.close()


@contextlib.contextmanager
def hang_guard(seconds: float):
    """Fail, instead of hanging the suite, if the block has not returned after seconds (the grader hung)."""
    def hung(signum, frame):
        raise AssertionError(f"the grader hung: no answer after {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call(session: StudentSession, name: str, *args, **options) -> dict:
    return session.call(name, args, {}, CALL_LIMIT, **options)


@pytest.fixture(scope="module")
def functions(tmp_path_factory):
    with session_of(tmp_path_factory.mktemp("views"), FUNCTIONS) as session:
        yield session


def _flatten(value) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    items = value.values() if isinstance(value, dict) else value
    return [array for item in items for array in _flatten(item)]


def test_arrays_that_alias_in_the_student_process_arrive_as_separate_memory(functions):
    """Attack: aliases() returns one array seven times over (itself, a strided view, its transpose, a view of
    another dtype, inside a dict, two overlapping slices), hoping the grader's arrays share memory, so that a
    hidden test's in-place change to one (`out -= expected`) alters another value it checks next.

    Held: each array of the reply is its own bytes in the frame (one blob per array, each blob used once);
    no two share memory, and changing one leaves the others as they were."""
    arrays = _flatten(call(functions, "aliases", np.arange(6.0))["value"])
    assert len(arrays) == 8
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            assert not np.may_share_memory(a, b)
    before = [a.copy() for a in arrays]
    arrays[0][:] = -1
    arrays[4][:] = 0
    assert all(np.array_equal(a, b) for a, b in zip(arrays[1:4] + arrays[5:], before[1:4] + before[5:]))


def test_the_returned_input_is_not_the_value(functions):
    """Attack: itself(x) returns its argument, so that in the student process the value and the input sent
    back for the "inputs unmodified" check are one object; a hidden test that changes the value in place would
    then see the input change too (or the reverse).

    Held: the value and the returned input are separate arrays in the grader, and the grader's own x is not
    touched by either."""
    x = np.arange(4.0)
    reply = call(functions, "itself", x, return_inputs=True)
    value, (x_after,) = reply["value"], reply["inputs"][0]
    assert not np.may_share_memory(value, x_after) and not np.may_share_memory(value, x)
    value[:] = 7
    assert np.array_equal(x_after, np.arange(4.0)) and np.array_equal(x, np.arange(4.0))


def test_a_value_does_not_change_after_it_was_checked(functions):
    """Attack: a hidden test checks a value, calls the student again, then looks at the first value again (or
    keeps it for a later comparison); if replies reused a buffer, the next reply would rewrite the first value.

    Held: every frame is read into a new buffer; the first value is as it was after later calls."""
    first = call(functions, "aliases", np.arange(6.0))["value"][0]
    kept = first.copy()
    for _ in range(3):
        call(functions, "aliases", np.full(6, 99.0))
    assert np.array_equal(first, kept)


def test_arrays_after_an_odd_sized_one_arrive_aligned_and_writable(functions):
    """Attack: odd_sizes() returns a 3-byte array first, so that every later array starts at an odd offset of
    the frame buffer (a float64, a long double, a big-endian int32, Fortran-ordered and negatively strided
    arrays): views there would be misaligned (slow, or refused by code that needs aligned data).

    Held: a view that is not aligned is copied; every array is aligned, writable, and has its dtype and values."""
    sent = (np.arange(3, dtype=np.int8), np.arange(5.0), np.ones(3, dtype=np.longdouble), np.arange(4, dtype=">i4"),
            np.arange(6.0).reshape(2, 3), np.arange(6.0)[::-2])
    arrays = call(functions, "odd_sizes")["value"]
    for array, expected in zip(arrays, sent):
        assert array.flags.aligned and array.flags.writeable
        assert array.dtype == expected.dtype and np.array_equal(array, expected)


def test_a_zero_sized_array_of_absurd_shape_is_the_students_problem(tmp_path):
    """Attack: empty_but_huge() forges its own reply (with the right id, read from the caller's frame) whose
    value is an array of shape (0, 2**62): zero bytes, so the size check passes, but NumPy refuses the shape with
    a ValueError, not a WireError.

    Held: any error decoding a frame makes it unreadable: the call fails as the student's (the process is
    killed), never with the grader's traceback."""
    with session_of(tmp_path, FORGER) as session, hang_guard(120):
        with pytest.raises(StudentError, match="unreadable reply"):
            call(session, "empty_but_huge")


def test_a_student_who_stops_reading_cannot_hang_the_grader(tmp_path):
    """Attack (broke): the last cell shrinks the request pipe to one page (fcntl F_SETPIPE_SZ on its own end),
    forges its own cell reply and sleeps for ever without reading. The grader then sends the next request (here
    an 80 KB array, as a CIFAR batch or a conv layer's input would be; above the 1 MB pipe the student need not
    even shrink it) with a blocking write that had no deadline: the worker hung, asleep, until the supervisor
    stopped it past the submission's budget (900 s + 60 s by default) and the student got "time budget exceeded"
    instead of one call's timeout; the CPU and clock limits of the call applied only to reading its reply. A
    few such submissions hold every worker of a batch for a quarter of an hour each.

    Expected: a request is written as the pipe makes room, under the call's own limits (CPU time and clock):
    the call times out like any other, and the next one runs in a fresh process."""
    with session_of(tmp_path, "import numpy as np", STOP_READING) as session, hang_guard(120):
        with pytest.raises(StudentError, match="did not return within its limit"):
            call(session, "double", np.arange(10_000.0))
        assert np.array_equal(call(session, "double", np.arange(10_000.0))["value"], 2 * np.arange(10_000.0))


BIG_DOUBLE = """import numpy as np
import pytest


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("double")
def test_double_a_big_array(student, rng):
    x = rng.standard_normal((100, 100))  # an 80 KB request: a conv layer's input or a batch of images is larger
    assert np.allclose(student.double(x), 2 * x)
"""


def test_a_student_who_stops_reading_does_not_hold_a_batch_worker(tmp_path, monkeypatch):
    """Attack (broke), through the real `python -m grader grade`: the toy with one more hidden test that doubles
    an 80 KB array, and a submission whose last cell runs STOP_READING in its first student process. The
    worker's write of that request blocked for ever: the submission was stopped past its budget (60 s here,
    900 s by default) as "time budget exceeded", every test of it lost, after holding a worker all that time.

    Expected: the big call times out under its own limits (3 s of CPU, 19 s on the clock), the other tests run
    in a fresh process: 11 of 12 points; the honest classmate in the same batch earns 12."""
    monkeypatch.setenv(AUDIT_HOOK_ENV, "0")
    toy = tmp_path / "toy"
    shutil.copytree(TOY, toy)
    (toy / "tests" / "test_big.py").write_text(BIG_DOUBLE)
    config = toy / "assignment.toml"
    config.write_text(config.read_text().replace("[limits]\n", "[limits]\nsubmission_budget = 60.0\n", 1))
    write_student(tmp_path / "subs", "honest", toy_notebook())
    attack = STOP_READING.replace("def double(x):\n    return 2 * x\n", "")
    write_student(tmp_path / "subs", "stops-reading",
                  toy_notebook({"print('self-check passed')": attack + "print('self-check passed')"}))
    run_grader("grade", str(toy), str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--jobs", "2", "--quiet",
               timeout=300)
    assert read_results(tmp_path / "r", "honest")["score"] == 12.0
    results = read_results(tmp_path / "r", "stops-reading")
    assert results["extra_data"].get("status") == GRADED, results["extra_data"].get("problem", "")
    assert results["score"] == 11.0
    big = next(t for t in results["tests"] if "big_array" in t["name"])
    assert "did not return within its limit" in big["output"]


def test_trickled_frames_do_not_lift_the_cpu_limit(tmp_path):
    """Attack (broke): slow_double() runs a thread that writes a small stale frame (id 0) every 50 ms while it
    burns 4 s of CPU, four times its call's limit of 1 s. The grader read the student's CPU time only when no
    data came for 0.1 s, so it never looked: the call returned its (correct) value, and a solution too slow for
    its limit earned the points, with up to three times the limit plus 10 s of CPU per call.

    Expected: the CPU time is read at most every 0.1 s whether data comes or not: the call times out."""
    with session_of(tmp_path, FORGER) as session, hang_guard(120):
        with pytest.raises(StudentError, match="did not return within its limit"):
            call(session, "slow_double", np.arange(3.0), 4.0)
        assert np.array_equal(call(session, "slow_double", np.arange(3.0), 0.0)["value"], 2 * np.arange(3.0))


def test_stale_frames_cannot_keep_the_grader_decoding(tmp_path):
    """Attack (broke): flood() writes, for ever, the same stale frame (id 0) whose 3.6 MB header holds 200,000
    floats. Writing it costs the student nothing (a sleeping write on a full pipe); the grader reads and decodes
    each one before it can see that its id is not the awaited one, and skips it: measured, 12.9 s of the
    grader's CPU over the 13.1 s of a call limited to 1 s of CPU (40 s per call at the default limit of 10 s,
    every call and cell of the submission's 900 s budget), while the student's own CPU limit never came near.

    Expected: an honest student process never sends a frame that is not awaited, so the grader skips at most
    MAX_STALE_BYTES of them per reply (4 MB, one header's worth) and then kills the process: the call fails as
    the student's (0.3 s of the grader's CPU)."""
    with session_of(tmp_path, FORGER) as session, hang_guard(120):
        with pytest.raises(StudentError, match="replies to nothing the grader asked"):
            call(session, "flood", np.arange(3.0))


def _empty_arrays_frame(count: int, header: bytes = b"") -> bytearray:
    """A payload whose header names no array but whose table announces count empty arrays (8 bytes each)."""
    header = header or json.dumps({"__dict__": [["status", "ok"], ["id", 5]]}).encode()
    return bytearray(struct.pack("!Q", len(header)) + header + struct.pack("!Q", count) + bytes(8 * count))


def _peak_bytes(payload: bytearray) -> int:
    """The grader's peak memory while decoding payload (refused or not)."""
    tracemalloc.start()
    try:
        with contextlib.suppress(wire.WireError):
            wire.loads(payload)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_table_of_empty_arrays_does_not_grow_the_grader():
    """Attack (broke): a frame of 63 MB (under the 64 MB reply cap) whose array table announces 8.3 million
    empty arrays (8 bytes of length each) that the header never names. loads made a memoryview of each (about
    190 bytes apiece): measured, 1.5 GB more resident memory and 10 s of the grader's CPU per frame, and the
    student may send such frames (stale ones are read and skipped) for as long as its call may run. Before the
    wire decoded views, empty blobs were the one shared b"" (8 MB).

    Expected: a frame may carry no more arrays than its header can name (each needs at least
    wire.MIN_ARRAY_REF bytes of it); past that it is refused before the table is read, and what the largest
    header allows costs a few times the frame's size at most."""
    forged = _empty_arrays_frame(1_000_000)
    with pytest.raises(wire.WireError, match="more arrays"):
        wire.loads(forged)
    assert _peak_bytes(forged) < 2 * len(forged)
    padded = json.dumps({"__dict__": [["status", "ok"]]}).encode() + b" " * wire.MAX_HEADER_BYTES
    widest = _empty_arrays_frame(wire.MAX_HEADER_BYTES // wire.MIN_ARRAY_REF, padded[:wire.MAX_HEADER_BYTES])
    assert _peak_bytes(widest) < 8 * len(widest)


def test_honest_messages_with_many_arrays_still_cross():
    """Control: the bound on the array table refuses nothing the encoder makes (the most arrays per header byte:
    a list of empty bool arrays)."""
    value = [np.zeros(0, dtype=bool)] * 5000 + [np.arange(3)]
    back = wire.loads(bytearray(wire.dumps({"value": value})))["value"]
    assert len(back) == 5001 and np.array_equal(back[-1], np.arange(3))


def _forged(refs: list, blobs: list[bytes]) -> bytearray:
    header = json.dumps({"__tuple__": refs}).encode()
    parts = [struct.pack("!Q", len(header)), header, struct.pack("!Q", len(blobs))]
    for blob in blobs:
        parts += [struct.pack("!Q", len(blob)), blob]
    return bytearray(b"".join(parts))


def _ref(index, dtype: str = "<f8", shape: list | None = None) -> dict:
    return {"__ndarray__": index, "dtype": dtype, "shape": [1] if shape is None else shape, "scalar": False}


@pytest.mark.parametrize("ref, refused", [
    (_ref(True), "array reference"),   # a bool is not an index (True == 1)
    (_ref(0.0), "array reference"),
    (_ref(-1), "array reference"),     # the last blob, counted from the end
    (_ref(1), "array reference"),      # past the table
    (_ref(0, "<f8", [2]), "does not match"),  # larger than its blob: it would reach the bytes after it
])
def test_forged_array_references_cannot_reach_other_bytes(ref, refused):
    """Attack: a forged frame whose array reference is not a plain index of an unused blob (a bool, a float, a
    negative index, one past the table) or whose shape is larger than its blob, to make an array view bytes that
    are not its own (another array's, the header's, or past the frame).

    Held: a reference is an int naming a blob of the table not used yet, and an array's size must equal its
    blob's; anything else is refused as a malformed frame."""
    with pytest.raises(wire.WireError, match=refused):
        wire.loads(_forged([ref], [b"\0" * 8]))


def test_a_blob_longer_than_the_frame_is_refused():
    """Attack: the array table announces a blob longer than what is left of the frame, so that the array would
    extend past its frame's buffer.

    Held: every blob is taken from what is left of the frame; one that does not fit is a truncated frame."""
    forged = _forged([_ref(0, "<f8", [4])], [b"\0" * 8])
    forged[-16:-8] = struct.pack("!Q", 32)
    with pytest.raises(wire.WireError, match="truncated"):
        wire.loads(forged)


# relu forges its own reply (the right id, read from the Server.call frame) with an error text of almost 4 MB.
HUGE_ERROR = """
import sys
wire = sys.modules["grader.sandbox.wire"]
def relu(x):
    request = sys._getframe(1).f_locals["request"]
    wire.write_frame(int(sys.argv[2]), wire.encode({"status": "raised", "type": "ValueError", "id": request["id"],
                                                    "error": "E" * 3_900_000}))
    return np.maximum(x, 0)
"""


def test_text_in_replies_cannot_stop_the_reports(tmp_path):
    """Attack: what a reply carries as text reaches results.json and every report. One student's double raises
    ValueError("bad \\ud800 \\udfff text"): lone surrogates, valid in a Python str and in the wire's JSON
    (as escapes), but not encodable as UTF-8, which the reports are written in. Another's relu forges its own reply
    with an error text of 3.9 MB (a real traceback is clipped to 3,000 characters in the student process, which
    the student controls).

    Held: both are graded (7 and 8 of 11: only the failing function's tests are lost), every report is written,
    and results.json stays within MAX_RESULTS_BYTES; the honest classmate earns 11."""
    write_student(tmp_path / "subs", "honest", toy_notebook())
    write_student(tmp_path / "subs", "surrogates",
                  toy_notebook({"return 2 * np.asarray(x)": "raise ValueError('bad \\ud800 \\udfff text')"}))
    write_student(tmp_path / "subs", "huge-error", toy_notebook(extra_cells=[HUGE_ERROR]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(AUDIT_HOOK_ENV, "0")
        run_grader("grade", str(TOY), str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--jobs", "2",
                   "--quiet")
    assert read_results(tmp_path / "r", "honest")["score"] == 11.0
    for student, score in (("surrogates", 7.0), ("huge-error", 8.0)):
        results = read_results(tmp_path / "r", student)
        assert results["extra_data"].get("status") == GRADED and results["score"] == score, student
        assert (tmp_path / "r" / student / "results.json").stat().st_size <= MAX_RESULTS_BYTES
        assert all((tmp_path / "r" / student / name).is_file() for name in ("feedback.md", "feedback.html", "junit.xml"))


# The last cell takes student_main's Server from run_cell's frame and answers the `defined` request (grader check)
# with an array in the list of defined names.
DEFINED_ARRAY = """
import sys
import numpy as np
server = sys._getframe(1).f_locals["self"]
original = server.reply
def reply(message, request_id=0):
    if "defined" in message:
        message = dict(message, defined=[np.array([1, 2])])
    original(message, request_id)
server.reply = reply
"""


def test_an_array_among_the_defined_names_is_not_a_traceback_of_grader_check(tmp_path):
    """Attack (broke): `python -m grader check` asks the student process which graded functions are defined;
    the notebook's last cell replaces the Server's reply method (its own process) so that the answer is
    [np.array([1, 2])]. StudentSession.defined tested `name in found`, which compares the name with the array
    and asks the result for its truth value: ValueError escaped check_notebook, and `grader check` ended in the
    grader's traceback instead of its report.

    Expected: only text in that list counts (here nothing, so every function is reported not defined); the
    check's report is printed, exit status 1."""
    path = write_student(tmp_path, "defined-array", toy_notebook(extra_cells=[DEFINED_ARRAY]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(AUDIT_HOOK_ENV, "0")
        result = run_grader("check", str(path), "--assignment", str(TOY), check=False, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr[-600:]
    assert result.returncode == 1 and "double` is not defined" in result.stdout


# double forges its own reply (the right id) with status "ok" and no value at all.
NO_VALUE = """
import sys
wire = sys.modules["grader.sandbox.wire"]
def double(x):
    request = sys._getframe(1).f_locals["request"]
    wire.write_frame(int(sys.argv[2]), wire.encode({"status": "ok", "id": request["id"]}))
    return 2 * np.asarray(x)
"""


def test_a_reply_without_a_value_is_the_students_not_a_grader_fault(tmp_path):
    """Attack (broke): double forges a well-formed reply to its request, status "ok", without a "value". The
    `student` proxy returned reply["value"]: KeyError in the hidden test, reported as "the test could not check
    your result: KeyError: 'value'" with the grader's traceback (the hidden test's file and line) in the test's
    grader_error, i.e. a grader fault the student can raise at will.

    Expected: an "ok" reply without a value is a reply the grader cannot accept, the student's failure: double's
    tests fail with that message and no grader_error; 7 of 11."""
    write_student(tmp_path / "subs", "no-value", toy_notebook(extra_cells=[NO_VALUE]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(AUDIT_HOOK_ENV, "0")
        run_grader("grade", str(TOY), str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--quiet")
    results = read_results(tmp_path / "r", "no-value")
    assert results["score"] == 7.0
    assert not [t["name"] for t in results["tests"] if t.get("extra_data", {}).get("grader_error")]
    assert all("holds no value" in t["output"] for t in results["tests"] if "double" in t["name"])

