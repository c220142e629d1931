"""Kernel-enforced confinement the student process applies to itself before any student code runs.

Layers, each applied where the machine allows it and reported back to the grader:

- namespaces: a private mount, network (no interfaces), PID, IPC and UTS namespace. In the new
  PID namespace the student is PID 1 and sees only itself; when it ends, everything it started ends.
- a minimal root (pivot_root onto a fresh tmpfs): the system's /usr, /lib and /etc, the Python
  installation and its site-packages, read-only; /proc of the new PID namespace; a few /dev nodes;
  and a size-capped tmpfs holding a copy of the submission, the only writable place. The checkout, the venv's
  other files, the reports, caches, datasets and other students' sandboxes are simply not there.
  Packages an assignment forbids (e.g. tensorflow for a NumPy-only assignment) are covered by
  empty read-only mounts, so no import route can reach them.
- an identity that owns nothing: when the grader is root, the student runs as an unprivileged
  uid/gid (default nobody); otherwise inside a user namespace. Every capability is dropped and
  no_new_privs is set.
- Landlock, where the kernel has it: read-only access to the system and Python, read-write to the sandbox.
- resource limits: address space, CPU time, file size, no core dumps.
- a seccomp filter (grader.sandbox.syscalls), installed last, which cannot be undone.

Standard library only (plus libseccomp through grader.sandbox.syscalls); runs while single-threaded.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import pwd
import resource
import shutil
import signal
import sys
from dataclasses import dataclass, field
from typing import NoReturn

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 0x4000, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")
MAX_OPEN_FILES = 1024
UID0_KEPT = "uid 0 kept without capabilities"  # weaker than Landlock can make up for: chmod, root-owned files
SUBMISSION_MB = 512        # room for the copy of the largest accepted submission, beside [limits] disk_mb
SANDBOX_INODES = 30_000    # ingest accepts at most 10,000 files and folders: room for the student's own

_libc = ctypes.CDLL(None, use_errno=True)


class ConfinementError(OSError):
    """A layer could not be applied."""


class SandboxRefused(Exception):
    """The submission itself cannot be placed in the sandbox (too many files, too large); for the student."""


@dataclass
class Plan:
    """What the grader asks the student process to apply (sent in the setup message)."""
    sandbox: str
    root: str                      # an empty folder to build the minimal root on
    uid: int = 65534
    gid: int = 65534
    hide_modules: tuple[str, ...] = ()
    disk_mb: int = 512
    namespaces: bool = True          # False: behave as where unshare is refused (e.g. Docker's default profile)
    report: dict[str, str] = field(default_factory=dict)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise ConfinementError(code, f"{what}: {os.strerror(code)}")


def set_limits(memory_mb: int, cpu_seconds: int, max_file_mb: int = 256) -> None:
    """Address space, CPU time, file size and core-dump limits."""
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_mb << 20, max_file_mb << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_OPEN_FILES, MAX_OPEN_FILES))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write raises instead of killing


def die_with_parent() -> None:
    """Be killed if the process that started us dies."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def python_dirs() -> tuple[str, ...]:
    """The Python installation and the venv: what the student needs to read to run Python and NumPy."""
    return tuple(sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}))


def _foreign_site_packages() -> list[str]:
    """site-packages folders of the base interpreter that the venv does not use: covered, not shown."""
    import glob
    own = {os.path.realpath(p) for p in sys.path if p}
    found = set()
    for prefix in python_dirs():
        for pattern in ("lib/python3*/site-packages", "lib/python3*/dist-packages", "local/lib/python3*/*-packages"):
            found |= {os.path.realpath(p) for p in glob.glob(os.path.join(prefix, pattern)) if os.path.isdir(p)}
    return sorted(found - own)


def _import_dirs() -> list[str]:
    """The folders imports search (the standard library and site-packages)."""
    return sorted({os.path.realpath(p) for p in sys.path if (p and os.path.isdir(p) and p.startswith(sys.base_prefix))
                   or (p.endswith("site-packages") and os.path.isdir(p))})


# ------------------------------------------------------------------ namespaces and the minimal root

def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _enter_user_namespace() -> None:
    uid, gid = os.geteuid(), os.getegid()
    _unshare(CLONE_NEWUSER)
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                       flags, data.encode() if data else None), f"mount {target}")


def _bind(root: str, path: str, *, writable: bool = False, device: bool = False) -> None:
    """Bind path at the same place under root; read-only unless writable; device nodes only if device."""
    target = root + path
    if os.path.isdir(path):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        with open(target, "a"):
            pass
    _mount(path, target, None, MS_BIND | MS_REC)
    flags = MS_BIND | MS_REMOUNT | MS_NOSUID | (0 if writable else MS_RDONLY) | (0 if device else MS_NODEV)
    _mount(None, target, None, flags)


REFUSAL = "raise ImportError({!r})\n"


def _hide(root: str, path: str, module: str) -> None:
    """Cover a package folder or module file under root with a read-only stub whose import fails."""
    target = root + path
    text = REFUSAL.format(f"{module} is not available in this assignment's grading environment")
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if os.path.isdir(target):
        _mount("tmpfs", target, "tmpfs", flags, "size=16k,mode=0755")
        with open(os.path.join(target, "__init__.py"), "w") as stub:
            stub.write(text)
        _mount(None, target, None, MS_REMOUNT | MS_RDONLY | flags)
    elif os.path.isfile(target):
        stub_path = os.path.join(root, ".stubs", module)
        os.makedirs(os.path.dirname(stub_path), mode=0o755, exist_ok=True)
        with open(stub_path, "w") as stub:
            stub.write(text if target.endswith(".py") else "")
        _mount(stub_path, target, None, MS_BIND)
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)


def _module_paths(modules: tuple[str, ...]) -> list[tuple[str, str]]:
    """(path, module) for every place on the import path that could hold one of these modules."""
    found: list[tuple[str, str]] = []
    for site in _import_dirs():
        for module in modules:
            base = os.path.join(site, *module.split("."))
            found += [(base, module)] if os.path.isdir(base) else []
            parent = os.path.dirname(base)
            if os.path.isdir(parent):
                stem = os.path.basename(base)
                found += [(os.path.join(parent, n), module) for n in os.listdir(parent)
                          if n == stem + ".py" or (n.startswith(stem + ".") and n.endswith(".so"))]
    return found


def _build_root(plan: Plan) -> None:
    root = plan.root
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            _bind(root, path)
    for path in python_dirs():
        _bind(root, path)
    for path in _foreign_site_packages():
        _mount("tmpfs", root + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0755")
    for path, module in _module_paths(plan.hide_modules):
        _hide(root, path, module)
    os.makedirs(root + "/dev", mode=0o755)
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _bind(root, f"/dev/{name}", writable=True, device=True)
    os.symlink("/proc/self/fd", root + "/dev/fd")
    os.makedirs(root + "/proc", mode=0o555)
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _private_sandbox(root, plan)
    old = root + "/.old"
    os.makedirs(old)
    machine = os.uname().machine
    if machine not in SYS_PIVOT_ROOT:
        raise ConfinementError(errno.ENOSYS, f"pivot_root: unknown architecture {machine}")
    _check(_libc.syscall(SYS_PIVOT_ROOT[machine], root.encode(), old.encode()), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old", MNT_DETACH), "umount old root")
    os.rmdir("/.old")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _private_sandbox(root: str, plan: Plan) -> None:
    """The sandbox as a size-capped tmpfs holding a copy of the submission: the student's only writable place."""
    target = root + plan.sandbox
    os.makedirs(target, mode=0o755)
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,  # no compiled code loaded from it
           f"size={plan.disk_mb + SUBMISSION_MB}m,nr_inodes={SANDBOX_INODES},mode=0700,uid={plan.uid},gid={plan.gid}")
    try:
        for folder, dirs, files in os.walk(plan.sandbox):
            relative = os.path.relpath(folder, plan.sandbox)
            for name in dirs:
                path = os.path.normpath(os.path.join(target, relative, name))
                os.mkdir(path, 0o755)
                os.chown(path, plan.uid, plan.gid)
            for name in files:
                path = os.path.normpath(os.path.join(target, relative, name))
                shutil.copyfile(os.path.join(folder, name), path, follow_symlinks=False)
                os.chown(path, plan.uid, plan.gid)
    except OSError as exc:
        raise SandboxRefused(f"the submission does not fit in the sandbox ({exc.strerror}: "
                             f"{SUBMISSION_MB} MB and {SANDBOX_INODES:,} files at most); remove what the "
                             "notebook does not need") from None


def allowed_beneath(roots: tuple[str, ...], excluded: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(readable, listable): the paths under roots to allow so that no file under an excluded path can be read.

    Landlock rules cover whole hierarchies, so a root holding an excluded path is split into its entries;
    the split folder itself stays listable (imports list their folders), its excluded entries unreadable."""
    readable: list[str] = []
    listable: list[str] = []
    for root in roots:
        inside = [e for e in excluded if e == root or e.startswith(root.rstrip("/") + "/")]
        real = os.path.realpath(root)
        if real != root and any(e == real or e.startswith(real.rstrip("/") + "/") for e in excluded):
            continue  # a link (e.g. a venv's lib64) into a split folder: its entries are allowed one by one
        if not inside:
            readable.append(root)
        elif root not in inside and os.path.isdir(root) and not os.path.islink(root):
            listable.append(root)
            entries = tuple(os.path.join(root, name) for name in sorted(os.listdir(root)))
            more_readable, more_listable = allowed_beneath(entries, tuple(inside))
            readable += more_readable
            listable += more_listable
    return readable, listable


def _give_to(folder: str, uid: int, gid: int) -> None:
    for path, dirs, files in os.walk(folder):
        for name in (path, *(os.path.join(path, n) for n in dirs + files)):
            os.chown(name, uid, gid, follow_symlinks=False)


def traversable_by_others(paths: tuple[str, ...]) -> bool:
    """True if every folder on the way to each path can be searched by any user."""
    for path in paths:
        parts = os.path.realpath(path).split("/")
        for i in range(2, len(parts) + 1):
            if not os.stat("/".join(parts[:i]) or "/").st_mode & 0o001:
                return False
    return True


def _become_pid_one() -> None:
    """Fork into the new PID namespace; this process waits and passes on the child's exit."""
    child = os.fork()
    if child:
        _wait_and_pass_on(child)
    die_with_parent()


def _wait_and_pass_on(child: int) -> NoReturn:
    """The parent left outside the PID namespace: wait for the child, then end the same way (never return:
    whatever happens here, this process must not go on to confine itself)."""
    code = 1
    try:
        os.closerange(3, 1 << 16)
        _, status = os.waitpid(child, 0)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            code = 128 + sig
            with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP keep their default action
                signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
        elif os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
    finally:
        os._exit(code)


# ------------------------------------------------------------------ identity and capabilities

def _drop_identity(uid: int, gid: int) -> None:
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last capability is fine
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    die_with_parent()  # the kernel clears the parent-death signal when the identity changes


def _drop_capabilities() -> None:
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def resolve_identity(name: str) -> tuple[int, int]:
    """uid and gid of a user name (or "uid:gid")."""
    if ":" in name:
        uid, gid = name.split(":", 1)
        return int(uid), int(gid)
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


# ------------------------------------------------------------------ the whole sequence

def confine(plan: Plan) -> dict[str, str]:
    """Apply every layer but seccomp (grader.sandbox.syscalls does that last); return what holds.

    The returned report maps each layer to a sentence. The grader decides what is enough.
    """
    from grader.sandbox import landlock
    report = plan.report
    root = os.geteuid() == 0
    try:
        if not plan.namespaces:
            raise ConfinementError(errno.EPERM, "unshare: refused by this platform (simulated)")
        if not root:
            _enter_user_namespace()
        _unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS)
        _become_pid_one()
        report["namespaces"] = "private mount, network, PID, IPC and UTS namespaces"
        report["network"] = "private network namespace (no interfaces)"
        report["processes"] = "PID namespace: the student process is PID 1 and sees only itself"
    except (OSError, ConfinementError) as exc:
        report["namespaces"] = f"unavailable ({exc})"
    if "unavailable" not in report["namespaces"]:
        try:  # SandboxRefused (the submission does not fit) is the student's and ends the start: no fallback
            _build_root(plan)
            report["filesystem"] = ("minimal root: system and Python read-only, the sandbox writable, "
                                    f"{len(plan.hide_modules)} forbidden package(s) hidden")
        except (OSError, ConfinementError) as exc:  # the machine's doing (e.g. /proc cannot be mounted here)
            report["filesystem"] = f"unavailable ({exc})"
    hidden = report.get("filesystem", "").startswith("minimal root")
    excluded = () if hidden else tuple(path for path, _ in _module_paths(plan.hide_modules)) + tuple(
        _foreign_site_packages())  # without a private root, Landlock alone keeps forbidden packages out of reach
    readable, listable = allowed_beneath((*SYSTEM_DIRS, "/proc", "/dev", *python_dirs()), excluded)
    try:
        landlock.restrict(read_only=tuple(readable), read_write=(plan.sandbox, "/dev/null"), list_only=tuple(listable))
        report["landlock"] = "file-system rules: read-only system and Python, read-write sandbox"
    except OSError as exc:
        report["landlock"] = f"unavailable ({exc})"
    try:
        if root and not hidden and not traversable_by_others(python_dirs()):
            _give_to(plan.sandbox, 0, 0)  # root without capabilities must own what it writes
            report["identity"] = (f"unavailable ({UID0_KEPT}: the Python installation is not readable by other "
                                  "users and there is no private root to show it)")
        elif root:
            _drop_identity(plan.uid, plan.gid)
            report["identity"] = f"uid {plan.uid}, gid {plan.gid} (owns nothing but the sandbox copy)"
        _drop_capabilities()
        report["capabilities"] = "all dropped; no_new_privs"
        if not root:
            mapped = "namespaces" in report and not report["namespaces"].startswith("unavailable")
            report["identity"] = (f"uid {os.getuid()} confined by a user namespace" if mapped
                                  else f"uid {os.getuid()} confined by Landlock" if "unavailable" not in
                                  report["landlock"] else f"unavailable (uid {os.getuid()}, no namespace, no Landlock)")
    except OSError as exc:
        report["identity"] = f"unavailable ({exc})"
    os.chdir(plan.sandbox)
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    return report
