"""Where studies live, and loading one by name or path.

Search studies are ``search_spaces/*.yaml``, ablations ``ablations/*.yaml``. One precedence rule for
both: the working directory's folder first (a user's own studies), then the one shipped inside the
tinyab package (``tinyab/studies/``, package data). Loading validates the file (every profile),
applies a profile and ``--set`` values, and checks the sampler's and pruner's options against the
classes that will be built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tinyab.studies
from tinyab.config import read_yaml
from tinyab.errors import ConfigError
from tinyab.schema import suggest
from tinyab.study.spec import AblationStudy, SearchStudy, Study, StudyFile, build_study

Kind = Literal["search", "ablation"]
FOLDERS: dict[Kind, str] = {"search": "search_spaces", "ablation": "ablations"}
CLASSES: dict[Kind, type[StudyFile]] = {"search": SearchStudy, "ablation": AblationStudy}
SHIPPED = Path(tinyab.studies.__file__).resolve().parent


@dataclass(frozen=True)
class StudyEntry:
    """A study file found in the catalog: its name, path and question (for listings)."""

    name: str
    path: Path
    question: str


def folders(kind: Kind) -> list[Path]:
    """The folders searched for ``kind``, in precedence order."""
    candidates = [Path.cwd() / FOLDERS[kind], SHIPPED / FOLDERS[kind]]
    return [d for d in dict.fromkeys(p.resolve() for p in candidates) if d.is_dir()]


def study_files(kind: Kind) -> dict[str, Path]:
    """Every study of ``kind`` by name; a name in an earlier folder hides the same name later."""
    found: dict[str, Path] = {}
    for folder in folders(kind):
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def entries(kind: Kind) -> list[StudyEntry]:
    """The catalog listing: each study with its question on one line."""
    out = []
    for name, path in study_files(kind).items():
        data = read_yaml(path)
        question = " ".join(str(data.get("question", "")).split()) if isinstance(data, dict) else ""
        out.append(StudyEntry(name, path, question))
    return out


def locate(kind: Kind, name_or_path: str) -> Path:
    """The file of a study name or path; an unknown name lists the available ones."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{path}: {kind} file not found")
        return path
    files = study_files(kind)
    if name_or_path not in files:
        noun = "study" if kind == "search" else kind
        available = ", ".join(files) or "none"
        raise ConfigError(
            f"unknown {noun} '{name_or_path}'{suggest(name_or_path, files)}; available: {available}"
        )
    return files[name_or_path]


def profiles_of(path: Path) -> list[str]:
    """The profile names a study file defines (for ``--profile auto``)."""
    raw = read_yaml(path)
    profiles = raw.get("profiles") if isinstance(raw, dict) else None
    return list(profiles) if isinstance(profiles, dict) else []


def load(
    kind: Kind, path: Path, profile: str | None = None, overrides: dict[str, Any] | None = None
) -> Study:
    """Read, validate and resolve a study file of ``kind``."""
    from tinyab.study.optuna_bridge import check_options

    raw = read_yaml(path)
    check_options(build_study(CLASSES[kind], raw, path, None), str(path))
    for name in profiles_of(path):
        check_options(build_study(CLASSES[kind], raw, path, name), f"{path} (profile {name})")
    study = build_study(CLASSES[kind], raw, path, profile, overrides)
    check_options(study, f"{path} (--set)" if overrides else str(path))
    return study  # type: ignore[return-value]
