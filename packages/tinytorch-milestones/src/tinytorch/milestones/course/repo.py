"""Where the reference source lives: the repository root and each tier's package directory."""

from __future__ import annotations

import os
from pathlib import Path

from tinytorch.milestones.tiers import MODULES, TIERS, ModuleInfo

RELEASE_MANIFEST = "tinytorch-release.json"


class RepoNotFound(RuntimeError):
    """Raised when a course tool that needs the reference source runs outside the repository."""


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: the first directory at or above ``start`` (default: cwd) with packages/VERSION."""
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "packages" / "VERSION").is_file() and (
            candidate / "packages" / "tinytorch-foundation"
        ).is_dir():
            return candidate
    raise RepoNotFound(
        f"not inside the TinyTorch repository (no packages/VERSION at or above {here}): "
        "course tools read the reference source; run them from a clone of the repository"
    )


def version(root: Path) -> str:
    return (root / "packages" / "VERSION").read_text(encoding="utf-8").strip()


def tier_dir(root: Path, tier: str) -> Path:
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    return root / "packages" / f"tinytorch-{tier}"


def import_path_of(relative: Path) -> str:
    """``tinytorch/core/spatial.py`` -> ``tinytorch.core.spatial`` (``__init__.py`` names its package)."""
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_for(import_path: str) -> ModuleInfo | None:
    for info in MODULES:
        if info.import_path == import_path:
            return info
    return None


def tier_modules(tier: str) -> list[ModuleInfo]:
    return [m for m in MODULES if m.tier == tier]


def find_release(start: str | os.PathLike) -> Path | None:
    """The student release directory containing ``start`` (it holds tinytorch-release.json), if any."""
    here = Path(start).resolve()
    for candidate in (here, *here.parents):
        if (candidate / RELEASE_MANIFEST).is_file():
            return candidate
    return None
