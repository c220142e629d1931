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
