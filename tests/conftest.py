"""Shared test configuration: tier detection and the tier-matrix check.

Tests live in ``tests/<tier>/``. When a tier's distribution is not installed,
every test module of that tier is reported as *skipped* with a reason naming
the distribution to install; test files need no boilerplate for this.

``pytest --tier-check`` (used by every nox ``tests`` session) turns the matrix
rules into a failure:
  * a test of an installed tier may skip only because an optional oracle is
    missing (reason starting with ``optional oracle:``) or because a *different*
    tier it needs is absent (reason naming that distribution);
  * a test of an absent tier must be skipped, with a reason naming it.
"""

from __future__ import annotations

import os
import sys

# One BLAS thread for the test run, as `tito milestone` runs (TINYTORCH_BLAS_THREADS, default 1).
# The test models are small; on a busy 2-core machine a second BLAS thread spins waiting for a
# core and makes training many times slower. BLAS reads these variables once, when NumPy is
# first imported, so they are set here, before any test module imports NumPy. A value the
# user set wins; TINYTORCH_BLAS_THREADS=0 keeps the library default.
_BLAS_THREADS = os.environ.get("TINYTORCH_BLAS_THREADS", "1").strip()
if _BLAS_THREADS not in ("", "0") and "numpy" not in sys.modules:
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, _BLAS_THREADS)

from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

TESTS = Path(__file__).resolve().parent
TIER_DIRS = ("foundation", "architecture", "optimization", "milestones")
OPTIONAL_ORACLE = "optional oracle:"


def tier_installed(tier: str) -> bool:
    try:
        metadata.version(f"tinytorch-{tier}")
    except metadata.PackageNotFoundError:
        return False
    return True


def install_command(dist: str) -> str:
    """A pip command installing ``dist`` that works here (the distributions are not on PyPI).

    tito's rule when tinytorch-milestones is importable (the course's wheelhouse, else the
    package directory of this checkout, else --find-links); without it, the same rule in short.
    """
    try:
        from tinytorch.milestones.course.wheelhouse import install_command as tito_rule
    except ImportError:
        pass
    else:
        return tito_rule(dist)
    wheelhouse = os.environ.get("TINYTORCH_WHEELHOUSE", "").strip()
    if wheelhouse:
        simple = wheelhouse.rstrip("/") if "://" in wheelhouse else Path(wheelhouse).resolve().as_uri()
        simple = simple if simple.endswith("/simple") else simple + "/simple"
        return f"pip install --extra-index-url {simple} {dist}"
    package = TESTS.parent / "packages" / dist
    if package.is_dir():
        return f"pip install {package}"
    return f"pip install --find-links WHEELHOUSE {dist} (WHEELHOUSE: your course's wheelhouse URL or folder)"


def absent_reason(tier: str) -> str:
    return f"tinytorch-{tier} is not installed: {install_command(f'tinytorch-{tier}')}"


def require_tier(tier: str) -> None:
    """Skip the calling test (or module, at import time) unless ``tier`` is installed."""
    if not tier_installed(tier):
        pytest.skip(absent_reason(tier), allow_module_level=True)


def torch_or_skip():
    """Import PyTorch as an optional oracle, or skip cleanly."""
    return pytest.importorskip("torch", reason=f"{OPTIONAL_ORACLE} PyTorch is not installed")


def tier_of(path: Path) -> str | None:
    try:
        rel = Path(path).resolve().relative_to(TESTS)
    except ValueError:
        return None
    return rel.parts[0] if rel.parts and rel.parts[0] in TIER_DIRS else None


class AbsentTierModule(pytest.Module):
    """A test module whose tier is absent: collected as one skip, never imported."""

    def collect(self):
        pytest.skip(absent_reason(tier_of(self.path)))


def pytest_pycollect_makemodule(module_path, parent):
    tier = tier_of(module_path)
    if tier is not None and not tier_installed(tier):
        return AbsentTierModule.from_parent(parent, path=module_path)
    return None


@pytest.fixture
def torch():
    return torch_or_skip()


def pytest_addoption(parser):
    parser.addoption(
        "--tier-check",
        action="store_true",
        help="fail the run when a skip breaks the tier-matrix rules (see tests/conftest.py)",
    )


class TierCheck:
    def __init__(self) -> None:
        self.violations: list[str] = []
        self.installed = {t: tier_installed(t) for t in TIER_DIRS}

    def check(self, report) -> None:
        tier = tier_of(Path(str(report.fspath)))
        if tier is None:
            return
        reason = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = report.longrepr[2]
        where = report.nodeid
        if not self.installed[tier]:
            if report.passed or report.failed:
                self.violations.append(f"{where}: ran although tinytorch-{tier} is absent")
            elif report.skipped and f"tinytorch-{tier}" not in reason:
                self.violations.append(f"{where}: skipped without naming tinytorch-{tier}: {reason!r}")
            return
        if report.skipped:
            names_absent_tier = any(
                f"tinytorch-{other}" in reason and not ok for other, ok in self.installed.items()
            )
            if OPTIONAL_ORACLE not in reason and not names_absent_tier:
                self.violations.append(f"{where}: installed tier skipped: {reason!r}")

    def pytest_runtest_logreport(self, report):
        if report.when == "setup" or report.skipped:
            self.check(report)

    def pytest_collectreport(self, report):
        if report.skipped:
            self.check(report)

    def pytest_terminal_summary(self, terminalreporter):
        if self.violations:
            terminalreporter.section("tier check failed")
            for line in self.violations:
                terminalreporter.line(line)

    def pytest_sessionfinish(self, session, exitstatus):
        if self.violations and session.exitstatus == 0:
            session.exitstatus = 1


def pytest_configure(config):
    if config.getoption("--tier-check"):
        config.pluginmanager.register(TierCheck(), "tier-check")


@pytest.fixture(name="require_tier")
def require_tier_fixture():
    """``require_tier("architecture")`` inside a test: skip it, naming the distribution, if absent."""
    return require_tier
