"""The kernel's layers alone, with the audit hook switched off: what a student who got past it can do."""
from __future__ import annotations

import os
import subprocess

import pytest

from grader.config import PROJECT_ROOT, Limits
from grader.sandbox.process import AUDIT_HOOK_ENV, StudentSession

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="this machine and CI run as root; others: SECURITY.md")

ATTACKS = r'''
import ctypes, os, socket, sys
libc = ctypes.CDLL("libc.so.6", use_errno=True)

def outcome(action):
    try:
        return "did: " + repr(action())[:200]
    except BaseException as exc:
        return "refused: " + type(exc).__name__

def read(path):
    return outcome(lambda: open(path, "rb").read(64))

def write(path):
    return outcome(lambda: open(path, "w").write("pwned"))

def read_dir_fd(folder, name):
    def action():
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        return os.read(os.open(name, os.O_RDONLY, dir_fd=fd), 64)
    return outcome(action)

def libc_open(path):
    fd = libc.open(path.encode(), 0)
    return "refused" if fd < 0 else "did: " + os.read(fd, 64).decode(errors="replace")

def listing(path):
    return outcome(lambda: sorted(os.listdir(path)))

def fork():
    pid = libc.fork()
    if pid == 0:
        os._exit(0)
    return "refused" if pid < 0 else "did: fork"

def spawn():
    return outcome(lambda: os.posix_spawn("/bin/true", ["true"], {}))

def execv():
    return outcome(lambda: os.execv("/bin/true", ["true"]))

def connect():
    return outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))

def unix_sockets():
    return outcome(lambda: socket.socketpair(socket.AF_UNIX))

def memfd():
    return outcome(lambda: os.memfd_create("x"))

def reserve_disk():
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    return "refused" if libc.fallocate(1, 1, 0, 1 << 30) < 0 else "did: fallocate"

def signal_parent():
    return "refused" if libc.kill(os.getppid(), 9) < 0 or os.getppid() == 0 and libc.kill(-1, 9) < 0 else "did: kill"

def signal_everyone():
    return "refused" if libc.kill(-1, 9) < 0 else "did: kill"

def ptrace_parent():
    return "refused" if libc.ptrace(16, 1, 0, 0) < 0 else "did: ptrace"

def chmod(path):
    return outcome(lambda: os.chmod(path, 0o606))

def mount():
    return "refused" if libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None) < 0 else "did: mount"

def unshare():
    return "refused" if libc.unshare(0x10000000) < 0 else "did: unshare"

def setsid():
    return "refused" if libc.setsid() < 0 else "did: setsid"

def tensorflow():
    import importlib
    return outcome(lambda: importlib.import_module("tensor" + "flow"))

def processes():
    return sorted(p for p in os.listdir("/proc") if p.isdigit())

def identity():
    return [os.getuid(), os.getgid(), os.getgroups()]
'''


def attack_session(tmp_path_factory, env: dict[str, str] | None = None, mode: str = "strict"):
    """A student process that has run ATTACKS, the audit hook off, under these extra environment variables."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {AUDIT_HOOK_ENV: "0", **(env or {})}.items():
            patch.setenv(name, value)
        sandbox = tmp_path_factory.mktemp("attacks") / "sandbox"
        sandbox.mkdir()
        session = StudentSession([ATTACKS], sandbox, Limits(call_timeout=10),
                                 forbidden_modules=("tensorflow", "keras"), sandbox_mode=mode)
        yield session
        session.close()


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    yield from attack_session(tmp_path_factory)


def run(session, name, *args):
    reply = session.call(name, args, {}, 10)
    assert reply["status"] == "ok", reply
    return reply["value"]


SECRET_FILES = [PROJECT_ROOT / "grader" / "cli.py", PROJECT_ROOT / "solutions" / "cnn_layers" / "cnn_layers.ipynb",
                PROJECT_ROOT / "README.md", PROJECT_ROOT / ".git" / "HEAD", PROJECT_ROOT / "tests" / "conftest.py"]


@pytest.mark.parametrize("path", SECRET_FILES, ids=lambda p: p.name)
def test_the_checkout_is_out_of_reach(session, path):
    assert run(session, "read", str(path)).startswith("refused")
    assert run(session, "libc_open", str(path)) == "refused"
    assert run(session, "read_dir_fd", str(path.parent), path.name).startswith("refused")


def test_nothing_outside_the_sandbox_is_writable(session, tmp_path):
    for path in (PROJECT_ROOT / "pwned.txt", PROJECT_ROOT / ".venv" / "pwned.txt", "/usr/lib/pwned.txt",
                 "/tmp/pwned.txt", str(tmp_path / "pwned.txt")):
        assert run(session, "write", str(path)).startswith("refused"), path
        assert not os.path.exists(path)
    assert run(session, "write", str(session.sandbox / "mine.txt")).startswith("did")


def test_no_folder_of_the_grader_can_be_listed(session):
    for folder in ("/", str(PROJECT_ROOT), str(PROJECT_ROOT.parent), "/tmp", "/root"):
        assert run(session, "listing", folder).startswith("refused"), folder


@pytest.mark.parametrize("attack", ["fork", "spawn", "execv", "connect", "unix_sockets", "memfd", "reserve_disk",
                                    "signal_parent", "signal_everyone", "ptrace_parent", "mount", "unshare",
                                    "setsid", "tensorflow"])
def test_the_kernel_refuses(session, attack):
    assert run(session, attack).startswith("refused")


def test_the_student_sees_only_itself_and_owns_nothing(session):
    assert run(session, "processes") == ["1"]
    assert run(session, "identity") == [65534, 65534, []]


def test_no_process_is_left_behind(session):
    pids = [p.proc.pid for p in session._processes if p.proc is not None]
    session.close()
    out = subprocess.run(["ps", "-eo", "pid,user,args"], capture_output=True, text=True).stdout
    assert not [line for line in out.splitlines() if "student_main.py" in line and
                any(line.split()[0] == str(pid) for pid in pids)]
    assert "nobody" not in {line.split()[1] for line in out.splitlines()[1:] if "student_main" in line}


def test_the_sandbox_is_size_capped(session):
    fill = ("def fill():\n    for i in range(8):\n        with open(f'big{i}', 'wb') as f:\n"
            "            for _ in range(200):\n                f.write(bytes(1 << 20))\n")
    session.cells.append(fill)
    session.close()
    reply = session.call("fill", (), {}, 30)
    assert reply["status"] == "raised" and "No space left on device" in reply["error"]


RAW_THREADS = """
import ctypes, mmap
def raw_threads():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.clone.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    pause = ctypes.cast(libc.pause, ctypes.c_void_p).value
    flags = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000  # a thread: VM, FS, FILES, SIGHAND, THREAD, SYSVSEM
    region = mmap.mmap(-1, 16384 * 2000)
    base = ctypes.addressof(ctypes.c_char.from_buffer(region))
    made = 0
    for i in range(2000):
        if libc.clone(pause, base + 16384 * (i + 1) - 64, flags, None) < 0:
            break
        made += 1
    return made
"""


def test_tasks_are_capped_by_the_cgroup(session):
    session.cells.append(RAW_THREADS)
    session.close()
    made = run(session, "raw_threads")
    assert session.isolation["cgroup"].startswith("cgroup: at most 256 tasks"), session.isolation
    assert 0 < made < 256
