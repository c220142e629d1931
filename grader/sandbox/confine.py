"""OS-level confinement the student process applies to itself before any student code runs.

Standard library only: it runs first thing in the student process, while that process is still
single-threaded. Each layer is applied where the machine allows it and reported back:
resource limits always; a private network namespace (no network at all) and a private mount
namespace that hides the grader's folders when the kernel lets us; then every capability dropped.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def set_limits(memory_mb: int, cpu_seconds: int, max_file_mb: int = 256) -> None:
    """Address space, CPU time, file size and core-dump limits."""
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_mb << 20, max_file_mb << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write raises instead of killing


def die_with_parent() -> None:
    """Be killed if the grader process that started us dies."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _enter_namespaces() -> None:
    if os.geteuid() == 0:
        _check(_libc.unshare(CLONE_NEWNET | CLONE_NEWNS), "unshare")
        return
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS), "unshare")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


def _hide(paths: list[str]) -> None:
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    for path in paths:
        if os.path.isdir(path):
            _check(_libc.mount(b"tmpfs", path.encode(), b"tmpfs",
                               MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, b"size=4k,mode=0"),
                   f"mount tmpfs on {path}")


def _drop_capabilities() -> None:
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last capability is fine
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def confine(hidden_paths: list[str]) -> dict[str, str]:
    """Apply every layer the machine allows; return a report of what holds."""
    report = {}
    try:
        _enter_namespaces()
        report["network"] = "private network namespace (no interfaces up)"
        try:
            _hide(hidden_paths)
            report["hidden_paths"] = f"{len(hidden_paths)} grader folders hidden by tmpfs"
        except OSError as exc:
            report["hidden_paths"] = f"not hidden ({exc}); audit hook only"
    except OSError as exc:
        report["network"] = f"audit hook only ({exc})"
        report["hidden_paths"] = "audit hook only"
    try:
        _drop_capabilities()
        report["capabilities"] = "all dropped"
    except OSError as exc:
        report["capabilities"] = f"unchanged ({exc})"
    return report
