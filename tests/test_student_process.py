"""The student process on its own: what it imports, what it can reach, and how it is confined."""
from __future__ import annotations

import os

import pytest

from grader.config import PROJECT_ROOT, Limits
from grader.sandbox.process import StudentSession

PROBES = """
import sys, os, socket
def heavy_modules():
    return sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'torch', 'jax', 'IPython'))
def environment():
    return sorted(os.environ)
def connect():
    socket.create_connection(('127.0.0.1', 9), timeout=1)
def read(path):
    with open(path) as f:
        return f.read()
def listing(path):
    return sorted(os.listdir(path))
def kill_parent():
    os.kill(os.getppid(), 9)
def write(path):
    with open(path, 'w') as f:
        f.write('x')
"""


@pytest.fixture
def session(tmp_path):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "weights.txt").write_text("beside the notebook")
    session = StudentSession(["import numpy as np", PROBES], sandbox, Limits(call_timeout=10))
    yield session
    session.close()


def call(session, name, *args):
    return session.call(name, args, {}, 10)


def test_no_tensorflow_unless_the_student_imports_it(session):
    assert call(session, "heavy_modules")["value"] == []


def test_the_environment_is_scrubbed(session):
    names = call(session, "environment")["value"]
    assert "GRADER_DATA_DIR" not in names and "GRADER_CACHE_DIR" not in names and "HOME" in names


def test_files_beside_the_notebook_are_there(session):
    assert call(session, "read", "weights.txt")["value"] == "beside the notebook"


@pytest.mark.parametrize("name, args", [
    ("connect", ()),
    ("read", (str(PROJECT_ROOT / "solutions" / "cnn_layers" / "cnn_layers.ipynb"),)),
    ("read", (str(PROJECT_ROOT / "tests" / "conftest.py"),)),
    ("listing", (str(PROJECT_ROOT),)),
    ("write", (str(PROJECT_ROOT / "pwned.txt"),)),
    ("kill_parent", ()),
])
def test_the_sandbox_refuses(session, name, args):
    reply = call(session, name, *args)
    assert reply["status"] == "raised" and ("SandboxViolation" in reply["error"] or "PermissionError" in reply["error"]), reply
    assert not (PROJECT_ROOT / "pwned.txt").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="this machine and CI run as root; other platforms: SECURITY.md")
def test_every_layer_applies_as_root(session):
    call(session, "heavy_modules")
    report = session.isolation
    assert report["network"].startswith("private network namespace")
    assert report["filesystem"].startswith("minimal root") and report["processes"].startswith("PID namespace")
    assert report["identity"].startswith("uid 65534") and report["seccomp"].startswith("filter loaded")
    assert report["capabilities"].startswith("all dropped") and "weak" not in report


TIMING = """
import time
def sleeps(seconds):
    time.sleep(seconds)
    return "woke"
def spins():
    while True:
        pass
"""


def test_limits_count_cpu_time_so_a_slow_machine_changes_no_grade(tmp_path):
    """A cell or call that waits (as on a loaded machine) past its limit, using little CPU, still finishes;
    one that computes past it is stopped; one that never returns is stopped by the clock cap."""
    from grader.errors import StudentError
    from grader.sandbox.process import wall_cap
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    limits = Limits(call_timeout=0.5, cell_timeout=0.5)
    session = StudentSession([TIMING, "time.sleep(1.5)\nslept_cell = True"], sandbox, limits)
    try:
        assert session.call("sleeps", (1.5,), {}, 0.5)["value"] == "woke"
        assert session.cell_logs[1].status == "ok", session.cell_logs[1]
        with pytest.raises(StudentError, match=r"`spins` did not return within its limit of 0.5 s of CPU time"):
            session.call("spins", (), {}, 0.5)
        with pytest.raises(StudentError, match="did not return within"):
            session.call("sleeps", (wall_cap(0.5) + 30,), {}, 0.5)
    finally:
        session.close()


ENVIRONMENT = """
import numpy as np
def old_numpy():
    return np.product([2, 3])
def old_method():
    return np.arange(3).ptp()
def missing_module():
    import scipy.special
def forbidden_module():
    import tensorflow as tf
    return tf.constant(1)
"""


@pytest.mark.parametrize("name, hint", [
    ("old_numpy", "the grader runs NumPy 2, which removed `product`: use np.prod instead"),
    ("old_method", "the grader runs NumPy 2, which removed `ptp`"),
    ("missing_module", "`scipy` is not installed where the grader runs your notebook"),
    ("forbidden_module", "tensorflow is not available in this assignment's grading environment"),
])
def test_errors_the_environment_causes_say_so(tmp_path, name, hint):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    session = StudentSession([ENVIRONMENT], sandbox, Limits(), forbidden_modules=("tensorflow",))
    try:
        reply = session.call(name, (), {}, 10)
    finally:
        session.close()
    assert reply["status"] == "raised" and hint in reply["error"], reply
