"""The seccomp-bpf filter of the student process, built with libseccomp (through pyseccomp).

pyseccomp is a ctypes binding of the system's libseccomp with the same API as libseccomp's own
Python module, which is not on PyPI; it needs only libseccomp.so.2 at run time. The filter allows
everything but what a student process has no business doing, and it cannot be removed once loaded:

- new processes (fork, vfork, clone without CLONE_THREAD; clone3 answers ENOSYS so the C library
  falls back to clone for threads) and exec of any program;
- ptrace, process_vm_readv/writev, kcmp, pidfd_* and signals to any process but itself;
- mount, umount, pivot_root, chroot, unshare, setns, new sessions and process groups;
- sockets of every family (AF_UNIX included: their buffers are kernel memory outside RLIMIT_AS);
- memfd_create (memory that RLIMIT_AS does not count), fallocate (disk blocks past RLIMIT_FSIZE, e.g. on
  the output log), chown and extended attributes;
- without a private root (no namespaces): chmod and SysV/POSIX IPC objects, which would outlive the process;
- bpf, perf_event_open, keyrings, io_uring, userfaultfd, kernel modules and other administration.

Calls from a foreign architecture (e.g. int 0x80 on x86_64) kill the process.
"""
from __future__ import annotations

import errno
import os

import pyseccomp as seccomp

CLONE_THREAD = 0x00010000
DENIED = (
    "fork", "vfork", "execve", "execveat",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "tkill",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "setsid", "setpgid",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup", "settimeofday", "clock_settime",
    "adjtimex", "clock_adjtime", "iopl", "ioperm", "name_to_handle_at", "open_by_handle_at",
    "fanotify_init", "personality", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setgroups", "setfsuid", "setfsgid", "capset", "landlock_create_ruleset", "landlock_add_rule",
    "memfd_create", "memfd_secret",  # memory outside RLIMIT_AS
    "chown", "fchown", "lchown", "fchownat", "setxattr", "lsetxattr", "fsetxattr", "removexattr",
    "lremovexattr", "fremovexattr",
)


def _deny(rules: seccomp.SyscallFilter, name: str, *args: seccomp.Arg, code: int = errno.EPERM) -> None:
    try:
        rules.add_rule(seccomp.ERRNO(code), name, *args)
    except (RuntimeError, OSError, ValueError):
        pass  # a call this kernel or architecture does not have


WITHOUT_PRIVATE_ROOT = (  # where the student shares the host's file system and IPC (no namespaces)
    "chmod", "fchmod", "fchmodat", "fchmodat2", "shmget", "msgget", "semget", "mq_open",
)


def build_filter(private_root: bool) -> seccomp.SyscallFilter:
    """The filter for this process (its own pid is the only signal target allowed)."""
    own = os.getpid()
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED + (() if private_root else WITHOUT_PRIVATE_ROOT):
        _deny(rules, name)
    _deny(rules, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
    _deny(rules, "clone3", code=errno.ENOSYS)
    _deny(rules, "fallocate", code=errno.EOPNOTSUPP)  # it reserves blocks past RLIMIT_FSIZE; posix_fallocate writes
    _deny(rules, "kill", seccomp.Arg(0, seccomp.NE, own))
    _deny(rules, "tgkill", seccomp.Arg(0, seccomp.NE, own))
    _deny(rules, "socket", code=errno.EACCES)
    _deny(rules, "socketpair", code=errno.EACCES)
    return rules


def install(private_root: bool) -> None:
    """Load the filter (libseccomp also sets no_new_privs). Irreversible for this process."""
    build_filter(private_root).load()
