"""Every check of the repository, as nox sessions.

    nox                      all default sessions (tier matrix, packaging, course, milestones, lint)
    nox -s build             wheels of the four distributions into dist/
    nox -s "tests(foundation)"               one tier combination
    nox -s bench             side-by-side benchmarks (not a default session)

The tier sessions install reference *wheels*, never the source tree, so they
test what a course would install.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"
TIERS = ("foundation", "architecture", "optimization")
PACKAGES = TIERS + ("milestones",)
TEST_DEPS = ("pytest>=7", "hypothesis>=6")
# Each dependency-closed set of reference tiers: a course can install exactly these.
TIER_SETS = {
    "foundation": TIERS[:1],
    "foundation+architecture": TIERS[:2],
    "foundation+architecture+optimization": TIERS,
}

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = [
    "lint",
    "packaging",
    *[f"tests({name})" for name in TIER_SETS],
    "oracle",
    "course(foundation)",
    "course(architecture)",
    "course(optimization)",
    "milestones",
]

_built = False


def build_wheels(session: nox.Session) -> dict[str, str]:
    """Build the four wheels into dist/ (once per nox run); return {package: wheel path}."""
    global _built
    if not _built:
        shutil.rmtree(DIST, ignore_errors=True)
        for name in PACKAGES:
            session.run(
                "uv", "build", "--wheel", "--quiet", "-o", str(DIST), str(ROOT / "packages" / f"tinytorch-{name}"),
                external=True,
            )
        _built = True
    return {name: wheel(name) for name in PACKAGES}


def wheel(name: str) -> str:
    (path,) = glob.glob(str(DIST / f"tinytorch_{name}-*.whl"))
    return path


def install_wheels(session: nox.Session, names) -> None:
    """Runtime dependencies from the index, then our wheels forcibly (venvs are reused)."""
    wheels = build_wheels(session)
    session.install("numpy>=1.24", "tqdm>=4.60", "requests>=2.28", *TEST_DEPS)
    session.install("--force-reinstall", "--no-deps", *(wheels[n] for n in names))


@nox.session
def build(session: nox.Session) -> None:
    """Wheels of the four distributions into dist/."""
    global _built
    _built = False
    build_wheels(session)
    session.log("built: " + ", ".join(sorted(os.listdir(DIST))))


@nox.session
@nox.parametrize("tiers", list(TIER_SETS), ids=list(TIER_SETS))
def tests(session: nox.Session, tiers: str) -> None:
    """One tier combination: its reference wheels plus milestones; absent tiers must skip."""
    installed = TIER_SETS[tiers]
    # Reused venvs may hold tiers from an earlier run of another combination.
    absent = [f"tinytorch-{t}" for t in TIERS if t not in installed]
    session.run("uv", "pip", "uninstall", "--python", session.virtualenv.location, *absent, external=True,
                silent=True, success_codes=[0, 1, 2])
    install_wheels(session, (*installed, "milestones"))
    dirs = [f"tests/{t}" for t in (*TIERS, "milestones")]
    session.run("pytest", "--tier-check", "-q", *dirs, *session.posargs)


# PyTorch is the optional oracle of many tests. Only this exact CPU build is
# installed: any other version pulls gigabytes of CUDA packages.
TORCH = "torch==2.13.0"


@nox.session(venv_backend="virtualenv")
def oracle(session: nox.Session) -> None:
    """Every tier's tests with PyTorch installed, so the PyTorch comparisons run instead of skipping.

    Uses pip (virtualenv backend) because pip honours the machine's configured
    wheel locations for the CPU build of torch; uv would resolve a CUDA build.
    """
    install_wheels(session, (*TIERS, "milestones"))
    try:
        session.install(TORCH, "--only-binary=:all:", silent=True)
    except nox.command.CommandFailed:
        session.skip(f"{TORCH} could not be installed here; the PyTorch comparisons stay skipped elsewhere")
    session.run("pytest", "-q", "-m", "not slow", "tests/foundation", "tests/architecture", "tests/optimization",
                *session.posargs)


@nox.session
def packaging(session: nox.Session) -> None:
    """Wheel-content guards, version pins, namespace probe, editable installs together."""
    build_wheels(session)
    session.install("numpy>=1.24", "tqdm>=4.60", "requests>=2.28", *TEST_DEPS)
    session.run("pytest", "-q", "tests/packaging", env={"TINYTORCH_DIST": str(DIST)}, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole repository."""
    session.install("ruff")
    session.run("ruff", "check", ".")
