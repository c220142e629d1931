"""A control group per student process: a cap on its tasks (threads count) and on its memory.

RLIMIT_AS bounds what a process maps, but not the kernel memory, tmpfs pages or the number of tasks it
makes; raw clone(CLONE_THREAD) with tiny stacks could otherwise take every pid on the machine. The
grader (root) creates the group, puts the student process in it before any student code runs, and
removes it when the process is gone. The v1 pids and memory hierarchies are used where they are mounted
and writable (this machine, CI); elsewhere (e.g. cgroup v2 only) the layer is reported unavailable and
RLIMIT_AS, the tmpfs size and the seccomp filter remain the bounds.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "grader-student-"


@dataclass
class StudentGroup:
    """The group(s) of one student process."""
    folders: list[Path] = field(default_factory=list)
    description: str = ""

    def add(self, pid: int) -> None:
        """Move pid (and so everything it starts later) into the group."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(str(pid))

    def kill_and_remove(self, wait: bool = True) -> None:
        """Kill whatever is left in the group and its subgroups, then remove them (waiting up to a second).
        With wait=False a group the kernel still holds is left for remove_left(), off the critical path."""
        for folder in self.folders:
            nested = sorted((Path(d) for d, _, _ in os.walk(folder)), key=lambda p: len(p.parts), reverse=True)
            for group in nested:
                if not _empty_and_remove(group, 100 if wait else 1):
                    _LEFT.append(group)


_LEFT: list[Path] = []  # groups of killed processes that the kernel had not released yet


def remove_left() -> None:
    """Remove the groups kill_and_remove(wait=False) left, waiting for the kernel to release them."""
    while _LEFT:
        _empty_and_remove(_LEFT.pop(), 100)


def _empty_and_remove(folder: Path, attempts: int) -> bool:
    """Kill the group's processes and remove it; False if it is still there after attempts tries."""
    for _ in range(attempts):
        try:
            pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
        except OSError:
            return True
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            folder.rmdir()
            return True
        if attempts > 1:
            time.sleep(0.01)
    return False


def _current(controller: str) -> Path | None:
    """The folder of this process's v1 cgroup for controller, if that hierarchy is mounted."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            folder = ROOT / controller / path.lstrip("/")
            return folder if folder.is_dir() else None
    return None


STALE_SECONDS = 60.0  # an empty group this old was left by a grader that died (a new one is filled at once)


def _remove_stale(parent: Path) -> None:
    """Remove empty groups of this kind that dead graders left under parent."""
    for folder in parent.glob(f"{PREFIX}*"):
        with contextlib.suppress(OSError):
            if time.time() - folder.stat().st_mtime <= STALE_SECONDS:
                continue
            for inner, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):  # the deepest first
                if not Path(inner, "cgroup.procs").read_text():
                    Path(inner).rmdir()  # refused while it holds tasks or groups


def _make(parent: Path, settings: dict[str, str]) -> Path:
    _remove_stale(parent)
    folder = parent / f"{PREFIX}{secrets.token_hex(6)}"
    folder.mkdir(mode=0o700)
    try:
        for name, value in settings.items():
            (folder / name).write_text(value)
    except OSError:
        folder.rmdir()
        raise
    return folder


def create(max_tasks: int, memory_bytes: int) -> StudentGroup:
    """A group limiting tasks and memory; an empty StudentGroup (with the reason) where none can be made."""
    group = StudentGroup()
    limits = {"pids": {"pids.max": str(max_tasks)},
              "memory": {"memory.limit_in_bytes": str(memory_bytes)}}
    made = []
    for controller, settings in limits.items():
        parent = _current(controller)
        if parent is None:
            continue
        try:
            group.folders.append(_make(parent, settings))
            made.append(controller)
        except OSError as exc:
            group.description += f"{controller}: {exc.strerror}; "
    if not made and os.geteuid() == 0:
        group.description = "unavailable (" + (group.description.rstrip("; ") or "no writable cgroup") + ")"
    elif not made:
        group.description = "unavailable (the grader is not root)"
    else:
        group.description = (f"cgroup: at most {max_tasks} tasks" if "pids" in made else "cgroup:") + (
            f", {memory_bytes >> 20} MB of memory" if "memory" in made else "")
    return group
