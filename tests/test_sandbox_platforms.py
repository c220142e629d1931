"""What holds where the kernel refuses namespaces (Docker's default seccomp profile, as on Gradescope),
simulated by GRADER_SANDBOX_SIMULATE=no-namespaces, with the audit hook off; and the strict/best-effort rule."""
from __future__ import annotations

import os

import pytest

from grader.config import PROJECT_ROOT
from grader.errors import SandboxError
from grader.sandbox.process import SIMULATE_ENV, check_isolation
from tests.test_sandbox_kernel import SECRET_FILES, attack_session


@pytest.fixture(scope="module")
def docker_like(tmp_path_factory):
    yield from attack_session(tmp_path_factory, **{SIMULATE_ENV: "no-namespaces"})


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
    report = docker_like.isolation
    assert report["namespaces"].startswith("unavailable") and report["landlock"].startswith("file-system rules")
    assert "weak" not in report  # strict holds: Landlock stands in for the identity, the filter for the network


def test_strict_refuses_and_best_effort_marks_a_weak_sandbox():
    report = {"identity": "unavailable (no uid to switch to)", "landlock": "unavailable (kernel 5.4)",
              "seccomp": "filter loaded", "network": "unavailable (no namespace)"}
    with pytest.raises(SandboxError, match="identity: unavailable"):
        check_isolation(report, "strict")
    assert "missing identity" in check_isolation(report, "best-effort")["weak"]
    assert "weak" not in check_isolation(report | {"landlock": "file-system rules"}, "strict")
