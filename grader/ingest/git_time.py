"""The time of the last commit of a `gh classroom clone` folder, read without trusting the repository.

The repository is the student's: its config, hooks, attributes and links are hostile. Nothing of it is
run or even read as configuration. HEAD and the branch it names are read as plain text through
open_regular (no link is followed); git then reads only the commit object, from the student's object
folder, inside a fresh, empty repository of the grader's own (no repository, global or system config, no
hooks, no pager, no replace objects), with a time limit. A committer date is whatever the student's git
said: a TA who needs push times writes them into REPORTS/submitted_at.csv, which takes precedence.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import stat
import subprocess
import tempfile
from pathlib import Path

from grader.ingest.submissions import UnsafeFile, read_regular

log = logging.getLogger(__name__)
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REF = re.compile(r"refs/[A-Za-z0-9._/-]+")
MAX_REF_BYTES = 4096
MAX_PACKED_REFS = 4 << 20
GIT_TIMEOUT = 10.0


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def head_commit(git_dir: Path) -> str | None:
    """The commit HEAD points at, read as text (loose ref, then packed-refs); None if it cannot be told."""
    try:
        head = read_regular(git_dir, "HEAD", MAX_REF_BYTES).decode("ascii").strip()
        if _SHA.fullmatch(head):
            return head
        ref = head.removeprefix("ref: ").strip()
        if not head.startswith("ref: ") or not _REF.fullmatch(ref) or ".." in ref:
            return None
        try:
            sha = read_regular(git_dir, ref, MAX_REF_BYTES).decode("ascii").strip()
            return sha if _SHA.fullmatch(sha) else None
        except UnsafeFile:
            pass  # not a loose ref: look in packed-refs
        for line in read_regular(git_dir, "packed-refs", MAX_PACKED_REFS).decode("ascii").splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref and _SHA.fullmatch(sha):
                return sha
    except (UnsafeFile, UnicodeDecodeError):
        return None
    return None


def last_commit_time(repo: Path) -> dt.datetime | None:
    """The committer date (with its offset) of HEAD in repo/.git; None when it cannot be read safely."""
    git_dir = Path(repo) / ".git"
    if not _is_real_dir(git_dir) or not _is_real_dir(git_dir / "objects"):
        return None
    info = git_dir / "objects" / "info"
    if any(os.path.lexists(info / name) for name in ("alternates", "http-alternates")):
        log.warning("no commit time for %s: its objects point to other object folders (alternates)", repo)
        return None  # git would read objects outside the clone, or wait on a FIFO named there
    sha = head_commit(git_dir)
    if sha is None:
        return None
    with tempfile.TemporaryDirectory(prefix="grader-git-") as tmp:
        own = Path(tmp) / "repo.git"
        for folder in ("objects", "refs"):
            (own / folder).mkdir(parents=True)
        (own / "HEAD").write_text("ref: refs/heads/main\n")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "LC_ALL": "C",
               "GIT_DIR": str(own), "GIT_OBJECT_DIRECTORY": str(git_dir / "objects"),
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_NO_REPLACE_OBJECTS": "1",
               "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "GIT_OPTIONAL_LOCKS": "0"}
        command = ["git", "--no-pager", "-c", "core.hooksPath=/dev/null", "-c", "log.showSignature=false",
                   "show", "-s", "--no-notes", "--format=%cI", sha, "--"]
        try:
            done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("could not read the last commit of %s: %s", repo, exc)
            return None
    if done.returncode != 0:
        log.info("no commit time for %s: git said %s", repo, done.stderr.strip()[:200])
        return None
    try:
        return dt.datetime.fromisoformat(done.stdout.strip())
    except ValueError:
        return None
