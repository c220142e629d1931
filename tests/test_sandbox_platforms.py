"""What holds where the kernel refuses namespaces (Docker's default seccomp profile, as on Gradescope),
simulated by GRADER_SANDBOX_SIMULATE=no-namespaces, with the audit hook off; and the strict/best-effort rule."""
from __future__ import annotations

import os

import pytest

from grader.config import PROJECT_ROOT
from grader.errors import SandboxError
from grader.sandbox.confine import python_dirs, traversable_by_others
from grader.sandbox.process import SIMULATE_ENV, check_isolation
from tests.test_sandbox_kernel import SECRET_FILES, attack_session

SIMULATED = {SIMULATE_ENV: "no-namespaces"}
PYTHON_HIDDEN = not traversable_by_others(python_dirs())  # e.g. under /root (mode 700), as on this machine


@pytest.fixture(scope="module")
def docker_like(tmp_path_factory):
    yield from attack_session(tmp_path_factory, SIMULATED, mode="best-effort" if PYTHON_HIDDEN else "strict")


def run(session, name, *args):
    reply = session.call(name, args, {}, 10)
    assert reply["status"] == "ok", reply
    return reply["value"]


@pytest.mark.skipif(os.geteuid() != 0, reason="this machine and CI run as root")
def test_without_namespaces_landlock_and_the_filter_still_hold(docker_like):
    for path in SECRET_FILES:
        assert run(docker_like, "read", str(path)).startswith("refused"), path
    assert run(docker_like, "write", str(PROJECT_ROOT / "pwned.txt")).startswith("refused")
    assert not (PROJECT_ROOT / "pwned.txt").exists()
    for attack in ("tensorflow", "connect", "fork", "execv", "signal_everyone", "ptrace_parent", "mount"):
        assert run(docker_like, attack).startswith("refused"), attack
    assert run(docker_like, "chmod", str(PROJECT_ROOT / "README.md")).startswith("refused")
    report = docker_like.isolation
    assert report["namespaces"].startswith("unavailable") and report["landlock"].startswith("file-system rules")
    # Where nobody can run Python (it lives under /root here), uid 0 without capabilities is only best-effort;
    # on Gradescope's images Python is world-readable, the student runs as nobody and strict holds.
    assert ("weak" in report) == PYTHON_HIDDEN


@pytest.mark.skipif(os.geteuid() != 0 or not PYTHON_HIDDEN, reason="needs Python unreadable by other users")
def test_strict_refuses_to_keep_uid_0(tmp_path_factory):
    with pytest.raises(SandboxError, match="uid 0 kept"):
        next(attack_session(tmp_path_factory, SIMULATED)).call("fork", (), {}, 10)


def test_strict_refuses_and_best_effort_marks_a_weak_sandbox():
    report = {"identity": "unavailable (no uid to switch to)", "landlock": "unavailable (kernel 5.4)",
              "seccomp": "filter loaded", "network": "unavailable (no namespace)"}
    with pytest.raises(SandboxError, match="identity: unavailable"):
        check_isolation(report, "strict")
    assert "missing identity" in check_isolation(report, "best-effort")["weak"]
    assert "weak" not in check_isolation(report | {"landlock": "file-system rules"}, "strict")


@pytest.mark.skipif(os.geteuid() != 0 or not PYTHON_HIDDEN, reason="needs Python unreadable by other users")
@pytest.mark.parametrize("names", [("ann",), ("ann", "bob", "cy")], ids=["one", "three"])
def test_a_batch_that_strict_refuses_stops_with_one_line_and_grades_no_one(tmp_path, names):
    """The first student process that strict cannot confine stops the batch: its workers are stopped, it exits 2
    with the reason, and no submission is left with a grade (a rerun with the machine fixed grades them all)."""
    import subprocess
    import sys

    from tests.conftest import TOY, toy_notebook, write_student
    for name in names:
        write_student(tmp_path / "subs", name, toy_notebook())
    result = subprocess.run([sys.executable, "-m", "grader", "grade", str(TOY), str(tmp_path / "subs"), "--reports",
                             str(tmp_path / "r"), "--jobs", "2", "--quiet"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, env={**os.environ, **SIMULATED}, timeout=300)
    assert result.returncode == 2, result
    assert "--sandbox strict" in result.stderr and "Traceback" not in result.stderr, result.stderr
    import json
    statuses = [json.loads(p.read_text())["extra_data"]["status"] for p in (tmp_path / "r").glob("*/results.json")]
    assert "graded" not in statuses, statuses
