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


def parse_modules(spec: str) -> list[str]:
    """Module numbers of a ``--modules`` value, sorted and unique.

    ``"05"`` -> ["05"]; ``"01-03"`` -> ["01", "02", "03"]; ``"01,03,07"``; names work too
    (``"autograd"``, ``"tensor-losses"``) and parts mix (``"01-03,05"``).
    """
    from tinytorch.milestones.tiers import module

    if not str(spec).strip():
        raise ValueError("--modules: empty list (write e.g. 05, 01-03 or 01,03,07)")
    numbers: set[str] = set()
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"--modules {spec!r}: empty item between commas")
        if "-" in part and not part.startswith("-"):
            first, _, last = part.partition("-")
            a, b = int(module(first.strip()).number), int(module(last.strip()).number)
            if a > b:
                raise ValueError(f"--modules {spec!r}: range {part!r} runs backwards")
            numbers.update(f"{n:02d}" for n in range(a, b + 1))
        else:
            numbers.add(module(part).number)
    return sorted(numbers)


def tier_of_modules(numbers: list[str]) -> str:
    """The one tier holding every module in ``numbers`` (a release stubs one tier)."""
    tiers = {m.number: m.tier for m in MODULES}
    found = sorted({tiers[n] for n in numbers}, key=TIERS.index)
    if len(found) != 1:
        by_tier = "; ".join(f"{t}: {', '.join(n for n in numbers if tiers[n] == t)}" for t in found)
        raise ValueError(f"modules {', '.join(numbers)} span several tiers ({by_tier}): one tier per release")
    return found[0]
