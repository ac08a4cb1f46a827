"""Fixtures for the packaging guards: built wheels, and throwaway virtual environments."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("foundation", "architecture", "optimization", "milestones")


def run(*cmd, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """{package: wheel path}: nox's dist/ when it passes TINYTORCH_DIST, else freshly built."""
    dist = os.environ.get("TINYTORCH_DIST")
    if dist:
        dist = Path(dist)
    else:
        dist = tmp_path_factory.mktemp("dist")
        for name in PACKAGES:
            source = ROOT / "packages" / f"tinytorch-{name}"
            run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, source)
    found = {name: sorted(dist.glob(f"tinytorch_{name}-*.whl")) for name in PACKAGES}
    for name, paths in found.items():
        assert len(paths) == 1, f"expected one wheel of tinytorch-{name} in {dist}, found {paths}"
    return {name: paths[0] for name, paths in found.items()}


class Venv:
    """A fresh virtual environment (uv when available, else venv + pip)."""

    def __init__(self, path: Path):
        self.path = path
        self.uv = shutil.which("uv")
        if self.uv:
            run(self.uv, "venv", "--quiet", "--python", sys.executable, path)
        else:
            run(sys.executable, "-m", "venv", path)
        self.python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    def install(self, *args) -> None:
        if self.uv:
            run(self.uv, "pip", "install", "--quiet", "--python", self.python, *args)
        else:
            run(self.python, "-m", "pip", "install", "--quiet", *args)

    def python_ok(self, code: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), "-c", code], capture_output=True, text=True, **kwargs)


@pytest.fixture
def make_venv(tmp_path):
    count = iter(range(100))
    return lambda: Venv(tmp_path / f"venv{next(count)}")
