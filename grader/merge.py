"""Merge the reports of several shards (make grade SHARD=i/N) into one reports folder."""
from __future__ import annotations

import shutil
from pathlib import Path

from grader.config import Assignment, load_assignment
from grader.errors import SubmissionsError
from grader.results import Results, RunRecord


def merge_reports(shards: list[Path], out: Path) -> tuple[Assignment, list[str]]:
    """Copy every shard's student folders into out; return the assignment and all students.

    A student graded in two shards is an error: shards must partition the submissions.
    """
    owner: dict[str, Path] = {}
    for shard in shards:
        for results_file in sorted(Path(shard).glob("*/results.json")):
            student = results_file.parent.name
            if student in owner:
                raise SubmissionsError(f"{student} was graded in both {owner[student]} and {shard}")
            owner[student] = Path(shard)
    if not owner:
        raise SubmissionsError("no results.json found in " + ", ".join(map(str, shards)))
    refs = {Results.read(shard / student / "results.json").meta.assignment
            for student, shard in owner.items()}
    if len(refs) != 1:
        raise SubmissionsError(f"the shards graded different assignments: {sorted(map(str, refs))}")
    out.mkdir(parents=True, exist_ok=True)
    for student, shard in owner.items():
        if (shard / student).resolve() != (out / student).resolve():
            shutil.copytree(shard / student, out / student, dirs_exist_ok=True)
    records = [r for r in map(RunRecord.read, shards) if r is not None]
    if records:  # the shards ran side by side: the class took as long as the longest
        RunRecord(wall_seconds=max(r.wall_seconds for r in records), graded=sum(r.graded for r in records),
                  unchanged=sum(r.unchanged for r in records), jobs=max(r.jobs for r in records),
                  finished=max(r.finished for r in records), interrupted=any(r.interrupted for r in records),
                  shards=len(records)).write(out)
    return load_assignment(refs.pop()), sorted(owner)
