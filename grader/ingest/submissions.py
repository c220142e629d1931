"""Find the submissions in a folder, whatever layout it has.

Accepted layouts, mixed freely:
- `<student>/` holding one notebook and whatever files sit beside it (subfolders allowed);
- a bare `<student>.ipynb`;
- the repositories `gh classroom clone student-repos` produces: `<assignment-prefix>-<student>/`
  with a `.git` folder; the common prefix is dropped from the student names.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from grader.errors import SubmissionsError

SKIP_PARTS = {".git", ".ipynb_checkpoints", "__pycache__", ".github"}


@dataclass(frozen=True)
class Submission:
    """One student's notebook and the folder of files that go with it."""
    student: str
    notebook: Path | None  # None when no usable notebook was found
    folder: Path | None    # the files copied beside the notebook; None for a bare notebook
    problem: str = ""      # why the submission cannot be graded, for the student

    def files(self) -> list[Path]:
        """Every file of the submission (the notebook included)."""
        if self.folder is None:
            return [self.notebook] if self.notebook else []
        return sorted(p for p in self.folder.rglob("*")
                      if p.is_file() and not SKIP_PARTS & set(p.relative_to(self.folder).parts))

    def digest(self) -> str:
        """sha256 over the submission's relative paths and contents."""
        digest = hashlib.sha256()
        base = self.folder or (self.notebook.parent if self.notebook else None)
        for path in self.files():
            digest.update(str(path.relative_to(base)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


def safe_name(name: str) -> str:
    """A student name usable as a folder name."""
    return re.sub(r"[^A-Za-z0-9._@+-]+", "_", name).strip("._") or "student"


def _notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.ipynb")
                  if not SKIP_PARTS & set(p.relative_to(folder).parts))


def _common_prefix(names: list[str]) -> str:
    if len(names) < 2:
        return ""
    prefix = os.path.commonprefix(names)
    return prefix[:prefix.rfind("-") + 1] if "-" in prefix else ""


def _from_folder(folder: Path, student: str, notebook_name: str) -> Submission:
    found = _notebooks(folder)
    named = [p for p in found if p.name == notebook_name]
    if len(found) == 1 or len(named) == 1:
        notebook = found[0] if len(found) == 1 else named[0]
        return Submission(student, notebook, notebook.parent)
    if not found:
        return Submission(student, None, folder, "no notebook (.ipynb) was found in the submission")
    names = ", ".join(str(p.relative_to(folder)) for p in found)
    return Submission(student, None, folder,
                      f"several notebooks were found ({names}); name the one to grade {notebook_name}")


def discover(root: Path, notebook_name: str) -> list[Submission]:
    """All submissions under root, sorted by student name."""
    root = Path(root)
    if not root.is_dir():
        raise SubmissionsError(f"submissions folder not found: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name not in SKIP_PARTS)
    prefix = _common_prefix([p.name for p in folders if (p / ".git").exists()])
    submissions = []
    for folder in folders:
        name = folder.name[len(prefix):] if prefix and (folder / ".git").exists() else folder.name
        submissions.append(_from_folder(folder, safe_name(name), notebook_name))
    for notebook in sorted(root.glob("*.ipynb")):
        submissions.append(Submission(safe_name(notebook.stem), notebook, None))
    seen: dict[str, int] = {}
    unique = []
    for sub in sorted(submissions, key=lambda s: s.student):
        seen[sub.student] = seen.get(sub.student, 0) + 1
        if seen[sub.student] > 1:
            sub = Submission(f"{sub.student}-{seen[sub.student]}", sub.notebook, sub.folder, sub.problem)
        unique.append(sub)
    return unique


def select_shard(submissions: list[Submission], shard: str) -> list[Submission]:
    """The submissions of shard "i/N" (1-based): a deterministic 1/N by a hash of the student name."""
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise SubmissionsError(f"--shard must look like i/N (e.g. 2/4), not {shard!r}")
    if not 1 <= index <= count:
        raise SubmissionsError(f"--shard {shard}: i must be between 1 and N")
    return [s for s in submissions
            if int.from_bytes(hashlib.sha256(s.student.encode()).digest()[:8], "big") % count == index - 1]
