"""Hostile submissions in one batch with honest ones, with the audit hook on and off.

Each case asserts the exact score the submission earned, that the honest neighbours lost nothing,
and, after the batch, that the checkout and the retraining cache are unchanged and that no student
process is left. Link attacks are in test_ingest_links.py; the kernel layers one by one in
test_sandbox_kernel.py; cache forgery in test_training.py.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from grader.config import PROJECT_ROOT
from grader.results import GRADED, Results
from grader.sandbox.process import AUDIT_HOOK_ENV
from tests.conftest import read_results, run_grader, toy_notebook, write_student

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="this machine and CI run as root; others: SECURITY.md")

WRONG_DOUBLE = {"return 2 * np.asarray(x)": "return np.asarray(x) * 1.0"}  # loses test_double_values: 7/11
TARGETS = [PROJECT_ROOT / "tests" / "fixtures" / "toy" / "tests" / "test_toy.py", PROJECT_ROOT / "grader" / "grade.py",
           PROJECT_ROOT / "README.md", PROJECT_ROOT / ".venv" / "pyvenv.cfg", PROJECT_ROOT / ".git" / "HEAD"]

TAKEOVER = f"""
import ctypes, os
libc = ctypes.CDLL("libc.so.6", use_errno=True)
stolen = []
for path in {[str(p) for p in TARGETS]!r}:
    fd = libc.open(path.encode(), os.O_WRONLY | os.O_TRUNC)
    if fd >= 0:
        os.write(fd, b"def test_pwned(): pass\\n")
    folder = os.path.dirname(path)
    if "/.venv/" in path:
        continue  # the venv is readable (read-only): Python needs it
    try:
        d = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        stolen.append(os.read(os.open(os.path.basename(path), os.O_RDONLY, dir_fd=d), 100))
    except OSError:
        pass
libc.kill(-1, 9)
if libc.fork() == 0:
    libc.setsid()
    while True:
        libc.kill(-1, 9)
print("stolen:", stolen)
"""

FORBIDDEN = """
import importlib
def double(x):
    frac = importlib.import_module("frac" + "tions")
    return 2 * np.asarray(x)
"""

FORGER = """
import os, sys
wire = sys.modules["grader.sandbox.wire"]
def double(x):
    fd = int(sys.argv[2])
    for guess in range(50):  # well-formed replies for guessed request ids: skipped
        wire.write_frame(fd, wire.encode({"status": "ok", "id": guess, "value": 2 * np.asarray(x)}))
    return np.asarray(x) * 1.0
def relu(x):
    wire.write_frame(int(sys.argv[2]), [b"garbage"])  # unreadable: this call fails, the next gets a fresh process
    return np.maximum(x, 0)
"""

FLOOD = """
import os, sys
def double(x):
    os.write(int(sys.argv[2]), (1 << 40).to_bytes(8, "big"))  # announces a 1 TiB reply
    return 2 * np.asarray(x)
"""

DEEP = "x = " + "-" * 100_000 + "1"  # the parser runs out of memory or recursion on it

LOAD_COMPILED = """
import importlib.machinery, importlib.util
def load():
    loader = importlib.machinery.ExtensionFileLoader("sig", "sig.so")
    return importlib.util.module_from_spec(importlib.util.spec_from_loader("sig", loader))
try:
    load()
except Exception:
    pass
"""

CASES = {  # student: (notebook, exact score)
    "honest-1": (toy_notebook(), 11.0),
    "takeover": (toy_notebook(WRONG_DOUBLE, extra_cells=[TAKEOVER]), 7.0),
    "forbidden": (toy_notebook(extra_cells=[FORBIDDEN]), 7.0),
    "forger": (toy_notebook(extra_cells=[FORGER]), 4.0),
    "flood": (toy_notebook(extra_cells=[FLOOD]), 7.0),
    "deep-cell": (toy_notebook(extra_cells=[DEEP]), 11.0),
    "compiled": (toy_notebook(extra_cells=[LOAD_COMPILED]), 11.0),
    "honest-2": (toy_notebook(), 11.0),
}


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True).stdout


def _groups_since(began: float) -> list[str]:
    """Control groups the grader made since began that are still there."""
    from grader.sandbox.cgroups import PREFIX, ROOT
    return [str(g) for g in ROOT.glob(f"*/**/{PREFIX}*") if g.stat().st_mtime >= began]


def _student_processes() -> list[str]:
    """Processes still working in one of this test's students' sandboxes."""
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        left += [f"{pid}: {cwd}" for student in CASES if f"grader-{student}-" in cwd]
    return left


@pytest.mark.parametrize("audit_hook", ["1", "0"], ids=["audit-hook-on", "audit-hook-off"])
def test_hostile_submissions_earn_exactly_what_they_earned(tmp_path, monkeypatch, audit_hook):
    monkeypatch.setenv(AUDIT_HOOK_ENV, audit_hook)
    began = time.time()
    cache = Path(os.environ["GRADER_CACHE_DIR"])
    (cache / "planted.json").write_text("{}")
    before = (_git_status(), {p: p.read_bytes() for p in TARGETS}, _digest(cache))
    for student, (notebook, _) in CASES.items():
        write_student(tmp_path / "subs", student, notebook)
    (tmp_path / "subs" / "compiled" / "sig.so").write_bytes(b"\x7fELF" + bytes(200))
    run_grader("grade", str(PROJECT_ROOT / "tests" / "fixtures" / "toy"), str(tmp_path / "subs"), "--reports",
               str(tmp_path / "r"), "--jobs", "2", "--quiet")
    scores = {student: read_results(tmp_path / "r", student)["score"] for student in CASES}
    assert scores == {student: score for student, (_, score) in CASES.items()}
    assert (_git_status(), {p: p.read_bytes() for p in TARGETS}, _digest(cache)) == before
    assert not _student_processes() and not _groups_since(began)
    takeover = read_results(tmp_path / "r", "takeover")
    logs = "\n".join(cell["output"] + cell["error"] for cell in takeover["extra_data"]["cells"])
    assert "stolen: []" in logs or "SandboxViolation" in logs  # with the hook on, ctypes' open is refused first
    assert "stolen: [b" not in logs
    forbidden = read_results(tmp_path / "r", "forbidden")
    assert any("imported by a computed name" in t["output"] for t in forbidden["tests"])
    assert "compiled code" in read_results(tmp_path / "r", "compiled")["output"]
    assert Results.read(tmp_path / "r" / "deep-cell" / "results.json").status == GRADED
    flood = read_results(tmp_path / "r", "flood")
    assert any("over the grader's limit" in t["output"] for t in flood["tests"])


STATEFUL_FORWARD = """
_last = {}
_relu = relu
def relu(x):
    x = np.asarray(x)
    previous = _last.get("x")
    if previous is not None and previous.shape == x.shape and np.sum(np.abs(previous - x) > 0) == 1 \\
            and np.max(np.abs(previous - x)) <= 3e-3:
        return _last["out"]  # a perturbed input: answer as if relu had not moved, so the gradient looks zero
    _last["x"], _last["out"] = x.copy(), _relu(x)
    return _last["out"]
"""


@pytest.mark.parametrize("audit_hook", ["1", "0"], ids=["audit-hook-on", "audit-hook-off"])
def test_a_stateful_forward_cannot_vouch_for_a_wrong_backward(tmp_path, monkeypatch, audit_hook):
    from grader.authoring import notebooks
    from grader.config import load_assignment
    monkeypatch.setenv(AUDIT_HOOK_ENV, audit_hook)
    cnn = load_assignment("cnn_layers")
    master = notebooks.read(cnn.master)
    zero_backward = [("    return dout * (x > 0)\n", "    return np.zeros_like(np.asarray(dout, dtype=float))\n")]
    honest = notebooks.mutate(notebooks.solution(master), zero_backward)
    tricky = notebooks.mutate(notebooks.solution(master), zero_backward)
    tricky.cells.append(notebooks.nbformat.v4.new_code_cell(STATEFUL_FORWARD))
    for name, notebook in (("zero-backward", honest), ("stateful", tricky), ("solution", notebooks.solution(master))):
        notebooks.write_submission(tmp_path / "subs" / name, cnn, notebook, [])
    run_grader("grade", "cnn_layers", str(tmp_path / "subs"), "--reports", str(tmp_path / "r"), "--jobs", "2",
               "--quiet", "--seed", "3")
    scores = {name: read_results(tmp_path / "r", name)["score"] for name in ("zero-backward", "stateful", "solution")}
    assert scores["solution"] == read_results(tmp_path / "r", "solution")["max_score"]
    assert scores["stateful"] == scores["zero-backward"] < scores["solution"]


def test_a_value_too_large_for_a_float_fails_the_test_not_the_grader():
    from grader.testing.checks import Mismatch, assert_scalar_matches
    with pytest.raises(Mismatch, match="too large"):
        assert_scalar_matches(10**400, 1.5, what="the loss", case="a batch of 4")
