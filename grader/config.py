"""An assignment is a folder: master notebook, hidden tests, and a small config (assignment.toml).

The config is parsed and validated once, here, into a typed Assignment. An unknown key, a wrong
type or a value outside its allowed set is a ConfigError naming the file, the key and what is allowed.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import tomllib
import zoneinfo
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from grader.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = PROJECT_ROOT / "solutions"
STARTERS_DIR = PROJECT_ROOT / "assignments"
CATEGORIES = ("shape", "value", "gradient", "params", "structure", "accuracy")
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
CELL_MODES = ("all", "definitions")
DATASETS = ("mnist", "cifar10")


@dataclass(frozen=True)
class Limits:
    """Resource limits of the student process. A call or a cell is stopped once it has used call_timeout or
    cell_timeout seconds of CPU time, or three times that plus 10 s on the clock (grader.sandbox.process.wall_cap)."""
    call_timeout: float = 10.0
    cell_timeout: float = 60.0
    memory_mb: int = 2048
    cpu_seconds: int = 900
    submission_budget: float = 900.0
    output_chars: int = 4000
    reply_mb: int = 64
    disk_mb: int = 512
    worker_memory_mb: int = 8192  # the grading worker with its student processes (TensorFlow in both)


@dataclass(frozen=True)
class LatePolicy:
    """[late]: the due date (with its time zone), a grace period, and the penalty per day late.

    A submission later than due + grace is late by ceil((submitted - due) / 1 day) days; it loses
    per_day x days, or table[days - 1] (the last entry for any later day), of its score, at most maximum.
    """
    due: dt.datetime                  # aware: an offset or [late] timezone
    grace_minutes: float = 0.0
    per_day: float = 0.0              # fraction of the score per day late (0.1: 10 %)
    table: tuple[float, ...] = ()     # fraction of the score for day 1, 2, ... late (instead of per_day)
    maximum: float = 1.0              # the penalty never exceeds this fraction

    def days_late(self, submitted: dt.datetime) -> int:
        """Whole days late (a part of a day counts as a day); 0 on time or within the grace period."""
        late = (submitted - self.due).total_seconds()
        if late <= 60 * self.grace_minutes:
            return 0
        return math.ceil(late / 86400)

    def fraction(self, days: int) -> float:
        """The fraction of the score taken off for this many days late."""
        if days <= 0:
            return 0.0
        value = self.table[min(days, len(self.table)) - 1] if self.table else self.per_day * days
        return min(value, self.maximum)


@dataclass(frozen=True)
class Assignment:
    """One assignment folder and its validated config."""
    name: str
    folder: Path
    title: str
    notebook: str
    functions: tuple[str, ...]
    limits: Limits
    cells: str
    forbidden_modules: tuple[str, ...]
    hidden_visibility: str
    submission_files: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    thresholds: dict[str, float] = field(default_factory=dict)
    retraining_limits: dict[str, int] = field(default_factory=dict)  # [retraining]: e.g. lenet_max_params
    solution_weights_after: tuple[str, ...] = ()
    hidden_output: bool = False  # [visibility] hidden_output: show hidden tests' messages to students
    late: LatePolicy | None = None  # [late]: no table, no late penalty

    @property
    def ref(self) -> str:
        """What load_assignment needs to find this assignment again: its name, or its folder."""
        return self.name if self.folder.parent == SOLUTIONS_DIR.resolve() else str(self.folder)

    @property
    def master(self) -> Path:
        return self.folder / self.notebook

    @property
    def tests_dir(self) -> Path:
        return self.folder / "tests"

    @property
    def starter(self) -> Path:
        return STARTERS_DIR / self.name / self.notebook

    def digest(self) -> str:
        """Hash of everything in the folder that can change a grade (tests, config, master)."""
        return tree_digest(self.folder)


def tree_digest(folder: Path, skip: tuple[str, ...] = (".git", "__pycache__", ".ipynb_checkpoints")) -> str:
    """sha256 over the relative paths and contents of every file under folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part in skip for part in rel.parts):
            continue
        digest.update(str(rel).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class _Table:
    """One table of the TOML file, read key by key; leftover keys are errors."""

    def __init__(self, path: Path, prefix: str, data: Any):
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: [{prefix}] must be a table")
        self.path, self.prefix, self.data = path, prefix, dict(data)

    def _fail(self, key: str, allowed: str) -> ConfigError:
        return ConfigError(f"{self.path}: {self.prefix + '.' if self.prefix else ''}{key} must be {allowed}, "
                           f"not {self.data[key]!r}")

    def text(self, key: str, default: str, allowed: tuple[str, ...] = ()) -> str:
        value = self.data.pop(key, default)
        if not isinstance(value, str) or (allowed and value not in allowed):
            self.data[key] = value
            raise self._fail(key, f"one of {', '.join(allowed)}" if allowed else "a string")
        return value

    def texts(self, key: str, allowed: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.data.pop(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and (not allowed or v in allowed)
                                                  for v in value):
            self.data[key] = value
            raise self._fail(key, f"a list of {', '.join(allowed)}" if allowed else "a list of strings")
        return tuple(value)

    def number(self, key: str, default: float, kind: type = float) -> Any:
        value = self.data.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                kind is int and not isinstance(value, int)):
            self.data[key] = value
            raise self._fail(key, f"a non-negative {'integer' if kind is int else 'number'}")
        return kind(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.pop(key, default)
        if not isinstance(value, bool):
            self.data[key] = value
            raise self._fail(key, "true or false")
        return value

    def table(self, key: str) -> _Table:
        return _Table(self.path, f"{self.prefix}.{key}" if self.prefix else key, self.data.pop(key, {}))

    def done(self) -> None:
        """Refuse the keys nobody read."""
        if self.data:
            where = f"[{self.prefix}]" if self.prefix else "the top level"
            raise ConfigError(f"{self.path}: unknown key(s) in {where}: {', '.join(sorted(self.data))}")


def _limits(table: _Table) -> Limits:
    defaults = Limits()
    values = {f.name: table.number(f.name, getattr(defaults, f.name), int if f.type == "int" else float)
              for f in fields(Limits)}
    table.done()
    return Limits(**values)


def _thresholds(table: _Table) -> dict[str, float]:
    values = {key: table.number(key, 0.0) for key in list(table.data)}
    table.done()
    return values


def _counts(table: _Table) -> dict[str, int]:
    values = {key: table.number(key, 0, int) for key in list(table.data)}
    table.done()
    return values


def _fraction(table: _Table, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        table.data[key] = value
        raise table._fail(key, "a fraction between 0 and 1 (0.1 is 10 %)")
    return float(value)


def _due(table: _Table) -> dt.datetime:
    """[late] due: a TOML date-time or ISO 8601 text; with an offset, or in [late] timezone."""
    value = table.data.pop("due", None)
    zone_name = table.data.pop("timezone", None)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    if not isinstance(value, dt.datetime):
        table.data["due"] = value
        raise table._fail("due", "a date and time such as 2026-03-01T23:59:00-05:00")
    if zone_name is not None:
        try:
            zone = zoneinfo.ZoneInfo(str(zone_name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            table.data["timezone"] = zone_name
            raise table._fail("timezone", "an IANA time zone such as America/New_York")
        if value.tzinfo is not None:
            table.data["timezone"] = zone_name
            raise table._fail("timezone", "absent when due carries an offset")
        value = value.replace(tzinfo=zone)
    if value.tzinfo is None:
        table.data["due"] = value
        raise table._fail("due", "a date and time with a UTC offset (…-05:00) or a [late] timezone")
    return value


def _late(table: _Table) -> LatePolicy | None:
    if not table.data:
        return None
    due = _due(table)
    grace = table.number("grace_minutes", 0.0)
    per_day = _fraction(table, "per_day", table.data.pop("per_day", 0.0))
    raw_table = table.data.pop("table", [])
    if not isinstance(raw_table, list):
        table.data["table"] = raw_table
        raise table._fail("table", "a list of fractions, one per day late")
    steps = tuple(_fraction(table, "table", v) for v in raw_table)
    if any(b < a for a, b in zip(steps, steps[1:])):
        table.data["table"] = raw_table
        raise table._fail("table", "a list of fractions that never decreases")
    if steps and per_day:
        table.data["table"] = raw_table
        raise table._fail("table", "absent when per_day is set (one penalty rule)")
    if not steps and not per_day:
        raise ConfigError(f"{table.path}: [late] needs a penalty: per_day = 0.1 or table = [0.1, 0.25, ...]")
    maximum = _fraction(table, "maximum", table.data.pop("maximum", 1.0))
    table.done()
    return LatePolicy(due=due, grace_minutes=grace, per_day=per_day, table=steps, maximum=maximum)


def parse_config(folder: Path, config_path: Path) -> Assignment:
    """Validate assignment.toml into an Assignment; raise ConfigError naming the file and key."""
    try:
        raw = tomllib.loads(config_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML ({exc})") from exc
    top = _Table(config_path, "", raw)
    limits, execution, visibility = top.table("limits"), top.table("execution"), top.table("visibility")
    thresholds, weights = top.table("thresholds"), top.table("solution_weights")
    retraining, late = top.table("retraining"), top.table("late")
    assignment = Assignment(
        name=folder.name, folder=folder,
        title=top.text("title", folder.name),
        notebook=top.text("notebook", f"{folder.name}.ipynb"),
        functions=top.texts("functions"),
        submission_files=top.texts("submission_files"),
        datasets=top.texts("datasets", DATASETS),
        limits=_limits(limits),
        cells=execution.text("cells", "all", CELL_MODES),
        forbidden_modules=execution.texts("forbidden_modules"),
        hidden_visibility=visibility.text("hidden", "after_due_date", VISIBILITIES),
        hidden_output=visibility.flag("hidden_output", False),
        thresholds=_thresholds(thresholds),
        retraining_limits=_counts(retraining),
        solution_weights_after=weights.texts("after"),
        late=_late(late),
    )
    for table in (execution, visibility, weights, top):
        table.done()
    return assignment


def load_assignment(name_or_path: str | Path) -> Assignment:
    """Load solutions/<name>/assignment.toml, or the assignment folder at a given path."""
    folder = Path(name_or_path)
    if not (folder / "assignment.toml").is_file():
        folder = SOLUTIONS_DIR / str(name_or_path)
    config_path = folder / "assignment.toml"
    if not config_path.is_file():
        known = sorted(p.parent.name for p in SOLUTIONS_DIR.glob("*/assignment.toml"))
        raise ConfigError(f"unknown assignment {str(name_or_path)!r}; known: {', '.join(known) or 'none'}")
    return parse_config(folder.resolve(), config_path)
