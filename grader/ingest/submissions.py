"""Find the submissions in a folder, whatever layout it has.

Accepted layouts, mixed freely:
- `<student>/` holding one notebook and whatever files sit beside it (subfolders allowed);
- a bare `<student>.ipynb`;
- the repositories `gh classroom clone student-repos` produces: `<assignment-prefix>-<student>/`
  with a `.git` folder; the common prefix is dropped from the student names.

Submissions are hostile input. Nothing here follows a symbolic link: folders are walked with
lstat semantics (a linked folder is never descended into) and only regular files are accepted,
each under MAX_FILE_BYTES and together under MAX_SUBMISSION_BYTES. Links, FIFOs, devices,
sockets and oversized files are left out, and each one left out becomes a note in that student's
report. Files are opened only through open_regular (O_NOFOLLOW on every path component,
O_NONBLOCK, then fstat of the opened descriptor), so a file swapped for a link or a FIFO after it
was discovered is refused too. A hard link is an ordinary regular file and is accepted like one.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path, PurePath

from grader.errors import SubmissionsError

log = logging.getLogger(__name__)

SKIP_PARTS = {".git", ".ipynb_checkpoints", "__pycache__", ".github"}
MAX_FILE_BYTES = 256 << 20        # one file (the notebook included)
MAX_SUBMISSION_BYTES = 512 << 20  # all the files of one submission
MAX_ENTRIES = 10_000              # files and folders looked at in one submission
MAX_DEPTH = 32                    # folders inside folders
CHUNK = 1 << 20

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | _CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | _CLOEXEC


class UnsafeFile(Exception):
    """A path that is not a regular file of acceptable size; the message says why, for the student."""


def kind_of(mode: int) -> str:
    """What a file that is not a regular file is, in words a student understands."""
    if stat.S_ISLNK(mode):
        return "a symbolic link (the grader never follows links; submit the file or folder itself)"
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    return "not a regular file"


def _mb(size: int) -> str:
    return f"{size / (1 << 20):.0f} MB" if size >= 1 << 20 else f"{size} bytes"


def too_big(size: int) -> str:
    return f"it is over the {MAX_FILE_BYTES >> 20} MB limit for one file ({size:,} bytes)"


def left_out(rel: str, reason: str) -> str:
    """The note a student reads about a file of theirs the grader did not use."""
    return f"Left out {rel}: {reason}"


def _regular_or_raise(st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"it is {kind_of(st.st_mode)}")
    if st.st_size > limit:
        raise UnsafeFile(too_big(st.st_size))


def open_regular(base: Path, rel: PurePath | str, limit: int | None = None) -> int:
    """A read-only descriptor of base/rel, which must be a regular file of at most limit bytes.

    base is the grader's own (trusted) path; no component of rel may be a link: every folder is
    opened with O_NOFOLLOW relative to its parent's descriptor, the file with O_NOFOLLOW|O_NONBLOCK
    (a FIFO never blocks), and the opened descriptor is fstat-ed, so what is read is what was checked.
    Raises UnsafeFile with a student-readable reason.
    """
    limit = MAX_FILE_BYTES if limit is None else limit
    parts = PurePath(rel).parts
    if not parts or any(p in ("..", "/") for p in parts):
        raise UnsafeFile("its path leaves the submission")
    try:
        dir_fd = os.open(base, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError as exc:
        raise UnsafeFile(f"its folder could not be opened ({exc.strerror})")
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeFile(f"its folder {part} is not a real folder (a link?)")
                raise UnsafeFile(f"its folder {part} could not be opened ({exc.strerror})")
            os.close(dir_fd)
            dir_fd = inner
        try:  # refuse what is visibly not a regular file without even opening it (devices)
            _regular_or_raise(os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False), limit)
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFile(f"it is {kind_of(stat.S_IFLNK)}")
            raise UnsafeFile(f"it could not be opened ({exc.strerror})")
    finally:
        os.close(dir_fd)
    try:
        _regular_or_raise(os.fstat(fd), limit)  # swapped between the check and the open
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_chunks(fd: int, limit: int | None = None, what: str = "for one file"):
    """The bytes of an open_regular descriptor, in chunks; UnsafeFile if there are more than limit."""
    limit = MAX_FILE_BYTES if limit is None else limit
    total = 0
    while chunk := os.read(fd, CHUNK):
        total += len(chunk)
        if total > limit:
            raise UnsafeFile(f"it is over the {_mb(limit)} limit {what}")
        yield chunk


def read_regular(base: Path, rel: PurePath | str, limit: int | None = None) -> bytes:
    """The whole content of base/rel, opened with open_regular."""
    fd = open_regular(base, rel, limit)
    try:
        return b"".join(read_chunks(fd, limit))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Scan:
    """The regular files accepted in a folder (relative paths, in order) and a note per entry left out."""
    files: tuple[str, ...]
    notes: tuple[str, ...]
    left_out: tuple[tuple[str, str], ...]  # (relative path, reason)


def scan(folder: Path, skip: set[str] | frozenset[str] = frozenset(SKIP_PARTS), first: str | None = None) -> Scan:
    """Walk folder without following links; accept regular files within the size limits.

    Entries named in skip (at any depth) are ignored silently. `first` (a relative path, the
    notebook), then the other notebooks, are counted before the other files against the
    submission's size limit.
    """
    sizes: dict[str, int] = {}
    dropped: list[tuple[str, str]] = []
    budget = [MAX_ENTRIES]

    def walk(dir_fd: int, prefix: str, depth: int) -> None:
        with os.scandir(dir_fd) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.name in skip:
                continue
            rel = prefix + entry.name
            budget[0] -= 1
            if budget[0] < 0:
                if budget[0] == -1:
                    dropped.append((rel + " and everything after it",
                                    f"the submission holds more than {MAX_ENTRIES} files and folders"))
                return
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                dropped.append((rel, f"it could not be examined ({exc.strerror})"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if depth >= MAX_DEPTH:
                    dropped.append((rel + "/", f"folders are nested more than {MAX_DEPTH} deep"))
                    continue
                try:
                    inner = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
                except OSError as exc:
                    dropped.append((rel, f"it is {kind_of(stat.S_IFLNK)}" if exc.errno in (errno.ELOOP, errno.ENOTDIR)
                                    else f"the folder could not be opened ({exc.strerror})"))
                    continue
                try:
                    walk(inner, rel + "/", depth + 1)
                finally:
                    os.close(inner)
            elif stat.S_ISLNK(st.st_mode):
                dropped.append((rel, f"it is {kind_of(st.st_mode)}"))
            elif not stat.S_ISREG(st.st_mode):
                dropped.append((rel, f"it is {kind_of(st.st_mode)}"))
            elif st.st_size > MAX_FILE_BYTES:
                dropped.append((rel, too_big(st.st_size)))
            else:
                sizes[rel] = st.st_size

    try:
        top = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError as exc:
        return Scan((), (left_out(folder.name, f"the folder could not be opened ({exc.strerror})"),), ())
    try:
        walk(top, "", 0)
    finally:
        os.close(top)
    order = sorted(sizes, key=lambda r: (r != first, not r.endswith(".ipynb"), r))
    accepted, total = [], 0
    for rel in order:
        if total + sizes[rel] > MAX_SUBMISSION_BYTES:
            dropped.append((rel, f"with it the submission would be over the {MAX_SUBMISSION_BYTES >> 20} MB limit "
                                 "(remove datasets and large files; keep the notebook and the weights files)"))
            continue
        total += sizes[rel]
        accepted.append(rel)
    dropped.sort()
    return Scan(tuple(sorted(accepted)), tuple(left_out(rel, why) for rel, why in dropped), tuple(dropped))


@dataclass(frozen=True)
class Submission:
    """One student's notebook and the folder of files that go with it."""
    student: str           # the report folder's name (report_folder of the original name)
    notebook: Path | None  # None when no usable notebook was found
    folder: Path | None    # the files copied beside the notebook; None for a bare notebook
    problem: str = ""      # why the submission cannot be graded, for the student
    notes: tuple[str, ...] = ()  # files left out at discovery (links, FIFOs, oversized...), for the student
    name: str = ""         # the student's name as submitted (folder, notebook or GitHub user); shown in reports
    repo: Path | None = None  # the git clone it comes from (a `gh classroom clone` folder, or one inside the folder)

    @property
    def display_name(self) -> str:
        return self.name or self.student

    @property
    def missing(self) -> bool:
        """True when nothing gradable was submitted (no notebook at all), as opposed to a broken notebook."""
        return self.notebook is None and self.problem.startswith(NO_NOTEBOOK)

    @property
    def base(self) -> Path | None:
        """The folder the submission's relative paths start from."""
        return self.folder or (self.notebook.parent if self.notebook else None)

    def scan(self) -> Scan:
        """The submission's acceptable regular files, as of now (see scan())."""
        if self.folder is not None:
            first = self.notebook.relative_to(self.folder).as_posix() if self.notebook else None
            return scan(self.folder, first=first)
        if self.notebook is None:
            return Scan((), (), ())
        try:
            _regular_or_raise(os.lstat(self.notebook), MAX_FILE_BYTES)
        except OSError as exc:
            return Scan((), (left_out(self.notebook.name, f"it could not be examined ({exc.strerror})"),), ())
        except UnsafeFile as exc:
            return Scan((), (left_out(self.notebook.name, str(exc)),), ((self.notebook.name, str(exc)),))
        return Scan((self.notebook.name,), (), ())

    def files(self) -> list[Path]:
        """Every file of the submission that is graded (the notebook included): regular files only."""
        base = self.base
        return [base / rel for rel in self.scan().files] if base else []

    def digest(self) -> str:
        """sha256 over the submission's relative paths, contents and what was left out (never follows a link)."""
        digest = hashlib.sha256()
        base = self.base
        found = self.scan() if base is not None else Scan((), (), ())
        for rel in found.files:
            assert base is not None
            digest.update(rel.encode() + b"\0")
            content = hashlib.sha256()
            try:
                fd = open_regular(base, rel)
                try:
                    for chunk in read_chunks(fd):
                        content.update(chunk)
                finally:
                    os.close(fd)
            except (UnsafeFile, OSError) as exc:
                content = hashlib.sha256(f"left out: {exc}".encode())
            digest.update(content.digest())
        for note in (*self.notes, *found.notes):
            digest.update(b"note\0" + note.encode() + b"\0")
        return digest.hexdigest()


# Files a batch writes at the top of REPORTS (and other names a folder must never take), lower case.
RESERVED_NAMES = frozenset({
    "gradebook.csv", "summary.html", ".grader-run.json", "overrides.csv", "submitted_at.csv", "diff.csv",
    "similarity.csv", "similarity.html",
    "bench.json", "results.json", "feedback.md", "feedback.html", "junit.xml", "index.html",
    "con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))})
MAX_FOLDER_CHARS = 64
_SAFE_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
NO_NOTEBOOK = "no notebook (.ipynb) was found in the submission"


def printable(text: str) -> str:
    """text with every control character (a terminal's escape sequences, new lines) replaced by U+FFFD."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def original_name(name: str) -> str:
    """A name as found on disk, made printable: NFC (a Mac's NFD names equal typed ones), undecodable bytes replaced."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return unicodedata.normalize("NFC", printable(text))


def name_hash(name: str) -> str:
    """8 hex digits of the sha256 of a name (after original_name)."""
    return hashlib.sha256(original_name(name).encode()).hexdigest()[:8]


def report_folder(name: str) -> str:
    """The report folder of a student: safe, stable and unique, a function of the name alone.

    A name of at most MAX_FOLDER_CHARS ASCII letters, digits and ._@+- (starting with a letter or digit),
    not one of RESERVED_NAMES, is its own folder. Any other name (non-ASCII, other characters, too long,
    reserved) gets an ASCII slug of itself plus "-" and name_hash: two different names never share a
    folder, and a student keeps the same folder whoever else is in the class.
    """
    name = original_name(name)
    if len(name) <= MAX_FOLDER_CHARS and _SAFE_FOLDER.fullmatch(name) and name.lower() not in RESERVED_NAMES \
            and not name.endswith("."):
        return name
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._@+-]+", "_", ascii_name).strip("._-+@")
    slug = slug[:MAX_FOLDER_CHARS - 9].rstrip("._-+@") or "student"
    return f"{slug}-{name_hash(name)}"


def safe_name(name: str) -> str:
    """A student name usable as a folder name (see report_folder)."""
    return report_folder(name)


def _common_prefix(names: list[str]) -> str:
    if len(names) < 2:
        return ""
    prefix = os.path.commonprefix(names)
    return prefix[:prefix.rfind("-") + 1] if "-" in prefix else ""


def not_a_notebook(name: str, reason: str) -> str:
    return f"the notebook {name} cannot be graded: {reason}"


def from_folder(folder: Path, student: str, notebook_name: str,
                skip: set[str] | frozenset[str] = frozenset(SKIP_PARTS)) -> Submission:
    """The submission in one student's folder (links are never followed; see scan())."""
    whole = scan(folder, skip)
    found = [r for r in whole.files if r.endswith(".ipynb")]
    refused = {r: why for r, why in whole.left_out if r.endswith(".ipynb")}
    named = [r for r in (*found, *refused) if PurePath(r).name == notebook_name]
    if len(named) == 1:
        chosen = named[0]
    elif len(found) == 1:
        chosen = found[0]
    elif not found and refused:
        chosen = sorted(refused)[0]
    elif not found:
        others = ", ".join(whole.files[:10]) + (f" and {len(whole.files) - 10} more" if len(whole.files) > 10 else "")
        return Submission(student, None, folder, NO_NOTEBOOK + (f" (found: {others})" if others else ""), whole.notes)
    else:
        return Submission(student, None, folder,
                          f"several notebooks were found ({', '.join(found)}); name the one to grade {notebook_name}",
                          whole.notes)
    if chosen in refused:
        notes = tuple(n for n in whole.notes if n != left_out(chosen, refused[chosen]))
        return Submission(student, None, folder, not_a_notebook(chosen, refused[chosen]), notes)
    notebook = folder / chosen  # only the notebook's folder is graded: say what was left out there
    return Submission(student, notebook, notebook.parent, notes=scan(notebook.parent, skip, first=notebook.name).notes)


def _repository(folder: Path, notebook: Path | None) -> Path | None:
    """The git clone a student folder is or holds: the folder itself, or the nearest folder above the
    notebook that has a .git (a student folder holding the clone of their repository)."""
    for candidate in [*(notebook.parents if notebook else ()), folder]:
        if candidate == folder or folder in candidate.parents:
            if os.path.lexists(candidate / ".git"):
                return candidate
    return None


def discover(root: Path, notebook_name: str) -> list[Submission]:
    """All submissions under root, sorted by name. Links inside root are never followed.

    Each submission's report folder is report_folder(its name): stable whatever else is in root.
    Raises SubmissionsError when root holds nothing to grade (no student folder and no notebook),
    naming the files that are not notebooks.
    """
    root = Path(root)
    if not root.is_dir():
        raise SubmissionsError(f"submissions folder not found: {root}")
    with os.scandir(root) as it:
        entries = sorted((e for e in it if e.name not in SKIP_PARTS), key=lambda e: e.name)
    folders = [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    prefix = _common_prefix([p.name for p in folders if os.path.lexists(p / ".git")])
    found: list[tuple[str, str, Submission]] = []  # (original name, entry name, submission)
    for folder in folders:
        is_repo = os.path.lexists(folder / ".git")
        name = original_name(folder.name[len(prefix):] if prefix and is_repo else folder.name)
        submission = from_folder(folder, report_folder(name), notebook_name)
        found.append((name, folder.name, replace(submission, repo=_repository(folder, submission.notebook))))
    not_notebooks = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        is_notebook = entry.name.endswith(".ipynb")
        name = original_name(path.stem if is_notebook else entry.name)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            if is_notebook:
                found.append((name, entry.name, Submission(report_folder(name), None, None, not_a_notebook(
                    entry.name, f"it could not be examined ({exc.strerror})"))))
            continue
        if stat.S_ISLNK(st.st_mode) and not is_notebook:
            found.append((name, entry.name, Submission(report_folder(name), None, None,
                                                       f"the submission {entry.name} is {kind_of(st.st_mode)}")))
        elif is_notebook:
            try:
                _regular_or_raise(st, MAX_FILE_BYTES)
                found.append((name, entry.name, Submission(report_folder(name), path, None)))
            except UnsafeFile as exc:
                found.append((name, entry.name, Submission(report_folder(name), None, None,
                                                           not_a_notebook(entry.name, str(exc)))))
        else:
            not_notebooks.append(original_name(entry.name))
    if found and not_notebooks:
        log.warning("left out of %s, not a notebook: %s", root, ", ".join(not_notebooks))
    if not found:
        listed = (": not a notebook: " + ", ".join(not_notebooks[:20])
                  + (f" and {len(not_notebooks) - 20} more" if len(not_notebooks) > 20 else "")) if not_notebooks else ""
        raise SubmissionsError(f"no submissions found in {root}: it holds no notebook (.ipynb) and no student "
                               f"folder{listed or ' (it is empty)'}")
    return _unique(found)


def _unique(found: list[tuple[str, str, Submission]]) -> list[Submission]:
    """One Submission per report folder, with its original name. When two entries have the same name
    (a folder alice/ and a notebook alice.ipynb), the folder keeps the name and each other entry is
    named by its entry name and gets its own hashed folder: the choice depends only on those entries."""
    by_folder: dict[str, list[tuple[str, str, Submission]]] = {}
    for item in found:
        by_folder.setdefault(item[2].student, []).append(item)
    unique = []
    for items in by_folder.values():
        items.sort(key=lambda item: (item[2].folder is None, item[1]))
        for i, (name, entry, sub) in enumerate(items):
            if i:
                name = f"{name} ({entry})"
                sub = replace(sub, student=report_folder(name))
            unique.append(replace(sub, name=name))
    return sorted(unique, key=lambda s: (s.display_name.casefold(), s.student))


def select_students(submissions: list[Submission], names: list[str]) -> list[Submission]:
    """The submissions of the students named (original name or report folder); SubmissionsError for a name
    that matches none."""
    wanted = {original_name(n): n for n in names}
    chosen = [s for s in submissions if s.display_name in wanted or s.student in wanted]
    known = {s.display_name for s in chosen} | {s.student for s in chosen}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        import difflib
        everyone = [s.display_name for s in submissions]
        hints = [m for n in unknown for m in difflib.get_close_matches(n, everyone, n=3)]
        raise SubmissionsError(f"no submission for --student {', '.join(unknown)}"
                               + (f" (did you mean {', '.join(dict.fromkeys(hints))}?)" if hints else ""))
    return chosen


def select_shard(submissions: list[Submission], shard: str) -> list[Submission]:
    """The submissions of shard "i/N" (1-based): a deterministic 1/N by a hash of the student name."""
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise SubmissionsError(f"--shard must look like i/N (e.g. 2/4), not {shard!r}")
    if not 1 <= index <= count:
        raise SubmissionsError(f"--shard {shard}: i must be between 1 and N")
    return [s for s in submissions if shard_of(s.student, count) == index]


def shard_of(student: str, count: int) -> int:
    """The shard (1..count) of a student's report folder: a hash of it, the same on every machine."""
    return int.from_bytes(hashlib.sha256(student.encode()).digest()[:8], "big") % count + 1
