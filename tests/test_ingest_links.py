"""Hostile submissions: symbolic links, FIFOs, devices, sockets, hard links and huge files.

Ingest never follows a link and accepts only regular files under the size limits, in every layout
(folder per student, bare notebook, gh classroom clone, the single folder Gradescope and Classroom
grade). What is left out is named in that student's report; the rest of the submission is graded,
and nobody else in the batch is affected.

Hard links: a hard link IS a regular file (there is no link to follow: it is the same inode under
another name), so it is accepted like any other regular file. A student cannot make one to a file
of the grader's or a classmate's: hard links cannot cross file systems, and submissions reach the
grader by upload, unzip, copy or clone, none of which carries a hard link to a file outside the
submission. test_hard_link_inside_a_submission_is_an_ordinary_file documents this.
"""
from __future__ import annotations

import os
import signal
import socket
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest

from grader.authoring import notebooks
from grader.config import PROJECT_ROOT
from grader.errors import IngestError
from grader.grade import copy_files
from grader.ingest import submissions as ingest
from grader.ingest.notebook import read_notebook
from grader.ingest.submissions import Submission, discover
from grader.platforms import grade_folder
from tests.conftest import TOY, read_results, run_grader, toy_notebook, write_student

# Reached through /proc/self/cwd: the grader runs from the project root.
MASTER_CNN = "/proc/self/cwd/solutions/cnn_layers/cnn_layers.ipynb"
MASTER_TOY = "/proc/self/cwd/tests/fixtures/toy/toy.ipynb"  # would score full marks if followed
SECRET = "GRADER_LINK_TEST_SECRET"
LINKED = ["weights.h5", "env.txt", "pagemap.bin", "pipe.npy", "data", "solutions", "device", "sock"]
# The student's own code looks for every planted name in its working folder and, if one is there,
# puts its content in a cell error (so the report would show it) and breaks double (losing points).
SPY = (f"import os\nseen = [n for n in {LINKED!r} if os.path.lexists(n)]\n"
       "if seen:\n"
       "    def double(x):\n"
       "        return x\n"
       "    raise RuntimeError('FOUND ' + repr(seen) + repr(open(seen[0], 'rb').read(200)))")
FULL = 11.0


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) if a FIFO or /proc file were ever opened and read."""
    def expired(*_):
        raise TimeoutError(f"took over {seconds} s: something blocked on a FIFO or an endless file")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def make_socket(path: Path) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        return True
    except OSError:  # path too long for AF_UNIX
        return False
    finally:
        sock.close()


def make_device(path: Path) -> bool:
    try:  # /dev/zero's numbers: endless if it were ever read
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))
        return True
    except (PermissionError, OSError):
        return False


def plant_attacks(folder: Path, classmate: Path) -> set[str]:
    """Every kind of non-regular entry in one submission folder; returns the names planted."""
    (folder / "weights.h5").symlink_to(Path("..") / classmate.name / "toy.ipynb")  # a classmate's notebook
    (folder / "env.txt").symlink_to("/proc/self/environ")
    (folder / "pagemap.bin").symlink_to("/proc/self/pagemap")
    os.mkfifo(folder / "pipe.npy")
    (folder / "data").symlink_to(Path("..") / classmate.name, target_is_directory=True)
    (folder / "solutions").symlink_to("/proc/self/cwd/solutions", target_is_directory=True)
    planted = {"weights.h5", "env.txt", "pagemap.bin", "pipe.npy", "data", "solutions"}
    if make_device(folder / "device"):
        planted.add("device")
    if make_socket(folder / "sock"):
        planted.add("sock")
    with open(folder / "big.bin", "wb") as f:  # sparse: costs no disk
        f.truncate(ingest.MAX_FILE_BYTES + 1)
    planted.add("big.bin")
    return planted


def left_out_names(output: str) -> set[str]:
    return {line.split(":")[0].removeprefix("Left out ") for line in output.splitlines()
            if line.startswith("Left out ")}


# ---------------------------------------------------------------- discovery (fast, in-process)

def test_discovery_never_follows_links_in_any_layout(tmp_path):
    write_student(tmp_path, "good", toy_notebook())
    write_student(tmp_path, "alice", toy_notebook())
    planted = plant_attacks(tmp_path / "alice", tmp_path / "good")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "toy.ipynb").symlink_to(MASTER_CNN)
    (tmp_path / "mallory.ipynb").symlink_to(MASTER_CNN)                     # bare notebook, a link
    os.mkfifo(tmp_path / "piper.ipynb")                                    # bare notebook, a FIFO
    (tmp_path / "eve").symlink_to("good", target_is_directory=True)        # a whole folder that is a link
    repo = tmp_path / "toy-assignment-carol"                               # gh classroom clone
    (repo / ".git").mkdir(parents=True)
    (repo / "work").mkdir()
    (repo / "work" / "toy.ipynb").symlink_to(MASTER_TOY)
    (repo / "work" / "notes.ipynb").write_text(notebooks.dumps(toy_notebook()))
    repo2 = tmp_path / "toy-assignment-dave"
    (repo2 / ".git").mkdir(parents=True)
    write_student(repo2, "work", toy_notebook())
    (repo2 / "work" / "env.txt").symlink_to("/proc/self/environ")
    with deadline(20):
        found = {s.student: s for s in discover(tmp_path, "toy.ipynb")}
        digests = {name: sub.digest() for name, sub in found.items()}  # hashing follows nothing either
    assert sorted(found) == ["alice", "carol", "dave", "eve", "good", "linked", "mallory", "piper"]
    assert digests["alice"] != digests["good"]

    alice = found["alice"]
    assert alice.notebook == tmp_path / "alice" / "toy.ipynb" and not alice.problem
    assert alice.files() == [tmp_path / "alice" / "toy.ipynb"]
    assert left_out_names("\n".join(alice.notes)) == planted
    notes = "\n".join(alice.notes)
    assert "Left out env.txt: it is a symbolic link" in notes and "named pipe (FIFO)" in notes
    assert "over the 256 MB limit for one file" in notes
    assert "device" not in planted or "Left out device: it is a device file" in notes
    assert "sock" not in planted or "Left out sock: it is a socket" in notes

    for name, reason in [("linked", "toy.ipynb cannot be graded: it is a symbolic link"),
                         ("mallory", "mallory.ipynb cannot be graded: it is a symbolic link"),
                         ("piper", "piper.ipynb cannot be graded: it is a named pipe"),
                         ("eve", "the submission eve is a symbolic link"),
                         ("carol", "toy.ipynb cannot be graded: it is a symbolic link")]:
        assert found[name].notebook is None and reason in found[name].problem, (name, found[name])
        assert all(not p.is_symlink() for p in found[name].files())
    assert found["dave"].notebook == repo2 / "work" / "toy.ipynb"
    assert found["dave"].notes == ("Left out env.txt: it is a symbolic link (the grader never follows links; "
                                   "submit the file or folder itself)",)


def test_submission_size_limit_keeps_the_notebook_and_names_what_is_left_out(tmp_path, monkeypatch):
    write_student(tmp_path, "alice", toy_notebook())
    size = (tmp_path / "alice" / "toy.ipynb").stat().st_size
    (tmp_path / "alice" / "a.bin").write_bytes(b"a" * 1000)
    (tmp_path / "alice" / "b.bin").write_bytes(b"b" * 1000)
    monkeypatch.setattr(ingest, "MAX_SUBMISSION_BYTES", size + 1500)
    (alice,) = discover(tmp_path, "toy.ipynb")
    assert [p.name for p in alice.files()] == ["a.bin", "toy.ipynb"]
    assert len(alice.notes) == 1 and alice.notes[0].startswith("Left out b.bin: with it the submission would be over")
    target = tmp_path / "copy"
    assert copy_files(alice, target) == list(alice.notes)
    assert sorted(p.name for p in target.iterdir()) == ["a.bin", "toy.ipynb"]


def test_hard_link_inside_a_submission_is_an_ordinary_file(tmp_path):
    """A hard link is a regular file (same inode, no link to follow), so it is accepted and copied."""
    write_student(tmp_path, "alice", toy_notebook())
    (tmp_path / "alice" / "weights.h5").write_bytes(b"weights")
    os.link(tmp_path / "alice" / "weights.h5", tmp_path / "alice" / "weights-copy.h5")
    (alice,) = discover(tmp_path, "toy.ipynb")
    assert alice.notes == ()
    assert [p.name for p in alice.files()] == ["toy.ipynb", "weights-copy.h5", "weights.h5"]
    assert copy_files(alice, tmp_path / "copy") == []
    assert (tmp_path / "copy" / "weights-copy.h5").read_bytes() == b"weights"
    assert not (tmp_path / "copy" / "weights-copy.h5").is_symlink()


# ---------------------------------------------------------------- swapped after discovery (races)

def test_files_swapped_for_links_or_fifos_after_discovery_are_not_followed(tmp_path):
    write_student(tmp_path, "good", toy_notebook())
    folder = tmp_path / "alice"
    write_student(tmp_path, "alice", toy_notebook())
    (folder / "weights.h5").write_bytes(b"mine")
    (folder / "env.txt").write_text("mine")
    (folder / "pipe.npy").write_bytes(b"mine")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.npy").write_bytes(b"mine")
    (alice,) = [s for s in discover(tmp_path, "toy.ipynb") if s.student == "alice"]
    assert alice.notes == ()
    # now, between discovery and copy, every file becomes something else
    (folder / "weights.h5").unlink()
    (folder / "weights.h5").symlink_to("../good/toy.ipynb")
    (folder / "env.txt").unlink()
    (folder / "env.txt").symlink_to("/proc/self/environ")
    (folder / "pipe.npy").unlink()
    os.mkfifo(folder / "pipe.npy")
    (folder / "sub").rename(folder / "real-sub")
    (folder / "sub").symlink_to("../good", target_is_directory=True)
    (tmp_path / "good" / "data.npy").write_bytes(b"classmate")
    with deadline(20):
        notes = copy_files(alice, tmp_path / "copy")
        alice.digest()
    copied = {p.relative_to(tmp_path / "copy").as_posix(): p.read_bytes() for p in (tmp_path / "copy").rglob("*")
              if p.is_file()}
    assert copied.keys() == {"toy.ipynb", "real-sub/data.npy"} and copied["real-sub/data.npy"] == b"mine"
    assert left_out_names("\n".join(notes)) == {"env.txt", "pipe.npy", "sub", "weights.h5"}
    # and the notebook itself, once swapped for a link to the master, is refused when read
    (folder / "toy.ipynb").unlink()
    (folder / "toy.ipynb").symlink_to(MASTER_CNN)
    with pytest.raises(IngestError, match=r"toy\.ipynb cannot be graded: it is a symbolic link"):
        read_notebook(alice.notebook)
    (folder / "toy.ipynb").unlink()
    os.mkfifo(folder / "toy.ipynb")
    with deadline(10), pytest.raises(IngestError, match="named pipe"):
        read_notebook(alice.notebook)


def test_a_file_swapped_between_the_check_and_the_open_is_refused(tmp_path, monkeypatch):
    """The lstat check passes, then the file becomes a FIFO or a link before os.open: the fstat of the
    opened descriptor (or O_NOFOLLOW) refuses it."""
    write_student(tmp_path, "good", toy_notebook())
    folder = tmp_path / "alice"
    write_student(tmp_path, "alice", toy_notebook())
    (folder / "pipe.npy").write_bytes(b"mine")
    (folder / "weights.h5").write_bytes(b"mine")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.npy").write_bytes(b"mine")
    (tmp_path / "good" / "data.npy").write_bytes(b"classmate")
    (alice,) = [s for s in discover(tmp_path, "toy.ipynb") if s.student == "alice"]
    real_open, swapped, opened = os.open, set(), []

    def swapping_open(path, flags, *args, dir_fd=None, **kwargs):
        opened.append(path)  # "sub" is swapped on its second open: after the copy's scan walked it
        if (dir_fd is not None and path not in swapped and path in ("pipe.npy", "weights.h5", "sub")
                and (path != "sub" or opened.count("sub") == 2)):
            swapped.add(path)
            if path == "sub":  # a folder on the way to a file becomes a link to a classmate's folder
                os.rename(path, "real-sub", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                os.symlink("../good", path, dir_fd=dir_fd)
            else:
                os.unlink(path, dir_fd=dir_fd)
                os.mkfifo(path, dir_fd=dir_fd) if path == "pipe.npy" else os.symlink("/proc/self/environ", path,
                                                                                      dir_fd=dir_fd)
        return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

    monkeypatch.setattr(os, "open", swapping_open)
    with deadline(20):
        notes = copy_files(alice, tmp_path / "copy")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["toy.ipynb"]
    assert swapped == {"pipe.npy", "weights.h5", "sub"}
    assert "Left out pipe.npy: it is a named pipe (FIFO), not a regular file" in notes
    assert any(n.startswith("Left out weights.h5: it is a symbolic link") for n in notes)
    assert "Left out sub/data.npy: its folder sub is not a real folder (a link?)" in notes


# ---------------------------------------------------------------- a whole batch, end to end

def test_batch_with_every_attack_grades_everyone_else_normally(tmp_path, monkeypatch):
    submissions, reports = tmp_path / "s", tmp_path / "r"
    write_student(submissions, "good", toy_notebook())
    write_student(submissions, "alice", toy_notebook(extra_cells=[SPY]))
    planted = plant_attacks(submissions / "alice", submissions / "good")
    write_student(submissions, "bob", toy_notebook())                      # a hard link: accepted
    (submissions / "bob" / "weights.h5").write_bytes(b"w")
    os.link(submissions / "bob" / "weights.h5", submissions / "bob" / "weights2.h5")
    (submissions / "linked").mkdir()
    (submissions / "linked" / "toy.ipynb").symlink_to(MASTER_TOY)
    (submissions / "linked-cnn").mkdir()
    (submissions / "linked-cnn" / "toy.ipynb").symlink_to(MASTER_CNN)
    (submissions / "mallory.ipynb").symlink_to(MASTER_TOY)                # bare notebook layout
    (submissions / "environ.ipynb").symlink_to("/proc/self/environ")
    (submissions / "pagemap.ipynb").symlink_to("/proc/self/pagemap")
    os.mkfifo(submissions / "piper.ipynb")
    (submissions / "fifo").mkdir()
    os.mkfifo(submissions / "fifo" / "toy.ipynb")
    monkeypatch.setenv(SECRET, "leaked-secret-value")  # in the grader's environment (/proc/self/environ)
    result = run_grader("grade", str(TOY), str(submissions), "--reports", str(reports), "--jobs", "2", "--quiet",
                        timeout=600)
    assert "10 submissions: 10 graded, 0 unchanged (skipped), 7 with errors" in result.stdout, result.stdout

    for name in ("good", "bob"):
        data = read_results(reports, name)
        assert data["score"] == FULL and "Left out" not in data["output"], (name, data["output"])
    alice = read_results(reports, "alice")
    assert alice["score"] == FULL and "FOUND" not in alice["output"], alice["output"]
    assert left_out_names(alice["output"]) == planted
    for name, reason in [("linked", "symbolic link"), ("linked-cnn", "symbolic link"), ("mallory", "symbolic link"),
                         ("environ", "symbolic link"), ("pagemap", "symbolic link"), ("piper", "named pipe"),
                         ("fifo", "named pipe")]:
        data = read_results(reports, name)
        assert data["score"] == 0 and reason in data["extra_data"]["problem"], (name, data["extra_data"]["problem"])
        assert not data["extra_data"].get("grader_error")
    everything = "".join(p.read_text() for p in reports.rglob("*.json"))
    assert "leaked-secret-value" not in everything and SECRET not in everything


# ---------------------------------------------------------------- Gradescope / Classroom single folder

def test_single_folder_platform_path_never_follows_links(toy, tmp_path):
    classmate = tmp_path / "classmate"
    write_student(tmp_path, "classmate", toy_notebook())
    submission = tmp_path / "submission"                                  # what Gradescope unpacks
    submission.mkdir()
    (submission / "toy.ipynb").write_text(notebooks.dumps(toy_notebook(extra_cells=[SPY])))
    planted = plant_attacks(submission, classmate)
    (submission / ".venv").symlink_to("/proc/self/cwd", target_is_directory=True)  # excluded by name: silent
    with deadline(300):
        results = grade_folder(toy, submission, "alice", tmp_path / "reports", exclude={".venv"})
    assert results.score == FULL and not results.meta.grader_error and "FOUND" not in results.output, results.output
    assert left_out_names(results.output) == planted

    linked = tmp_path / "linked"                                          # the notebook itself is a link
    linked.mkdir()
    (linked / "toy.ipynb").symlink_to(PROJECT_ROOT / "tests" / "fixtures" / "toy" / "toy.ipynb")
    os.mkfifo(linked / "pipe")
    with deadline(300):
        results = grade_folder(toy, linked, "bob", tmp_path / "reports")
    assert results.score == 0 and not results.meta.grader_error
    assert "toy.ipynb cannot be graded: it is a symbolic link" in results.meta.problem
    assert "Left out pipe: it is a named pipe (FIFO)" in results.output


def test_bare_notebook_that_is_a_regular_file_is_still_graded(tmp_path):
    (tmp_path / "zoe.ipynb").write_text(notebooks.dumps(toy_notebook()))
    (tmp_path / "yan.ipynb").symlink_to(tmp_path / "zoe.ipynb")
    found = {s.student: s for s in discover(tmp_path, "toy.ipynb")}
    assert found["zoe"].files() == [tmp_path / "zoe.ipynb"] and not found["zoe"].problem
    assert found["yan"].notebook is None and "symbolic link" in found["yan"].problem
    assert isinstance(found["zoe"], Submission) and read_notebook(found["zoe"].notebook).cells
