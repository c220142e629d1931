"""An assignment is a folder: master notebook, hidden tests, and a small config (assignment.toml)."""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = PROJECT_ROOT / "solutions"
STARTERS_DIR = PROJECT_ROOT / "assignments"
CATEGORIES = ("shape", "value", "gradient", "params", "structure", "accuracy")


@dataclass(frozen=True)
class Limits:
    """Resource limits of the student process."""
    call_timeout: float = 10.0
    cell_timeout: float = 60.0
    memory_mb: int = 2048
    cpu_seconds: int = 900
    submission_budget: float = 900.0
    output_chars: int = 4000


@dataclass(frozen=True)
class Assignment:
    """One assignment folder and its parsed config."""
    name: str
    folder: Path
    title: str
    notebook: str
    functions: tuple[str, ...]
    limits: Limits
    cells: str
    forbidden_modules: tuple[str, ...]
    hidden_visibility: str
    thresholds: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    hidden_output: bool = False  # [visibility] hidden_output: show hidden tests' messages to students

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


def tree_digest(folder: Path, skip=(".git", "__pycache__", ".ipynb_checkpoints")) -> str:
    """sha256 over the relative paths and contents of every file under folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part in skip for part in rel.parts):
            continue
        digest.update(str(rel).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def load_assignment(name_or_path: str | Path) -> Assignment:
    """Load solutions/<name>/assignment.toml, or the assignment folder at a given path."""
    folder = Path(name_or_path)
    if not (folder / "assignment.toml").is_file():
        folder = SOLUTIONS_DIR / str(name_or_path)
    config_path = folder / "assignment.toml"
    if not config_path.is_file():
        known = sorted(p.parent.name for p in SOLUTIONS_DIR.glob("*/assignment.toml"))
        raise SystemExit(f"unknown assignment {name_or_path!r}; known: {', '.join(known) or 'none'}")
    config = tomllib.loads(config_path.read_text())
    execution = config.get("execution", {})
    cells = execution.get("cells", "all")
    if cells not in ("all", "definitions"):
        raise SystemExit(f"{config_path}: execution.cells must be 'all' or 'definitions'")
    return Assignment(
        name=folder.resolve().name,
        folder=folder.resolve(),
        title=config.get("title", folder.name),
        notebook=config.get("notebook", f"{folder.name}.ipynb"),
        functions=tuple(config.get("functions", ())),
        limits=Limits(**config.get("limits", {})),
        cells=cells,
        forbidden_modules=tuple(execution.get("forbidden_modules", ())),
        hidden_visibility=config.get("visibility", {}).get("hidden", "after_due_date"),
        thresholds=dict(config.get("thresholds", {})),
        config=config,
        hidden_output=bool(config.get("visibility", {}).get("hidden_output", False)),
    )
