"""The submission's temporary copy: /tmp/grader-<student>-XXXX, locked by the grader process using it.

It is removed on every way out: normally, on an exception, and on SIGTERM (stop_worker); a folder left
by a grader that was killed outright is removed by the next grader (clean_stale_workdirs), never one a
live grader holds.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import tempfile
from pathlib import Path

WORKDIR_LOCK = ".grader-lock"   # held (flock) by the grader using the folder, for as long as it exists
TMP_PREFIX = "grader-"
ACTIVE_WORKDIRS: dict[Path, int] = {}  # this process's temporary copies and their lock descriptors


def make_workdir(student: str) -> Path:
    """A new /tmp/grader-<student>-XXXX folder, locked by this process until remove_workdir."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{student[:40]}-"))
    fd = os.open(workdir / (WORKDIR_LOCK + ".new"), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.rename(workdir / (WORKDIR_LOCK + ".new"), workdir / WORKDIR_LOCK)  # never seen unlocked
    ACTIVE_WORKDIRS[workdir] = fd
    return workdir


def remove_workdir(workdir: Path) -> None:
    """Remove the folder, then release its lock."""
    shutil.rmtree(workdir, ignore_errors=True)
    fd = ACTIVE_WORKDIRS.pop(workdir, None)
    if fd is not None:
        os.close(fd)


def clean_stale_workdirs(tmp: Path | None = None) -> list[Path]:
    """Remove the temporary copies left by graders that died: /tmp/grader-* folders whose lock no live
    process holds. Folders without the lock (not this grader's, or still being created) are left alone."""
    removed = []
    for path in Path(tmp or tempfile.gettempdir()).glob(TMP_PREFIX + "*"):
        try:
            if path.is_symlink() or not path.is_dir():
                continue
            fd = os.open(path / WORKDIR_LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live grader holds it
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)
        removed.append(path)
    return removed


def stop_worker(signum: int, frame=None) -> None:
    """SIGTERM in a grading worker: kill its student processes, remove its temporary copies, exit now."""
    children: set[int] = set()
    for task in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []:
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                children.update(int(pid) for pid in f.read().split())
        except (OSError, ValueError):
            continue
    for pid in children:  # each student process leads its own session and process group
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass
    for workdir in list(ACTIVE_WORKDIRS):
        remove_workdir(workdir)
    os._exit(128 + signum)
