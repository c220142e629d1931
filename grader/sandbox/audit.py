"""The Python audit hook installed in the student process before any student code runs.

It refuses sockets, new processes, signals to other processes, dangerous libc symbols through
ctypes, and file access outside the sandbox and the Python installation. Standard library only.
Audit hooks cannot be removed once added.
"""
from __future__ import annotations

import os
import sys

DENIED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
                   "os.forkpty", "os.system", "pty.", "ftplib.", "smtplib.", "urllib.", "http.", "webbrowser.",
                   "winreg.", "sys.remote_exec")
WRITE_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod",
                "os.chown", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
LIST_EVENTS = {"os.listdir", "os.scandir", "glob.glob", "os.chdir"}
DENIED_SYMBOLS = {"open", "open64", "openat", "openat64", "creat", "fopen", "fopen64", "socket", "connect",
                  "kill", "tgkill", "ptrace", "fork", "vfork", "clone", "clone3", "execve", "execv", "execvp",
                  "execl", "system", "popen", "posix_spawn", "posix_spawnp", "mount", "umount", "umount2",
                  "unshare", "setns", "prctl", "syscall", "process_vm_readv", "process_vm_writev",
                  "dlopen", "chdir", "unlink", "rename", "pivot_root", "chroot", "capset", "setrlimit",
                  "prlimit", "prlimit64"}
READ_ONLY_ROOTS = ("/usr", "/lib", "/lib64", "/etc", "/sys", "/proc/cpuinfo", "/proc/meminfo", "/proc/self",
                   "/proc/thread-self", "/dev/null", "/dev/urandom", "/dev/random", "/dev/zero")
SECRETS = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers")


class SandboxViolation(PermissionError):
    """An action the grader's sandbox refuses."""


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def install(sandbox: str) -> None:
    """Install the hook: reads allowed under the sandbox and Python's install, writes only in the sandbox."""
    pid = os.getpid()
    sandbox = os.path.realpath(sandbox)
    python_roots = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
    readable = (sandbox, f"/proc/{pid}") + python_roots + READ_ONLY_ROOTS
    writable = (sandbox, "/dev/null")
    realpath, fspath = os.path.realpath, os.fspath

    def resolve(path) -> str | None:
        if isinstance(path, int):
            return None  # an already-open descriptor
        path = fspath(path)
        if isinstance(path, bytes):
            path = path.decode(errors="surrogateescape")
        return realpath(path)

    def refuse(what: str):
        raise SandboxViolation(f"the grader's sandbox does not allow {what}")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path = resolve(args[0])
            if path is None:
                return
            mode, flags = args[1] or "r", args[2] or 0
            writing = any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            if _inside(path, SECRETS) or not _inside(path, writable if writing else readable):
                refuse(f"opening {path}")
        elif event.startswith(DENIED_PREFIXES):
            refuse(f"{event} (no network, no new processes)")
        elif event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            if event != "os.kill" or args[0] not in (0, pid):
                refuse("signalling other processes")
        elif event in LIST_EVENTS:
            path = resolve(args[0] if args and args[0] is not None else ".")
            if path is not None and not _inside(path, readable):
                refuse(f"reading the folder {path}")
        elif event in WRITE_EVENTS:
            for arg in args[:2]:
                target = resolve(arg) if isinstance(arg, (str, bytes, os.PathLike)) else None
                if target is not None and not _inside(target, writable):
                    refuse(f"{event} on {target}")
        elif event in ("ctypes.dlsym", "ctypes.dlsym/handle"):
            name = args[1] if isinstance(args[1], str) else ""
            if name in DENIED_SYMBOLS or name.startswith(("exec", "sys_")):
                refuse(f"calling the C function {name} through ctypes")
        elif event == "ctypes.dlopen" and args[0] is None:
            refuse("loading the process's own C symbols through ctypes")

    sys.addaudithook(hook)
